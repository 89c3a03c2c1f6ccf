// Coherence across isolates (docs/REDIS.md, "Coherence across isolates"),
// in one process, on one redis-server and one bridge started here on
// loopback:
//
//   node bench/coherence.bench.mjs [--quick]          (make bench runs it)
//
// 1. Propagation: from a write's acknowledgement to the first read in
//    another cache that returns the new value, p50/p99, for maxStaleness
//    100 and 1000 ms (lease), and 1000 ms with push (the bound is maxStaleness).
// 2. Requests and commands per 1,000 reads: an idle isolate (a read every
//    50 ms, all L1 hits) and a busy one (reads back to back, 1 in 10 a
//    miss), coherence on (1000 ms) against off.
// 3. TieredCache.get from L1 with coherence on (a fresh lease) against off,
//    interleaved rounds, median. Target: <= 1.1x.
// 4. Load on Redis with many caches (simulated isolates, one process):
//    commands/s that Redis runs at 100 and 1,000 caches each serving L1 hits,
//    against the formula N x 3 / maxStaleness.
// A benchmark, not a test: it prints figures and ratios and fails nothing.
import { RedisRest, TieredCache, generateSecureKey } from 'edgecache';
import { startRedis, startBridge } from '../tests/js/servers.mjs';
import { QUICK } from './lib.mjs';

const TOKEN = 'bench-' + generateSecureKey();
const SECRET = generateSecureKey();
const redis = await startRedis();
const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let prefixes = 0;

function counting() {
  const f = (input, init) => {
    f.requests++;
    const body = JSON.parse(init.body);
    f.commands += Array.isArray(body[0]) ? body.length : 1;
    return fetch(input, init);
  };
  f.requests = 0;
  f.commands = 0;
  return f;
}

function cache(prefix, maxStaleness, f, push = false) {
  return new TieredCache({
    redis: new RedisRest({ url: bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}) }),
    signer: { keys: { k1: SECRET } },
    prefix,
    l1Ttl: 600_000,
    maxStaleness,
    push,
    log: () => {},
  });
}

const pct = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const median = (xs) => pct(xs, 0.5);

async function redisCommands() {
  const r = await fetch(bridge.url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(['INFO', 'stats']) });
  const text = (await r.json()).result;
  return Number(/total_commands_processed:(\d+)/.exec(text)[1]);
}

// ---- 1. propagation ----
console.log('1. propagation: acknowledgement -> first read elsewhere that sees it');
for (const [m, push] of [[100, false], [1000, false], [1000, true]]) {
  const prefix = `prop${++prefixes}`;
  const w = cache(prefix, m);
  const r = cache(prefix, m, undefined, push);
  while (push && r.stats().coherence.push.state !== 'open') await sleep(10);
  await w.set('k', 0);
  await r.get('k');
  await r.get('k');
  const delays = [];
  const done = [];
  const n = QUICK ? 8 : m === 100 ? 60 : 25;
  for (let i = 1; i <= n; i++) {
    // A random phase against the reader's lease.
    await sleep(Math.random() * m);
    await w.set('k', i);
    const ack = performance.now();
    for (;;) {
      const t0 = performance.now();
      if ((await r.get('k')) === i) {
        // The bound is on when the read starts; its answer comes a round trip or two later.
        delays.push(t0 - ack);
        done.push(performance.now() - ack);
        break;
      }
      await sleep(1);
    }
  }
  r.close();
  console.log(`   ${push ? 'push, ' : 'lease, '}maxStaleness ${m} ms: first read that sees it starts p50 ${median(delays).toFixed(1)} ms, p99 ${pct(delays, 0.99).toFixed(1)} ms after the ack (bound ${m} ms); answers p50 ${median(done).toFixed(1)}, p99 ${pct(done, 0.99).toFixed(1)} ms (${n} writes)`);
}

// ---- 2. requests per 1,000 reads ----
console.log('2. requests (commands) to the bridge per 1,000 reads');
for (const [name, gap, missEvery] of [
  ['idle: a read every 50 ms, L1 hits', 50, 0],
  ['busy: back to back, 1 in 10 a miss', 0, 10],
]) {
  const row = [];
  for (const m of [1000, false]) {
    const f = counting();
    const c = cache(`req${++prefixes}`, m, f);
    await c.set('hot', 1);
    const reads = QUICK ? 200 : name.startsWith('idle') ? 200 : 5000;
    f.requests = 0;
    f.commands = 0;
    for (let i = 0; i < reads; i++) {
      await c.get(missEvery && i % missEvery === 0 ? `miss${i}` : 'hot');
      if (gap) await sleep(gap);
    }
    row.push(`${m === false ? 'off' : `on (${m} ms)`}: ${((f.requests * 1000) / reads).toFixed(1)} (${((f.commands * 1000) / reads).toFixed(1)})`);
  }
  console.log(`   ${name}: ${row.join(', ')}`);
}

// ---- 3. the L1 hit, coherence on against off ----
{
  const N = QUICK ? 200_000 : 1_000_000;
  const on = cache(`hit${++prefixes}`, 1000);
  const off = cache(`hit${++prefixes}`, false);
  for (const c of [on, off]) {
    await c.set('k', { v: 1 });
    await c.get('k');
  }
  const time = async (c) => {
    // A fresh lease: read before the round (an L1 hit past the lease reads the log).
    await sleep(1);
    await c.get('k');
    const t0 = performance.now();
    for (let i = 0; i < N; i++) await c.get('k');
    return ((performance.now() - t0) * 1e6) / N;
  };
  const a = [];
  const b = [];
  for (let round = 0; round < (QUICK ? 3 : 7); round++) {
    a.push(await time(on));
    b.push(await time(off));
  }
  console.log(`3. TieredCache.get L1 hit: coherence on ${median(a).toFixed(0)} ns, off ${median(b).toFixed(0)} ns: ${(median(a) / median(b)).toFixed(3)}x (target <= 1.1x; median of ${a.length} interleaved rounds of ${N})`);
  const st = on.stats().coherence;
  console.log(`   (log reads during it: ${st.reads})`);
}

// ---- 4. load on Redis with many caches ----
console.log('4. Redis commands/s with N caches serving L1 hits (lease 1000 ms, one process)');
for (const n of QUICK ? [100] : [100, 1000]) {
  const prefix = `load${++prefixes}`;
  const caches = Array.from({ length: n }, () => cache(prefix, 1000));
  await caches[0].set('k', 1);
  for (const c of caches) await c.get('k');
  let stop = false;
  const loop = async (c) => {
    while (!stop) {
      await c.get('k');
      await sleep(10);
    }
  };
  const loops = caches.map(loop);
  await sleep(1500);
  const c0 = await redisCommands();
  const t0 = performance.now();
  await sleep(QUICK ? 2000 : 5000);
  const c1 = await redisCommands();
  const secs = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(loops);
  const perSec = (c1 - c0 - 1) / secs;
  console.log(`   ${n} caches: ${perSec.toFixed(0)} commands/s (formula N x 3 / 1 s = ${n * 3}); ${(perSec / n).toFixed(2)} per cache per second`);
}

await bridge.stop();
await redis.stop();
