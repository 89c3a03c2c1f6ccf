// The bridge against the cost of HTTP itself on this machine (issue 19 §1):
// nginx (Debian's nginx-light, one worker process) answering a constant
// JSON body, the very bytes the bridge answers, against the bridge serving
// a path-form GET of a 100-byte value from its redis-server; the same
// `wrk -t2 -c64`, rounds interleaved, medians. webdis (Debian's
// HTTP-to-Redis adapter, two threads, same Redis) stays in the table for
// continuity with bench/tier.bench.mjs.
//
// Redis Cluster (issue 16): the same bridge in front of a local 3-master,
// 3-replica cluster, serving the same GET and a 10-command /pipeline whose
// keys sit on every master, side by side with the bridge on one server:
// target >= 0.9x the single server's throughput.
//
//   node bench/bridge-nginx.bench.mjs [--quick]      (make bench runs it;
//   `scripts/setup.sh --bench` installs nginx-light)
//
// Besides requests per second it prints the CPU time each side spent per
// request, read from /proc (utime + stime of every process of the side:
// the bridge and redis-server; nginx's master and worker; webdis and the
// same redis-server), so the ratio can be read without wrk's share of the
// two cores. Target: the bridge >= 0.8x nginx. A benchmark, not a test:
// it prints figures and fails nothing (it exits 0 with a note if nginx is
// missing).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RedisRest, generateSecureKey } from 'edgecache';
import { startRedis, startBridge, startCluster, freePort } from '../tests/js/servers.mjs';
import { QUICK } from './lib.mjs';

const ROUNDS = QUICK ? 3 : 5;
const DUR = QUICK ? '2s' : '5s';
const TOKEN = 'bench-' + generateSecureKey();
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => fs.existsSync(p));

if (!NGINX) {
  console.log('bridge against nginx: skipped, nginx is not installed (scripts/setup.sh --bench installs nginx-light)');
  process.exit(0);
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** CPU seconds (user + system) `pid` has used so far, 0 once it is gone. */
function cpuOf(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces) start at ") ".
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK;
  } catch {
    return 0;
  }
}

