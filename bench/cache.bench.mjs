// MemoryCache against lru-cache (latest), a plain Map and, for get-hit, a
// Map+slots floor (a key-to-slot Map and a value array, no recency), in one
// process.
//
//   node --expose-gc bench/cache.bench.mjs        (make bench runs it)
//   node --expose-gc bench/cache.bench.mjs --only=get,set   (some parts: get, set, memory)
//
// Prints ns/op (lower is better), bytes/entry, and each figure's ratio to
// lru-cache (below 1.00x: edgecache is faster or smaller). Issue 19's
// setting: 100k entries, values of mixed sizes, maxBytes set (and given to
// lru-cache as maxSize with a sizeCalculation charging the same bytes);
// rounds interleave the contenders and each figure is a median, so the
// load of a shared machine falls on all alike. This is a benchmark, not a
// test: nothing here fails on a slow machine.
import { LRUCache } from 'lru-cache';
import { MemoryCache } from 'edgecache';
import { QUICK, requireGc, randomIndexes } from './lib.mjs';

const N_KEYS = 100_000;
const N_OPS = QUICK ? 500_000 : 2_000_000;
const ROUNDS = QUICK ? 3 : 7;
const MEM_ENTRIES = QUICK ? 200_000 : 1_000_000;

requireGc();

// Flat 100-byte strings (no cons strings), distinct per index.
const value100 = (i) => `${'v'.repeat(90)}${String(i).padStart(10, '0')}`.split('').join('');
const keyOf = (i) => `user:${i}:profile`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/**
 * ns/op of `body`, by the wall clock; the main thread's CPU time per op is
 * left in `lastCpu`. On a shared machine the CPU time leaves out the time
 * the scheduler gave other processes, which the wall clock counts (V8's
 * own helper threads count in neither).
 */
let lastCpu = 0;
const threadCpu = typeof process.threadCpuUsage === 'function' ? () => process.threadCpuUsage() : () => process.cpuUsage();
function timeOps(n, body) {
  const c0 = threadCpu();
  const t0 = performance.now();
  body();
  const wall = ((performance.now() - t0) * 1e6) / n;
  const c = threadCpu();
  lastCpu = ((c.user - c0.user + c.system - c0.system) * 1e3) / n;
  return wall;
}

// Values of mixed sizes (issue 19 §2): flat strings of 16 to 2048
// characters, most small (x^3 skew, median about 270), 1024 distinct ones.
const mixed = [];
{
  let x = 0x2545f491;
  for (let i = 0; i < 1024; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const len = 16 + Math.floor(((x >>> 0) / 2 ** 32) ** 3 * 2032);
    mixed.push(`${String(i).padStart(6, '0')}${'m'.repeat(len - 6)}`.split('').join(''));
  }
}
const valueOf = (i) => mixed[i & 1023];
// Both caches charge the same bytes: MemoryCache's default estimate (2 per
// UTF-16 unit of key and value, plus its 64-byte overhead) is what
// lru-cache's sizeCalculation is given.
const sizeCalculation = (v, k) => 2 * k.length + 2 * v.length + 64;
const charge = (i) => sizeCalculation(valueOf(i), keyOf(i));

// ---------- get-hit: 100k keys, mixed sizes, random access ----------
const keys = Array.from({ length: N_KEYS }, (_, i) => keyOf(i));
const order = randomIndexes(N_OPS, N_KEYS);
let allBytes = 0;
for (let i = 0; i < N_KEYS; i++) allBytes += charge(i);
const getBytes = allBytes + 1024; // everything fits, the byte bound is set

const getContenders = {
  edgecache: () => {
    const c = new MemoryCache({ maxEntries: N_KEYS, maxBytes: getBytes });
    for (let i = 0; i < N_KEYS; i++) c.set(keys[i], valueOf(i));
    if (c.stats().entries !== N_KEYS) throw new Error('get-hit: fill lost entries');
    return (k) => c.get(k);
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: N_KEYS, maxSize: getBytes, sizeCalculation });
    for (let i = 0; i < N_KEYS; i++) c.set(keys[i], valueOf(i));
    if (c.size !== N_KEYS) throw new Error('get-hit: fill lost entries');
    return (k) => c.get(k);
  },
  Map: () => {
    const c = new Map();
    for (let i = 0; i < N_KEYS; i++) c.set(keys[i], valueOf(i));
    return (k) => c.get(k);
  },
  // A Map from key to slot and an array of values by slot, with no recency
  // at all: the floor of any design that keeps an exact LRU order beside a
  // JS Map index (edgecache and lru-cache both do). What a get-hit pays
  // above this row is the recency update and the bookkeeping.
  'Map+slots': () => {
    const index = new Map();
    const values = new Array(N_KEYS);
    for (let i = 0; i < N_KEYS; i++) {
      index.set(keys[i], i);
      values[i] = valueOf(i);
    }
    return (k) => values[index.get(k)];
  },
};

let expectLen = 0;
for (let i = 0; i < N_OPS; i++) expectLen += valueOf(order[i]).length;

function benchGet(get) {
  let sink = 0;
  const ns = timeOps(N_OPS, () => {
    for (let i = 0; i < N_OPS; i++) sink += get(keys[order[i]]).length;
  });
  if (sink !== expectLen) throw new Error('get-hit missed');
  return ns;
}

// ---------- set with eviction at capacity: 100k entries, mixed sizes ----------
// Keys cycle through 4x capacity, so every set misses and evicts. The byte
// bound is 90% of what 100k of these entries take, so both bounds bind:
// most sets evict one entry, a large value several.
const CAP = N_KEYS;
const evictKeys = Array.from({ length: 4 * CAP }, (_, i) => keyOf(i));
let capBytes = 0;
for (let i = 0; i < evictKeys.length; i++) capBytes += charge(i);
capBytes = Math.floor((0.9 * capBytes) / 4);

