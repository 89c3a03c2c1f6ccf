// The cross-request rule, in Node dressed as Cloudflare Workers
// (navigator.userAgent === 'Cloudflare-Workers', set before the package
// loads; this file runs in its own process): no caller joins another's
// in-flight promise, yet writes and invalidations that begin meanwhile
// still keep older results out of the cache. The same rule in a real
// workerd is tested in worker.test.mjs; Node's single-flight in
// memoize.test.mjs and tiered.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startRedis, startBridge } from './servers.mjs';

Object.defineProperty(globalThis, 'navigator', { value: { userAgent: 'Cloudflare-Workers' }, configurable: true });
const { memoize, MemoryCache, TieredCache, RedisRest, generateSecureKey } = await import('edgecache');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TOKEN = 'test-token-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
let redis;
let bridge;

before(async () => {
  redis = await startRedis();
  bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
});
after(async () => {
  await bridge?.stop();
  await redis?.stop();
});

test('memoize: concurrent misses each call the function; the result is shared through the cache', async () => {
  let calls = 0;
  const f = memoize(async (x) => {
    calls++;
    await sleep(20);
    return { x };
  }, { cache: new MemoryCache() });
  const [a, b] = await Promise.all([f('k'), f('k')]);
  assert.deepEqual(a, { x: 'k' });
  assert.deepEqual(b, { x: 'k' });
  assert.equal(calls, 2, 'no call waited on the other');
  assert.deepEqual(await f('k'), { x: 'k' });
  assert.equal(calls, 2, 'then a hit');
});

test('memoize: an invalidation during concurrent misses keeps every result out of the cache', async () => {
  let calls = 0;
  const cache = new MemoryCache();
  const f = memoize(async () => (++calls, await sleep(20), calls), { cache });
  const both = Promise.all([f('k'), f('k')]);
  f.invalidate('k');
  await both;
  assert.equal(cache.stats().entries, 0);
  await f('k');
  assert.equal(calls, 3);
});

test('TieredCache: concurrent misses each ask Redis; a write that begins meanwhile keeps their older value out of L1', async () => {
  const requests = [];
  const slowGets = async (input, init) => {
    const body = String(init.body);
    requests.push(body);
    const res = await fetch(input, init);
    // The answer to a read arrives late: after the write below has landed
    // (the coherence log's own reads, keys `<prefix>:c:{…}`, are not slowed).
    if (body.includes('"GET"') && !body.includes(':c:{')) await sleep(100);
    return res;
  };
  const make = (f) =>
    new TieredCache({
      redis: new RedisRest({ url: bridge.url, token: TOKEN, autoPipeline: false, ...(f ? { fetch: f } : {}) }),
      signer: { keys: { k1: SECRET } },
      prefix: 'wm',
      log: () => {},
    });
  await make().set('k', 'old');
  const a = make(slowGets);
  await a.get('warm'); // the cache's first log read, which goes alone
  requests.length = 0;
  const reads = Promise.all([a.get('k'), a.get('k')]);
  await sleep(10);
  await a.set('k', 'new');
  assert.deepEqual(await reads, ['old', 'old'], 'the reads began before the write');
  assert.equal(requests.filter((b) => b.includes('"GET"')).length, 2, 'one GET per caller: none joined the other');
  assert.equal(a.l1.get('k'), 'new', 'the older answers were not promoted over the write');
  assert.equal(await a.get('k'), 'new');
});

test('getOrSet (MemoryCache and TieredCache): concurrent misses each call the loader; the result is shared through the cache', async () => {
  const tier = new TieredCache({ redis: new RedisRest({ url: bridge.url, token: TOKEN }), signer: { keys: { k1: SECRET } }, prefix: 'wm-gos', log: () => {} });
  for (const cache of [new MemoryCache(), tier]) {
    let calls = 0;
    const load = async () => {
      calls++;
      await sleep(20);
      return 'v';
    };
    assert.deepEqual(await Promise.all([cache.getOrSet('k', load), cache.getOrSet('k', load)]), ['v', 'v']);
    assert.equal(calls, 2, 'no call waited on the other');
    await sleep(20); // the write lands
    assert.equal(await cache.getOrSet('k', load), 'v');
    assert.equal(calls, 2, 'then a hit');
  }
});
