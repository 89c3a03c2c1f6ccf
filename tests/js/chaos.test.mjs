// The short chaos run of issue 11 (bench/chaos.mjs, SHORT schedule: 15 s):
// two client processes under about 1,000 operations/s while Redis and the
// bridge are killed and restarted, the link to Redis slows down and drops
// replies, the HTTP answers are mangled, and an attacker rewrites values.
// `make chaos` runs the full minute and prints the same table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos, formatReport, SHORT } from '../../bench/chaos.mjs';

test('chaos, 15 s: no wrong value, no crash, counters in bounds, L1 served, recovery in time', { timeout: 60_000 }, async () => {
  const rep = await runChaos({ schedule: SHORT });
  const text = formatReport(rep);
  console.log(text);
  const failed = rep.checks.filter(([, , ok]) => !ok).map(([what, n]) => `${what}: ${n}`);
  assert.deepEqual(failed, [], text);
  assert.equal(rep.wrong.length, 0);
  assert.ok(rep.totals.ops / rep.totals.seconds > 600, `load too low: ${rep.totals.ops} ops`);
  assert.ok(rep.totals.readsChecked > 1000, 'values were read back and checked');
  assert.ok(rep.totals.rejected > 0, 'the values the attacker rewrote were read and rejected');
  assert.equal(rep.table.length, SHORT.faults.length);
});
