// What the benchmarks share. Not a benchmark itself (make bench runs
// bench/*.bench.mjs only).

/** `--quick` on the command line: fewer operations and rounds. */
export const QUICK = process.argv.includes('--quick');

/** Exits unless node runs with --expose-gc (memory figures need it). */
export function requireGc() {
  if (typeof globalThis.gc !== 'function') {
    console.error('run with node --expose-gc');
    process.exit(2);
  }
}

/** xorshift32: the same pseudo-random access sequence for every contender. */
export function randomIndexes(n, range, seed = 2463534242) {
  const out = new Uint32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) % range;
  }
  return out;
}
