// The bridge in front of a real 3-master, 3-replica Redis Cluster (issue
// 16), command for command against the bridge in front of one
// redis-server: multi-key commands split by slot, keyless ones over every
// master, SCAN's cursor, transactions on one slot's owner, redirects after
// a slot moves, and a killed master failing its own slots only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startRedis, startBridge } from './servers.mjs';

const TOKEN = 'cluster-test-token-0123456789';
let cluster, single, onCluster, onSingle;

before(async () => {
  [cluster, single] = await Promise.all([startCluster(), startRedis()]);
  [onCluster, onSingle] = await Promise.all([
    startBridge({ redisUrl: cluster.url, token: TOKEN, args: ['--allow', 'FLUSHALL'] }),
    startBridge({ redisUrl: single.url, token: TOKEN, args: ['--allow', 'FLUSHALL'] }),
  ]);
});
after(async () => {
  await Promise.all([onCluster?.stop(), onSingle?.stop()]);
  await Promise.all([cluster?.stop(), single?.stop()]);
});

async function call(bridge, path, body) {
  const init = { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(bridge.url + path, init);
  return { status: res.status, body: await res.json() };
}

/** The same request on both bridges: the answers. */
async function both(path, body) {
  const [c, s] = await Promise.all([call(onCluster, path, body), call(onSingle, path, body)]);
  return { c, s };
}

async function same(path, body, why = JSON.stringify(body ?? path)) {
  const { c, s } = await both(path, body);
  assert.deepEqual(c, s, why);
  return c;
}

const keys = Array.from({ length: 30 }, (_, i) => `bc:${i}`);

test('the keys of this test are on every master', async () => {
  const owners = new Set(await Promise.all(keys.map((k) => cluster.masterOf(k))));
  assert.equal(owners.size, 3);
});

test('MGET, DEL, UNLINK, EXISTS, TOUCH and MSET across slots answer as one server, counts included', async () => {
  await same('/', ['FLUSHALL']);
  await same('/pipeline', keys.map((k, i) => ['SET', k, `v${i}`]));
  await same('/', ['MGET', ...keys, 'bc:none', keys[3]]);
  await same('/', ['EXISTS', ...keys, 'bc:none', keys[0], keys[0]]);
  await same('/', ['TOUCH', ...keys.slice(0, 10), 'bc:none']);
  await same('/', ['MSET', 'bc:m1', 'a', 'bc:m2', 'b', 'bc:m3', 'c', 'bc:m1', 'last']);
  await same('/', ['MGET', 'bc:m1', 'bc:m2', 'bc:m3']);
  // A malformed MSET is refused whole (Redis Cluster says CROSSSLOT, one
  // server the arity): 400, nothing written.
  const odd = await both('/', ['MSET', 'bc:odd1', 'a', 'bc:odd2']);
  assert.deepEqual([odd.c.status, odd.s.status], [400, 400], JSON.stringify(odd));
  await same('/', ['EXISTS', 'bc:odd1', 'bc:odd2']);
  await same('/', ['DEL', ...keys.slice(0, 10), keys[0], 'bc:none']);
  await same('/', ['UNLINK', ...keys.slice(10, 20), 'bc:none']);
  await same('/', ['MGET', ...keys]);
  // In a pipeline, with single-key commands around them, in order.
  await same('/pipeline', [
    ['SET', 'bc:p', '1'],
    ['MGET', 'bc:p', ...keys.slice(18, 25)],
    ['INCR', 'bc:p'],
    ['DEL', 'bc:p', keys[20], keys[21]],
    ['EXISTS', 'bc:p', keys[20], keys[22]],
    ['GET', 'bc:p'],
  ]);
  // The path form too.
  await same(`/mget/${keys.slice(20).join('/')}`);
});

test('MSETNX across slots: CROSSSLOT as Redis Cluster answers it, nothing written', async () => {
  const r = await call(onCluster, '/', ['MSETNX', 'bc:nx1', 'a', 'bc:nx2', 'b']);
  assert.equal(r.status, 400);
  assert.match(r.body.error, /^CROSSSLOT/);
  assert.deepEqual((await call(onCluster, '/', ['MGET', 'bc:nx1', 'bc:nx2'])).body.result, [null, null]);
  // One slot: it runs.
  assert.deepEqual((await call(onCluster, '/', ['MSETNX', '{bc}1', 'a', '{bc}2', 'b'])).body, { result: 1 });
});

test('KEYS, DBSIZE and SCAN cover every master; RANDOMKEY finds a key; PING, ECHO, TIME anywhere', async () => {
  await same('/', ['FLUSHALL']);
  const n = 200;
  await same('/pipeline', Array.from({ length: n }, (_, i) => ['SET', `sc:${i}`, 'x']));
  await same('/', ['DBSIZE']);
  const { c, s } = await both('/', ['KEYS', 'sc:*']);
  assert.equal(c.body.result.length, n);
  assert.deepEqual(c.body.result.sort(), s.body.result.sort());
  for (const count of [7, 1000]) {
    const seen = [];
    let cursor = '0';
    let rounds = 0;
    do {
      const r = await call(onCluster, '/', ['SCAN', cursor, 'MATCH', 'sc:*', 'COUNT', count]);
      assert.equal(r.status, 200);
      [cursor] = r.body.result;
      seen.push(...r.body.result[1]);
      assert.ok(++rounds < 1000);
    } while (cursor !== '0');
    assert.equal(new Set(seen).size, n, `SCAN COUNT ${count} saw every key`);
  }
  const rk = await call(onCluster, '/', ['RANDOMKEY']);
  assert.match(rk.body.result, /^sc:/);
  assert.deepEqual((await call(onCluster, '/', ['PING'])).body, { result: 'PONG' });
  assert.deepEqual((await call(onCluster, '/', ['ECHO', 'hi'])).body, { result: 'hi' });
  assert.equal((await call(onCluster, '/', ['TIME'])).body.result.length, 2);
  await same('/', ['FLUSHALL']);
  await same('/', ['DBSIZE']);
  await same('/', ['RANDOMKEY']);
});

test('/multi-exec: one slot runs atomically on its owner; several slots get 400 CROSSSLOT with nothing written', async () => {
  const tx = [['SET', '{u1}a', '1'], ['INCR', '{u1}a'], ['MGET', '{u1}a', '{u1}b'], ['PING']];
  await same('/multi-exec', tx);
  const cross = await call(onCluster, '/multi-exec', [['SET', 'bc:tx1', '1'], ['SET', 'bc:tx2', '2']]);
  assert.equal(cross.status, 400);
  assert.match(cross.body.error, /^CROSSSLOT/);
  assert.deepEqual((await call(onCluster, '/', ['MGET', 'bc:tx1', 'bc:tx2'])).body.result, [null, null], 'nothing ran');
  // A command that fails to queue: EXECABORT, as on one server.
  await same('/multi-exec', [['SET', '{u2}a', '1'], ['INCR']]);
  // Concurrent transactions on one slot never interleave.
  await call(onCluster, '/', ['DEL', '{u3}log']);
  const runs = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      call(onCluster, '/multi-exec', [['RPUSH', '{u3}log', `${i}a`], ['RPUSH', '{u3}log', `${i}b`], ['LRANGE', '{u3}log', -2, -1]]),
    ),
  );
  runs.forEach((r, i) => assert.deepEqual(r.body[2], { result: [`${i}a`, `${i}b`] }));
});

