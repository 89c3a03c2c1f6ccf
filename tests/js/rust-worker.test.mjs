// The example Rust Worker (examples/rust-worker, on edgecache::worker, built
// by worker-build as `make dev` serves it) in a real workerd, through
// Miniflare as workers-rs's own tests run it: L1 only; then tiered, Worker
// instances over a real redis-server and edgecache-bridge on loopback
// (shared L2, tampering, Redis down); and interop with Node's TieredCache
// from the built package, both ways, at the root and in a scope.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Miniflare } from 'miniflare';
import { TieredCache } from 'edgecache';
import { startRedis, startBridge } from './servers.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const SCRIPT = path.join(root, 'examples/rust-worker/build/index.js');
const ADMIN = 'admin-token-for-tests';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// make test builds it (scripts/test.sh); alone, this file builds it once.
if (!existsSync(SCRIPT)) execFileSync(path.join(root, 'scripts/rust-worker.sh'), { stdio: 'inherit' });

const workers = new Set();
/** A Worker instance (its own workerd, so its own isolate); `mf.logs` holds what it printed. */
function worker(bindings = {}) {
  const logs = [];
  const mf = new Miniflare({
    scriptPath: SCRIPT,
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    bindings: { ORIGIN_DELAY_MS: '20', EDGECACHE_ADMIN_TOKEN: ADMIN, ...bindings },
    handleRuntimeStdio(stdout, stderr) {
      for (const s of [stdout, stderr]) s.on('data', (d) => logs.push(...d.toString().split('\n').filter(Boolean)));
    },
  });
  mf.logs = logs;
  workers.add(mf);
  return mf;
}
after(async () => {
  for (const mf of workers) await mf.dispose();
});

async function get(mf, p, init) {
  const res = await mf.dispatchFetch(`http://localhost${p}`, init);
  return { status: res.status, cache: res.headers.get('x-cache'), tier: res.headers.get('x-cache-tier'), text: await res.text() };
}
const stats = async (mf) => (await mf.dispatchFetch('http://localhost/__edgecache/stats')).json();
const admin = (token) => (token === undefined ? {} : { authorization: `Bearer ${token}` });
const purge = (mf, pattern, token) =>
  mf.dispatchFetch(`http://localhost/__edgecache/purge?pattern=${encodeURIComponent(pattern)}`, { method: 'DELETE', headers: admin(token) });
const kvUrl = (key, q = '') => `http://localhost/__edgecache/kv/${encodeURIComponent(key)}${q}`;

