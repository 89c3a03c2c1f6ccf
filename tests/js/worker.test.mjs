// The example JS Worker (examples/js-worker/, the npm package and fromEnv)
// in a real workerd, bundled by wrangler as `make dev-js` serves it, which
// also checks that the package loads its wasm under the `workerd`
// condition. L1 only; then tiered, two Worker instances over a real
// redis-server and edgecache-bridge on loopback (tampering, Redis down);
// and the cross-request rule: concurrent requests for one missing key;
// writes to Redis that land after their request has answered.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { unstable_dev } from 'wrangler';
import { startRedis, startBridge, startProxy } from './servers.mjs';

process.env.WRANGLER_SEND_METRICS = 'false';
const ADMIN = 'admin-token-for-tests';

function start(script, { config, vars = {} } = {}) {
  return unstable_dev(script, {
    // The test Workers get their own config, never the root wrangler.toml (the Rust example's).
    config: config ?? 'tests/js/workers/wrangler.toml',
    vars,
    ip: '127.0.0.1',
    port: 0,
    logLevel: 'error',
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
  });
}
const example = (vars) => start('examples/js-worker/index.js', { config: 'examples/js-worker/wrangler.toml', vars });

async function get(worker, path, init) {
  const res = await worker.fetch(path, init);
  return { status: res.status, cache: res.headers.get('x-cache'), tier: res.headers.get('x-cache-tier'), text: await res.text() };
}
const stats = async (worker) => (await worker.fetch('/__edgecache/stats')).json();
const purge = (worker, pattern, token) =>
  worker.fetch(`/__edgecache/purge?pattern=${encodeURIComponent(pattern)}`, {
    method: 'DELETE',
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });

describe('the JS example Worker, L1 only', () => {
  let worker;
  before(async () => {
    worker = await example({ EDGECACHE_ADMIN_TOKEN: ADMIN });
  });
  after(async () => {
    await worker?.stop();
  });

  test('the first request is a MISS, the second a HIT from L1; stats match', async () => {
    const miss = await get(worker, '/item/7');
    assert.equal(miss.status, 200);
    assert.equal(miss.cache, 'MISS');
    assert.equal(miss.tier, null);
    assert.equal(JSON.parse(miss.text).path, '/item/7');
    const hit = await get(worker, '/item/7');
    assert.equal(hit.cache, 'HIT');
    assert.equal(hit.tier, 'l1');
    assert.equal(hit.text, miss.text, 'the same rendering, replayed');
    const s = await stats(worker);
    assert.equal(s.tiered, false);
    assert.equal(s.l2, null);
    assert.equal(s.l1.hits, 1);
    assert.equal(s.l1.misses, 1);
    assert.equal(s.l1.entries, 1);
    assert.ok(s.l1.bytes > 0);
    const html = await worker.fetch('/__edgecache');
    assert.match(html.headers.get('content-type'), /text\/html/);
    assert.match(await html.text(), /hit rate[\s\S]*50\.0 %[\s\S]*L1 only/);
  });

  test('purge: 401 without the token, 403 with a wrong one; the caller glob, as given', async () => {
    for (const p of ['/p/4', '/p/42', '/p/400']) assert.equal((await get(worker, p)).cache, 'MISS');
    const none = await purge(worker, '/p/*');
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    assert.equal((await purge(worker, '/p/*', 'wrong')).status, 403);
    assert.equal((await worker.fetch('/__edgecache/purge?pattern=*', { method: 'DELETE', headers: { authorization: 'Basic eDp5' } })).status, 403);
    assert.equal((await get(worker, '/p/4')).cache, 'HIT', 'nothing was purged');
    // The exact path matches itself only; a glob matches what it says.
    assert.deepEqual(await (await purge(worker, '/p/4', ADMIN)).json(), { pattern: '/p/4', deleted: 1 });
    assert.equal((await get(worker, '/p/42')).cache, 'HIT');
    assert.deepEqual(await (await purge(worker, '/p/4?', ADMIN)).json(), { pattern: '/p/4?', deleted: 1 });
    assert.equal((await get(worker, '/p/400')).cache, 'HIT');
    assert.equal((await purge(worker, '', ADMIN)).status, 400);
    assert.equal((await worker.fetch('/__edgecache/purge?pattern=*')).status, 405);
  });

  test('two concurrent requests for one missing path both succeed, each from the origin', async () => {
    const [a, b] = await Promise.all([get(worker, '/same'), get(worker, '/same')]);
    assert.equal(a.status, 200, a.text);
    assert.equal(b.status, 200, b.text);
    assert.equal(a.cache, 'MISS');
    assert.equal(b.cache, 'MISS');
  });
});

