// edgecache-bridge in front of a Redis Cluster over TLS (issue 16:
// `rediss-cluster://`), a real 3-master, 3-replica cluster from
// startCluster({ tls }) whose nodes listen on TLS ports only, with a CA and
// a server certificate for 127.0.0.1 this file makes with openssl. The
// bridge reaches every node at the address CLUSTER SLOTS gives (its TLS
// port, verified as 127.0.0.1): single keys on every master, MGET across
// slots, a pipeline across masters, a transaction on one slot's owner,
// SCAN and DBSIZE over every master; with a wrong CA it serves nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startCluster, startBridge } from './servers.mjs';

const TOKEN = 'cluster-tls-token-0123456789';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-cluster-tls-'));
const f = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** A key and a certificate signed by `ca` (or self-signed: a CA), as in bridge-tls.test.mjs. */
function makeCert(name, { ca, cn, san }) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
  const ext = ca
    ? ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature', 'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=${san}`]
    : ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
  fs.writeFileSync(f(`${name}.ext`), ext.join('\n') + '\n');
  const sign = ca ? ['-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial'] : ['-key', f(`${name}.key`)];
  openssl('x509', '-req', '-in', f(`${name}.csr`), ...sign, '-days', '2', '-sha256', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
}

let cluster, bridge;
before(async () => {
  makeCert('ca', { cn: 'edgecache test CA' });
  makeCert('other-ca', { cn: 'another CA' });
  makeCert('server', { ca: 'ca', cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1' });
  cluster = await startCluster({ tls: { cert: f('server.crt'), key: f('server.key'), ca: f('ca.crt') } });
  bridge = await startBridge({ redisUrl: cluster.url, token: TOKEN, args: ['--redis-ca', f('ca.crt')] });
});
after(async () => {
  await bridge?.stop();
  await cluster?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function call(b, route, body) {
  const init = { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${TOKEN}` } };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(b.url + route, init);
  return { status: res.status, body: await res.json() };
}

const masterIndexes = async () => (await cluster.topology()).filter((n) => n.role === 'master').map((m) => cluster.nodes.findIndex((n) => n.port === m.port));
const keys = Array.from({ length: 12 }, (_, i) => `ct:${i}`);

test('the cluster is TLS only: rediss-cluster URL, CLUSTER SLOTS names the TLS ports, the plain port is off', async () => {
  assert.match(cluster.url, /^rediss-cluster:\/\/127\.0\.0\.1:\d+\?node=/);
  // CLUSTER SLOTS: each node's address, then its port. Redis 7.0 leaves
  // out a replica whose replication offset is still 0 (before any write),
  // so the masters are certain to be there, the replicas are not.
  const slots = (await cluster.cli(0, 'CLUSTER', 'SLOTS')).split('\n');
  const announced = new Set(slots.flatMap((line, i) => (line === '127.0.0.1' ? [Number(slots[i + 1])] : [])));
  const topo = await cluster.topology();
  const tlsPorts = cluster.nodes.map((n) => n.port);
  for (const p of announced) assert.ok(tlsPorts.includes(p), `CLUSTER SLOTS names ${p}, no node's TLS port`);
  const masters = topo.filter((n) => n.role === 'master').map((n) => n.port);
  assert.equal(masters.length, 3);
  for (const p of masters) assert.ok(announced.has(p), `master ${p} in CLUSTER SLOTS:\n${slots.join('\n')}`);
  assert.deepEqual(topo.map((n) => n.port).sort(), [...tlsPorts].sort(), 'CLUSTER NODES names the TLS ports');
  assert.match(await cluster.cli(0, 'CONFIG', 'GET', 'port'), /^port\n0\n$/);
});

test('SET and GET of keys on all three masters, each stored on its owner', async () => {
  const owners = new Set();
  for (const [i, k] of keys.entries()) {
    assert.deepEqual(await call(bridge, '/', ['SET', k, `tls ${i}`]), { status: 200, body: { result: 'OK' } });
    assert.deepEqual(await call(bridge, `/get/${k}`), { status: 200, body: { result: `tls ${i}` } });
    const owner = await cluster.masterOf(k);
    assert.equal((await cluster.cli(owner, 'GET', k)).trim(), `tls ${i}`, 'on its owner, no redirect');
    owners.add(owner);
  }
  assert.equal(owners.size, 3, 'the keys cover every master');
});

