// Tags (issue 15) across the bindings: both example Workers, each in its
// own real workerd (tests/js/example-workers.mjs: the Rust one from
// examples/rust-worker, the JS one from examples/js-worker), and a Node
// TieredCache, on ONE real redis-server behind ONE edgecache-bridge, with
// the same prefix and signing keys. Entries are written with tags through
// each (the Workers' `PUT /__edgecache/kv/<key>?tags=a,b`, Node's
// `set(key, value, { tags })`), then a tag is invalidated through one (the
// Workers' `POST /__edgecache/invalidate-tags?tags=`, Node's
// `invalidateTags`) and every entry carrying it, whoever wrote it, misses
// in all three: at once in the Rust Worker (its binding keeps no tagged
// entry in L1 and checks the tags' versions in Redis on every read), and
// within EDGECACHE_MAX_STALENESS in the JS ones (their L1 keeps tagged
// entries, vouched for by the lease). Entries written after it are served.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { TieredCache, RedisRest } from 'edgecache';
import { redisAndBridge } from './servers.mjs';
import { startExampleWorkers, ensureRustWorker } from './example-workers.mjs';

process.env.WRANGLER_SEND_METRICS = 'false';
const ADMIN = 'admin-token-for-tags';
const TOKEN = randomBytes(24).toString('base64url');
const SECRET = randomBytes(32).toString('base64url');
const PREFIX = 'tagsw';
/** maxStaleness of every cache here, ms: the JS caches' L1 bound. */
const M = 400;
const SLACK = 300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

ensureRustWorker();

const servers = redisAndBridge({ token: TOKEN });
let workers;
let node;
const rust = { name: 'Rust Worker', fetch: (p, init) => workers.rust.fetch(p, init) };
const jsw = { name: 'JS Worker', fetch: (p, init) => workers.js.fetch(p, init) };

