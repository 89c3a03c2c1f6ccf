// The two example Workers (the Rust binding, `EdgeCache`, and the JS
// package through fromEnv) on a Redis Cluster (issue 16): a real 3-master,
// 3-replica cluster on loopback behind the real bridge, each Worker in its
// own workerd. The same scenario runs on one redis-server beside it, with
// its own pair of Workers, and the two transcripts (every answer's status
// and body) must be equal: every operation the Workers expose gives the
// same result on a cluster as on one server. The scenario also checks its
// own expectations, so two equally wrong transcripts cannot pass.
//
// What a cluster changes under these operations: a value key and its
// counter key sit in different slots (a delete unlinks both), a purge
// scans every master, the coherence log and tag versions are hash-tagged
// to one slot per prefix.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRedis, startBridge, startCluster } from './servers.mjs';
import { startExampleWorkers, ensureRustWorker } from './example-workers.mjs';

process.env.WRANGLER_SEND_METRICS = 'false';
const ADMIN = 'admin-token-for-tests';
const TOKEN = randomBytes(24).toString('base64url');
const SECRET = randomBytes(32).toString('base64url');
const MAX_STALENESS = 300;
// Scheduling slack: the reader's clock (workerd's, advanced on I/O) and this process's.
const SLACK = 150;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

ensureRustWorker();

/** One backend: its servers, its bridge and its pair of Workers. */
const sides = { single: {}, cluster: {} };

const vars = (bridge) => ({
  EDGECACHE_REDIS_URL: bridge.url,
  EDGECACHE_REDIS_TOKEN: TOKEN,
  EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
  EDGECACHE_PREFIX: 'wc',
  // Far longer than the test: only the coherence log takes a copy out of L1.
  EDGECACHE_L1_TTL: '600000',
  EDGECACHE_MAX_STALENESS: String(MAX_STALENESS),
  EDGECACHE_ADMIN_TOKEN: ADMIN,
});

before(async () => {
  const [redis, cluster] = await Promise.all([startRedis(), startCluster()]);
  sides.single.redis = redis;
  sides.cluster.redis = cluster;
  for (const side of Object.values(sides)) {
    side.bridge = await startBridge({ redisUrl: side.redis.url, token: TOKEN });
  }
  // One pair at a time: four workerd starting at once crowd two cores.
  for (const side of Object.values(sides)) side.workers = await startExampleWorkers(vars(side.bridge));
});
after(async () => {
  for (const side of Object.values(sides)) {
    await side.workers?.stop();
    await side.bridge?.stop();
    await side.redis?.stop();
  }
});

const auth = { authorization: `Bearer ${ADMIN}` };
const q = (params = {}) => {
  const s = new URLSearchParams(params).toString();
  return s ? `?${s}` : '';
};

/**
 * Runs the scenario on one side's Workers; returns its transcript: one
 * `[step, status, body]` per request (bodies parsed when JSON).
 */
