// Tags in the Redis tier (docs/REDIS.md, "Tags"): TieredCaches on one real
// redis-server and bridge, each its own "isolate" (its own L1, client and
// writer id). invalidateTags costs O(1) commands whatever the number of
// entries; an entry written before it with the tag is never served from
// Redis once it resolves, nor from another isolate's L1 once maxStaleness
// has passed; entries written after it are served; scopes are apart; what
// an attacker with redis-cli can do (strip or change tags, restore an old
// envelope, roll a version back) serves no invalidated entry to an isolate
// that has seen the invalidation. The multi-process check is
// tests/js/tags-multi.test.mjs.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { TieredCache, RedisRest, generateSecureKey, EdgeCacheError, memoize, cachePage } from 'edgecache';
import { redisAndBridge, countingFetch } from './servers.mjs';

const TOKEN = 'tags-test-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
const servers = redisAndBridge({ token: TOKEN });
const M = 300; // maxStaleness here, ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let prefixes = 0;

function cli(...args) {
  return execFileSync('redis-cli', ['-p', String(servers.redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');
}


/** Isolates on a fresh prefix: `make()` gives another one. */
function isolates(opts = {}) {
  const prefix = `tag${++prefixes}`;
  const make = (extra = {}) => {
    const { fetch: f, ...rest } = { ...opts, ...extra };
    return new TieredCache({
      redis: new RedisRest({ url: servers.bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}) }),
      signer: { keys: { k1: SECRET } },
      prefix,
      l1Ttl: 60_000, // only tags and coherence drop L1 here
      maxStaleness: M,
      log: () => {},
      ...rest,
    });
  };
  return { prefix, make };
}

describe('tags in the Redis tier', () => {
  test('invalidateTags: entries with the tag miss, others and later ones are served; stats count it', async () => {
    const { prefix, make } = isolates();
    const a = make();
    await a.set('p7', 'page 7', { tags: ['product:7', 'home'] });
    await a.set('p8', 'page 8', { tags: ['product:8'] });
    await a.set('plain', 'no tags');
    assert.equal(await a.get('p7'), 'page 7');
    assert.equal(await a.invalidateTags(['product:7']), 1);
    assert.equal(await a.get('p7'), undefined, 'from L1: gone at once in the invalidating isolate');
    assert.equal(await a.get('p8'), 'page 8');
    assert.equal(await a.get('plain'), 'no tags');
    const fresh = make();
    assert.equal(await fresh.get('p7'), undefined, 'from Redis: invalidated');
    assert.equal(await fresh.get('p8'), 'page 8');
    assert.equal(fresh.stats().tags.invalidated, 1);
    // Nothing was scanned or deleted: the entry is still in Redis, its tag's version raised.
    assert.equal(cli('EXISTS', `${prefix}:v:r|p7`), '1');
    assert.equal(cli('GET', `${prefix}:g:r|product:7`), '1');
    // Written after the invalidation, with the same tag: served everywhere.
    await a.set('p7', 'page 7 v2', { tags: ['product:7'] });
    assert.equal(await a.get('p7'), 'page 7 v2');
    assert.equal(await make().get('p7'), 'page 7 v2');
    assert.equal(a.stats().tags.invalidations, 1);
  });

  test('O(1): one request with one INCR per tag (and the log append), whatever the number of entries', async () => {
    const { make } = isolates();
    const f = countingFetch();
    const a = make({ fetch: f });
    const entries = Array.from({ length: 500 }, (_, i) => [`e${i}`, i, { tags: ['big', `own:${i}`] }]);
    await a.setMany(entries);
    f.requests = 0;
    f.commands = [];
    await a.invalidateTags(['big']);
    assert.equal(f.requests, 1);
    assert.deepEqual(f.commands.filter((c) => c[0] === 'INCR').length, 1);
    assert.ok(f.commands.every((c) => ['INCR', 'SET', 'XADD', 'PUBLISH', 'GET', 'XREVRANGE'].includes(c[0])), JSON.stringify(f.commands.map((c) => c[0])));
    assert.deepEqual(await a.getMany(['e0', 'e1', 'e499']), [undefined, undefined, undefined]);
    assert.deepEqual(await make().getMany(['e0', 'e250']), [undefined, undefined]);
  });

  test('across isolates: B (L1 warm) misses within maxStaleness, fresh C at once; other tags still hit from L1', async () => {
    const { make } = isolates();
    const a = make();
    const fb = countingFetch();
    const b = make({ fetch: fb });
    await a.set('x', 'x1', { tags: ['t:x'] });
    await a.set('y', 'y1', { tags: ['t:y'] });
    assert.equal(await b.get('x'), 'x1');
    assert.equal(await b.get('y'), 'y1');
    assert.ok(b.l1.has('x') && b.l1.has('y'));
    await a.invalidateTags(['t:x']);
    const c = make();
    assert.equal(await c.get('x'), undefined, 'a fresh isolate reads Redis: invalidated at once');
    assert.equal(await c.get('y'), 'y1');
    await sleep(M + 50);
    assert.equal(await b.get('x'), undefined, 'past maxStaleness, B no longer serves it');
    const before = fb.requests;
    assert.equal(await b.get('y'), 'y1', 'an entry with another tag');
    assert.equal(fb.requests, before, 'served from L1, no request (the lease was just renewed)');
    await a.set('x', 'x2', { tags: ['t:x'] });
    assert.equal(await b.get('x'), 'x2');
    assert.equal(await c.get('x'), 'x2');
  });

  test('push mode: B drops the entry as soon as the log entry is pushed', async () => {
    const { make } = isolates();
    const a = make();
    const b = make({ push: true, maxStaleness: 60_000 });
    try {
      for (let i = 0; i < 200 && b.stats().coherence.push.state !== 'open'; i++) await sleep(10);
      await a.set('x', 'x1', { tags: ['t'] });
      assert.equal(await b.get('x'), 'x1');
      await a.invalidateTags(['t']);
      for (let i = 0; i < 100 && b.l1.has('x'); i++) await sleep(10);
      assert.equal(await b.get('x'), undefined, 'with maxStaleness a minute, only the push can have told it');
    } finally {
      b.close();
    }
  });

  test('scopes: a tag lives in one scope; the root and other tenants are untouched', async () => {
    const { make } = isolates();
    const a = make();
    const acme = a.scope({ tenant: 'acme' });
    const globex = a.scope({ tenant: 'globex' });
    await a.set('k', 'root', { tags: ['t'] });
    await acme.set('k', 'acme', { tags: ['t'] });
    await globex.set('k', 'globex', { tags: ['t'] });
    await acme.invalidateTags(['t']);
    assert.equal(await acme.get('k'), undefined);
    assert.equal(await a.get('k'), 'root');
    assert.equal(await globex.get('k'), 'globex');
    const c = make();
    assert.equal(await c.scope({ tenant: 'acme' }).get('k'), undefined);
    assert.equal(await c.get('k'), 'root');
    await a.invalidateTags(['t']);
    assert.equal(await make().get('k'), undefined);
    assert.equal(await make().scope({ tenant: 'globex' }).get('k'), 'globex');
  });

  test('bad tags are refused with INVALID_TAG and nothing is written', async () => {
    const { make } = isolates();
    const a = make();
    const bad = [[''], ['a,b'], ['\u0001x'], ['\ud800'], ['x'.repeat(257)], Array.from({ length: 65 }, (_, i) => `t${i}`), 'notarray', [7]];
    for (const tags of bad) {
      await assert.rejects(a.set('k', 'v', { tags }), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TAG', JSON.stringify(tags).slice(0, 40));
      if (!Array.isArray(tags) || tags.length <= 64) await assert.rejects(a.invalidateTags(tags), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TAG');
    }
    // One call invalidates any number of tags: 100 in one request (the log entries hold 64 targets each).
    await a.set('h99', 1, { tags: ['h99'] });
    assert.equal(await a.invalidateTags(Array.from({ length: 100 }, (_, i) => `h${i}`)), 100);
    assert.equal(await make().get('h99'), undefined);
    await assert.rejects(a.setMany([['ok', 1], ['k', 2, { tags: [''] }]]), (e) => e.code === 'INVALID_TAG');
    assert.equal(await make().get('k'), undefined);
    assert.equal(await make().get('ok'), undefined, 'setMany refused as a whole');
    // At the limits: 64 tags, one of 256 bytes (128 two-byte characters).
    const wide = Array.from({ length: 64 }, (_, i) => (i === 0 ? 'é'.repeat(128) : `t${i}`));
    await a.set('wide', 'ok', { tags: wide });
    assert.equal(await make().get('wide'), 'ok');
    await a.invalidateTags(['é'.repeat(128)]);
    assert.equal(await make().get('wide'), undefined);
  });

  test('getOrSet and memoize pass tags through: invalidation makes them recompute', async () => {
    const { make } = isolates();
    const a = make();
    let calls = 0;
    const load = async () => ++calls;
    assert.equal(await a.getOrSet('g', load, { tags: ['prod'] }), 1);
    assert.equal(await a.getOrSet('g', load, { tags: ['prod'] }), 1);
    await a.invalidateTags(['prod']);
    assert.equal(await a.getOrSet('g', load, { tags: ['prod'] }), 2);
    let n = 0;
    const price = memoize(async (id) => `price ${id} #${++n}`, { cache: a, tags: (id) => [`product:${id}`], ttl: 60_000 });
    assert.equal(await price(7), 'price 7 #1');
    assert.equal(await price(7), 'price 7 #1');
    assert.equal(await price(8), 'price 8 #2');
    await a.invalidateTags(['product:7']);
    assert.equal(await price(7), 'price 7 #3');
    assert.equal(await price(8), 'price 8 #2');
    const b = make();
    const priceB = memoize(async (id) => `B ${id}`, { cache: b, tags: (id) => [`product:${id}`], ttl: 60_000 });
    assert.equal(await priceB(7), 'price 7 #3', 'the same memoized entry, read from Redis by another isolate');
  });

  test('cachePage over the tier: tags from Cache-Tag, invalidated in another isolate, the page rendered again', async () => {
    const { make } = isolates();
    let renders = 0;
    const handler = (req) => new Response(`${new URL(req.url).pathname} #${++renders}`, { headers: { 'cache-tag': 'product:7, shop' } });
    const a = cachePage(handler, { cache: make(), ttl: 60_000, cacheTagHeader: true });
    const b = cachePage(handler, { cache: make(), ttl: 60_000, cacheTagHeader: true });
    const get = async (h, path) => {
      const r = await h(new Request(`https://shop.example${path}`));
      return [await r.text(), r.headers.get('x-cache')];
    };
    assert.deepEqual(await get(a, '/p/7'), ['/p/7 #1', 'MISS']);
    await sleep(100); // the page is stored after it is answered (two round trips with tags)
    assert.deepEqual(await get(a, '/p/7'), ['/p/7 #1', 'HIT']);
    assert.deepEqual(await get(b, '/p/7'), ['/p/7 #1', 'HIT'], 'B reads the page A stored in Redis');
    await make().invalidateTags(['shop']);
    await sleep(M + 50);
    assert.deepEqual(await get(b, '/p/7'), ['/p/7 #2', 'MISS'], 'every isolate renders it again');
    await sleep(100);
    assert.deepEqual(await get(a, '/p/7'), ['/p/7 #2', 'HIT']);
  });

  test('a read under way when another isolate invalidates its tag puts nothing in L1', async () => {
    const { make } = isolates();
    const a = make();
    await a.set('k', 'old', { tags: ['t'] });
    let hold;
    const gate = new Promise((r) => (hold = r));
    // B's MGET of the tag versions runs at once, before the invalidation;
    // its answer is held until B has learned of the invalidation (pushed).
    const slow = (input, init) => {
      const res = fetch(input, init);
      const body = JSON.parse(init.body);
      const first = Array.isArray(body[0]) ? body[0][0] : body[0];
      return first === 'MGET' ? res.then(async (r) => (await gate, r)) : res;
    };
    const b = make({ fetch: slow, push: true, maxStaleness: 60_000 });
    try {
      for (let i = 0; i < 200 && b.stats().coherence.push.state !== 'open'; i++) await sleep(10);
      const reading = b.get('k');
      await sleep(100);
      await make().invalidateTags(['t']);
      for (let i = 0; i < 200 && b.stats().coherence.push.messages === 0; i++) await sleep(10);
      assert.equal(b.stats().coherence.push.messages, 1);
      hold();
      // It began before the invalidation: it may answer the older value...
      assert.equal(await reading, 'old');
      // ...but must not leave it in L1, dated after the invalidation.
      assert.equal(b.l1.has('k'), false, 'the older value was not promoted');
      assert.equal(await b.get('k'), undefined);
      assert.equal(b.stats().tags.rollbacks, 0);
    } finally {
      b.close();
    }
  });
});

describe('tags against an attacker with redis-cli', () => {
  /** The envelope's bytes, as base64url text in Redis. */
  const bytes = (s) => Buffer.from(s, 'base64url');
  const text = (b) => Buffer.from(b).toString('base64url');
  const vkey = (prefix, key) => `${prefix}:v:r|${key}`;

  test('tags stripped or changed: the envelope no longer opens', async () => {
    const { prefix, make } = isolates();
    const a = make();
    await a.set('k', 'v', { tags: ['product:7'] });
    const env = bytes(cli('GET', vkey(prefix, 'k')));
    assert.equal(env[0], 3, 'a tagged envelope is format version 3');
    const kidLen = env[1];
    const at = 2 + kidLen + 8 + 1; // tagCount
    assert.equal(env[at], 1);
    const tagLen = env.readUInt16BE(at + 1);
    assert.equal(env.subarray(at + 3, at + 3 + tagLen).toString(), 'product:7');
    // 1. stripped: the tag section removed, version 2 again
    const stripped = Buffer.concat([env.subarray(0, at), env.subarray(at + 1 + 2 + tagLen + 8)]);
    stripped[0] = 2;
    // 2. renamed: product:8
    const renamed = Buffer.from(env);
    renamed[at + 3 + tagLen - 1] = '8'.charCodeAt(0);
    // 3. its version raised (to survive an invalidation)
    const bumped = Buffer.from(env);
    bumped[at + 3 + tagLen + 7] += 5;
    await a.invalidateTags(['product:7']);
    for (const [what, b] of [['stripped', stripped], ['renamed', renamed], ['version raised', bumped]]) {
      cli('SET', vkey(prefix, 'k'), text(b));
      const c = make();
      assert.equal(await c.get('k'), undefined, what);
      assert.equal(c.stats().l2.rejected, 1, `${what}: rejected (its tag no longer matches)`);
    }
  });

  test('an envelope saved before the invalidation, restored after it, is not served', async () => {
    const { prefix, make } = isolates();
    const a = make();
    await a.set('k', 'old', { tags: ['t'] });
    const saved = cli('GET', vkey(prefix, 'k'));
    await a.invalidateTags(['t']);
    await a.set('k', 'new', { tags: ['t'] });
    cli('SET', vkey(prefix, 'k'), saved);
    const c = make();
    assert.equal(await c.get('k'), undefined);
    assert.equal(c.stats().l2.rejected, 0, 'a genuine envelope, refused by its version, not its signature');
    assert.equal(c.stats().tags.invalidated, 1);
    assert.equal(await a.get('k'), 'new', 'A holds its own newer write in L1');
  });

  test('a tag version rolled back: isolates that saw the newer one refuse, and count it', async () => {
    const { prefix, make } = isolates();
    const a = make();
    const b = make();
    await a.set('k', 'old', { tags: ['t'] });
    const saved = cli('GET', vkey(prefix, 'k'));
    assert.equal(await b.get('k'), 'old');
    await a.invalidateTags(['t']);
    assert.equal(cli('GET', `${prefix}:g:r|t`), '1');
    await sleep(M + 50);
    assert.equal(await b.get('k'), undefined, 'B learned the invalidation');
    // The attacker: version back to 0, and the old envelope back.
    cli('SET', `${prefix}:g:r|t`, '0');
    cli('SET', vkey(prefix, 'k'), saved);
    assert.equal(await a.get('k'), undefined);
    assert.equal(await b.get('k'), undefined);
    assert.ok(a.stats().tags.rollbacks + b.stats().tags.rollbacks >= 1);
    // A version that is not an integer serves nothing of the tag.
    cli('SET', `${prefix}:g:r|t`, 'garbage');
    assert.equal(await make().get('k'), undefined);
  });

  test('FLUSHALL behind the cache: an old L1 entry of an invalidated tag stays invalid, and new writes are served', async () => {
    const { make } = isolates();
    const a = make();
    const b = make();
    await a.set('k', 'old', { tags: ['t'] });
    await a.set('u', 'untagged');
    assert.equal(await b.get('k'), 'old');
    await a.invalidateTags(['t']);
    cli('FLUSHALL');
    await sleep(M + 50);
    assert.equal(await b.get('k'), undefined);
    assert.equal(await b.get('u'), undefined, 'the flush dropped B\'s L1 (the epoch rule)');
    await a.set('k', 'after', { tags: ['t'] });
    assert.equal(await b.get('k'), 'after');
    assert.equal(await make().get('k'), 'after');
  });
});
