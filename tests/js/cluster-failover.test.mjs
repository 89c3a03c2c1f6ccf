// Faults on a Redis Cluster behind the bridge, under a bounded load with
// every read checked against the write history (issue 16; the load and
// the checks: bench/cluster-load.mjs): kill -9 of a master (its replica is
// promoted after cluster-node-timeout, 2000 ms), CLUSTER FAILOVER on a
// replica, and a reshard of 300 slots. Errors are counted by the master
// that owned the key's slot before the fault: the other masters' keys
// must see none, the faulted master's keys fail only until writes succeed
// again (kill: within the promotion + 1 s; failover and reshard: none, the
// redirects are followed), and no read returns a wrong value. The longer
// runs: make cluster-chaos (bench/cluster-chaos.mjs).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBridge, startCluster } from './servers.mjs';
import { RedisRest } from 'edgecache';
import { underLoad, byGroup, summary, slotOwners, keySlot, keysIn, scanLoop, FAULTS } from '../../bench/cluster-load.mjs';

const TOKEN = 'cluster-failover-' + Math.random().toString(36).slice(2);
let cluster;
let bridge;
before(async () => {
  cluster = await startCluster({ nodeTimeout: 2000 });
  bridge = await startBridge({ redisUrl: cluster.url, token: TOKEN });
});
after(async () => {
  await bridge?.stop();
  await cluster?.stop();
});

const masters = async () => (await cluster.topology()).filter((n) => n.role === 'master' && n.slots.length > 0);
const indexOf = (port) => cluster.nodes.findIndex((n) => n.port === port);

/**
 * One fault under load on the master at `victim`: the RedisRest keys (60
 * anywhere, and 30 in the victim's lowest 300 slots, which a reshard
 * moves) and the tier's keys (30), errors grouped by the owner before the
 * fault ('faulted' or 'others'; for a reshard, the moved slots apart).
 */
async function run(name, victim, { settle = 2000, ...opts } = {}) {
  const before = await slotOwners(cluster);
  const port = cluster.nodes[victim].port;
  const low = (await masters()).find((n) => n.port === port).slots[0][0];
  const keys = [...keysIn(`cf:${name}:`, 60, () => true), ...keysIn(`cf:${name}:low:`, 30, (s) => s >= low && s < low + 300)];
  const tierKeys = keysIn('k', 30, () => true);
  const prefix = `cf${name}`;
  const res = await underLoad({ url: bridge.url, token: TOKEN, keys, tierKeys, prefix, settle, fault: () => FAULTS[name](cluster, victim, opts) });
  const afterOwners = await slotOwners(cluster);
  const group = (slot) => (before[slot] !== port ? 'others' : name === 'reshard' && afterOwners[slot] !== port ? 'moved' : 'faulted');
  const groups = byGroup(
    res.ops,
    (kind, i) => (kind === 'r' ? `RedisRest ${group(keySlot(keys[i]))}` : `TieredCache ${group(keySlot(`${prefix}:v:r|${tierKeys[i]}`))}`),
    res.marks.at,
  );
  const logSlot = keySlot(`${prefix}:c:{${prefix}:0}:log`);
  return { res, groups, s: summary(name, res, groups, { logOnFaulted: before[logSlot] === port }) };
}

/** The master that owns neither coherence log of the runs (so the tier's own keys show the isolation). */
async function victimFor(names) {
  const logs = names.map((n) => keySlot(`cf${n}:c:{cf${n}:0}:log`));
  const owners = await slotOwners(cluster);
  const m = (await masters()).find((n) => logs.every((s) => owners[s] !== n.port));
  return indexOf((m ?? (await masters())[0]).port);
}

/** `CONFIG SET cluster-require-full-coverage` on every running node. */
async function fullCoverage(on) {
  for (const n of cluster.nodes) await cluster.cli(n.index, 'CONFIG', 'SET', 'cluster-require-full-coverage', on ? 'yes' : 'no');
}