describe('the Rust example Worker, L1 only', () => {
  let mf;
  before(() => {
    mf = worker();
  });

  test('the first request is a MISS, the second a HIT from L1; stats match', async () => {
    const miss = await get(mf, '/item/7');
    assert.equal(miss.status, 200);
    assert.equal(miss.cache, 'MISS');
    assert.equal(miss.tier, null);
    assert.match(miss.text, /<h1>\/item\/7<\/h1>/);
    const hit = await get(mf, '/item/7');
    assert.equal(hit.cache, 'HIT');
    assert.equal(hit.tier, 'l1');
    assert.equal(hit.text, miss.text, 'the same rendering, replayed');
    const s = await stats(mf);
    assert.equal(s.tiered, false);
    assert.equal(s.l2, null);
    assert.equal(s.breaker, null);
    assert.deepEqual([s.l1.hits, s.l1.misses, s.l1.sets, s.l1.entries], [1, 1, 1, 1]);
    assert.equal(s.l1.hitRate, 0.5);
    assert.ok(s.l1.bytes > miss.text.length);
    assert.deepEqual(s.served, { hit: 1, miss: 1, stale: 0 });
    const page = await (await mf.dispatchFetch('http://localhost/__edgecache')).text();
    assert.match(page, /hit rate \(L1\)<\/th><td>50\.0%/);
    assert.match(page, /L1 only/);
    const said = mf.logs.filter((l) => l.includes('edgecache: L1 only'));
    assert.equal(said.length, 1, `said once: ${JSON.stringify(mf.logs)}`);
  });

  test('pages are keyed by path and query as the URL reads them (the short way splits the raw URL); other methods and routes keep their answers', async () => {
    // The key is what `Url::path()` and `query()` gave before the page path
    // stopped parsing the URL: each distinct path + query is its own page.
    for (const p of ['/search?q=a%20b&x=1', '/search?q=other', '/search', '/search?', '/caf%C3%A9/x?y=%2F']) {
      assert.equal((await get(mf, p)).cache, 'MISS', p);
      const hit = await get(mf, p);
      assert.equal(hit.cache, 'HIT', p);
      assert.ok(hit.text.includes(`<h1>${p.replaceAll('&', '&amp;')}</h1>`), `${p}: ${hit.text}`);
    }
    // workerd hands the Worker its URLs serialized: the same page.
    assert.equal((await get(mf, '/café/x?y=%2F')).cache, 'HIT');
    assert.equal((await get(mf, '/search?q=a%20b&x=1#frag')).cache, 'HIT', 'a fragment is not part of the key');
    const head = await mf.dispatchFetch('http://localhost/search?q=other', { method: 'HEAD' });
    assert.equal(head.headers.get('x-cache'), 'HIT');
    assert.equal(head.headers.get('x-cache-tier'), 'l1');
    assert.match(head.headers.get('content-type'), /^text\/html/);
    assert.equal(head.headers.get('age'), '0');
    const post = await mf.dispatchFetch('http://localhost/search', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal((await mf.dispatchFetch('http://localhost/__edgecache/nope')).status, 404);
    assert.equal((await mf.dispatchFetch('http://localhost/__edgecache/stats', { method: 'HEAD' })).status, 404);
  });

  test('purge: 401 without the token, 403 with a wrong one; the glob is the caller\'s', async () => {
    await get(mf, '/p/1');
    await get(mf, '/p/2');
    await get(mf, '/q/1');
    const none = await purge(mf, '/p/*');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await purge(mf, '/p/*', 'wrong')).status, 403);
    assert.equal((await purge(mf, '/p/*', ADMIN.slice(0, -1) + 'X')).status, 403);
    assert.equal((await get(mf, '/p/1')).cache, 'HIT', 'nothing was purged');
    const ok = await purge(mf, '/p/*', ADMIN);
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { pattern: '/p/*', deleted: 2 });
    assert.equal((await get(mf, '/p/1')).cache, 'MISS');
    assert.equal((await get(mf, '/q/1')).cache, 'HIT');
    assert.equal((await mf.dispatchFetch(kvUrl('x'))).status, 401, 'the kv routes need the token too');
    assert.equal((await mf.dispatchFetch('http://localhost/__edgecache/purge', { method: 'DELETE', headers: admin(ADMIN) })).status, 400);
  });

  test('the bindings by the rule fromEnv reads them (tests/fixtures/settings.json), a TOML number included', async () => {
    // Miniflare passes a number as a TOML number in [vars] arrives: Env::var took it for unset.
    const s = await stats(worker({ EDGECACHE_MAX_ENTRIES: 3, EDGECACHE_MAX_BYTES: ' 65536\n' }));
    assert.deepEqual([s.l1.maxEntries, s.l1.maxBytes], [3, 65536]);
    for (const [name, value] of [['EDGECACHE_MAX_BYTES', 'Infinity'], ['EDGECACHE_MAX_ENTRIES', 1.5], ['EDGECACHE_L1_TTL', true]]) {
      const r = await get(worker({ [name]: value }), '/x');
      assert.equal(r.status, 500, r.text);
      assert.match(r.text, new RegExp(`edgecache configuration: invalid option \`${name}\``));
    }
  });

  test('STALE: served past its freshness while the origin is asked again', async () => {
    const short = worker({ CACHE_TTL: '150' });
    assert.equal((await get(short, '/s')).cache, 'MISS');
    assert.equal((await get(short, '/s')).cache, 'HIT');
    await sleep(200);
    const stale = await get(short, '/s');
    assert.equal(stale.cache, 'STALE');
    assert.equal(stale.tier, 'l1');
    await sleep(100);
    const fresh = await get(short, '/s');
    assert.equal(fresh.cache, 'HIT', 'revalidated in the background');
    assert.notEqual(fresh.text, stale.text);
  });

  test('a panic resets the wasm instance: the next request is served, from an empty L1', async () => {
    const w = worker({ DEMO_PANIC_ROUTE: '1' });
    assert.equal((await get(w, '/panic/1')).cache, 'MISS');
    assert.equal((await get(w, '/panic/1')).cache, 'HIT');
    const r = await w.dispatchFetch('http://localhost/__edgecache/panic', { method: 'POST', headers: admin(ADMIN) });
    assert.equal(r.status, 500);
    await r.text();
    const after = await get(w, '/panic/1');
    assert.equal(after.status, 200);
    assert.equal(after.cache, 'MISS', 'a fresh instance, a fresh L1');
    assert.equal((await get(w, '/panic/1')).cache, 'HIT');
    assert.equal((await stats(w)).l1.entries, 1);
  });

  test('a Redis binding without signing keys is an error naming the fix', async () => {
    const bad = worker({ EDGECACHE_REDIS_URL: 'http://127.0.0.1:1', EDGECACHE_REDIS_TOKEN: 't' });
    const r = await get(bad, '/x');
    assert.equal(r.status, 500);
    assert.match(r.text, /wrangler secret put EDGECACHE_SIGNING_KEYS/);
  });
});

