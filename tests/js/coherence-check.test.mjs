// The bound checker (bench/coherence-check.mjs) that
// tests/js/coherence-multi.test.mjs and the chaos harness run, on
// histories written by hand: what it must accept and what it must catch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { history, check } from '../../bench/coherence-check.mjs';

const B = 300; // the bound, ms
const bad = (h, reads) => check(h.h, reads, { bound: B, who: 'r' });

test('sequential writes: the older value is fine up to the bound after the newer was acknowledged, caught past it', () => {
  const h = history(1);
  h.initial(0, 'a');
  h.record(1000, [0], ['b'], 1010);
  assert.deepEqual(bad(h, [[900, 905, 0, 'a'], [1005, 1020, 0, 'a'], [1310, 1311, 0, 'a'], [1311, 1312, 0, 'b']]), []);
  const caught = bad(h, [[1311, 1312, 0, 'a']]);
  assert.equal(caught.length, 1);
  assert.match(caught[0].why, /301 ms after "b" was acknowledged/);
});

test('overlapping writes: either value may be current; a later one that began after both were acknowledged obliges', () => {
  const h = history(1);
  h.record(1000, [0], [1], 1100);
  h.record(1050, [0], [2], 1080); // acknowledged first, but began while 1 was under way
  assert.deepEqual(bad(h, [[5000, 5001, 0, 1], [5000, 5001, 0, 2]]), []);
  h.record(1200, [0], [3], 1210);
  assert.equal(bad(h, [[1600, 1601, 0, 1]]).length, 1);
  assert.equal(bad(h, [[1600, 1601, 0, 2]]).length, 1);
  assert.deepEqual(bad(h, [[1500, 1501, 0, 1]]), [], 'within the bound');
});

test('a write of unknown outcome may be returned until it may have taken effect, and obliges no read', () => {
  const h = history(1);
  h.record(1000, [0], ['a'], 1010);
  h.unknown(2000, [0], ['u'], 3000); // failed at 2000, may reach Redis until 3000
  h.record(2500, [0], ['b'], 2510);
  // 'u' may have landed after 'b': fine long after; 'a' is not (b obliges).
  assert.deepEqual(bad(h, [[9000, 9001, 0, 'u'], [9000, 9001, 0, 'b']]), []);
  assert.equal(bad(h, [[9000, 9001, 0, 'a']]).length, 1);
  // Nothing obliges past 'a' but the unknown write: 'a' stays fine.
  const h2 = history(1);
  h2.record(1000, [0], ['a'], 1010);
  h2.unknown(2000, [0], ['u']);
  assert.deepEqual(bad(h2, [[9000, 9001, 0, 'a'], [9000, 9001, 0, 'u']]), []);
  // Acknowledged after it could have taken effect, a write obliges again.
  h2.unknown(3000, [0], ['v'], 3100);
  h2.record(3200, [0], ['c'], 3210);
  assert.equal(bad(h2, [[9000, 9001, 0, 'v']]).length, 1);
});

test('a value never written, or written only after the read ended, is caught', () => {
  const h = history(2);
  h.record(1000, [0, 1], ['a', 'a'], 1010);
  assert.equal(bad(h, [[500, 600, 0, 'a']]).length, 1, 'the read ended before the write began');
  assert.deepEqual(bad(h, [[900, 1001, 0, 'a']]), [], 'overlapping the write');
  const never = bad(h, [[2000, 2001, 1, 'zzz']]);
  assert.equal(never.length, 1);
  assert.match(never[0].why, /never written/);
});

test('absent is a state too: a delete obliges, and a read of absent before a set is fine within the bound', () => {
  const h = history(1);
  h.record(1000, [0], ['a'], 1010);
  h.record(2000, [0], [null], 2010);
  assert.equal(bad(h, [[2400, 2401, 0, 'a']]).length, 1);
  assert.deepEqual(bad(h, [[2400, 2401, 0, null], [900, 901, 0, null]]), []);
  assert.equal(bad(h, [[1400, 1401, 0, null]]).length, 1, 'the initial absence is older than a');
});