async function scenario(side) {
  const { rust, js } = side.workers;
  const log = [];
  const call = async (step, w, p, init = {}) => {
    const r = await w.fetch(p, { ...init, headers: { ...auth, ...(init.headers ?? {}) } });
    const text = await r.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // kept as text
    }
    log.push([step, w.name, r.status, body]);
    return { status: r.status, body, tier: r.headers.get('x-cache-tier') };
  };
  const put = (step, w, key, value, params) =>
    call(step, w, `/__edgecache/kv/${encodeURIComponent(key)}${q(params)}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(value),
    });
  const get = (step, w, key, params) => call(step, w, `/__edgecache/kv/${encodeURIComponent(key)}${q(params)}`);
  const del = (step, w, key, params) => call(step, w, `/__edgecache/kv/${encodeURIComponent(key)}${q(params)}`, { method: 'DELETE' });

  // 1. Nine keys on every master, written by each Worker, read by the other,
  //    at the root and in a tenant.
  const keys = Array.from({ length: 9 }, (_, i) => `item:${i}`);
  for (const [writer, reader, params] of [
    [rust, js, {}],
    [js, rust, { tenant: 'acme' }],
    [rust, js, { tenant: 'acme', user: '7' }],
  ]) {
    for (const k of keys) assert.equal((await put('put', writer, k, { k, by: writer.name }, params)).status, 204);
    for (const k of keys) {
      const r = await get('get', reader, k, params);
      assert.deepEqual([r.status, r.body], [200, { k, by: writer.name }], `${reader.name} reads ${k} ${JSON.stringify(params)}`);
    }
  }
  // Scopes stay apart: the root's keys are not the tenant's.
  assert.deepEqual((await get('get', js, 'item:0', {})).body, { k: 'item:0', by: 'Rust' });
  assert.deepEqual((await get('get', rust, 'item:0', { tenant: 'acme' })).body, { k: 'item:0', by: 'JS' });

  // 2. Counters (the Rust Worker's route; the JS example has none).
  assert.deepEqual((await call('incr', rust, '/__edgecache/incr/hits?by=5', { method: 'POST' })).body, { value: 5 });
  assert.deepEqual((await call('incr', rust, '/__edgecache/incr/hits?by=2', { method: 'POST' })).body, { value: 7 });
  assert.deepEqual((await call('incr', rust, '/__edgecache/incr/hits?by=-1&tenant=acme', { method: 'POST' })).body, { value: -1 });

  // 3. A delete on one Worker leaves the other's L1 within maxStaleness.
  for (let i = 0; i < 3 && (await get('warm', rust, 'item:1')).tier !== 'l1'; i++);
  assert.deepEqual((await del('del', js, 'item:1')).body.deleted, true);
  await sleep(MAX_STALENESS + SLACK);
  assert.equal((await get('after-del', rust, 'item:1')).status, 404, "the JS Worker's delete reached the Rust Worker's L1");
  assert.equal((await get('after-del', js, 'item:1')).status, 404);
  assert.equal((await del('del-again', rust, 'item:1')).body.deleted, false, 'nothing left to delete');

  // 4. A purge by pattern scans every master.
  const purged = await call('purge', rust, `/__edgecache/purge?pattern=${encodeURIComponent('item:[2-5]')}`, { method: 'DELETE' });
  assert.deepEqual([purged.status, purged.body.deleted], [200, 4], JSON.stringify(purged.body));
  await sleep(MAX_STALENESS + SLACK);
  for (const k of keys) {
    const want = ['item:1', 'item:2', 'item:3', 'item:4', 'item:5'].includes(k) ? 404 : 200;
    assert.equal((await get('after-purge', js, k)).status, want, `JS reads ${k} after the purge`);
  }
  // The tenant's keys were not the pattern's scope.
  assert.equal((await get('after-purge', js, 'item:3', { tenant: 'acme' })).status, 200);

  // 5. Tags: both Workers tag entries; one invalidation drops all of them.
  await put('tagged', rust, 'p:1', 1, { tags: 'product,red' });
  await put('tagged', js, 'p:2', 2, { tags: 'product' });
  await put('tagged', js, 'p:3', 3, { tags: 'blue' });
  for (const w of [rust, js]) for (const k of ['p:1', 'p:2', 'p:3']) await get('tagged-read', w, k);
  const inv = await call('invalidate', js, '/__edgecache/invalidate-tags?tags=product', { method: 'POST' });
  assert.equal(inv.status, 200, JSON.stringify(inv.body));
  await sleep(MAX_STALENESS + SLACK);
  for (const w of [rust, js]) {
    assert.equal((await get('after-invalidate', w, 'p:1')).status, 404, `${w.name}: p:1 was tagged product`);
    assert.equal((await get('after-invalidate', w, 'p:2')).status, 404, `${w.name}: p:2 was tagged product`);
    assert.deepEqual((await get('after-invalidate', w, 'p:3')).body, 3, `${w.name}: p:3 was not`);
  }
  return log;
}

test('every Worker operation gives the same answers on a Redis Cluster as on one server', async () => {
  const [single, cluster] = await Promise.all([scenario(sides.single), scenario(sides.cluster)]);
  assert.ok(single.length > 60, `${single.length} steps`);
  assert.deepEqual(cluster, single);
  // The data is really spread: every master holds some of it.
  const counts = [];
  for (const n of sides.cluster.redis.nodes.filter((n) => n.role === 'master')) {
    counts.push(Number(String(await sides.cluster.redis.cli(n.index, 'DBSIZE')).trim()));
  }
  assert.equal(counts.length, 3);
  assert.ok(counts.every((c) => c > 0), `keys per master: ${counts}`);
});
