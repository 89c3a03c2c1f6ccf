// Starts and stops the real servers JS tests need, on free loopback ports:
// a redis-server (Debian's) and the edgecache-bridge binary in front of it.
// Shared by every test that talks to Redis; keep the exported shapes stable:
//   startRedis() -> { port, url, stop() }
//   startBridge({ redisUrl, token, args? }) -> { url, token, proc, stop() }
//   redisAndBridge({ token, args? }) -> { redis, bridge }, started before
//     the file's (or describe block's) tests and stopped after them
//   countingFetch() -> a fetch that counts requests and their commands
//   startCluster({ masters?, replicas?, nodeTimeout?, tls? }) -> { url,
//     nodes, cli(i, ...args), waitOk(), topology(), stop() }: a Redis
//     Cluster (over TLS only with `tls`)
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { before, after } from 'node:test';
import net from 'node:net';
import tls from 'node:tls';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');

/** The bridge binary: $EDGECACHE_BRIDGE_BIN, else the release build. */
export const BRIDGE_BIN = process.env.EDGECACHE_BRIDGE_BIN
  ? path.resolve(root, process.env.EDGECACHE_BRIDGE_BIN)
  : path.join(root, 'target/release/edgecache-bridge');

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Resolves once `port` answers PING with PONG, or rejects after `ms`; over
 * TLS with `tlsOptions` (node:tls's: `ca`, `cert`, `key`; the certificate
 * is verified for 127.0.0.1).
 */
async function waitForRedis(port, ms = 10_000, tlsOptions) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = tlsOptions ? tls.connect({ host: '127.0.0.1', port, ...tlsOptions }) : net.connect(port, '127.0.0.1');
      s.setTimeout(500);
      s.on(tlsOptions ? 'secureConnect' : 'connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.on('error', () => resolve(false));
      s.on('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
    await sleep(25);
  }
}

/** Stops a child: SIGTERM, then SIGKILL if it lingers; resolves on exit. */
function stopper(proc) {
  let exited = proc.exitCode !== null || proc.signalCode !== null;
  const done = new Promise((resolve) => {
    if (exited) resolve();
    proc.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  return async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    }
  };
}

/** Children still running when the test process exits are killed. */
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
}

/** A redis-server on a free port, no persistence. */
export async function startRedis() {
  return startRedisOn(await freePort());
}

/**
 * The bridge on a free port in front of `redisUrl`; resolves once it has
 * printed `listening on http://…` and reaches Redis (`/healthz`). Its logs
 * go to this process's stderr (RUST_LOG=error unless set), or to
 * `onStderr`; `env` adds environment variables.
 */
export async function startBridge(options) {
  return startBridgeOn(0, options);
}

