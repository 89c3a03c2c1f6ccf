// memoize() hit cost against memoizee (promise mode) and lru-cache's
// fetch(), in one process, on the same workload: an async function of one
// string argument, 1000 distinct arguments all cached, called in a random
// (seeded) order and awaited.
//
//   node --expose-gc bench/memoize.bench.mjs          (make bench runs it)
//   node --expose-gc bench/memoize.bench.mjs --quick
//
// Prints ns per awaited hit (lower is better) and edgecache's ratio to each
// peer (below 1.00x: edgecache is faster). A benchmark, not a test: nothing
// here fails on a slow machine.
import memoizee from 'memoizee';
import { LRUCache } from 'lru-cache';
import { memoize } from 'edgecache';
import { QUICK, requireGc, randomIndexes } from './lib.mjs';

const N_ARGS = 1000;
const N_OPS = QUICK ? 300_000 : 1_000_000;
const ROUNDS = QUICK ? 3 : 7;

requireGc();

const args = Array.from({ length: N_ARGS }, (_, i) => `item:${i}`);
const order = randomIndexes(N_OPS, N_ARGS);

// The function being memoized: async, returns a small object.
let computed = 0;
async function load(id) {
  computed++;
  return { id, score: id.length * 7 };
}

/** Each contender: a function of one argument returning a promise of the result. */
const contenders = {
  'edgecache memoize': () => memoize(load),
  'memoizee {promise}': () => memoizee(load, { promise: true }),
  'memoizee {promise, primitive}': () => memoizee(load, { promise: true, primitive: true }),
  'lru-cache fetch()': () => {
    const lru = new LRUCache({ max: 2 * N_ARGS, fetchMethod: (id) => load(id) });
    return (id) => lru.fetch(id);
  },
};

async function run(fn) {
  const t0 = performance.now();
  for (let i = 0; i < N_OPS; i++) await fn(args[order[i]]);
  return ((performance.now() - t0) * 1e6) / N_OPS;
}

/** The floor: awaiting a resolved promise looked up in a Map. */
async function baseline() {
  const m = new Map(args.map((a) => [a, Promise.resolve({ id: a })]));
  const fn = (a) => m.get(a);
  return run(fn);
}

const results = {};
const warm = {};
for (const [name, make] of Object.entries(contenders)) {
  const fn = make();
  computed = 0;
  for (const a of args) await fn(a);
  for (const a of args) await fn(a);
  if (computed !== N_ARGS) throw new Error(`${name}: ${computed} calls for ${N_ARGS} arguments`);
  const check = await fn(args[7]);
  if (check.id !== args[7]) throw new Error(`${name}: wrong result`);
  warm[name] = fn;
  results[name] = Infinity;
}
let floor = Infinity;

// Interleaved rounds, best of each: JIT state and GC treat everyone alike.
for (let r = 0; r < ROUNDS; r++) {
  globalThis.gc();
  floor = Math.min(floor, await baseline());
  for (const [name, fn] of Object.entries(warm)) {
    globalThis.gc();
    computed = 0;
    results[name] = Math.min(results[name], await run(fn));
    if (computed !== 0) throw new Error(`${name}: ${computed} misses during the hit benchmark`);
  }
}

const ours = results['edgecache memoize'];
console.log(`memoized async hit, ${N_ARGS} distinct string arguments, ${N_OPS} awaited calls, best of ${ROUNDS} rounds`);
console.log(`node ${process.version}; floor (await Map.get of a resolved promise): ${floor.toFixed(1)} ns/op\n`);
console.log('contender                          ns/op   over floor   edgecache ratio');
for (const [name, ns] of Object.entries(results)) {
  const ratio = name === 'edgecache memoize' ? '' : `${(ours / ns).toFixed(2)}x`;
  console.log(`${name.padEnd(32)} ${ns.toFixed(1).padStart(7)}   ${(ns - floor).toFixed(1).padStart(10)}   ${ratio.padStart(15)}`);
}
const peers = Object.entries(results).filter(([n]) => n !== 'edgecache memoize');
const [bestName, bestNs] = peers.reduce((a, b) => (b[1] < a[1] ? b : a));
console.log(
  `\nedgecache / best peer (${bestName}): ${(ours / bestNs).toFixed(2)}x` +
    ` (target <= 1.00x); over the floor: ${((ours - floor) / (bestNs - floor)).toFixed(2)}x`,
);
