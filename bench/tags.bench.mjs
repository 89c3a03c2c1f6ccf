// Tags (issue 15): edgecache's invalidateTags against bentocache's
// deleteByTag, in one process, on one redis-server and one bridge started
// here on loopback:
//
//   node bench/tags.bench.mjs [--quick]          (make bench runs it)
//
// bentocache comes from bench/tools (pinned; `scripts/setup.sh --bench`
// installs it with `npm ci --prefix bench/tools`). It runs as its docs set
// up a multi-instance cache: a memory L1, the Redis L2 (ioredis) and its
// Redis bus, so that its L1s stay coherent as edgecache's do through the
// coherence log (bentocache without a bus sends one command less per write
// and per deleteByTag, and other instances never hear of them).
//
// 1. invalidateTags(['bench:all']) against deleteByTag({ tags: ['bench:all'] })
//    with N entries carrying that tag (1k, 100k, 1M; --quick: 1k, 10k):
//    time (median of several calls) and the Redis commands one call makes
//    (INFO commandstats before and after, INFO itself left out). Both are
//    O(1) in N: edgecache INCRs a version, bentocache SETs a timestamp;
//    entries are checked when read. After the calls, a sample of entries
//    is read by a fresh instance (from Redis): found before, gone after,
//    with the time and commands per read (both check tags when reading).
//    Filling: edgecache through TieredCache.setMany in batches (the real
//    sealed envelopes); bentocache by pipelined SETs (ioredis) of its
//    storage format (`<prefix>:<key>` = JSON { value, logicalExpiration,
//    tags, createdAt }, PX ttl: what its redis driver writes), which the
//    fresh instance's reads check.
// 2. L1 hit on an entry with 3 tags against one without: TieredCache.get
//    (awaited), MemoryCache.get, and bentocache's get, interleaved rounds,
//    median. Target (issue 15): edgecache <= 1.15x.
// 3. set with 3 tags against without, awaited one after another:
//    TieredCache over the bridge (the tags' versions known, as after the
//    first write of each), and bentocache.
// The edgecache half needs the tags API (issue 15); without it (an older
// dist/), it prints "edgecache tags: not built yet" and measures the rest.
// A benchmark, not a test: it prints figures and ratios and fails nothing.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { RedisRest, TieredCache, MemoryCache, generateSecureKey } from 'edgecache';
import { startRedis, startBridge } from '../tests/js/servers.mjs';
import { QUICK, randomIndexes } from './lib.mjs';

const TOKEN = 'bench-' + generateSecureKey();
const SECRET = generateSecureKey();
const TTL = 3_600_000;
const ROUNDS = QUICK ? 3 : 7;
const SECONDS = QUICK ? 0.25 : 0.75;
const CALLS = QUICK ? 5 : 21;
const SAMPLE = 50;
/** Largest fill (both caches together) this bench allows itself, seconds. */
const FILL_BUDGET = 180;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const fmtN = (n) => (n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n));
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;

// ---- bentocache, from bench/tools ----
let bento;
try {
  const req = createRequire(new URL('./tools/package.json', import.meta.url));
  const load = (name) => import(pathToFileURL(req.resolve(name)).href);
  const [core, drivers, ioredis] = await Promise.all([load('bentocache'), load('bentocache/drivers/redis'), load('ioredis')]);
  const memory = await load('bentocache/drivers/memory');
  bento = { ...core, ...drivers, ...memory, Redis: ioredis.Redis ?? ioredis.default, version: JSON.parse(fs.readFileSync(new URL('./tools/node_modules/bentocache/package.json', import.meta.url), 'utf8')).version };
} catch (e) {
  console.log(`bentocache: not installed (scripts/setup.sh --bench installs bench/tools): ${e.message.split('\n')[0]}`);
}

const redis = await startRedis();
const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
const cli = (...args) => execFileSync('redis-cli', ['-p', String(redis.port), ...args], { encoding: 'utf8' });

