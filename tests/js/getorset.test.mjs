// Issue 17 §2-3: cache-aside getOrSet on MemoryCache and TieredCache,
// serve-stale while the Redis tier is down (staleIfError), memoize over it
// during an outage, and the breaker's outage/recovery logged once each.
// Against a real redis-server and the real bridge (servers.mjs).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { MemoryCache, TieredCache, RedisRest, Signer, EdgeCacheError, generateSecureKey, memoize } from 'edgecache';
import { startRedis, startRedisOn, startBridge, redisAndBridge } from './servers.mjs';

const TOKEN = 'test-token-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const tick = () => new Promise((r) => setImmediate(r));

/** A loader that counts its calls and resolves (or rejects) when told. */
function deferredLoader() {
  const f = () => {
    f.calls++;
    return new Promise((resolve, reject) => f.pending.push({ resolve, reject }));
  };
  f.calls = 0;
  f.pending = [];
  return f;
}

describe('MemoryCache.getOrSet', () => {
  test('a sync loader: called on the miss only, its value returned as is (not a promise)', () => {
    const c = new MemoryCache();
    let calls = 0;
    const load = () => (++calls, { n: 1 });
    const a = c.getOrSet('k', load);
    assert.deepEqual(a, { n: 1 });
    assert.equal(c.getOrSet('k', load), a, 'the same value on a hit');
    assert.equal(calls, 1);
  });

  test('an async loader: concurrent misses share one call (single-flight); hits return a promise', async () => {
    const c = new MemoryCache();
    const load = deferredLoader();
    const ps = [c.getOrSet('k', load), c.getOrSet('k', load), c.getOrSet('k', load)];
    assert.equal(load.calls, 1, 'one loader call for three concurrent callers');
    load.pending[0].resolve('v');
    assert.deepEqual(await Promise.all(ps), ['v', 'v', 'v']);
    const hit = c.getOrSet('k', load);
    assert.ok(hit instanceof Promise, 'a hit of an async loader is a promise too');
    assert.equal(await hit, 'v');
    assert.equal(load.calls, 1);
  });

  test("the loader's errors pass through and are never cached", async () => {
    const c = new MemoryCache();
    let calls = 0;
    const boom = () => {
      calls++;
      throw new Error('sync boom');
    };
    assert.throws(() => c.getOrSet('s', boom), /sync boom/);
    assert.throws(() => c.getOrSet('s', boom), /sync boom/);
    assert.equal(calls, 2, 'a thrown error is not cached');
    assert.equal(c.getOrSet('s', () => 'ok'), 'ok');

    const load = deferredLoader();
    const p1 = c.getOrSet('a', load);
    const p2 = c.getOrSet('a', load);
    load.pending[0].reject(new Error('async boom'));
    await assert.rejects(p1, /async boom/);
    await assert.rejects(p2, /async boom/, 'the concurrent caller shares the rejection');
    const p3 = c.getOrSet('a', load);
    assert.equal(load.calls, 2, 'a rejection is not cached: the next call loads again');
    load.pending[1].resolve('fine');
    assert.equal(await p3, 'fine');
  });

  test('undefined from the loader is stored like any value (as memoize does)', () => {
    const c = new MemoryCache();
    let calls = 0;
    assert.equal(c.getOrSet('u', () => (calls++, undefined)), undefined);
    assert.equal(c.getOrSet('u', () => (calls++, undefined)), undefined);
    assert.equal(calls, 1);
  });

  test('ttl: the value expires, then the loader runs again', () => {
    let t = 1_000_000;
    const c = new MemoryCache({ now: () => t });
    let calls = 0;
    const load = () => ++calls;
    assert.equal(c.getOrSet('k', load, { ttl: 100 }), 1);
    t += 50;
    assert.equal(c.getOrSet('k', load, { ttl: 100 }), 1);
    t += 100;
    assert.equal(c.getOrSet('k', load, { ttl: 100 }), 2);
  });

  test('staleWhileRevalidate: the stale value is served while one refresh runs; a failed refresh keeps it', async () => {
    let t = 1_000_000;
    const c = new MemoryCache({ now: () => t });
    const o = { ttl: 100, staleWhileRevalidate: 10_000 };
    const load = deferredLoader();
    const first = c.getOrSet('k', load, o);
    load.pending[0].resolve('v1');
    assert.equal(await first, 'v1');

    t += 500; // stale, within the window
    const during = [c.getOrSet('k', load, o), c.getOrSet('k', load, o), c.getOrSet('k', load, o)];
    assert.deepEqual(await Promise.all(during), ['v1', 'v1', 'v1'], 'stale served at once');
    await tick();
    assert.equal(load.calls, 2, 'one refresh for three stale reads');
    load.pending[1].reject(new Error('refresh failed'));
    await tick();
    await tick();
    assert.equal(await c.getOrSet('k', load, o), 'v1', 'a failed refresh keeps the stale value');
    await tick();
    assert.equal(load.calls, 3, 'and the next stale read refreshes again');
    load.pending[2].resolve('v2');
    await tick();
    await tick();
    assert.equal(await c.getOrSet('k', load, o), 'v2', 'a refresh that succeeds replaces it');
    assert.equal(load.calls, 3, 'the refreshed value is fresh');

    t += 20_000; // past ttl + staleWhileRevalidate: a miss
    const late = c.getOrSet('k', load, o);
    assert.equal(load.calls, 4);
    load.pending[3].resolve('v3');
    assert.equal(await late, 'v3');
  });

  test('scope views: keys of two scopes are apart; two views of one scope share a flight', async () => {
    const root = new MemoryCache();
    const load = deferredLoader();
    const a1 = root.scope({ tenant: 'a' }).getOrSet('k', load);
    const a2 = root.scope({ tenant: 'a' }).getOrSet('k', load);
    const b = root.scope({ tenant: 'b' }).getOrSet('k', load);
    assert.equal(load.calls, 2, 'one call for tenant a (two views), one for tenant b');
    load.pending[0].resolve('A');
    load.pending[1].resolve('B');
    assert.deepEqual(await Promise.all([a1, a2, b]), ['A', 'A', 'B']);
    assert.equal(root.getOrSet('k', () => 'root'), 'root', 'the root is a third space');
  });

  test('memoize and getOrSet read the same entries', async () => {
    const c = new MemoryCache();
    let calls = 0;
    const f = memoize(async (id) => (++calls, `user ${id}`), { cache: c, prefix: 'u:' });
    assert.equal(await f('1'), 'user 1');
    assert.equal(await c.getOrSet('u:1', async () => 'other'), 'user 1', "memoize's result is a getOrSet hit");
    assert.equal(calls, 1);
  });

  test('its entries are wrappers: get shows { v, s, f }; a value stored with set is not a hit (documented)', () => {
    const c = new MemoryCache();
    c.getOrSet('w', () => 'x');
    assert.deepEqual(JSON.parse(JSON.stringify(c.get('w'))), { v: 'x', s: 0, f: 0 });
    c.set('plain', 'mine');
    assert.equal(c.getOrSet('plain', () => 'loaded'), 'loaded');
    assert.equal(c.getOrSet('plain', () => 'again'), 'loaded');
  });

  test('bad calls are refused with typed errors', () => {
    const c = new MemoryCache();
    const code = (c2) => (e) => e instanceof EdgeCacheError && e.code === c2;
    assert.throws(() => c.getOrSet(1, () => 1), code('INVALID_KEY'));
    assert.throws(() => c.getOrSet('k', 'nope'), code('INVALID_OPTION'));
    assert.throws(() => c.getOrSet('k', () => 1, null), code('INVALID_OPTION'));
    assert.throws(() => c.getOrSet('k', () => 1, { tag: ['x'] }), (e) => e.code === 'INVALID_OPTION' && /unknown option `tag`/.test(e.message));
    assert.throws(() => c.getOrSet('k', () => 1, { tags: ['a,b'] }), code('INVALID_TAG'));
    assert.throws(() => c.getOrSet('k', () => 1, { tags: 'a' }), code('INVALID_TAG'));
    assert.throws(() => c.getOrSet('k', () => 1, { ttl: -1 }), code('INVALID_TTL'));
    assert.throws(() => c.getOrSet('k', () => 1, { staleWhileRevalidate: 100 }), (e) => e.code === 'INVALID_OPTION' && /needs a ttl > 0/.test(e.message));
    assert.throws(() => c.getOrSet('k', () => 1, { ttl: 10, staleWhileRevalidate: -5 }), code('INVALID_OPTION'));
    assert.equal(c.has('k'), false, 'nothing was loaded or stored');
  });
});

