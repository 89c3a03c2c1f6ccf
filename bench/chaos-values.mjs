// The values of the chaos harness (bench/chaos.mjs), shared by its two
// kinds of client (bench/chaos-worker.mjs, a Node TieredCache, and
// bench/chaos-rust-worker.mjs, the example Rust Worker in workerd): each
// value names its key, scope, writer and version, with a checksum over
// them, so any reader knows when it got anything else.
import { createHash } from 'node:crypto';

export const TTLS = [0, 0, 300, 1000, 3000, 3000, 8000, 8000];
const PAD = 'abcdefghijklmnopqrstuvwxyz0123456789'.repeat(40);

export function checksum(v) {
  return createHash('sha256').update(`${v.k}\0${v.s}\0${v.w}\0${v.v}\0${v.ttl}\0${v.t0}\0${v.pad}`).digest('hex').slice(0, 24);
}

/** A value for `key` in scope `scopeName`, version `version` of writer `w`. */
export function makeValue({ key, scopeName, w, version, ttl, t0, padLength }) {
  const v = { k: key, s: scopeName, w, v: version, ttl, t0, pad: PAD.slice(0, padLength) };
  v.c = checksum(v);
  return v;
}

/** Why `x`, read for `key` in scope `scopeName`, is not a value written for them; undefined if it is. */
export function whyWrong(x, key, scopeName) {
  return x === null || typeof x !== 'object' ? `not an object: ${JSON.stringify(x)}`
    : x.c !== checksum(x) ? 'checksum mismatch'
    : x.k !== key ? `another key's value (${x.k})`
    : x.s !== scopeName ? `another scope's value (${x.s})`
    : undefined;
}