/** Calls per command since start-up, INFO left out: { set: 12, ... }. */
function commandStats() {
  const out = {};
  for (const m of cli('INFO', 'commandstats').matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    if (m[1] !== 'info') out[m[1]] = Number(m[2]);
  }
  return out;
}
function statsDelta(a, b) {
  const out = {};
  for (const [k, v] of Object.entries(b)) if (v - (a[k] ?? 0) > 0) out[k] = v - (a[k] ?? 0);
  return out;
}
const total = (d) => Object.values(d).reduce((s, v) => s + v, 0);
const breakdown = (d) =>
  Object.entries(d)
    .sort((x, y) => y[1] - x[1])
    .map(([k, v]) => `${k.toUpperCase()} ${v}`)
    .join(', ');

/** ms of each of CALLS calls of `op` and the commands Redis ran for each (median), with the breakdown of the median call. */
async function perCall(op) {
  await op(); // warm
  const times = [];
  const counts = [];
  let shown;
  for (let i = 0; i < CALLS; i++) {
    const before = commandStats();
    const t0 = performance.now();
    await op();
    times.push(performance.now() - t0);
    const d = statsDelta(before, commandStats());
    counts.push(total(d));
    if (total(d) === median(counts) || !shown) shown = d;
  }
  const m = median(counts);
  return { ms: median(times), commands: m, varies: Math.min(...counts) !== Math.max(...counts), breakdown: breakdown(shown) };
}

/** Operations the last rate()/rateSync()/concurrent() call ran. */
let lastOps = 0;
/** Ops/s of `op` awaited back to back for SECONDS. */
async function rate(op) {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) await op(n++);
  }
  lastOps = n;
  return n / ((performance.now() - t0) / 1000);
}
/** The same, synchronous `op`. */
function rateSync(op) {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 1024; i++) op(n++);
  }
  lastOps = n;
  return n / ((performance.now() - t0) / 1000);
}
/** Ops/s of CALLERS loops each awaiting `op` back to back for SECONDS. */
const CALLERS = 64;
async function concurrent(op) {
  let n = 0;
  const end = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  const loop = async () => {
    while (performance.now() < end) await op(n++);
  };
  await Promise.all(Array.from({ length: CALLERS }, loop));
  lastOps = n;
  return n / ((performance.now() - t0) / 1000);
}
/**
 * Interleaved rounds of each named measurement (an async function returning
 * ops/s), medians, and the Redis commands per 1,000 operations each made.
 */
async function interleaved(named) {
  const results = Object.fromEntries(Object.keys(named).map((k) => [k, []]));
  const per1000 = Object.fromEntries(Object.keys(named).map((k) => [k, { commands: 0, ops: 0 }]));
  for (const f of Object.values(named)) await f(); // warm
  for (let r = 0; r < ROUNDS; r++) {
    for (const [k, f] of Object.entries(named)) {
      // The garbage of the one before (bentocache's promises) is not this one's to collect.
      globalThis.gc?.();
      const before = commandStats();
      results[k].push(await f());
      per1000[k].commands += total(statsDelta(before, commandStats()));
      per1000[k].ops += lastOps;
    }
  }
  const out = Object.fromEntries(Object.entries(results).map(([k, xs]) => [k, median(xs)]));
  out.commands = Object.fromEntries(Object.entries(per1000).map(([k, { commands, ops }]) => [k, (1000 * commands) / ops]));
  return out;
}

/** A fetch that counts the requests (to the bridge) it sends. */
function countingFetch() {
  const f = (input, init) => {
    f.requests++;
    return fetch(input, init);
  };
  f.requests = 0;
  return f;
}

function tiered(prefix, extra = {}) {
  return new TieredCache({
    redis: new RedisRest({ url: bridge.url, token: TOKEN }),
    signer: { keys: { k1: SECRET } },
    prefix,
    l1Ttl: 600_000,
    log: () => {},
    ...extra,
  });
}

const probe = tiered('probe');
const EC_TAGS = typeof probe.invalidateTags === 'function';
const MEM_TAGS = typeof new MemoryCache().invalidateTags === 'function';
probe.close();
if (!EC_TAGS) console.log('edgecache tags: not built yet (TieredCache has no invalidateTags; its untagged figures are still measured)');
if (!MEM_TAGS) console.log('edgecache tags: not built yet (MemoryCache has no invalidateTags)');