test('MGET across slots, a pipeline across masters, a transaction in one slot', async () => {
  const mget = await call(bridge, '/', ['MGET', ...keys, 'ct:none', keys[0]]);
  assert.deepEqual(mget, { status: 200, body: { result: [...keys.map((_, i) => `tls ${i}`), null, 'tls 0'] } });

  const pipe = await call(bridge, '/pipeline', [
    ['SET', 'ct:p1', 'a'],
    ['INCR', 'ct:n'],
    ['GET', keys[1]],
    ['SET', 'ct:p2', 'b'],
    ['INCR', 'ct:n'],
    ['MGET', 'ct:p1', 'ct:p2', keys[2]],
  ]);
  assert.equal(pipe.status, 200);
  assert.deepEqual(pipe.body, [{ result: 'OK' }, { result: 1 }, { result: 'tls 1' }, { result: 'OK' }, { result: 2 }, { result: ['a', 'b', 'tls 2'] }]);
  const pipeOwners = new Set(await Promise.all(['ct:p1', 'ct:n', keys[1], 'ct:p2'].map((k) => cluster.masterOf(k))));
  assert.ok(pipeOwners.size >= 2, 'the pipeline spans masters');

  const tx = await call(bridge, '/multi-exec', [['SET', '{ct}a', '1'], ['INCR', '{ct}a'], ['RPUSH', '{ct}log', 'x'], ['GET', '{ct}a']]);
  assert.deepEqual(tx, { status: 200, body: [{ result: 'OK' }, { result: 2 }, { result: 1 }, { result: '2' }] });
  assert.equal((await cluster.cli(await cluster.masterOf('{ct}a'), 'GET', '{ct}a')).trim(), '2');
  const cross = await call(bridge, '/multi-exec', [['SET', 'ct:tx1', '1'], ['SET', 'ct:tx2', '2']]);
  assert.equal(cross.status, 400);
  assert.match(cross.body.error, /CROSSSLOT/);
});

test('DBSIZE is the sum over the masters; SCAN sees every key of every master', async () => {
  const masters = await masterIndexes();
  assert.equal(masters.length, 3);
  const sizes = await Promise.all(masters.map(async (i) => Number((await cluster.cli(i, 'DBSIZE')).trim())));
  assert.ok(sizes.every((n) => n > 0), `every master holds keys: ${sizes}`);
  const dbsize = await call(bridge, '/', ['DBSIZE']);
  assert.deepEqual(dbsize, { status: 200, body: { result: sizes.reduce((a, b) => a + b, 0) } });

  const inRedis = (await Promise.all(masters.map((i) => cluster.cli(i, 'KEYS', '*')))).flatMap((t) => t.split('\n').filter(Boolean)).sort();
  const seen = [];
  let cursor = '0';
  do {
    const r = await call(bridge, '/', ['SCAN', cursor, 'COUNT', 5]);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    [cursor] = r.body.result;
    seen.push(...r.body.result[1]);
  } while (cursor !== '0');
  assert.deepEqual([...new Set(seen)].sort(), inRedis);
  assert.equal(inRedis.length, dbsize.body.result);
});

test('with a wrong CA the bridge serves nothing: /healthz and commands 503, nothing written', async () => {
  let log = '';
  const wrong = await startBridge({
    redisUrl: cluster.url,
    token: TOKEN,
    args: ['--redis-ca', f('other-ca.crt')],
    waitHealthy: false,
    env: { RUST_LOG: 'edgecache_bridge=debug' },
    onStderr: (d) => (log += d),
  });
  try {
    await sleep(700);
    const health = await fetch(`${wrong.url}/healthz`);
    assert.equal(health.status, 503);
    for (const k of ['ct:refused', ...keys.slice(0, 4)]) {
      const r = await call(wrong, '/', ['SET', k, 'refused']);
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.equal(typeof r.body.error, 'string');
    }
    assert.match(log, /invalid peer certificate: UnknownIssuer/);
  } finally {
    wrong.proc.kill('SIGKILL');
    await wrong.stop();
  }
  assert.equal((await cluster.cli(await cluster.masterOf('ct:refused'), 'EXISTS', 'ct:refused')).trim(), '0');
  assert.equal((await call(bridge, `/get/${keys[0]}`)).body.result, 'tls 0', 'the good bridge still serves');
});
