// startCluster() in servers.mjs (issue 16): the harness the cluster tests
// stand on starts a real 3-master, 3-replica Redis Cluster, routes keys
// to every master, and kill9()/restart() a master as a failover does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from './servers.mjs';

let cluster;
before(async () => {
  cluster = await startCluster({ nodeTimeout: 1000 });
});
after(() => cluster?.stop());

test('three masters with one replica each, every slot covered, the URL names every node', async () => {
  const topo = await cluster.topology();
  const masters = topo.filter((n) => n.role === 'master');
  assert.equal(masters.length, 3);
  assert.equal(topo.filter((n) => n.role === 'replica').length, 3);
  for (const r of topo.filter((n) => n.role === 'replica')) assert.ok(masters.some((m) => m.id === r.masterId));
  assert.equal(masters.reduce((a, m) => a + m.slots.reduce((b, [x, y]) => b + y - x + 1, 0), 0), 16384);
  const url = new URL(cluster.url);
  assert.equal(url.protocol, 'redis-cluster:');
  assert.equal(1 + url.searchParams.getAll('node').length, 6);
  assert.deepEqual(cluster.nodes.map((n) => n.role).sort(), ['master', 'master', 'master', 'replica', 'replica', 'replica']);
});

test('keys land on every master; masterOf names the owner', async () => {
  const owners = new Set();
  for (let i = 0; i < 30; i++) {
    assert.equal((await cluster.cli(0, '-c', 'SET', `h:${i}`, `v${i}`)).trim(), 'OK');
    const m = await cluster.masterOf(`h:${i}`);
    assert.equal(cluster.nodes[m].role, 'master');
    assert.equal((await cluster.cli(m, 'GET', `h:${i}`)).trim(), `v${i}`, 'the owner holds it without a redirect');
    owners.add(m);
  }
  assert.equal(owners.size, 3);
});

test('kill9() of a master: its replica is promoted; restart() brings it back as a replica', async () => {
  const victim = await cluster.masterOf('h:0');
  const topo = await cluster.topology();
  const victimId = cluster.nodes[victim].id;
  const itsReplica = topo.find((n) => n.masterId === victimId);
  assert.ok(itsReplica);
  await cluster.nodes[victim].kill9();
  const t0 = Date.now();
  await cluster.waitOk();
  const promotedAfter = Date.now() - t0;
  assert.equal(cluster.nodes.find((n) => n.port === itsReplica.port).role, 'master', 'the replica was promoted');
  assert.ok(promotedAfter < 10_000, `promoted after ${promotedAfter} ms`);
  const owner = await cluster.masterOf('h:0');
  assert.equal(cluster.nodes[owner].port, itsReplica.port);
  assert.equal((await cluster.cli(owner, 'GET', 'h:0')).trim(), 'v0', 'the replica had the value');
  await cluster.nodes[victim].restart();
  await cluster.waitOk();
  assert.equal(cluster.nodes[victim].role, 'replica');
});