describe('TieredCache.getOrSet', () => {
  const servers = redisAndBridge({ token: TOKEN });
  const isolate = (opts = {}) =>
    new TieredCache({ redis: { url: servers.bridge.url, token: TOKEN }, signer: { keys: { k1: SECRET } }, prefix: 'gos', log: () => {}, ...opts });

  test('single-flight within the isolate, stored in Redis for the next isolate', async () => {
    const c = isolate();
    const load = deferredLoader();
    const ps = [c.getOrSet('user:1', load, { ttl: 60_000 }), c.getOrSet('user:1', load, { ttl: 60_000 })];
    for (let i = 0; i < 200 && load.calls === 0; i++) await sleep(10); // both miss in Redis first
    await sleep(50);
    assert.equal(load.calls, 1);
    load.pending[0].resolve({ name: 'ada' });
    assert.deepEqual(await Promise.all(ps), [{ name: 'ada' }, { name: 'ada' }]);
    await sleep(20); // the write lands
    let other = 0;
    assert.deepEqual(await isolate().getOrSet('user:1', () => (other++, 'no')), { name: 'ada' }, 'another isolate reads it from Redis');
    assert.equal(other, 0);
    const ttl = Number(execFileSync('redis-cli', ['-p', String(servers.redis.port), 'PTTL', 'gos:v:r|user:1'], { encoding: 'utf8' }));
    assert.ok(ttl > 50_000 && ttl <= 60_000, `ttl reached Redis: ${ttl}`);
  });

  test('errors pass through, are not cached; options are checked (a rejection); scope views are apart', async () => {
    const c = isolate();
    let calls = 0;
    await assert.rejects(c.getOrSet('e', async () => (calls++, Promise.reject(new Error('down')))), /down/);
    assert.equal(await c.getOrSet('e', async () => (calls++, 'up')), 'up');
    assert.equal(calls, 2);
    await assert.rejects(c.getOrSet('e', () => 1, { staleWhileRevalidate: 5 }), { code: 'INVALID_OPTION' });
    await assert.rejects(c.getOrSet('e', 5), { code: 'INVALID_OPTION' });
    assert.equal(await c.scope({ tenant: 't1' }).getOrSet('e', () => 't1'), 't1');
    assert.equal(await c.scope({ tenant: 't2' }).getOrSet('e', () => 't2'), 't2');
    assert.equal(await isolate().scope({ tenant: 't1' }).getOrSet('e', () => 'again'), 't1', 'from Redis, in its scope');
  });

  test('staleWhileRevalidate over the tier: stale served, one refresh, the new value reaches Redis', async () => {
    let t = Date.now();
    const now = () => t;
    const c = isolate({ now, l1: { now } });
    const o = { ttl: 1000, staleWhileRevalidate: 60_000 };
    let calls = 0;
    const load = async () => `v${++calls}`;
    assert.equal(await c.getOrSet('swr', load, o), 'v1');
    t += 2000;
    assert.deepEqual(await Promise.all([c.getOrSet('swr', load, o), c.getOrSet('swr', load, o)]), ['v1', 'v1']);
    for (let i = 0; i < 200 && calls < 2; i++) await sleep(10);
    await sleep(50); // the refresh's write lands
    assert.equal(calls, 2, 'one refresh');
    assert.equal(await c.getOrSet('swr', load, o), 'v2');
  });
});