describe('the Rust example Worker, tiered over redis-server + edgecache-bridge', () => {
  const TOKEN = randomBytes(24).toString('base64url');
  const SECRET = randomBytes(32).toString('base64url');
  const PREFIX = 'rw';
  let redis;
  let bridge;
  let tiered;
  const redisCmd = async (args) => {
    const r = await fetch(bridge.url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(args) });
    return (await r.json()).result;
  };

  before(async () => {
    redis = await startRedis();
    bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
    tiered = (more = {}) =>
      worker({
        EDGECACHE_REDIS_URL: bridge.url,
        EDGECACHE_REDIS_TOKEN: TOKEN,
        EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
        EDGECACHE_PREFIX: PREFIX,
        ...more,
      });
  });
  after(async () => {
    await bridge?.stop();
    await redis?.stop();
  });

  test('two Worker instances share L2: the second serves x-cache-tier: l2', async () => {
    const a = tiered();
    const b = tiered();
    const miss = await get(a, '/shared/1');
    assert.equal(miss.cache, 'MISS');
    assert.equal((await get(a, '/shared/1')).tier, 'l1');
    const fromL2 = await get(b, '/shared/1');
    assert.equal(fromL2.cache, 'HIT');
    assert.equal(fromL2.tier, 'l2');
    assert.equal(fromL2.text, miss.text);
    assert.equal((await get(b, '/shared/1')).tier, 'l1', 'then kept in its own L1');
    const s = await stats(b);
    assert.equal(s.tiered, true);
    assert.equal(s.l2.hits, 1);
    assert.equal(s.breaker.state, 'closed');
    // The Redis key is the shared layout's: <prefix>:v:r|<cache key>.
    assert.equal(typeof (await redisCmd(['GET', `${PREFIX}:v:r|/shared/1`])), 'string');
    // Purge reaches L2: a third instance misses.
    assert.equal((await purge(a, '/shared/*', ADMIN)).status, 200);
    assert.equal(await redisCmd(['GET', `${PREFIX}:v:r|/shared/1`]), null);
    assert.equal((await get(tiered(), '/shared/1')).cache, 'MISS');
  });

  test('coherence from the bindings: EDGECACHE_MAX_STALENESS, EDGECACHE_STALE_WHILE_UNREACHABLE', async () => {
    const on = tiered({ EDGECACHE_MAX_STALENESS: '250' });
    await get(on, '/coherence/1');
    const c = (await stats(on)).coherence;
    assert.equal(c.maxStaleness, 250);
    assert.ok(c.reads >= 1, JSON.stringify(c));
    for (const k of ['failures', 'entries', 'own', 'gaps', 'trimmed', 'behind', 'lost', 'epoch', 'away', 'unreadable', 'staleServed', 'refused', 'invalidated']) {
      assert.equal(typeof c[k], 'number', `${k} in ${JSON.stringify(c)}`);
    }
    assert.equal((await stats(tiered())).coherence.maxStaleness, 1000, 'the default');
    assert.equal((await stats(tiered({ EDGECACHE_MAX_STALENESS: 'off' }))).coherence, null);
    for (const [name, value] of [['EDGECACHE_MAX_STALENESS', '86400001'], ['EDGECACHE_MAX_STALENESS', 'never'], ['EDGECACHE_STALE_WHILE_UNREACHABLE', 'yes']]) {
      const r = await get(tiered({ [name]: value }), '/x');
      assert.equal(r.status, 500, r.text);
      assert.match(r.text, new RegExp(`invalid option \`${name}\``));
    }
  });

  test('a tampered L2 value is not served', async () => {
    const a = tiered();
    const first = await get(a, '/tamper/1');
    const key = `${PREFIX}:v:r|/tamper/1`;
    const sealed = await redisCmd(['GET', key]);
    // Flip one character in the middle of the envelope (the payload).
    const i = Math.floor(sealed.length / 2);
    const altered = sealed.slice(0, i) + (sealed[i] === 'A' ? 'B' : 'A') + sealed.slice(i + 1);
    await redisCmd(['SET', key, altered]);
    const b = tiered();
    const r = await get(b, '/tamper/1');
    assert.equal(r.cache, 'MISS', 'rejected, fetched from the origin again');
    assert.notEqual(r.text, first.text);
    assert.equal((await stats(b)).l2.rejected, 1);
    // Moved from another key: also refused (bound to its key).
    await get(a, '/tamper/2');
    await redisCmd(['SET', `${PREFIX}:v:r|/tamper/3`, await redisCmd(['GET', `${PREFIX}:v:r|/tamper/2`])]);
    assert.equal((await get(tiered(), '/tamper/3')).cache, 'MISS');
  });

  test('with L2 down, it serves L1 and answers MISS (not 500) for the rest', async () => {
    const r2 = await startRedis();
    const b2 = await startBridge({ redisUrl: r2.url, token: TOKEN });
    const w = worker({
      EDGECACHE_REDIS_URL: b2.url,
      EDGECACHE_REDIS_TOKEN: TOKEN,
      EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
      EDGECACHE_PREFIX: PREFIX,
      EDGECACHE_REDIS_TIMEOUT: '1000',
    });
    try {
      assert.equal((await get(w, '/down/1')).cache, 'MISS');
      await b2.stop();
      await r2.stop();
      const kept = await get(w, '/down/1');
      assert.equal(kept.status, 200);
      assert.deepEqual([kept.cache, kept.tier], ['HIT', 'l1']);
      for (let i = 2; i < 9; i++) {
        const r = await get(w, `/down/${i}`);
        assert.equal(r.status, 200);
        assert.equal(r.cache, 'MISS');
      }
      assert.equal((await get(w, '/down/2')).tier, 'l1', 'its write landed in L1');
      const s = await stats(w);
      assert.equal(s.breaker.state, 'open');
      assert.ok(s.l2.errors.L2_HTTP >= 1, JSON.stringify(s.l2.errors));
      assert.ok(s.l2.errors.L2_UNAVAILABLE >= 1, JSON.stringify(s.l2.errors));
    } finally {
      await b2.stop();
      await r2.stop();
    }
  });

  test('a Redis that never answers times out (L2_TIMEOUT): MISS from the origin, not a hang', async () => {
    // Accepts connections and never answers.
    const sockets = new Set();
    const silent = net.createServer((s) => sockets.add(s));
    await new Promise((r) => silent.listen(0, '127.0.0.1', r));
    const w = worker({
      EDGECACHE_REDIS_URL: `http://127.0.0.1:${silent.address().port}`,
      EDGECACHE_REDIS_TOKEN: TOKEN,
      EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
      EDGECACHE_REDIS_TIMEOUT: '300',
    });
    try {
      const t = Date.now();
      const r = await get(w, '/slow/1');
      assert.equal(r.status, 200);
      assert.equal(r.cache, 'MISS');
      assert.ok(Date.now() - t < 3_000, `took ${Date.now() - t} ms`);
      assert.equal((await get(w, '/slow/1')).tier, 'l1');
      const s = await stats(w);
      assert.ok(s.l2.errors.L2_TIMEOUT >= 1, JSON.stringify(s.l2.errors));
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  describe('interop with Node\'s TieredCache (the built package)', () => {
    let node;
    before(() => {
      node = new TieredCache({ redis: { url: bridge.url, token: TOKEN }, signer: { keys: { k1: SECRET } }, prefix: PREFIX, log: () => {} });
    });
    const scopes = [
      ['root', undefined, ''],
      ['tenant + user', { tenant: 'acme', user: 42 }, '?tenant=acme&user=42'],
    ];
    for (const [name, scope, q] of scopes) {
      test(`Node writes, the Rust Worker reads (${name})`, async () => {
        const view = scope ? node.scope(scope) : node;
        const value = { hello: 'from node', n: 1.5, list: [1, 'é', null], nested: { ok: true } };
        await view.set('from-node', value, { ttl: 60_000 });
        const r = await worker({ EDGECACHE_REDIS_URL: bridge.url, EDGECACHE_REDIS_TOKEN: TOKEN, EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`, EDGECACHE_PREFIX: PREFIX })
          .dispatchFetch(kvUrl('from-node', q), { headers: admin(ADMIN) });
        assert.equal(r.status, 200);
        assert.equal(r.headers.get('x-cache-tier'), 'l2');
        assert.deepEqual(await r.json(), value);
        if (scope) {
          const other = await tiered().dispatchFetch(kvUrl('from-node', '?tenant=acme&user=43'), { headers: admin(ADMIN) });
          assert.equal(other.status, 404, 'another scope does not see it');
        }
      });

      test(`the Rust Worker writes, Node reads (${name})`, async () => {
        const value = { hello: 'from rust', big: 2 ** 52, list: [true, { a: [] }] };
        const w = tiered();
        const put = await w.dispatchFetch(kvUrl('from-rust', `${q}${q ? '&' : '?'}ttl=60000`), {
          method: 'PUT',
          headers: { ...admin(ADMIN), 'content-type': 'application/json' },
          body: JSON.stringify(value),
        });
        assert.equal(put.status, 204);
        const reader = new TieredCache({ redis: { url: bridge.url, token: TOKEN }, signer: { keys: { k1: SECRET } }, prefix: PREFIX, log: () => {} });
        const view = scope ? reader.scope(scope) : reader;
        assert.deepEqual(await view.get('from-rust'), value);
        const ttl = await view.ttl('from-rust');
        assert.ok(ttl > 50_000 && ttl <= 60_000, `ttl ${ttl}`);
        if (!scope) assert.equal(await reader.scope({ tenant: 'acme' }).get('from-rust'), undefined);
      });
    }

    test('raw bytes (a Uint8Array in Node) cross both ways, and keep their kind', async () => {
      const bytes = new Uint8Array([0, 255, 7, 128, 10]);
      await node.scope({ tenant: 'acme' }).set('blob-from-node', bytes, { ttl: 60_000 });
      const w = tiered();
      const r = await w.dispatchFetch(kvUrl('blob-from-node', '?tenant=acme'), { headers: admin(ADMIN) });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'application/octet-stream');
      assert.deepEqual(new Uint8Array(await r.arrayBuffer()), bytes);
      assert.equal((await w.dispatchFetch(kvUrl('blob-from-node', '?tenant=acme'), { headers: admin(ADMIN) })).headers.get('x-cache-tier'), 'l1');

      const put = await w.dispatchFetch(kvUrl('blob-from-rust', '?ttl=60000'), {
        method: 'PUT',
        headers: { ...admin(ADMIN), 'content-type': 'application/octet-stream' },
        body: new Uint8Array([1, 2, 3, 0]),
      });
      assert.equal(put.status, 204);
      const reader = new TieredCache({ redis: { url: bridge.url, token: TOKEN }, signer: { keys: { k1: SECRET } }, prefix: PREFIX, log: () => {} });
      const got = await reader.get('blob-from-rust');
      assert.ok(got instanceof Uint8Array, `a Uint8Array, got ${typeof got}`);
      assert.deepEqual(got, new Uint8Array([1, 2, 3, 0]));
      const s = await stats(w);
      assert.equal(s.l2.rejected, 0, 'bytes are a kind of value, not a tampered one');
    });

    test('Node reads a page the Rust Worker cached, and its delete reaches the Worker', async () => {
      const w = tiered();
      const miss = await get(w, '/interop/page');
      const page = await node.get('/interop/page');
      assert.equal(page.status, 200);
      assert.equal(page.body, miss.text);
      assert.match(page.contentType, /^text\/html/);
      await node.delete('/interop/page');
      assert.equal((await get(tiered(), '/interop/page')).cache, 'MISS');
    });
  });
});