test('SCAN skips no key when a slot moves during the scan behind the bridge\'s back (from a master not yet scanned to one already scanned)', async () => {
  const n = 300;
  await call(onCluster, '/pipeline', Array.from({ length: n }, (_, i) => ['SET', `sm:${i}`, 'x']));
  const topo = await cluster.topology();
  // The bridge scans masters in the order of their first slot.
  const order = topo.filter((p) => p.role === 'master').sort((a, b) => a.slots[0][0] - b.slots[0][0]);
  const [first, , last] = order;
  const seen = new Set();
  let cursor = '0';
  // Scan until the scan is on the second master (the first one done).
  do {
    const r = await call(onCluster, '/', ['SCAN', cursor, 'MATCH', 'sm:*', 'COUNT', 10]);
    [cursor] = r.body.result;
    for (const k of r.body.result[1]) seen.add(k);
  } while (cursor !== '0' && (BigInt(cursor) & 1023n) === 0n);
  assert.notEqual(cursor, '0');
  // A slot of the last master, with keys, moves to the first one, straight
  // through redis-cli: the bridge sees no MOVED.
  let slot;
  let moving;
  for (let i = 0; i < n && moving === undefined; i++) {
    const s = Number((await cluster.cli(0, 'CLUSTER', 'KEYSLOT', `sm:${i}`)).trim());
    if (last.slots.some(([a, b]) => a <= s && s <= b)) {
      slot = s;
      moving = `sm:${i}`;
    }
  }
  const fromNode = cluster.nodes.find((x) => x.port === last.port);
  const toNode = cluster.nodes.find((x) => x.port === first.port);
  await cluster.cli(toNode.index, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', last.id);
  await cluster.cli(fromNode.index, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', first.id);
  const inSlot = (await cluster.cli(fromNode.index, 'CLUSTER', 'GETKEYSINSLOT', slot, 1000)).split('\n').filter(Boolean);
  assert.ok(inSlot.includes(moving));
  await cluster.cli(fromNode.index, 'MIGRATE', '127.0.0.1', toNode.port, '', 0, 5000, 'KEYS', ...inSlot);
  for (const x of cluster.nodes) await cluster.cli(x.index, 'CLUSTER', 'SETSLOT', slot, 'NODE', first.id).catch(() => {});
  let rounds = 0;
  while (cursor !== '0') {
    const r = await call(onCluster, '/', ['SCAN', cursor, 'MATCH', 'sm:*', 'COUNT', 10]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    [cursor] = r.body.result;
    for (const k of r.body.result[1]) seen.add(k);
    assert.ok(++rounds < 2000);
  }
  const missed = Array.from({ length: n }, (_, i) => `sm:${i}`).filter((k) => !seen.has(k));
  assert.deepEqual(missed, [], `the keys of slot ${slot} (moved to a master already scanned) were skipped`);
  await cluster.waitOk();
});

/** The node ids and indexes of the master of `key`'s slot and another master. */
async function twoMasters(key) {
  const slot = Number((await cluster.cli(0, 'CLUSTER', 'KEYSLOT', key)).trim());
  const topo = await cluster.topology();
  const from = cluster.nodes[await cluster.masterOf(key)];
  const toNode = topo.find((p) => p.role === 'master' && p.port !== from.port);
  const to = cluster.nodes.find((n) => n.port === toNode.port);
  return { slot, from, to };
}

test('a slot moved under the bridge: ASK during the migration and MOVED after it are followed, never a 503', async () => {
  const key = 'mv:{slot}a';
  const other = 'mv:{slot}b';
  await call(onCluster, '/pipeline', [['SET', key, 'A'], ['SET', other, 'B']]);
  const { slot, from, to } = await twoMasters(key);
  const cli = (node, ...args) => cluster.cli(cluster.nodes.indexOf(node), ...args);
  await cli(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
  await cli(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
  await cli(from, 'MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', key);
  // The key is on the target now, the other still on the source: ASK for
  // the first, a plain answer for the second; a new key goes to the
  // target (ASK), in one pipeline.
  const mid = await call(onCluster, '/pipeline', [['GET', key], ['GET', other], ['SET', 'mv:{slot}c', 'C'], ['INCR', 'mv:{slot}n']]);
  assert.equal(mid.status, 200, JSON.stringify(mid.body));
  assert.deepEqual(mid.body, [{ result: 'A' }, { result: 'B' }, { result: 'OK' }, { result: 1 }]);
  assert.deepEqual((await call(onCluster, '/', ['GET', key])).body, { result: 'A' });
  await cli(from, 'MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', other);
  for (const n of cluster.nodes) await cluster.cli(n.index, 'CLUSTER', 'SETSLOT', slot, 'NODE', to.id).catch(() => {});
  // The bridge's table still names the old owner: MOVED, followed once.
  const after = await call(onCluster, '/pipeline', [['GET', key], ['GET', other], ['GET', 'mv:{slot}c'], ['INCR', 'mv:{slot}n']]);
  assert.equal(after.status, 200, JSON.stringify(after.body));
  assert.deepEqual(after.body, [{ result: 'A' }, { result: 'B' }, { result: 'C' }, { result: 2 }], 'INCR ran once per request');
  const tx = await call(onCluster, '/multi-exec', [['INCR', 'mv:{slot}n'], ['GET', key]]);
  assert.deepEqual(tx.body, [{ result: 3 }, { result: 'A' }]);
  await cluster.waitOk();

  // Back again, transactions first: ASK while migrating (ASKING, then
  // MULTI ... EXEC on the target), MOVED after.
  await cli(from, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', to.id);
  await cli(to, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', from.id);
  await cli(to, 'MIGRATE', '127.0.0.1', from.port, '', 0, 5000, 'KEYS', key, 'mv:{slot}n');
  const asked = await call(onCluster, '/multi-exec', [['INCR', 'mv:{slot}n'], ['GET', key]]);
  assert.equal(asked.status, 200, JSON.stringify(asked.body));
  assert.deepEqual(asked.body, [{ result: 4 }, { result: 'A' }]);
  await cli(to, 'MIGRATE', '127.0.0.1', from.port, '', 0, 5000, 'KEYS', other, 'mv:{slot}c');
  for (const n of cluster.nodes) await cluster.cli(n.index, 'CLUSTER', 'SETSLOT', slot, 'NODE', from.id).catch(() => {});
  const movedTx = await call(onCluster, '/multi-exec', [['INCR', 'mv:{slot}n'], ['MGET', key, other, 'mv:{slot}c']]);
  assert.equal(movedTx.status, 200, JSON.stringify(movedTx.body));
  assert.deepEqual(movedTx.body, [{ result: 5 }, { result: ['A', 'B', 'C'] }], 'the transaction ran once, on the new owner');
  await cluster.waitOk();
});

test('kill -9 of a master: the other masters keep answering, its slots fail fast (503) until its replica is promoted; /healthz names them', async () => {
  const byMaster = new Map();
  for (const k of keys) {
    const m = await cluster.masterOf(k);
    if (!byMaster.has(m)) byMaster.set(m, []);
    byMaster.get(m).push(k);
  }
  await call(onCluster, '/pipeline', keys.map((k) => ['SET', k, k]));
  const [victim] = byMaster.keys();
  const victimKeys = byMaster.get(victim);
  const otherKeys = keys.filter((k) => !victimKeys.includes(k));
  await cluster.nodes[victim].kill9();
  const killedAt = Date.now();
  // A request written to the dead master's socket before the bridge has
  // read the close is rightly "sent: its outcome is unknown". /healthz
  // pings every master on its connection, so once it names slots down the
  // bridge has seen the close, and every later request must be "not sent".
  let seen = await call(onCluster, '/healthz');
  while (!(seen.body.slotsDown?.length > 0) && Date.now() - killedAt < 1000) {
    await new Promise((r) => setTimeout(r, 10));
    seen = await call(onCluster, '/healthz');
  }
  const errors = { victim: 0, others: 0, slow: 0 };
  // Before the node timeout (2 s) the cluster is still "ok": the bridge
  // alone decides what fails.
  while (Date.now() - killedAt < 1200) {
    const rs = await Promise.all(
      [...otherKeys, ...victimKeys].map(async (k) => {
        const t = Date.now();
        const r = await call(onCluster, `/get/${k}`);
        return { k, r, ms: Date.now() - t };
      }),
    );
    for (const { k, r, ms } of rs) {
      if (victimKeys.includes(k)) {
        if (r.status !== 200) {
          errors.victim++;
          assert.equal(r.status, 503, JSON.stringify(r.body));
          assert.match(r.body.error, /not sent/);
          // The others answer: a failure of some slots only, which a
          // client's breaker does not count against the whole tier.
          assert.equal(r.body.partial, true, JSON.stringify(r.body));
          // At once, not at the request timeout (5 s); generous for a loaded machine.
          if (ms > 1000) errors.slow++;
        }
      } else if (r.status !== 200 || r.body.result !== k) errors.others++;
    }
  }
  const health = await call(onCluster, '/healthz');
  assert.equal(health.status, 200);
  assert.ok(health.body.slotsDown?.length > 0, JSON.stringify(health.body));
  assert.equal(errors.others, 0, `the other masters' keys: ${JSON.stringify(errors)}`);
  assert.ok(errors.victim > 0);
  assert.equal(errors.slow, 0, 'the dead master fails at once');
  await cluster.waitOk();
  const promoted = Date.now();
  // Within a second of the promotion, the bridge serves the slots again.
  let ok = false;
  while (!ok && Date.now() - promoted < 1500) {
    const rs = await Promise.all(victimKeys.map((k) => call(onCluster, `/get/${k}`)));
    ok = rs.every((r, i) => r.status === 200 && r.body.result === victimKeys[i]);
    if (!ok) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(ok, 'the promoted replica serves the slots within 1.5 s of cluster_state:ok');
  assert.deepEqual((await call(onCluster, '/healthz')).body, { result: 'PONG' });
  await cluster.nodes[victim].restart();
  await cluster.waitOk();
});