describe('TieredCache: staleIfError, and the outage logged once each way', () => {
  /** Its own Redis and bridge, so a test can stop Redis and start it again on the same port. */
  async function tierWorld() {
    const r = await startRedis();
    const b = await startBridge({ redisUrl: r.url, token: TOKEN });
    const world = {
      r,
      b,
      logs: [],
      tier(opts = {}) {
        return new TieredCache({
          redis: new RedisRest({ url: b.url, token: TOKEN, timeout: 1000, retries: 0 }),
          signer: new Signer({ keys: { k1: SECRET } }),
          prefix: 'sie',
          l1Ttl: 100,
          breaker: { threshold: 1, cooldown: 200 },
          log: (m) => world.logs.push(m),
          ...opts,
        });
      },
      async down() {
        await world.r.stop();
      },
      async up() {
        world.r = await startRedisOn(r.port);
      },
      async stop() {
        await b.stop();
        await world.r.stop();
      },
    };
    return world;
  }

  /** Reads until Redis answers again (the breaker closed). */
  async function untilHealed(c) {
    const t0 = Date.now();
    while (Date.now() - t0 < 10_000) {
      await sleep(100);
      await c.get('probe');
      if (c.stats().breaker.state === 'closed') return;
    }
    assert.fail('the breaker did not close once Redis was back');
  }

  test('past l1Ttl, during an outage, the stale L1 copy is served and counted; never once Redis answers again', async () => {
    const w = await tierWorld();
    try {
      const c = w.tier({ staleIfError: 60_000 });
      const plain = w.tier();
      await c.set('k', 'v1');
      await c.scope({ tenant: 't' }).set('k', 'scoped');
      await plain.set('p', 'v1');
      assert.equal(await plain.get('p'), 'v1');
      await sleep(150); // past l1Ttl
      await w.down();
      assert.equal(await c.get('k'), 'v1', 'the stale copy, Redis unreachable');
      assert.equal(c.stats().breaker.state, 'open');
      assert.equal(await c.get('k'), 'v1', 'the stale copy, the breaker open');
      assert.equal(await c.has('k'), true);
      assert.deepEqual(await c.getMany(['k', 'never']), ['v1', undefined], 'getMany too');
      assert.equal(await c.scope({ tenant: 't' }).get('k'), 'scoped', "a scope view's own stale copy");
      assert.equal(c.stats().l2.staleServed, 5);
      assert.equal(await plain.get('p'), undefined, 'without the option: a miss (the behaviour before)');
      assert.equal(await c.get('never'), undefined, 'nothing stale to serve: a miss');

      await w.up();
      await untilHealed(c);
      execFileSync('redis-cli', ['-p', String(w.r.port), 'DEL', 'sie:v:r|k']); // the value is gone in Redis
      assert.equal(await c.get('k'), undefined, 'Redis answers: its answer, not the stale copy');
      assert.equal(c.stats().l2.staleServed, 5);
    } finally {
      await w.stop();
    }
  });

  test('a delete drops the stale copy; staleWhileUnreachable: false refuses it; bad values are INVALID_OPTION', async () => {
    const w = await tierWorld();
    try {
      const c = w.tier({ staleIfError: 60_000 });
      const strict = w.tier({ staleIfError: 60_000, staleWhileUnreachable: false });
      await c.set('gone', 'g');
      await c.delete('gone');
      await strict.set('s', 'x');
      await sleep(150);
      await w.down();
      assert.equal(await c.get('gone'), undefined, 'a deleted value is never served stale');
      assert.equal(await strict.get('s'), undefined, 'staleWhileUnreachable: false refuses the stale copy');
      assert.equal(strict.stats().l2.staleServed, 0);
      assert.throws(() => w.tier({ staleIfError: -1 }), { code: 'INVALID_OPTION' });
      assert.throws(() => w.tier({ staleIfError: 'long' }), { code: 'INVALID_OPTION' });
    } finally {
      await w.stop();
    }
  });

  test('memoize over the tier during an outage: with staleIfError, the stale result is served, not recomputed', async () => {
    const w = await tierWorld();
    try {
      const run = async (opts) => {
        const c = w.tier(opts);
        let calls = 0;
        const f = memoize(async (id) => `r${id}#${++calls}`, { cache: c, ttl: 60_000, prefix: JSON.stringify(opts) });
        assert.equal(await f('1'), 'r1#1');
        await sleep(150); // past l1Ttl
        return { f, calls: () => calls };
      };
      const withIt = await run({ staleIfError: 60_000 });
      const without = await run({});
      await w.down();
      assert.equal(await withIt.f('1'), 'r1#1');
      assert.equal(await without.f('1'), 'r1#2', 'without the option: recomputed (the behaviour before)');
      await sleep(150); // past l1Ttl again
      assert.equal(await withIt.f('1'), 'r1#1');
      assert.equal(withIt.calls(), 1, 'served stale, not recomputed');
      assert.equal(await without.f('1'), 'r1#3', 'without the option: recomputed once l1Ttl has passed, every time');
      assert.equal(withIt.f.cache.stats().l2.staleServed, 2);
      await w.up();
    } finally {
      await w.stop();
    }
  });

  test('every outage and every recovery is logged once each', async () => {
    const w = await tierWorld();
    try {
      const c = w.tier();
      const opened = () => w.logs.filter((m) => /circuit breaker is open/.test(m)).length;
      const closed = () => w.logs.filter((m) => /answers again/.test(m)).length;
      await c.set('k', 'v');
      for (let outage = 1; outage <= 2; outage++) {
        await w.down();
        for (let i = 0; i < 5; i++) {
          await c.get(`miss${i}`);
          await sleep(60); // past the cooldown now and then: failed probes reopen it
        }
        assert.equal(opened(), outage, `outage ${outage} logged once: ${JSON.stringify(w.logs)}`);
        assert.equal(closed(), outage - 1);
        await w.up();
        await untilHealed(c);
        await c.get('after');
        assert.equal(closed(), outage, `recovery ${outage} logged once: ${JSON.stringify(w.logs)}`);
        assert.equal(opened(), outage);
      }
      assert.match(w.logs[0], /L2_/, 'the open message names the error');
    } finally {
      await w.stop();
    }
  });
});
