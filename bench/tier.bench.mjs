// The Redis tier, in one process, on one redis-server and one bridge
// started here on loopback:
//
//   node bench/tier.bench.mjs [--quick]          (make bench runs it)
//
// 1. GET at 64 concurrent callers: RedisRest (auto-pipelining) against
//    @upstash/redis (its auto-pipelining), through the same bridge, runs
//    interleaved; and against `redis-benchmark -c 64 -t get` straight to
//    Redis. Targets: >= 1.2x @upstash/redis, >= 25% of redis-benchmark.
// 2. The bridge alone: `wrk -t2 -c64`, GET of one key in the path form,
//    against webdis (Debian's HTTP-to-Redis adapter) on the same Redis with
//    the same wrk command. Target: >= 1.5x webdis.
// 3. The bridge's added latency: wrk -t1 -c1 --latency through the bridge
//    against redis-benchmark -c 1 straight to Redis (both C clients), p50
//    and p99.
// 4. TieredCache.get hit from L1, awaited, against MemoryCache.get plus
//    an await.
// A benchmark, not a test: it prints figures and ratios and fails nothing.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from '@upstash/redis';
import { RedisRest, TieredCache, MemoryCache, generateSecureKey } from 'edgecache';
import { startRedis, startBridge, freePort } from '../tests/js/servers.mjs';
import { QUICK } from './lib.mjs';

const CALLERS = 64;
const SECONDS = QUICK ? 1.5 : 4;
const ROUNDS = QUICK ? 2 : 3;
const TOKEN = 'bench-' + generateSecureKey();

const redis = await startRedis();
const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });

/** ops/s of `CALLERS` loops each awaiting `op()` back to back for SECONDS. */
async function throughput(op) {
  let ops = 0;
  const end = performance.now() + SECONDS * 1000;
  const loop = async () => {
    while (performance.now() < end) {
      await op();
      ops++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CALLERS }, loop));
  return ops / ((performance.now() - t0) / 1000);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');