const tagsOf = (i) => ['bench:all', `shard:${i % 100}`, `product:${i}`];
const value = (i) => ({ id: i, name: `product ${i}`, price: i % 1000 });

/** Fills N tagged entries through TieredCache.setMany; seconds taken. */
async function fillEdgecache(prefix, n) {
  const filler = tiered(prefix, { l1: { maxEntries: 1000 }, maxStaleness: false });
  const BATCH = 2000;
  const INFLIGHT = 4;
  const t0 = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const from = next;
      next = Math.min(n, next + BATCH);
      const entries = [];
      for (let i = from; i < next; i++) entries.push([`p:${i}`, value(i), { ttl: TTL, tags: tagsOf(i) }]);
      await filler.setMany(entries);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  filler.free();
  return (performance.now() - t0) / 1000;
}

/** A bentocache instance with connections of its own (its disconnectAll closes them). */
function bentoCache(prefix) {
  const { BentoCache, bentostore, memoryDriver, redisDriver, redisBusDriver } = bento;
  return new BentoCache({
    default: 'c',
    prefix,
    stores: {
      c: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 10_000 }))
        .useL2Layer(redisDriver({ connection: { host: '127.0.0.1', port: redis.port } }))
        .useBus(redisBusDriver({ connection: { host: '127.0.0.1', port: redis.port } })),
    },
  });
}

/** Fills N tagged entries in bentocache's storage format by pipelined SETs; seconds taken. */
async function fillBento(prefix, n, io) {
  const BATCH = 10_000;
  const t0 = performance.now();
  for (let from = 0; from < n; from += BATCH) {
    const p = io.pipeline();
    const now = Date.now();
    for (let i = from; i < Math.min(n, from + BATCH); i++) {
      const raw = { value: value(i), logicalExpiration: now + TTL, tags: tagsOf(i), createdAt: now };
      p.set(`${prefix}:p:${i}`, JSON.stringify(raw), 'PX', TTL);
    }
    for (const [err] of await p.exec()) if (err) throw err;
  }
  return (performance.now() - t0) / 1000;
}

/**
 * Reads `keys` until a whole pass is served from L1 (no L2 read): a fresh
 * cache's log reads may drop the L1 its own burst of writes filled (seen
 * as a gap in the log: stats().coherence.gaps), which must not fall into a
 * round.
 */