const setContenders = {
  edgecache: () => {
    const c = new MemoryCache({ maxEntries: CAP, maxBytes: capBytes });
    return [(k, v) => c.set(k, v), () => c.stats()];
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: CAP, maxSize: capBytes, sizeCalculation });
    return [(k, v) => c.set(k, v), () => ({ entries: c.size, bytes: c.calculatedSize })];
  },
  // A Map evicting its oldest insertion (FIFO through a ring of keys), entry
  // bound only: the floor for "set + evict" without any recency or byte
  // bookkeeping.
  Map: () => {
    const c = new Map();
    const ring = new Array(CAP);
    let at = 0;
    return [
      (k, v) => {
        if (!c.has(k)) {
          if (c.size >= CAP) c.delete(ring[at]);
          ring[at] = k;
          at = (at + 1) % CAP;
        }
        c.set(k, v);
      },
      () => ({ entries: c.size, bytes: 0 }),
    ];
  },
};

function benchSetRound([set, stats], round) {
  const n = N_OPS;
  const base = CAP + (round + 1) * n;
  const len = evictKeys.length;
  const ns = timeOps(n, () => {
    for (let i = base; i < base + n; i++) set(evictKeys[i % len], valueOf(i % len));
  });
  const s = stats();
  if (s.entries > CAP || s.bytes > capBytes) throw new Error(`set-evict: ${s.entries} entries, ${s.bytes} bytes over the bounds`);
  return ns;
}

/**
 * Interleaved rounds: round r runs every contender once (in an order that
 * rotates), so machine load shared by other processes falls on all of them
 * alike; each figure is the median of its rounds.
 */
function run(contenders, prepare, round) {
  const names = Object.keys(contenders);
  const state = {};
  for (const name of names) state[name] = prepare(contenders[name]);
  for (const name of names) round(state[name], -1); // warm-up, not counted
  const times = Object.fromEntries(names.map((n) => [n, []]));
  const cpu = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(r + j) % names.length];
      times[name].push(round(state[name], r));
      cpu[name].push(lastCpu);
    }
  }
  return Object.fromEntries(names.map((n) => [n, [median(times[n]), median(cpu[n])]]));
}

// ---------- memory per entry: 1M entries, 100-byte string values ----------
const memContenders = {
  edgecache: () => {
    const c = new MemoryCache({ maxEntries: MEM_ENTRIES, maxBytes: Infinity });
    return [(k, v) => c.set(k, v), () => c.stats().entries, c];
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: MEM_ENTRIES });
    return [(k, v) => c.set(k, v), () => c.size, c];
  },
  Map: () => {
    const c = new Map();
    return [(k, v) => c.set(k, v), () => c.size, c];
  },
};

function used() {
  globalThis.gc();
  globalThis.gc();
  const m = process.memoryUsage();
  // wasm linear memory is accounted as external memory
  return m.heapUsed + m.external;
}

function benchMemory(make) {
  const before = used();
  const [set, size, keep] = make();
  for (let i = 0; i < MEM_ENTRIES; i++) set(keyOf(i), value100(i));
  const after = used();
  if (size() !== MEM_ENTRIES) throw new Error('memory: entries lost');
  globalThis.__keep = keep; // alive until measured
  globalThis.__keep = null;
  return (after - before) / MEM_ENTRIES;
}

/** Prints each figure and its ratio to lru-cache; `[wall, cpu]` pairs get a column each. */
function report(title, unit, results) {
  const pair = (v) => (Array.isArray(v) ? v : [v]);
  const base = pair(results['lru-cache']);
  console.log(`\n${title}${Array.isArray(results['lru-cache']) ? ': wall clock | main thread CPU' : ''}`);
  for (const [name, v] of Object.entries(results)) {
    const cols = pair(v).map((x, i) => `${x.toFixed(1).padStart(8)} ${unit}   ${(x / base[i]).toFixed(2)}x lru-cache`);
    console.log(`  ${name.padEnd(11)} ${cols.join('   | ')}`);
  }
}

const only = process.argv.find((a) => a.startsWith('--only='));
const parts = new Set(only === undefined ? ['get', 'set', 'memory'] : only.slice(7).split(','));
const os = await import('node:os');
console.log(`node ${process.version}, ${N_OPS} ops per round, median of ${ROUNDS} interleaved rounds, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
const MiB = 1 << 20;
if (parts.has('get')) report(
  `get-hit, ${N_KEYS} keys of mixed sizes, maxBytes ${(getBytes / MiB).toFixed(1)} MiB, random access (target <= 0.75x)`,
  'ns/op',
  run(getContenders, (make) => make(), (get) => benchGet(get)),
);
if (parts.has('set')) report(
  `set with eviction at capacity (${CAP} entries, maxBytes ${(capBytes / MiB).toFixed(1)} MiB, mixed sizes) (target <= 0.9x)`,
  'ns/op',
  run(setContenders, (make) => make(), benchSetRound),
);
if (parts.has('memory')) {
  const mem = {};
  for (const [name, make] of Object.entries(memContenders)) mem[name] = benchMemory(make);
  report(`memory, ${MEM_ENTRIES} entries of 100-byte strings (heapUsed + wasm)`, 'B/entry', mem);
}

const fs = await import('node:fs');
const zlib = await import('node:zlib');
const wasm = fs.readFileSync(new URL('../dist/wasm/edgecache_bg.wasm', import.meta.url));
const gz = zlib.gzipSync(wasm, { level: 9 }).length;
console.log(`\nwasm: ${wasm.length} bytes, ${gz} gzipped (${(gz / 1024).toFixed(1)} KiB; target <= 100 KiB)`);
