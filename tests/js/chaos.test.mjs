// The short chaos run of issue 11 (bench/chaos.mjs, SHORT schedule: 15 s):
// two Node client processes and the example Rust Worker in workerd (built
// by make test before the JS tests; alone, this file builds it if missing)
// under about 1,000 operations/s while Redis and the bridge are killed and
// restarted, the link to Redis slows down and drops replies, the HTTP
// answers are mangled, and an attacker rewrites values. `make chaos` runs
// the full minute and prints the same tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos, formatReport, SHORT } from '../../bench/chaos.mjs';

test('chaos, 15 s: no wrong value, no crash, counters in bounds, L1 served, recovery in time; Node and the Rust Worker', { timeout: 90_000 }, async () => {
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

  // The Rust Worker was a client like the others, under the same faults.
  const rust = rep.perClient.find((c) => c.kind === 'rust');
  assert.ok(rust, 'the Rust Worker ran');
  assert.ok(rust.ops / rep.totals.seconds > 100, `the Rust Worker's load too low: ${rust.ops} ops`);
  assert.ok(rust.reads - rust.misses > 100, `values the Rust Worker read and the harness checked: ${rust.reads - rust.misses}`);
  assert.ok(rust.l1Served > 0 && rust.missesBreakerOpen > 0, 'it served L1 hits, and missed while its breaker was open');
  assert.ok(rust.incr.ack > 0 && rust.incr.unsent > 0, `its increments count in the bounds, refused ones too: ${JSON.stringify(rust.incr)}`);
  assert.ok(Object.keys(rust.opErrors).some((c) => c.startsWith('L2_')), 'its tier errors came back with their codes');
  assert.equal(rust.crashes, 0);
  assert.equal(rep.totals.workerd.crashLines, 0, 'no panic in workerd');
  // Values crossed both ways: the same keys, layout and envelopes.
  assert.ok(rep.totals.cross.nodeReadRust > 0 && rep.totals.cross.rustReadNode > 0, JSON.stringify(rep.totals.cross));
});