/** `pid` and every process whose parent it is (nginx's worker). */
function family(pid) {
  const out = [pid];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const cpu = (pids) => pids.reduce((s, p) => s + cpuOf(p), 0);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');

/** One wrk run; `pids` are sampled for CPU time around it (the first one also on its own). */
function wrk(url, pids, extra = []) {
  const before = cpu(pids);
  const first = cpuOf(pids[0]);
  const out = execFileSync('wrk', ['-t2', '-c64', `-d${DUR}`, ...extra, url], { encoding: 'utf8' });
  const used = cpu(pids) - before;
  const usedFirst = cpuOf(pids[0]) - first;
  if (/Non-2xx|Socket errors/.test(out)) throw new Error(`wrk saw errors against ${url}:\n${out}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const total = Number(/(\d+) requests in/.exec(out)?.[1]);
  return { rps, cpuPerReq: (used / total) * 1e6, firstPerReq: (usedFirst / total) * 1e6 };
}

async function waitFor(url) {
  for (let i = 0; i < 200; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${url} never answered`);
}

const redis = await startRedis();
const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
const cluster = await startCluster();
const clusterBridge = await startBridge({ redisUrl: cluster.url, token: TOKEN });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-nginx-'));
let nginx;
let webdis;
try {
  const client = new RedisRest({ url: bridge.url, token: TOKEN });
  await client.set('bench:key', 'v'.repeat(100));
  const onCluster = new RedisRest({ url: clusterBridge.url, token: TOKEN });
  await onCluster.set('bench:key', 'v'.repeat(100));
  // Ten keys on all three masters of redis-cli's layout (slots 0-5460,
  // 5461-10922, 10923-16383): 6, 2 and 2 of them.
  const keys = Array.from({ length: 10 }, (_, i) => `bench:p${i}`);
  for (const k of keys) {
    await client.set(k, 'v'.repeat(100));
    await onCluster.set(k, 'v'.repeat(100));
  }
  const script = path.join(dir, 'pipeline.lua');
  fs.writeFileSync(
    script,
    `wrk.method = "POST"\nwrk.body = '${JSON.stringify(keys.map((k) => ['GET', k]))}'\nwrk.headers["Content-Type"] = "application/json"\n`,
  );
  const masters = cluster.nodes.filter((n) => n.role === 'master').map((n) => n.proc.pid);
  const bridgeUrl = `${bridge.url}/get/bench:key`;
  const auth = ['-H', `Authorization: Bearer ${TOKEN}`];
  // nginx answers exactly what the bridge answers for this GET.
  const body = await (await fetch(bridgeUrl, { headers: { authorization: `Bearer ${TOKEN}` } })).text();

  const nginxPort = await freePort();
  fs.writeFileSync(path.join(dir, 'body.json'), body);
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `# written by bench/bridge-nginx.bench.mjs
daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log error;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${nginxPort};
    location / {
      default_type application/json;
      return 200 '${body.replace(/'/g, "\\'")}';
    }
  }
}
`,
  );
  nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const nginxUrl = `http://127.0.0.1:${nginxPort}/get/bench:key`;
  await waitFor(nginxUrl);
  const nginxBody = await (await fetch(nginxUrl)).text();
  if (nginxBody !== body) throw new Error(`nginx answers ${JSON.stringify(nginxBody)}, the bridge ${JSON.stringify(body)}`);

  const webdisPort = await freePort();
  fs.writeFileSync(
    path.join(dir, 'webdis.json'),
    JSON.stringify({ redis_host: '127.0.0.1', redis_port: redis.port, http_host: '127.0.0.1', http_port: webdisPort, threads: 2, daemonize: false, database: 0, verbosity: 0, logfile: path.join(dir, 'webdis.log') }),
  );
  webdis = spawn('webdis', [path.join(dir, 'webdis.json')], { stdio: 'ignore' });
  const webdisUrl = `http://127.0.0.1:${webdisPort}/GET/bench:key`;
  await waitFor(webdisUrl);

  const sides = {
    'edgecache-bridge': { url: bridgeUrl, pids: [bridge.proc.pid, redis.proc.pid], extra: auth, runs: [] },
    'nginx (constant)': { url: nginxUrl, pids: family(nginx.pid), extra: [], runs: [] },
    webdis: { url: webdisUrl, pids: [webdis.pid, redis.proc.pid], extra: [], runs: [] },
    'bridge, cluster': { url: `${clusterBridge.url}/get/bench:key`, pids: [clusterBridge.proc.pid, ...masters], extra: auth, runs: [] },
    'pipeline x10': { url: `${bridge.url}/pipeline`, pids: [bridge.proc.pid, redis.proc.pid], extra: [...auth, '-s', script], runs: [] },
    'pipeline x10, cluster': { url: `${clusterBridge.url}/pipeline`, pids: [clusterBridge.proc.pid, ...masters], extra: [...auth, '-s', script], runs: [] },
  };
  const clusterBody = await (await fetch(sides['bridge, cluster'].url, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
  if (clusterBody !== body) throw new Error(`the bridge on the cluster answers ${clusterBody}, on one server ${body}`);
  if (sides['nginx (constant)'].pids.length < 2) throw new Error('nginx has no worker process');
  const names = Object.keys(sides);
  for (const name of names) wrk(sides[name].url, sides[name].pids, [...sides[name].extra]); // warm-up
  for (let r = 0; r < ROUNDS; r++) {
    for (let j = 0; j < names.length; j++) {
      const s = sides[names[(r + j) % names.length]];
      s.runs.push(wrk(s.url, s.pids, s.extra));
    }
  }
  const m = Object.fromEntries(
    names.map((n) => [
      n,
      { rps: median(sides[n].runs.map((x) => x.rps)), cpu: median(sides[n].runs.map((x) => x.cpuPerReq)), first: median(sides[n].runs.map((x) => x.firstPerReq)) },
    ]),
  );
  const ng = m['nginx (constant)'];
  console.log(
    `The bridge against nginx: wrk -t2 -c64 -d${DUR}, ${ROUNDS} interleaved rounds, medians; load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`,
  );
  console.log(`  (${body.length}-byte body; CPU per request from /proc: bridge + redis-server, nginx master + worker, webdis + redis-server)`);
  for (const n of names) {
    const x = m[n];
    console.log(
      `  ${n.padEnd(22)} ${fmt(x.rps).padStart(9)} req/s  ${(x.rps / ng.rps).toFixed(2)}x nginx   ` +
        `${x.cpu.toFixed(1).padStart(6)} µs CPU/request  ${(x.cpu / ng.cpu).toFixed(2)}x nginx's`,
    );
  }
  const b = m['edgecache-bridge'];
  console.log(`  (the bridge's ${b.cpu.toFixed(1)} µs: ${b.first.toFixed(1)} in the bridge, ${(b.cpu - b.first).toFixed(1)} in redis-server)`);
  console.log(`  target: the bridge >= 0.80x nginx in req/s (now ${(m['edgecache-bridge'].rps / ng.rps).toFixed(2)}x)`);
  const c = m['bridge, cluster'];
  const pc = m['pipeline x10, cluster'];
  const ps = m['pipeline x10'];
  console.log(
    `  Redis Cluster (3 masters), target >= 0.90x one server: GET ${(c.rps / b.rps).toFixed(2)}x, ` +
      `10-command pipeline over every master ${(pc.rps / ps.rps).toFixed(2)}x (CPU per request ${(c.cpu / b.cpu).toFixed(2)}x, ${(pc.cpu / ps.cpu).toFixed(2)}x)`,
  );
} finally {
  nginx?.kill('SIGTERM');
  webdis?.kill('SIGKILL');
  await bridge.stop();
  await redis.stop();
  await clusterBridge.stop();
  await cluster.stop();
  await new Promise((r) => setTimeout(r, 100));
  fs.rmSync(dir, { recursive: true, force: true });
}