test('a page past its freshness is served STALE while one request refreshes it', async () => {
  const w = await example({ CACHE_TTL: '300' });
  try {
    const miss = await get(w, '/s');
    assert.equal(miss.cache, 'MISS');
    await new Promise((r) => setTimeout(r, 400));
    const stale = await get(w, '/s');
    assert.equal(stale.cache, 'STALE');
    assert.equal(stale.tier, 'l1');
    assert.equal(stale.text, miss.text, 'the stale copy, at once');
    let fresh;
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      fresh = await get(w, '/s');
      if (fresh.text !== miss.text) break;
    }
    assert.equal(fresh.cache, 'HIT');
    assert.notEqual(fresh.text, miss.text, 'refreshed from the origin in the background');
  } finally {
    await w.stop();
  }
});

test('purge is refused (403) when no EDGECACHE_ADMIN_TOKEN is configured', async () => {
  const w = await example({});
  try {
    assert.equal((await purge(w, '*', '')).status, 403);
    assert.equal((await purge(w, '*', 'anything')).status, 403);
    assert.equal((await purge(w, '*')).status, 401);
  } finally {
    await w.stop();
  }
});

/** An origin on loopback, slow enough for requests to overlap; counts requests per path. */
async function slowOrigin() {
  const hits = new Map();
  const srv = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1);
    setTimeout(() => res.end(`origin ${req.url}`), 300);
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, hits, stop: () => new Promise((r) => srv.close(r)) };
}

describe('tiered: two Worker instances over redis-server and the bridge', () => {
  let redis;
  let bridge;
  let origin;
  let a;
  let b;
  let cross;
  const token = randomBytes(24).toString('base64url');
  const vars = () => ({
    EDGECACHE_REDIS_URL: bridge.url,
    EDGECACHE_REDIS_TOKEN: token,
    EDGECACHE_SIGNING_KEYS: `k1:${randomKey}`,
    EDGECACHE_ADMIN_TOKEN: ADMIN,
    EDGECACHE_L1_TTL: '60000',
    EDGECACHE_PREFIX: 'jsw',
  });
  const randomKey = randomBytes(32).toString('base64url');
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');

  before(async () => {
    redis = await startRedis();
    bridge = await startBridge({ redisUrl: redis.url, token });
    origin = await slowOrigin();
    [a, b, cross] = await Promise.all([
      example(vars()),
      example(vars()),
      start('tests/js/workers/cross-request.js', { vars: { ...vars(), ORIGIN: origin.url } }),
    ]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop(), cross?.stop()]);
    await origin?.stop();
    await bridge?.stop();
    await redis?.stop();
  });

  test('what one instance cached, the other serves from L2, then from its L1', async () => {
    const miss = await get(a, '/shared');
    assert.equal(miss.cache, 'MISS');
    assert.equal((await get(a, '/shared')).tier, 'l1');
    const fromL2 = await get(b, '/shared');
    assert.equal(fromL2.cache, 'HIT');
    assert.equal(fromL2.tier, 'l2');
    assert.equal(fromL2.text, miss.text, 'the page the first instance cached');
    assert.equal((await get(b, '/shared')).tier, 'l1');
    const s = await stats(b);
    assert.equal(s.tiered, true);
    assert.equal(s.l2.hits, 1);
    assert.equal(s.breaker.state, 'closed');
    assert.match(cli('KEYS', 'jsw:v:*'), /\/shared/);
  });

  test('a value tampered with in Redis is not served', async () => {
    assert.equal((await get(a, '/tampered')).cache, 'MISS');
    const [key] = cli('KEYS', 'jsw:v:*/tampered').split('\n');
    const sealed = cli('GET', key);
    const i = sealed.length - 10;
    cli('SET', key, sealed.slice(0, i) + (sealed[i] === 'A' ? 'B' : 'A') + sealed.slice(i + 1), 'KEEPTTL');
    const r = await get(b, '/tampered');
    assert.equal(r.status, 200);
    assert.equal(r.cache, 'MISS', 'never served from the altered envelope');
    assert.equal((await stats(b)).l2.rejected, 1);
  });

  test('purge (with the token) deletes from L2 too', async () => {
    assert.equal((await get(a, '/gone')).cache, 'MISS');
    assert.equal((await purge(a, '/gone', 'nope')).status, 403);
    assert.deepEqual(await (await purge(a, '/gone', ADMIN)).json(), { pattern: '/gone', deleted: 1 });
    assert.equal(cli('KEYS', 'jsw:v:*/gone'), '');
    assert.equal((await get(b, '/gone')).cache, 'MISS');
  });

  test('cross-request rule: two concurrent requests for one missing key both succeed', async () => {
    for (const kind of ['response', 'memo', 'get']) {
      const rs = await Promise.all([cross.fetch(`/${kind}/k-${kind}`), cross.fetch(`/${kind}/k-${kind}`)]);
      for (const r of rs) {
        const body = await r.text();
        assert.equal(r.status, 200, `${kind}: ${body}`);
        assert.equal(body, `origin /k-${kind}`);
        assert.doesNotMatch(body, /different request/);
      }
    }
    // Each request did its own fetch: none waited on the other's.
    const hits = JSON.stringify([...origin.hits]);
    assert.equal(origin.hits.get('/k-response'), 2, hits);
    assert.equal(origin.hits.get('/k-memo'), 2, hits);
    assert.equal(origin.hits.get('/k-get'), 2, hits);
  });

  test('memoize staleWhileRevalidate: the background refresh outlives the request that started it', async () => {
    // ttl 1 s; the origin answers in 300 ms.
    const text = async (path) => (await cross.fetch(path)).text();
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    const first = await text('/swr/s');
    assert.match(first, /^origin \/s #\d+$/);
    await sleep(1_200);
    assert.equal(await text('/swr/s'), first, 'stale, at once');
    // The refresh waits for the origin after that request has ended: in
    // workerd it lives on only if handed to waitUntil.
    await sleep(600);
    const second = await text('/swr/s');
    assert.notEqual(second, first, 'refreshed in the background');
    assert.equal(origin.hits.get('/s'), 2);
    // Once more: no refresh was left stuck in flight.
    await sleep(1_200);
    assert.equal(await text('/swr/s'), second, 'stale again');
    await sleep(600);
    assert.notEqual(await text('/swr/s'), second, 'refreshed again');
    assert.equal(origin.hits.get('/s'), 3);
  });

  test('with Redis down, L1 hits are still served and the rest answer MISS, not 500', async () => {
    assert.equal((await get(a, '/kept')).cache, 'MISS');
    await redis.stop();
    const kept = await get(a, '/kept');
    assert.equal(kept.cache, 'HIT');
    assert.equal(kept.tier, 'l1');
    const fresh = await get(a, '/after-redis');
    assert.equal(fresh.status, 200);
    assert.equal(fresh.cache, 'MISS');
    const other = await get(b, '/kept');
    assert.equal(other.status, 200);
    assert.equal(other.cache, 'MISS', 'not in its L1, and Redis cannot answer');
    const s = await stats(a);
    assert.ok(Object.values(s.l2.errors).reduce((x, y) => x + y, 0) >= 1, JSON.stringify(s.l2));
    assert.equal((await purge(a, '/kept', ADMIN)).status, 503, 'a delete Redis did not see is refused, never half done');
  });
});