function listenFree(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function reset(s) {
  if (s.resetAndDestroy) s.resetAndDestroy();
  else s.destroy();
}

/**
 * A TCP proxy on a free port in front of 127.0.0.1:`target`, for faults
 * between two real parts, switched while load runs: `pass()`, `delay(ms)`
 * (added to every chunk either way, order kept) and `cut(rate)` (a reply
 * chunk is forwarded half, then both sides are reset: a connection dropped
 * mid-reply, after the server ran the command); `dropAll()` resets every
 * open connection.
 */
export async function startTcpFaultProxy(target) {
  const state = { mode: 'pass', delay: 0, cutRate: 0.5, cuts: 0 };
  const sockets = new Set();
  const pipe = (from, to, replies) => {
    let chain = Promise.resolve();
    from.on('data', (chunk) => {
      if (replies && state.mode === 'cut' && Math.random() < state.cutRate) {
        state.cuts++;
        to.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)));
        from.pause();
        setImmediate(() => {
          reset(from);
          reset(to);
        });
        return;
      }
      const delay = state.mode === 'delay' ? state.delay : 0;
      if (delay === 0) {
        chain = chain.then(() => {
          if (!to.destroyed) to.write(chunk);
        });
        return;
      }
      from.pause();
      chain = chain
        .then(() => sleep(delay))
        .then(() => {
          if (!to.destroyed) to.write(chunk);
          from.resume();
        });
    });
    from.on('end', () => chain.then(() => to.end()));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    pipe(client, upstream, false);
    pipe(upstream, client, true);
  });
  const port = await listenFree(server);
  return {
    port,
    state,
    pass() {
      state.mode = 'pass';
    },
    delay(ms) {
      state.mode = 'delay';
      state.delay = ms;
    },
    cut(rate = 0.5) {
      state.mode = 'cut';
      state.cutRate = rate;
    },
    dropAll() {
      for (const s of sockets) reset(s);
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** {@link startTcpFaultProxy} with `delay` ms from the start, and `setDelay(ms)` (0: pass). */
export async function startProxy(target, { delay = 0 } = {}) {
  const p = await startTcpFaultProxy(target);
  const setDelay = (ms) => (ms > 0 ? p.delay(ms) : p.pass());
  setDelay(delay);
  return { ...p, setDelay };
}

// ---- For the chaos harness (bench/chaos.mjs): servers restarted on the
// ---- same port after a kill -9, so that what points at them keeps working.

/** A redis-server on `port` (no persistence: a restart comes back empty). */
export async function startRedisOn(port) {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  track(proc);
  const spawnError = new Promise((_, reject) => proc.once('error', reject));
  await Promise.race([waitForRedis(port), spawnError]);
  return { port, url: `redis://127.0.0.1:${port}`, proc, stop: stopper(proc) };
}

/**
 * The bridge listening on 127.0.0.1:`port` (as {@link startBridge}, which
 * picks a free port). With `waitHealthy: false` it resolves once listening,
 * without waiting for Redis.
 */
export async function startBridgeOn(port, { redisUrl, token, args = [], env = {}, waitHealthy = true, onStderr }) {
  const proc = spawn(
    BRIDGE_BIN,
    ['--listen', `127.0.0.1:${port}`, '--redis-url', redisUrl, ...args],
    {
      stdio: ['ignore', 'pipe', onStderr ? 'pipe' : 'inherit'],
      // The token by environment, as docs/REDIS.md advises (not in `ps`).
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'error', EDGECACHE_BRIDGE_TOKEN: token, ...env },
    },
  );
  if (onStderr) proc.stderr.on('data', (d) => onStderr(d.toString()));
  track(proc);
  const stop = stopper(proc);
  const url = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout });
    lines.once('line', (line) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolve(m[1]);
      else reject(new Error(`edgecache-bridge printed ${JSON.stringify(line)}`));
    });
    proc.once('error', (e) =>
      reject(new Error(`cannot run ${BRIDGE_BIN} (build it: cargo build --release -p edgecache-bridge): ${e.message}`)),
    );
    proc.once('exit', (code) => reject(new Error(`edgecache-bridge exited with ${code} before listening`)));
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  const deadline = Date.now() + 10_000;
  while (waitHealthy && (await fetch(`${url}/healthz`).catch(() => ({ ok: false }))).ok === false) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edgecache-bridge at ${url} never reached ${redisUrl}`);
    }
    await sleep(25);
  }
  return { port, url, token, proc, stop };
}

/**
 * A redis-server and a bridge in front of it for the tests of the file (or
 * of the `describe` block this is called in): started in `before`,
 * stopped in `after`. Read `.redis` and `.bridge` inside the tests.
 */
export function redisAndBridge({ token, args } = {}) {
  const servers = { redis: undefined, bridge: undefined };
  before(async () => {
    servers.redis = await startRedis();
    servers.bridge = await startBridge({ redisUrl: servers.redis.url, token, ...(args ? { args } : {}) });
  });
  after(async () => {
    await servers.bridge?.stop();
    await servers.redis?.stop();
  });
  return servers;
}

/**
 * A fetch that counts the requests (`f.requests`) and the commands in them
 * (`f.commands`, a `/pipeline` body's commands or a single command's).
 */
export function countingFetch() {
  const f = (input, init) => {
    f.requests++;
    const body = JSON.parse(init.body);
    f.commands.push(...(Array.isArray(body[0]) ? body : [body]));
    return fetch(input, init);
  };
  f.requests = 0;
  f.commands = [];
  return f;
}

// ---- Redis Cluster (issue 16): real redis-server nodes in cluster mode.

const execFileP = (file, args, opts = {}) =>
  new Promise((resolve, reject) =>
    execFile(file, args, { timeout: 30_000, ...opts }, (err, stdout, stderr) =>
      err ? reject(Object.assign(err, { stdout, stderr })) : resolve(stdout),
    ),
  );

/** `n` distinct free ports. */
async function freePorts(n) {
  const ports = new Set();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/**
 * The parsed `CLUSTER NODES` of a node: one `{ id, addr, port, role:
 * 'master'|'replica', masterId, flags, failed, slots: [[from, to], ...] }`
 * per node it knows.
 */
function parseClusterNodes(text) {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flags, masterId, , , , link, ...slotSpecs] = line.split(' ');
      const f = flags.split(',');
      const port = Number(addr.split('@')[0].split(':').pop());
      const slots = slotSpecs
        .filter((s) => !s.startsWith('['))
        .map((s) => {
          const [a, b = a] = s.split('-').map(Number);
          return [a, b];
        });
      return {
        id,
        addr: addr.split('@')[0],
        port,
        role: f.includes('master') ? 'master' : 'replica',
        masterId: masterId === '-' ? undefined : masterId,
        flags: f,
        failed: f.includes('fail') || f.includes('fail?') || link !== 'connected',
        slots,
      };
    });
}

/**
 * A Redis Cluster on loopback: `masters * (1 + replicas)` redis-server
 * processes with `--cluster-enabled yes` on free ports (client and bus
 * port both picked free), `--cluster-node-timeout nodeTimeout`, no
 * persistence, each in its own temp dir (removed by `stop()`), joined by
 * `redis-cli --cluster create ... --cluster-replicas`, and resolved once
 * {@link waitOk} holds. Killed on process exit like the other servers.
 *
 * - `url`: `redis-cluster://127.0.0.1:p0?node=127.0.0.1:p1&node=...`
 *   (every node, the bridge's cluster syntax);
 * - `nodes[i]`: `{ port, proc, id, role, kill9(), restart() }`; `role` and
 *   `id` are as of the last `waitOk()`/`topology()`. `kill9()` SIGKILLs
 *   the node and resolves once it exited; `restart()` starts it again on
 *   the same ports and dir (its nodes.conf keeps its identity; its data
 *   is gone: a restarted master whose replica was not promoted comes back
 *   empty, as with no persistence on one server);
 * - `cli(i, ...args)`: runs `redis-cli -p <node i> ...args`, resolves to
 *   its stdout (rejects if redis-cli fails; `-c` etc. are yours to pass);
 * - `waitOk({ ms })`: resolves once every running node says
 *   `cluster_state:ok`, they all agree on which node holds which slots
 *   and on every running node's role and master (16384 covered, every
 *   owner running, no running node seen as failed), and every replica's
 *   link to its master is up; rejects after
 *   `ms` (default 20 s). After a kill9() of a master it resolves once its
 *   replica is promoted;
 * - `topology()`: the parsed `CLUSTER NODES` of the first running node
 *   (see parseClusterNodes), refreshing `nodes[i].role`/`.id`;
 * - `masterOf(key)`: the index in `nodes` of the master owning `key`'s slot
 *   (as of now);
 * - `stop()`: stops every node and removes the dirs.
 *
 * With `tls: { cert, key, ca, client? }` (PEM file paths; `cert` valid for
 * 127.0.0.1) every node listens on a TLS port only (`--port 0`), its
 * cluster bus and replication over TLS too, so `CLUSTER SLOTS` names the
 * TLS ports; `url` is `rediss-cluster://...`, and `cli()` and `--cluster
 * create` run `redis-cli --tls --cacert ca`. Clients need no certificate
 * (`--tls-auth-clients no`) unless `client: { cert, key }` is given: then
 * the nodes require one, present `client` to each other, and `cli()`
 * presents it too.
 */