test('kill -9 of a master: only its slots fail, until its replica is promoted (+ <= 1 s); no wrong value', { timeout: 60_000 }, async (t) => {
  // With Redis's default (yes), every master answers CLUSTERDOWN from the
  // moment the dead one is marked failed until its replica is promoted
  // (about 1 s here): Redis's choice, not the bridge's; make cluster-chaos
  // measures that case too.
  await fullCoverage(false);
  t.after(() => fullCoverage(true));
  const victim = await victimFor(['kill']);
  const { res, groups, s } = await run('kill', victim);
  t.diagnostic(JSON.stringify(s));
  console.log('cluster-failover kill -9:', JSON.stringify(s, null, 1));
  await cluster.nodes[victim].restart(); // back as a replica of its promoted one
  await cluster.waitOk();
  assert.deepEqual([...res.wrong, ...res.tierWrong], [], 'no read returned a value older than an acknowledged write');
  assert.equal(groups['RedisRest others']?.errors ?? 0, 0, "the other masters' keys: no error");
  const f = groups['RedisRest faulted'];
  assert.ok(f.ops > 50, 'the faulted master had load');
  if (f.errors > 0) assert.ok(f.writesOkAgain <= s.promotedAfter + 1000, `writes again ${f.writesOkAgain} ms after the kill; promoted after ${s.promotedAfter} ms`);
  // The tier's breaker is the cache's: were the dead master's failures
  // counted, they would open it for every key. The bridge marks them
  // `partial` (the other masters answer) and the breaker skips them.
  await t.test("TieredCache: the tier's keys on the other masters see no error", () => {
    if (!s.logOnFaulted) assert.equal(groups['TieredCache others']?.errors ?? 0, 0, JSON.stringify(groups['TieredCache others']?.messages));
  });
});

test('CLUSTER FAILOVER on a replica: no error, no wrong value', { timeout: 60_000 }, async (t) => {
  const victim = await victimFor(['failover']);
  const { res, s } = await run('failover', victim, { settle: 1500 });
  t.diagnostic(JSON.stringify(s));
  console.log('cluster-failover CLUSTER FAILOVER:', JSON.stringify(s, null, 1));
  await cluster.waitOk();
  assert.deepEqual([...res.wrong, ...res.tierWrong], []);
  // Known to fail at h-cluster d2c07c2: for a few tens of ms the old
  // master's connection is down and commands fail "not sent" instead of
  // waiting for the new master.
  await t.test('no error: the switch is followed', () => {
    const errors = Object.entries(s.groups).filter(([, g]) => g.errors > 0).map(([n, g]) => [n, g.errors, g.messages]);
    assert.deepEqual(errors, [], 'a manual failover is followed (MOVED), never an error');
  });
});

test('a reshard of 300 slots under load: no error, no wrong value; SCAN skips no key meanwhile', { timeout: 60_000 }, async (t) => {
  const victim = await victimFor(['reshard']);
  // Keys nobody writes, a third of them in the slots that move: every full SCAN must list them all.
  const low = (await masters()).find((n) => n.port === cluster.nodes[victim].port).slots[0][0];
  const still = [...keysIn('still:', 200, () => true), ...keysIn('still:low:', 100, (sl) => sl >= low && sl < low + 300)];
  const setup = new RedisRest({ url: bridge.url, token: TOKEN });
  await setup.pipeline(still.map((k) => ['SET', k, 'x']));
  const scans = scanLoop({ url: bridge.url, token: TOKEN, match: 'still:*', expect: still });
  const { res, groups, s } = await run('reshard', victim, { settle: 1500 });
  const sc = await scans.stop();
  t.diagnostic(JSON.stringify({ ...s, scans: sc }));
  console.log('cluster-failover reshard:', JSON.stringify({ ...s, scans: sc }, null, 1));
  await cluster.waitOk();
  assert.ok(sc.scans >= 3, `full scans during the run: ${sc.scans}`);
  assert.ok((groups['RedisRest moved']?.ops ?? 0) > 20, 'keys in the moved slots had load');
  assert.deepEqual([...res.wrong, ...res.tierWrong], []);
  const errors = Object.entries(s.groups).filter(([, g]) => g.errors > 0).map(([n, g]) => [n, g.errors, g.messages]);
  assert.deepEqual(errors, [], 'MOVED and ASK are followed, never an error');
  assert.equal(sc.errors, 0, 'no SCAN failed');
  // Failed at h-cluster d2c07c2 (3 and 6 scans of about 30 missed keys of
  // the moving slots); passes since cd6da09.
  assert.deepEqual({ incomplete: sc.incomplete, missing: sc.missing }, { incomplete: 0, missing: undefined }, 'every SCAN listed every key, through the reshard');
});