try {
  const value = 'v'.repeat(100);
  const ours = new RedisRest({ url: bridge.url, token: TOKEN });
  const theirs = new Redis({ url: bridge.url, token: TOKEN, enableAutoPipelining: true, automaticDeserialization: false });
  await ours.set('bench:key', value);
  if ((await theirs.get('bench:key')) !== value || (await ours.get('bench:key')) !== value) throw new Error('the clients disagree');

  // Warm up both (JIT, connection pools), then interleave the rounds.
  await throughput(() => ours.get('bench:key'));
  await throughput(() => theirs.get('bench:key'));
  const a = [];
  const b = [];
  for (let r = 0; r < ROUNDS; r++) {
    a.push(await throughput(() => ours.get('bench:key')));
    b.push(await throughput(() => theirs.get('bench:key')));
  }
  const oursOps = median(a);
  const theirsOps = median(b);

  const out = execFileSync('redis-benchmark', ['-p', String(redis.port), '-c', String(CALLERS), '-n', QUICK ? '100000' : '300000', '-t', 'get', '-q'], { encoding: 'utf8' });
  const direct = Number(/GET: ([\d.]+) requests per second/.exec(out)?.[1]);

  console.log(`GET, ${CALLERS} concurrent callers, one Node process (${ROUNDS} interleaved rounds of ${SECONDS}s, median)`);
  console.log(`  RedisRest (auto-pipelining)        ${fmt(oursOps).padStart(9)} ops/s`);
  console.log(`  @upstash/redis (auto-pipelining)   ${fmt(theirsOps).padStart(9)} ops/s   RedisRest = ${(oursOps / theirsOps).toFixed(2)}x (target >= 1.20x)`);
  console.log(`  redis-benchmark -c ${CALLERS} -t get        ${fmt(direct).padStart(9)} ops/s   RedisRest = ${((100 * oursOps) / direct).toFixed(0)}% (target >= 25%)`);

  // ---- 2. the bridge alone against webdis, same wrk command ----
  const webdisPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'webdis-'));
  fs.writeFileSync(
    path.join(dir, 'webdis.json'),
    JSON.stringify({ redis_host: '127.0.0.1', redis_port: redis.port, http_host: '127.0.0.1', http_port: webdisPort, threads: 2, daemonize: false, database: 0, verbosity: 0, logfile: path.join(dir, 'webdis.log') }),
  );
  const webdis = spawn('webdis', [path.join(dir, 'webdis.json')], { stdio: 'ignore' });
  try {
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${webdisPort}/GET/bench:key`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const wrk = (url, args) => {
      const out = execFileSync('wrk', [...args, url], { encoding: 'utf8' });
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const unit = (v, u) => Number(v) * ({ us: 1e-3, ms: 1, s: 1e3 }[u] ?? NaN);
      const p = (q) => {
        const m = new RegExp(`\\s${q}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
        return m ? unit(m[1], m[2]) : NaN;
      };
      if (/Non-2xx/.test(out)) throw new Error(`wrk saw errors against ${url}:\n${out}`);
      return { rps, p50: p(50), p99: p(99) };
    };
    const dur = QUICK ? '2s' : '5s';
    const auth = ['-H', `Authorization: Bearer ${TOKEN}`];
    const bridgeRuns = [];
    const webdisRuns = [];
    for (let r = 0; r < ROUNDS; r++) {
      bridgeRuns.push(wrk(`${bridge.url}/get/bench:key`, ['-t2', '-c64', `-d${dur}`, ...auth]).rps);
      webdisRuns.push(wrk(`http://127.0.0.1:${webdisPort}/GET/bench:key`, ['-t2', '-c64', `-d${dur}`]).rps);
    }
    const br = median(bridgeRuns);
    const wd = median(webdisRuns);
    console.log(`\nThe bridge alone: wrk -t2 -c64 -d${dur}, GET of one key in the path form (${ROUNDS} interleaved rounds, median)`);
    console.log(`  edgecache-bridge                   ${fmt(br).padStart(9)} req/s`);
    console.log(`  webdis (same Redis, same wrk)      ${fmt(wd).padStart(9)} req/s   bridge = ${(br / wd).toFixed(2)}x (target >= 1.5x)`);

    // ---- 3. the bridge's added latency ----
    const one = wrk(`${bridge.url}/get/bench:key`, ['-t1', '-c1', `-d${dur}`, '--latency', ...auth]);
    const rb = execFileSync('redis-benchmark', ['-p', String(redis.port), '-c', '1', '-n', QUICK ? '20000' : '100000', '-t', 'get'], { encoding: 'utf8' });
    const row = /avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(rb);
    const [d50, d99] = row ? [Number(row[3]), Number(row[5])] : [NaN, NaN];
    console.log(`\nOne caller, one GET at a time: the bridge's added latency`);
    console.log(`  straight to Redis (redis-benchmark -c 1)   p50 ${d50.toFixed(3)} ms   p99 ${d99.toFixed(3)} ms`);
    console.log(`  through the bridge (wrk -t1 -c1)           p50 ${one.p50.toFixed(3)} ms   p99 ${one.p99.toFixed(3)} ms`);
    console.log(`  added                                      p50 ${(one.p50 - d50).toFixed(3)} ms   p99 ${(one.p99 - d99).toFixed(3)} ms`);
  } finally {
    webdis.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }

  // ---- 4. an L1 hit through TieredCache ----
  const mem = new MemoryCache();
  const tier = new TieredCache({ redis: ours, signer: { keys: { k1: generateSecureKey() } }, prefix: 'bench', l1Ttl: 0 });
  mem.set('hot', { a: 1 });
  await tier.set('hot', { a: 1 });
  const N = QUICK ? 200_000 : 1_000_000;
  async function timeHits(get) {
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await get('hot');
    return ((performance.now() - t0) * 1e6) / N;
  }
  const m = [];
  const t = [];
  for (let r = 0; r < ROUNDS + 2; r++) {
    m.push(await timeHits((k) => mem.get(k)));
    t.push(await timeHits((k) => tier.get(k)));
  }
  const mNs = Math.min(...m);
  const tNs = Math.min(...t);
  console.log(`\nL1 hit, awaited (${N} gets, best of ${ROUNDS + 2})`);
  console.log(`  MemoryCache.get + await            ${mNs.toFixed(0).padStart(9)} ns/op`);
  console.log(`  TieredCache.get (L1 hit)           ${tNs.toFixed(0).padStart(9)} ns/op   ratio ${(tNs / mNs).toFixed(2)}x`);
} finally {
  await bridge.stop();
  await redis.stop();
}