export async function startCluster({ masters = 3, replicas = 1, nodeTimeout = 2000, tls: tlsFiles } = {}) {
  const count = masters * (1 + replicas);
  const ports = await freePorts(count * 2);
  const nodes = [];
  const client = tlsFiles?.client;
  const listen = (port) =>
    tlsFiles
      ? [
          '--port', '0',
          '--tls-port', String(port),
          '--tls-cluster', 'yes',
          '--tls-replication', 'yes',
          '--tls-cert-file', tlsFiles.cert,
          '--tls-key-file', tlsFiles.key,
          '--tls-ca-cert-file', tlsFiles.ca,
          '--tls-auth-clients', client ? 'yes' : 'no',
          ...(client ? ['--tls-client-cert-file', client.cert, '--tls-client-key-file', client.key] : []),
        ]
      : ['--port', String(port)];
  const cliTls = tlsFiles ? ['--tls', '--cacert', tlsFiles.ca, ...(client ? ['--cert', client.cert, '--key', client.key] : [])] : [];
  const pingTls = tlsFiles && {
    ca: readFileSync(tlsFiles.ca),
    ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}),
  };
  const spawnNode = (node) => {
    const proc = spawn(
      'redis-server',
      [
        ...listen(node.port),
        '--cluster-port', String(node.busPort),
        '--bind', '127.0.0.1',
        '--dir', node.dir,
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(nodeTimeout),
        '--save', '',
        '--appendonly', 'no',
        // A replica's first sync at once (the default waits 5 s for more).
        '--repl-diskless-sync', 'yes',
        '--repl-diskless-sync-delay', '0',
        '--repl-diskless-load', 'swapdb',
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    track(proc);
    node.proc = proc;
    node.stop = stopper(proc);
    return Promise.race([waitForRedis(node.port, undefined, pingTls), new Promise((_, reject) => proc.once('error', reject))]);
  };
  for (let i = 0; i < count; i++) {
    const node = {
      index: i,
      port: ports[i],
      busPort: ports[count + i],
      dir: mkdtempSync(path.join(os.tmpdir(), 'edgecache-cluster-')),
      proc: undefined,
      id: undefined,
      role: undefined,
      async kill9() {
        const p = node.proc;
        if (p.exitCode !== null || p.signalCode !== null) return;
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      },
      async restart() {
        await node.kill9();
        await spawnNode(node);
      },
    };
    nodes.push(node);
  }
  const running = () => nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  const cli = (i, ...args) => execFileP('redis-cli', [...cliTls, '-p', String(nodes[i].port), ...args.map(String)]);
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop?.()));
    for (const n of nodes) rmSync(n.dir, { recursive: true, force: true });
  };
  try {
    await Promise.all(nodes.map(spawnNode));
    await execFileP('redis-cli', [
      ...cliTls,
      '--cluster', 'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas', String(replicas),
      '--cluster-yes',
    ]);
  } catch (e) {
    await stop();
    throw new Error(`redis-cli --cluster create failed: ${e.message}\n${e.stdout ?? ''}`);
  }

  const refresh = (parsed) => {
    for (const p of parsed) {
      const n = nodes.find((x) => x.port === p.port);
      if (n) {
        n.id = p.id;
        n.role = p.role;
      }
    }
    return parsed;
  };
  const topology = async () => refresh(parseClusterNodes(await cli(running()[0].index, 'CLUSTER', 'NODES')));

  /** Why the cluster is not settled yet, or null when it is. */
  const unsettled = async () => {
    const live = running();
    let layout;
    for (const n of live) {
      const info = await cli(n.index, 'CLUSTER', 'INFO').catch(() => '');
      if (!/cluster_state:ok/.test(info)) return `node ${n.port}: not cluster_state:ok`;
      const parsed = parseClusterNodes(await cli(n.index, 'CLUSTER', 'NODES'));
      const failedLive = parsed.find((p) => p.failed && live.some((l) => l.port === p.port));
      if (failedLive) return `node ${n.port} sees ${failedLive.port} (running) as failed`;
      // Who holds which slots, and the role and master of every running node.
      const portOf = (id) => parsed.find((x) => x.id === id)?.port;
      const owners = parsed
        .filter((p) => (p.role === 'master' && p.slots.length > 0) || live.some((l) => l.port === p.port))
        .map((p) => `${p.port}:${p.role === 'master' ? p.slots.map((s) => s.join('-')).join(',') : `replica of ${portOf(p.masterId)}`}`)
        .sort()
        .join(' ');
      const deadOwner = parsed.find((p) => p.role === 'master' && p.slots.length > 0 && !live.some((l) => l.port === p.port));
      if (deadOwner) return `node ${n.port}: slots still on ${deadOwner.port}, which is down`;
      const covered = parsed.reduce((a, p) => a + p.slots.reduce((b, [x, y]) => b + y - x + 1, 0), 0);
      if (covered !== 16384) return `node ${n.port}: ${covered} slots covered`;
      if (layout === undefined) layout = owners;
      else if (layout !== owners) return `nodes disagree on the slots: ${layout} / ${owners}`;
      const me = parsed.find((p) => p.flags.includes('myself'));
      if (me?.role === 'replica') {
        const repl = await cli(n.index, 'INFO', 'replication');
        if (!/master_link_status:up/.test(repl)) return `replica ${n.port}: link to its master not up`;
      }
      if (live.every((l) => parsed.some((p) => p.port === l.port)) === false) return `node ${n.port} does not know every node yet`;
      refresh(parsed);
    }
    return null;
  };
  const waitOk = async ({ ms = 20_000 } = {}) => {
    const deadline = Date.now() + ms;
    for (;;) {
      const why = await unsettled();
      if (why === null) return;
      if (Date.now() > deadline) throw new Error(`cluster not settled after ${ms} ms: ${why}`);
      await sleep(50);
    }
  };
  try {
    await waitOk();
  } catch (e) {
    await stop();
    throw e;
  }
  const masterOf = async (key) => {
    const slot = Number((await cli(running()[0].index, 'CLUSTER', 'KEYSLOT', key)).trim());
    const owner = (await topology()).find((p) => p.role === 'master' && !p.flags.includes('fail') && p.slots.some(([a, b]) => a <= slot && slot <= b));
    return nodes.findIndex((n) => n.port === owner?.port);
  };
  const [first, ...rest] = nodes;
  const url = `${tlsFiles ? 'rediss' : 'redis'}-cluster://127.0.0.1:${first.port}?${rest.map((n) => `node=127.0.0.1:${n.port}`).join('&')}`;
  return { url, nodes, cli, waitOk, topology, masterOf, stop };
}