async function warmL1(c, keys) {
  const t0 = performance.now();
  for (let pass = 0; pass < 50; pass++) {
    const l2 = c.stats().l2.hits + c.stats().l2.misses;
    for (const k of keys) if ((await c.get(k)) === undefined) throw new Error(`TieredCache lost ${k}`);
    const clean = c.stats().l2.hits + c.stats().l2.misses === l2;
    // Past two leases (maxStaleness 1000 ms), a pass without L2 reads.
    if (clean && performance.now() - t0 > 2_500) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('TieredCache: L1 never held the keys');
}

/**
 * A sample of the N keys read one after another by `read` (a fresh
 * instance: from Redis): how many it found, ms and Redis commands per read.
 */
async function sample(n, read) {
  let found = 0;
  const before = commandStats();
  const t0 = performance.now();
  for (const i of randomIndexes(SAMPLE, n, 12345 + n)) if ((await read(`p:${i}`)) !== undefined) found++;
  const ms = (performance.now() - t0) / SAMPLE;
  const commands = total(statsDelta(before, commandStats())) / SAMPLE;
  return `${found}/${SAMPLE} found (${ms.toFixed(2)} ms, ${commands.toFixed(1)} commands per read)`;
}

try {
  // ---- 1. invalidation against N ----
  const sizes = QUICK ? [1_000, 10_000] : [1_000, 100_000, 1_000_000];
  const io = bento ? new bento.Redis({ host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: 1 }) : undefined;
  console.log(`1. invalidating one tag carried by N entries (median of ${CALLS} calls; Redis commands per call from INFO commandstats)`);
  if (bento) console.log(`   bentocache ${bento.version}: memory L1 + Redis L2 (ioredis) + Redis bus`);
  const rows = [];
  for (let s = 0; s < sizes.length; s++) {
    let n = sizes[s];
    cli('FLUSHDB');
    let ecFill;
    let btFill;
    if (n >= 1_000_000 && rows.length) {
      // Project the fill from the last size's rate: 1M only if it fits.
      const last = rows[rows.length - 1];
      const projected = ((last.ecFill ?? 0) + (last.btFill ?? 0)) * (n / last.n);
      if (projected > FILL_BUDGET) {
        const fits = Math.max(last.n, Math.floor(((FILL_BUDGET / projected) * n) / 100_000) * 100_000);
        console.log(`   ${fmtN(n)}: filling would take about ${projected.toFixed(0)} s at the ${fmtN(last.n)} rate (budget ${FILL_BUDGET} s): measuring ${fmtN(fits)} instead`);
        n = fits;
      }
    }
    const name = `n${fmtN(n)}`;
    const row = { n };
    if (EC_TAGS) {
      row.ecFill = ecFill = await fillEdgecache(name, n);
      const c = tiered(name);
      const before = await sample(n, (k) => c.get(k));
      c.close();
      const counting = countingFetch();
      const inv = tiered(name, { redis: new RedisRest({ url: bridge.url, token: TOKEN, fetch: counting }) });
      row.ec = await perCall(() => inv.invalidateTags(['bench:all']));
      counting.requests = 0;
      await inv.invalidateTags(['bench:all']);
      row.ec.requests = counting.requests;
      row.ecTagStats = inv.stats().tags;
      inv.close();
      const fresh = tiered(name);
      const after = await sample(n, (k) => fresh.get(k));
      fresh.close();
      row.ecCheck = `before ${before}; after ${after}`;
    }
    if (bento) {
      const prefix = `bento_${name}`;
      row.btFill = btFill = await fillBento(prefix, n, io);
      const r = bentoCache(prefix);
      const before = await sample(n, (key) => r.get({ key }));
      await r.disconnectAll();
      const inv = bentoCache(prefix);
      row.bt = await perCall(() => inv.deleteByTag({ tags: ['bench:all'] }));
      await inv.disconnectAll();
      const fresh = bentoCache(prefix);
      const after = await sample(n, (key) => fresh.get({ key }));
      await fresh.disconnectAll();
      row.btCheck = `before ${before}; after ${after}`;
    }
    rows.push(row);
    const fills = [ecFill !== undefined && `edgecache ${ecFill.toFixed(1)} s`, btFill !== undefined && `bentocache ${btFill.toFixed(1)} s`].filter(Boolean).join(', ');
    console.log(`   N = ${fmtN(n)} (filled: ${fills || 'nothing'}; Redis holds ${cli('DBSIZE').trim()} keys)`);
    if (row.ec) {
      console.log(`     edgecache invalidateTags  ${row.ec.ms.toFixed(3).padStart(8)} ms  ${row.ec.commands}${row.ec.varies ? '~' : ''} commands (${row.ec.breakdown}) in ${row.ec.requests} request(s) to the bridge`);
      console.log(`       a sample read by a fresh instance: ${row.ecCheck}`);
      if (row.ecTagStats !== undefined) console.log(`       stats().tags: ${JSON.stringify(row.ecTagStats)}`);
    }
    if (row.bt) {
      console.log(`     bentocache deleteByTag    ${row.bt.ms.toFixed(3).padStart(8)} ms  ${row.bt.commands}${row.bt.varies ? '~' : ''} commands (${row.bt.breakdown})`);
      console.log(`       a sample read by a fresh instance: ${row.btCheck}`);
    }
    if (row.ec && row.bt) console.log(`     edgecache / bentocache: time ${ratio(row.ec.ms, row.bt.ms)}, commands ${row.ec.commands} vs ${row.bt.commands}`);
  }
  if (rows.length > 1) {
    const [a, b] = [rows[0], rows[rows.length - 1]];
    const flat = (x, y) => `time ${ratio(y.ms, x.ms)} (one round trip or two: noise), commands ${x.commands} -> ${y.commands} (${x.commands === y.commands ? 'flat' : 'NOT flat'})`;
    if (a.ec) console.log(`   edgecache from ${fmtN(a.n)} to ${fmtN(b.n)} entries: ${flat(a.ec, b.ec)}`);
    if (a.bt) console.log(`   bentocache from ${fmtN(a.n)} to ${fmtN(b.n)} entries: ${flat(a.bt, b.bt)}`);
  }
  cli('FLUSHDB');

  // ---- 2. L1 hits: 3 tags against none ----
  const KEYS = 1000;
  const order = randomIndexes(1 << 16, KEYS);
  const pick = (n) => order[n & 0xffff];
  /** One line: untagged and tagged ops/s, Redis commands per 1,000 ops, and the ratio of times. */
  const line = (label, r, plain, tagged, unit = 'ops/s') => {
    const cell = (k) => `${fmt(r[k]).padStart(10)} ${unit} (${r.commands[k].toFixed(1).padStart(6)} cmd/1k)`;
    const t = r[tagged] === undefined ? 'tags: not built yet' : `${cell(tagged)}   tagged takes ${ratio(r[plain], r[tagged])} the time`;
    console.log(`   ${label.padEnd(36)} ${cell(plain)}   ${t}`);
  };
  console.log(`2. L1 hit, an entry with 3 tags against one without (${KEYS} keys of each, random order, ${ROUNDS} interleaved rounds of ${SECONDS} s, median; one tag of each entry invalidated once before it was written)`);
  console.log(`   ${''.padEnd(36)} ${'untagged'.padEnd(32)} 3 tags`);
  {
    // Each shard tag was invalidated once before the entries were written:
    // their versions are known and non-zero, the entries valid.
    const shards = Array.from({ length: 100 }, (_, i) => `shard:${i}`);
    // In calls of 50: a call takes at most 64 tags, as an entry does.
    const halves = [shards.slice(0, 50), shards.slice(50)];
    const c = tiered('l1hit');
    if (EC_TAGS) for (const h of halves) await c.invalidateTags(h);
    const entries = [];
    for (let i = 0; i < KEYS; i++) entries.push([`plain:${i}`, value(i), { ttl: TTL }]);
    if (EC_TAGS) for (let i = 0; i < KEYS; i++) entries.push([`tagged:${i}`, value(i), { ttl: TTL, tags: tagsOf(i) }]);
    await c.setMany(entries);
    await warmL1(c, entries.map(([k]) => k));
    const m = new MemoryCache({ maxEntries: 10_000 });
    if (MEM_TAGS) for (const h of halves) m.invalidateTags(h);
    for (let i = 0; i < KEYS; i++) {
      m.set(`plain:${i}`, value(i), { ttl: TTL });
      if (MEM_TAGS) m.set(`tagged:${i}`, value(i), { ttl: TTL, tags: tagsOf(i) });
    }
    const named = {
      ecPlain: () => rate((n) => c.get(`plain:${pick(n)}`)),
      memPlain: async () => rateSync((n) => m.get(`plain:${pick(n)}`)),
    };
    if (EC_TAGS) named.ecTagged = () => rate((n) => c.get(`tagged:${pick(n)}`));
    if (MEM_TAGS) named.memTagged = async () => rateSync((n) => m.get(`tagged:${pick(n)}`));
    let b;
    if (bento) {
      b = bentoCache('bento_l1hit');
      for (const h of halves) await b.deleteByTag({ tags: h });
      // bentocache drops an entry created in the same ms as the invalidation.
      await new Promise((r) => setTimeout(r, 5));
      for (let i = 0; i < KEYS; i++) {
        await b.set({ key: `plain:${i}`, value: value(i), ttl: TTL });
        await b.set({ key: `tagged:${i}`, value: value(i), ttl: TTL, tags: tagsOf(i) });
      }
      named.btPlain = () => rate((n) => b.get({ key: `plain:${pick(n)}` }));
      named.btTagged = () => rate((n) => b.get({ key: `tagged:${pick(n)}` }));
    }
    const r = await interleaved(named);
    if (bento && (await b.get({ key: 'tagged:0' })) === undefined) throw new Error('bentocache lost tagged:0');
    if (MEM_TAGS && m.get('tagged:0') === undefined) throw new Error('MemoryCache lost tagged:0');
    line('edgecache TieredCache.get (await)', r, 'ecPlain', 'ecTagged');
    line('edgecache MemoryCache.get', r, 'memPlain', 'memTagged');
    if (bento) line('bentocache get (await)', r, 'btPlain', 'btTagged');
    console.log('   (target: edgecache <= 1.15x; the TieredCache\'s commands are its lease\'s log reads, one per maxStaleness)');
    if (EC_TAGS && c.stats().tags !== undefined) console.log(`   TieredCache stats().tags: ${JSON.stringify(c.stats().tags)}`);
    if (MEM_TAGS && m.stats().tags !== undefined) console.log(`   MemoryCache stats().tags: ${JSON.stringify(m.stats().tags)}`);
    if (process.env.DEBUG_TAGS) console.log(JSON.stringify(c.stats()));
    c.close();
    m.free?.();
    await b?.disconnectAll();
  }

  // ---- 3. set: 3 tags against none ----
  console.log(`3. set with 3 tags against without (${ROUNDS} interleaved rounds of ${SECONDS} s, median): edgecache over HTTP (the bridge), bentocache over TCP (ioredis)`);
  console.log(`   ${''.padEnd(36)} ${'untagged'.padEnd(33)} 3 tags`);
  {
    const counting = countingFetch();
    const c = tiered('sets', { redis: new RedisRest({ url: bridge.url, token: TOKEN, fetch: counting }) });
    // The first write of a tag fetches its version; after it, the tier knows it.
    if (EC_TAGS) await c.setMany(Array.from({ length: KEYS }, (_, i) => [`tagged:${i}`, value(i), { ttl: TTL, tags: tagsOf(i) }]));
    let b;
    if (bento) b = bentoCache('bento_sets');
    const ecSet = (tags) => (n) => c.set(`${tags ? 'tagged' : 'plain'}:${pick(n)}`, value(n), { ttl: TTL, ...(tags ? { tags: tagsOf(pick(n)) } : {}) });
    const btSet = (tags) => (n) => b.set({ key: `${tags ? 'tagged' : 'plain'}:${pick(n)}`, value: value(n), ttl: TTL, ...(tags ? { tags: tagsOf(pick(n)) } : {}) });
    for (const [how, run] of [
      ['one caller, awaited', rate],
      [`${CALLERS} concurrent callers`, concurrent],
    ]) {
      const named = { ecPlain: () => run(ecSet(false)) };
      if (EC_TAGS) named.ecTagged = () => run(ecSet(true));
      if (bento) {
        named.btPlain = () => run(btSet(false));
        named.btTagged = () => run(btSet(true));
      }
      const r = await interleaved(named);
      console.log(`   ${how}:`);
      line('  edgecache TieredCache.set', r, 'ecPlain', 'ecTagged', 'sets/s');
      if (bento) {
        line('  bentocache set', r, 'btPlain', 'btTagged', 'sets/s');
        const tagged = EC_TAGS ? `tagged ${ratio(r.ecTagged, r.btTagged)}` : 'tagged: edgecache tags not built yet';
        console.log(`     edgecache's sets/s against bentocache's: untagged ${ratio(r.ecPlain, r.btPlain)}, ${tagged}`);
      }
    }
    const cmds = async (label, op, requests) => {
      const d = await perCall(op);
      let sent = '';
      if (requests) {
        counting.requests = 0;
        for (let i = 0; i < CALLS; i++) await op();
        sent = ` in ${(counting.requests / CALLS).toFixed(1)} request(s)`;
      }
      return `${label} ${d.commands}${d.varies ? '~' : ''} (${d.breakdown})${sent}`;
    };
    const one = [await cmds('edgecache untagged', ecSet(false).bind(null, 0), true)];
    if (EC_TAGS) one.push(await cmds('3 tags', ecSet(true).bind(null, 0), true));
    if (bento) one.push(await cmds('bentocache untagged', btSet(false).bind(null, 0)), await cmds('3 tags', btSet(true).bind(null, 0)));
    console.log(`   commands of one set: ${one.join('; ')}`);
    c.close();
    await b?.disconnectAll();
  }
  io?.disconnect();
} finally {
  await bridge.stop();
  await redis.stop();
}