describe('writes that land after the response: memoize, @cached, cachePage over fromEnv(env)', () => {
  // The way to the bridge is slowed (150 ms added to every chunk, both
  // ways): each request answers with its computed value while the write of
  // that value to Redis is still under way. workerd cancels the I/O a
  // request leaves pending when it answers, unless it is in waitUntil.
  let redis;
  let bridge;
  let proxy;
  let w;
  const token = randomBytes(24).toString('base64url');
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');

  before(async () => {
    redis = await startRedis();
    bridge = await startBridge({ redisUrl: redis.url, token });
    proxy = await startProxy(Number(new URL(bridge.url).port));
    w = await start('tests/js/workers/late-writes.js', {
      vars: {
        EDGECACHE_REDIS_URL: `http://127.0.0.1:${proxy.port}`,
        EDGECACHE_REDIS_TOKEN: token,
        EDGECACHE_SIGNING_KEYS: `k1:${randomBytes(32).toString('base64url')}`,
        EDGECACHE_PREFIX: 'lw',
      },
    });
  });
  after(async () => {
    await w?.stop();
    await proxy?.stop();
    await bridge?.stop();
    await redis?.stop();
  });

  test('every result reaches Redis, and this isolate\'s L1 too: nothing is computed again', async () => {
    const kinds = { memo: 'memo:', sync: 'sync:', cached: 'cached:', page: 'page:GET /page/' };
    const paths = Object.keys(kinds).flatMap((kind) => Array.from({ length: 10 }, (_, i) => `/${kind}/k${i}`));
    // The isolate's first coherence log read drops all of L1 and keeps
    // whatever is under way out of it (docs/REDIS.md, "In TieredCache"):
    // done here first, so that the requests below are about their writes.
    // A Redis that edgecache has written to before: the log's epoch is
    // named (on one where nothing was ever written, every log read is a
    // gap until a write names it; docs/REDIS.md, "Limits").
    cli('SET', 'lw:c:{lw:0}:epoch', 'a-writer-before-this-test.1', 'NX');
    assert.equal((await w.fetch('/memo/warm')).status, 200);
    proxy.setDelay(150);
    const first = new Map(
      await Promise.all(
        paths.map(async (p) => {
          const r = await w.fetch(p);
          const body = await r.text();
          assert.equal(r.status, 200, `${p}: ${body}`);
          return [p, body];
        }),
      ),
    );
    proxy.setDelay(0);
    const redisKey = (p) => {
      const [, kind, k] = p.split('/');
      return `lw:v:r|${kinds[kind]}${k}`;
    };
    let missing;
    for (const deadline = Date.now() + 5_000; ; ) {
      const held = new Set(cli('KEYS', 'lw:v:*').split('\n'));
      missing = paths.filter((p) => !held.has(redisKey(p)));
      if (missing.length === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    // The answers to the writes are on their way back (150 ms): then each
    // write's end, putting the value in L1, has run, if it was kept alive.
    await new Promise((r) => setTimeout(r, 1_000));
    // Without the way to Redis, only L1 can serve the values (L1_TTL is 10 s).
    await proxy.stop();
    proxy = undefined;
    const recomputed = [];
    for (const [p, body] of first) if ((await (await w.fetch(p)).text()) !== body) recomputed.push(p);
    const stats = recomputed.length ? await (await w.fetch('/stats/x')).text() : '';
    assert.deepEqual({ missing, recomputed }, { missing: [], recomputed: [] }, `${paths.length - missing.length} of ${paths.length} results in Redis ${stats}`);
  });
});

test('generateSecureKey() at module scope in workerd says why it fails and what to do', async () => {
  const w = await unstable_dev('tests/js/workers/random-at-module-scope.js', {
    config: 'tests/js/workers/wrangler.toml',
    compatibilityDate: '2024-09-23',
    ip: '127.0.0.1',
    port: 0,
    logLevel: 'warn',
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
  });
  try {
    const { atModuleScope, inRequest } = await (await w.fetch('/')).json();
    assert.equal(inRequest, 43, 'inside a request it works');
    assert.equal(atModuleScope.code, 'RANDOM_UNAVAILABLE', JSON.stringify(atModuleScope));
    assert.equal(atModuleScope.name, 'EdgeCacheError');
    assert.match(atModuleScope.message, /only while handling a request/);
    assert.doesNotMatch(atModuleScope.message, /has no crypto/);
  } finally {
    await w.stop();
  }
});

describe('tags in workerd: memoize and cachePage (Cache-Tag) over fromEnv(env), L1 only', () => {
  let w;
  before(async () => {
    w = await start('tests/js/workers/tags.js');
  });
  after(async () => {
    await w?.stop();
  });
  const text = async (p) => (await w.fetch(p)).text();
  const until = async (p, want) => {
    // cachePage stores a page in waitUntil, a moment after its miss was read.
    for (let i = 0; i < 100; i++) {
      const r = await w.fetch(p);
      await r.text();
      if (r.headers.get('x-cache') === want) return;
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.fail(`${p} never became ${want}`);
  };

  test('an invalidated tag makes its results miss, others hit, results stored afterwards are served', async () => {
    const m1 = await text('/memo/a');
    const m2 = await text('/memo/b');
    assert.equal(await text('/memo/a'), m1);
    assert.equal(await (await w.fetch('/invalidate?tags=item:a')).json(), 1);
    const m1b = await text('/memo/a');
    assert.notEqual(m1b, m1);
    assert.equal(await text('/memo/b'), m2);
    assert.equal(await text('/memo/a'), m1b, 'stored again after the invalidation');

    assert.equal((await w.fetch('/page/x')).headers.get('x-cache'), 'MISS');
    await until('/page/x', 'HIT');
    await until('/page/y', 'HIT');
    await w.fetch('/invalidate?tags=item:x');
    const again = await w.fetch('/page/x');
    assert.equal(again.headers.get('x-cache'), 'MISS', 'a tag from Cache-Tag');
    assert.match(await again.text(), /^page x #/);
    assert.equal((await w.fetch('/page/y')).headers.get('x-cache'), 'HIT');
    await until('/page/x', 'HIT');
    await w.fetch('/invalidate?tags=site');
    assert.equal((await w.fetch('/page/y')).headers.get('x-cache'), 'MISS', 'the tags option, beside the header');
    assert.equal(await text('/memo/b'), m2, 'memoize results do not carry the pages\' tags');
    const s = await (await w.fetch('/stats')).json();
    assert.equal(s.invalidations, 3);
    assert.equal(s.invalidated, 3, 'memo a, page x, page y: each found invalidated once');
    assert.equal((await w.fetch('/invalidate?tags=bad%01tag')).status, 500);
    assert.match(await (await w.fetch('/invalidate?tags=a%2Cb,')).text(), /INVALID_TAG/);
  });
});
