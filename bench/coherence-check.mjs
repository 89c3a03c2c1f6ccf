// The checker of the coherence bound (docs/REDIS.md, "Coherence across
// isolates"), shared by tests/js/coherence-multi.test.mjs and the chaos
// harness (bench/chaos.mjs): every read is checked against the write
// history. A read that starts more than `bound` ms (maxStaleness + slack)
// after a mutation was acknowledged must not return a value older than
// that mutation's. All times are this machine's monotonic clock
// (process.hrtime, CLOCK_MONOTONIC: one clock for every process here), in
// ms (see `now`).
//
// The history is per key: states [invoked, acked, value], value null for
// absent. Writers may overlap (the chaos writers have many operations in
// flight), so a state is older than another only when it was acknowledged
// before the other was invoked. A write whose outcome is unknown (its
// request failed after Redis may have run it) is a state that a read may
// return but that never obliges one: its `acked` is when it may have taken
// effect at the latest (Infinity if there is no such time), and it is
// marked `unknown`.

/** This machine's monotonic clock, ms. */
export const now = () => Number(process.hrtime.bigint()) / 1e6;

/** The write history of `n` keys (indexes 0..n-1); each starts absent (see `initial`). */
export function history(n) {
  const h = Array.from({ length: n }, () => [[-Infinity, -Infinity, null]]);
  return {
    h,
    /** A mutation of `which` (key indexes) to `values`, invoked at t0 and acknowledged at t1 (default: now). */
    record(t0, which, values, t1 = now()) {
      which.forEach((i, j) => h[i].push([t0, t1, values[j]]));
    },
    /** A mutation whose outcome is unknown: it may have taken effect until `until`. */
    unknown(t0, which, values, until = Infinity) {
      which.forEach((i, j) => h[i].push([t0, until, values[j], true]));
    },
    /** The state at the start, as the writer set it before the readers began. */
    initial(i, v) {
      h[i][0][2] = v;
    },
  };
}

/**
 * Per key: its acknowledged states sorted by invocation, and the smallest
 * acknowledgement among each suffix (which state, and when): the earliest
 * newer state a read must see, after any given time.
 */
function index(states) {
  const acked = states.filter((s) => s[3] !== true && Number.isFinite(s[1])).sort((a, b) => a[0] - b[0]);
  const min = new Array(acked.length + 1);
  min[acked.length] = undefined;
  for (let j = acked.length - 1; j >= 0; j--) min[j] = min[j + 1] === undefined || acked[j][1] < min[j + 1][1] ? acked[j] : min[j + 1];
  const byValue = new Map();
  for (const s of states) {
    if (!byValue.has(s[2])) byValue.set(s[2], []);
    byValue.get(s[2]).push(s);
  }
  return { acked, min, byValue };
}

/** The first acknowledged state (of the earliest acknowledgement) invoked after `t`, or undefined. */
function newerThan(ix, t) {
  let lo = 0;
  let hi = ix.acked.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ix.acked[mid][0] > t) hi = mid;
    else lo = mid + 1;
  }
  return ix.min[lo];
}

/**
 * Violations of the bound: reads [t0, t1, key index, value] that returned
 * no state that was still current, as far as `bound` allows, when the read
 * started: every state with that value was invoked after the read ended,
 * or is older than a state acknowledged more than `bound` ms before the
 * read started. `name(i)` names key i in the report; `who` the reader.
 */
export function check(h, reads, { bound, who, name = String }) {
  const ixs = new Map();
  const bad = [];
  for (const [t0, t1, i, v] of reads) {
    if (!ixs.has(i)) ixs.set(i, index(h[i]));
    const ix = ixs.get(i);
    let ok = false;
    let newer;
    for (const s of ix.byValue.get(v) ?? []) {
      if (s[0] >= t1) continue;
      const n = newerThan(ix, s[1]);
      if (n === undefined || n[1] + bound >= t0) {
        ok = true;
        break;
      }
      newer ??= n;
    }
    if (!ok) {
      bad.push({ who, key: name(i), started: t0, value: v, why: newer ? `${Math.round(t0 - newer[1])} ms after ${JSON.stringify(newer[2])} was acknowledged` : 'never written (before the read ended)' });
    }
  }
  return bad;
}