const auth = { authorization: `Bearer ${ADMIN}` };
const query = (params) => {
  const q = new URLSearchParams(params).toString();
  return q ? `?${q}` : '';
};
async function kvPut(w, key, value, params = {}) {
  const r = await w.fetch(`/__edgecache/kv/${encodeURIComponent(key)}${query(params)}`, {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  const text = await r.text();
  assert.equal(r.status, 204, `${w.name} PUT ${key}: ${text}`);
}
async function kvGet(w, key, scope = {}) {
  const r = await w.fetch(`/__edgecache/kv/${encodeURIComponent(key)}${query(scope)}`, { headers: auth });
  const text = await r.text();
  assert.ok(r.status === 200 || r.status === 404, `${w.name} GET ${key}: ${r.status} ${text}`);
  return { status: r.status, tier: r.headers.get('x-cache-tier'), value: r.status === 200 ? JSON.parse(text) : undefined };
}
async function invalidate(w, tags, scope = {}) {
  const r = await w.fetch(`/__edgecache/invalidate-tags${query({ tags: tags.join(','), ...scope })}`, { method: 'POST', headers: auth });
  const text = await r.text();
  assert.equal(r.status, 200, `${w.name} invalidate ${tags}: ${text}`);
  return JSON.parse(text).invalidated;
}
/** What each of the three reads for `key`: the value, or undefined. */
async function readAll(key, scope = {}) {
  const view = scope.tenant === undefined ? node : node.scope(scope);
  return {
    rust: (await kvGet(rust, key, scope)).value,
    js: (await kvGet(jsw, key, scope)).value,
    node: await view.get(key),
  };
}
const everywhere = (v) => ({ rust: v, js: v, node: v });
const nowhere = everywhere(undefined);

/** An entry with `tags` written by each of the three: `<name>-rust`, `-js`, `-node`. */
async function writeEach(name, tags, scope = {}) {
  await kvPut(rust, `${name}-rust`, `${name} from Rust`, { tags: tags.join(','), ...scope });
  await kvPut(jsw, `${name}-js`, `${name} from JS`, { tags: tags.join(','), ...scope });
  await (scope.tenant === undefined ? node : node.scope(scope)).set(`${name}-node`, `${name} from Node`, { tags });
  return [
    [`${name}-rust`, `${name} from Rust`],
    [`${name}-js`, `${name} from JS`],
    [`${name}-node`, `${name} from Node`],
  ];
}

describe('tags across the Rust Worker, the JS Worker and Node', () => {
  // Inside the describe: after the file's redis-server and bridge have started.
  before(async () => {
    workers = await startExampleWorkers(
      {
        EDGECACHE_REDIS_URL: servers.bridge.url,
        EDGECACHE_REDIS_TOKEN: TOKEN,
        EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
        EDGECACHE_PREFIX: PREFIX,
        EDGECACHE_L1_TTL: '600000',
        EDGECACHE_MAX_STALENESS: String(M),
        EDGECACHE_ADMIN_TOKEN: ADMIN,
      },
      { rustName: rust.name, jsName: jsw.name },
    );
    node = new TieredCache({
      redis: new RedisRest({ url: servers.bridge.url, token: TOKEN }),
      signer: { keys: { k1: SECRET } },
      prefix: PREFIX,
      maxStaleness: M,
      l1Ttl: 600_000,
      log: () => {},
    });
  });
  after(async () => {
    await workers?.stop();
  });

  test('the routes: the admin token, and a bad tag refused alike', async () => {
    for (const w of [rust, jsw]) {
      const none = await w.fetch('/__edgecache/invalidate-tags?tags=a', { method: 'POST' });
      assert.equal(none.status, 401, w.name);
      await none.arrayBuffer();
      const get = await w.fetch('/__edgecache/invalidate-tags?tags=a', { headers: auth });
      assert.equal(get.status, 405, w.name);
      await get.arrayBuffer();
      const missing = await w.fetch('/__edgecache/invalidate-tags', { method: 'POST', headers: auth });
      assert.equal(missing.status, 400, w.name);
      await missing.arrayBuffer();
      for (const path of ['/__edgecache/invalidate-tags?tags=a,,b', '/__edgecache/kv/k?tags=a,']) {
        const r = await w.fetch(path, { method: path.includes('kv') ? 'PUT' : 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: path.includes('kv') ? '1' : undefined });
        const body = await r.json();
        assert.deepEqual([r.status, body.error, body.outcome], [400, 'INVALID_TAG', 'not-applied'], `${w.name} ${path}: ${body.message}`);
      }
    }
  });

  test('a tag invalidated by the Rust Worker is seen by the JS Worker and Node; others stay', async () => {
    const entries = await writeEach('a', ['product:7', 'all']);
    const other = await writeEach('b', ['product:8']);
    for (const [key, v] of [...entries, ...other]) assert.deepEqual(await readAll(key), everywhere(v), key);
    // Twice: the JS ones serve their L1 copies now.
    for (const [key, v] of entries) assert.deepEqual(await readAll(key), everywhere(v), key);
    const tier = await kvGet(rust, entries[0][0]);
    assert.equal(tier.tier, 'l2', 'the Rust binding keeps no tagged entry in L1');

    assert.equal(await invalidate(rust, ['product:7']), 1);
    // The Rust Worker: at once.
    for (const [key] of entries) assert.equal((await kvGet(rust, key)).status, 404, `Rust ${key}`);
    // The JS ones: once their lease has run out.
    await sleep(M + SLACK);
    for (const [key] of entries) assert.deepEqual(await readAll(key), nowhere, key);
    for (const [key, v] of other) assert.deepEqual(await readAll(key), everywhere(v), `${key} has no such tag`);
    assert.equal(await node.invalidateTags(['product:8']), 1);
  });

  test('a tag invalidated by Node is seen by the Rust Worker at once (its GET answers 404), and by the JS Worker', async () => {
    const entries = await writeEach('c', ['t:c']);
    for (const [key, v] of entries) assert.deepEqual(await readAll(key), everywhere(v), key);
    assert.equal(await node.invalidateTags(['t:c']), 1);
    for (const [key] of entries) assert.equal((await kvGet(rust, key)).status, 404, `Rust ${key}`);
    assert.equal(await node.get('c-rust'), undefined, 'Node, from Redis');
    await sleep(M + SLACK);
    for (const [key] of entries) assert.deepEqual(await readAll(key), nowhere, key);
  });

  test('a tag invalidated by the JS Worker is seen by the Rust Worker and Node; a set after it is served', async () => {
    const entries = await writeEach('d', ['t:d', 'x']);
    for (const [key, v] of entries) assert.deepEqual(await readAll(key), everywhere(v), key);
    assert.equal(await invalidate(jsw, ['t:d', 't:d']), 1);
    for (const [key] of entries) assert.equal((await kvGet(rust, key)).status, 404, `Rust ${key}`);
    await sleep(M + SLACK);
    for (const [key] of entries) assert.deepEqual(await readAll(key), nowhere, key);
    // Written again after the invalidation, by each: served by all three.
    const again = await writeEach('d', ['t:d', 'x']);
    await sleep(M + SLACK);
    for (const [key, v] of again) assert.deepEqual(await readAll(key), everywhere(v), `${key} after`);
  });

  test('a tag lives in its scope: invalidated in a tenant, the root keeps its entries', async () => {
    const scope = { tenant: 'acme' };
    const scoped = await writeEach('e', ['shared'], scope);
    const rooted = await writeEach('e', ['shared']);
    assert.equal(await invalidate(rust, ['shared'], scope), 1);
    await sleep(M + SLACK);
    for (const [key] of scoped) assert.deepEqual(await readAll(key, scope), nowhere, `acme ${key}`);
    for (const [key, v] of rooted) assert.deepEqual(await readAll(key), everywhere(v), `root ${key}`);
    // And at the root, by Node: the root's only.
    assert.equal(await node.invalidateTags(['shared']), 1);
    for (const [key] of rooted) assert.equal((await kvGet(rust, key)).status, 404, `Rust ${key}`);
  });

  test('the Rust Worker counts what tags did in its stats', async () => {
    const r = await rust.fetch('/__edgecache/stats');
    const s = await r.json();
    // Its own: product:7 at the root, shared in acme.
    assert.equal(s.tags.invalidations, 2, JSON.stringify(s.tags));
    assert.ok(s.tags.invalidated >= 6, JSON.stringify(s.tags));
    assert.equal(s.tags.rollbacks, 0);
  });
});
