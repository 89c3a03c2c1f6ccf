// MemoryCache against lru-cache (latest) and a plain Map, in one process.
//
//   node --expose-gc bench/cache.bench.mjs        (make bench runs it)
//
// Prints ns/op (lower is better), bytes/entry, and each figure's ratio to
// lru-cache (below 1.00x: edgecache is faster or smaller). This is a
// benchmark, not a test: nothing here fails on a slow machine.
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

function best(fn) {
  let min = Infinity;
  for (let r = 0; r < ROUNDS; r++) min = Math.min(min, fn());
  return min;
}

function timeOps(n, body) {
  const t0 = performance.now();
  body();
  return ((performance.now() - t0) * 1e6) / n;
}

// ---------- get-hit: 100k keys, random access ----------
const keys = Array.from({ length: N_KEYS }, (_, i) => keyOf(i));
const order = randomIndexes(N_OPS, N_KEYS);
const val = 'x'.repeat(100);

const getContenders = {
  edgecache: () => {
    const c = new MemoryCache({ maxEntries: N_KEYS, maxBytes: Infinity });
    for (const k of keys) c.set(k, val);
    return (k) => c.get(k);
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: N_KEYS });
    for (const k of keys) c.set(k, val);
    return (k) => c.get(k);
  },
  Map: () => {
    const c = new Map();
    for (const k of keys) c.set(k, val);
    return (k) => c.get(k);
  },
};

function benchGet(make) {
  const get = make();
  let sink = 0;
  const ns = best(() =>
    timeOps(N_OPS, () => {
      for (let i = 0; i < N_OPS; i++) sink += get(keys[order[i]]).length;
    }),
  );
  if (sink !== N_OPS * ROUNDS * 100) throw new Error('get-hit missed');
  return ns;
}

// ---------- set with eviction at capacity ----------
const CAP = 10_000;
const evictKeys = Array.from({ length: 4 * CAP }, (_, i) => keyOf(i));

const setContenders = {
  edgecache: () => {
    const c = new MemoryCache({ maxEntries: CAP, maxBytes: Infinity });
    return [(k, v) => c.set(k, v), () => c.stats().entries];
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: CAP });
    return [(k, v) => c.set(k, v), () => c.size];
  },
  // A Map evicting its oldest insertion (FIFO through a ring of keys): the
  // floor for "set + evict" without any recency bookkeeping.
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
      () => c.size,
    ];
  },
};

function benchSet(make) {
  const [set, size] = make();
  for (let i = 0; i < CAP; i++) set(evictKeys[i], val); // fill to capacity
  const n = N_OPS;
  const ns = best(() =>
    timeOps(n, () => {
      // cycling through 4x capacity distinct keys: every set misses and evicts
      for (let i = 0; i < n; i++) set(evictKeys[(i + CAP) % evictKeys.length], val);
    }),
  );
  if (size() !== CAP) throw new Error(`set-evict: size ${size()} != ${CAP}`);
  return ns;
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

function report(title, unit, results) {
  const base = results['lru-cache'];
  console.log(`\n${title}`);
  for (const [name, v] of Object.entries(results)) {
    console.log(`  ${name.padEnd(10)} ${v.toFixed(1).padStart(8)} ${unit}   ${(v / base).toFixed(2)}x lru-cache`);
  }
}

function run(contenders, fn) {
  const out = {};
  // warm every contender once, then measure, so JIT order matters less
  for (const make of Object.values(contenders)) fn(make);
  for (const [name, make] of Object.entries(contenders)) out[name] = fn(make);
  return out;
}

console.log(`node ${process.version}, ${N_OPS} ops per round, best of ${ROUNDS} rounds`);
report(`get-hit, ${N_KEYS} keys, random access`, 'ns/op', run(getContenders, benchGet));
report(`set with eviction at capacity (${CAP})`, 'ns/op', run(setContenders, benchSet));
const mem = {};
for (const [name, make] of Object.entries(memContenders)) mem[name] = benchMemory(make);
report(`memory, ${MEM_ENTRIES} entries of 100-byte strings (heapUsed + wasm)`, 'B/entry', mem);

const fs = await import('node:fs');
const zlib = await import('node:zlib');
const wasm = fs.readFileSync(new URL('../dist/wasm/edgecache_bg.wasm', import.meta.url));
const gz = zlib.gzipSync(wasm, { level: 9 }).length;
console.log(`\nwasm: ${wasm.length} bytes, ${gz} gzipped (${(gz / 1024).toFixed(1)} KiB; target <= 100 KiB)`);
