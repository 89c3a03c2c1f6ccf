// The Redis tier, in one process, on one redis-server and one bridge
// started here on loopback:
//
//   node bench/tier.bench.mjs [--quick]          (make bench runs it)
//
// 1. GET at 64 concurrent callers: RedisRest (auto-pipelining) against
//    @upstash/redis (its auto-pipelining), through the same bridge, runs
//    interleaved; and against `redis-benchmark -c 64 -t get` straight to
//    Redis. Targets: >= 1.2x @upstash/redis, >= 25% of redis-benchmark.
// 2. TieredCache.get hit from L1, awaited, against MemoryCache.get plus
//    an await.
// A benchmark, not a test: it prints figures and ratios and fails nothing.
import { execFileSync } from 'node:child_process';
import { Redis } from '@upstash/redis';
import { RedisRest, TieredCache, MemoryCache, generateSecureKey } from 'edgecache';
import { startRedis, startBridge } from '../tests/js/servers.mjs';
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

  // ---- 2. an L1 hit through TieredCache ----
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
