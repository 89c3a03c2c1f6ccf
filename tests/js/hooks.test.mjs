// Event hooks, so metrics need not poll stats(): MemoryCache's onEvict,
// TieredCache's onL2Error, onBreaker and onRejected, against a real
// redis-server and the real bridge (Redis stopped and restarted for the
// breaker; values written straight to Redis for the rejections).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCache, TieredCache, RedisRest, Signer, EdgeCacheError, generateSecureKey } from 'edgecache';
import { redisAndBridge, startRedis, startRedisOn, startBridge } from './servers.mjs';

const TOKEN = 'hooks-token-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();

describe('MemoryCache onEvict', () => {
  test('each entry evicted to make room, with its key and value, and nothing else', () => {
    const evicted = [];
    const c = new MemoryCache({ maxEntries: 2, onEvict: (k, v) => evicted.push([k, v]) });
    c.set('a', 1).set('b', 2);
    c.set('a', 10); // an overwrite is no eviction
    c.delete('b'); // nor a deletion
    c.set('b', 2).set('c', 3); // evicts 'a' (least recent)
    assert.deepEqual(evicted, [['a', 10]]);
    c.setMany([['d', 4], ['e', 5]]);
    assert.deepEqual(evicted, [['a', 10], ['b', 2], ['c', 3]]);
    assert.equal(c.stats().evictions, evicted.length, 'as stats().evictions counts');
  });

  test('bytes: one write evicting several entries reports each; scopes give their own keys; expirations are not evictions', () => {
    let t = 1_000;
    const evicted = [];
    const c = new MemoryCache({ maxBytes: 1000, now: () => t, sizeOf: (v) => v.length, onEvict: (k, v) => evicted.push([k, v.length]) });
    const s = c.scope({ tenant: 'acme' });
    s.set('x', 'a'.repeat(300));
    c.set('y', 'b'.repeat(300));
    c.set('z', 'c'.repeat(600)); // needs room that only both others make
    assert.deepEqual(evicted, [['x', 300], ['y', 300]]);
    // An expired entry reclaimed by a write is an expiration.
    evicted.length = 0;
    const e = new MemoryCache({ maxEntries: 1, now: () => t, onEvict: (k) => evicted.push(k) });
    e.set('old', 1, { ttl: 10 });
    t += 100;
    e.set('new', 2);
    assert.deepEqual(evicted, []);
    assert.equal(e.stats().evictions, 0);
  });

  test('the hook sees the finished write; what it throws does not undo it', async () => {
    const seen = [];
    const c = new MemoryCache({
      maxEntries: 1,
      onEvict: (k) => {
        seen.push([k, c.get('b')]);
        throw new Error('hook failed');
      },
    });
    // The runner's own listener would fail the test on an uncaught exception: this one takes it instead.
    const runner = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    const uncaught = new Promise((resolve) => process.once('uncaughtException', resolve));
    try {
      c.set('a', 1);
      c.set('b', 2);
      assert.deepEqual(seen, [['a', 2]]);
      assert.equal(c.get('b'), 2);
      assert.equal((await uncaught).message, 'hook failed', 'reported apart');
    } finally {
      for (const l of runner) process.on('uncaughtException', l);
    }
    assert.throws(() => new MemoryCache({ onEvict: 1 }), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION' && /onEvict must be a function/.test(e.message));
  });
});

describe('TieredCache hooks', () => {
  const servers = redisAndBridge({ token: TOKEN });

  test('onRejected: a value that is not an envelope, one signed with another key, a counter that is not an integer', async () => {
    const rejected = [];
    const c = new TieredCache({
      redis: new RedisRest({ url: servers.bridge.url, token: TOKEN }),
      signer: { keys: { k1: SECRET } },
      prefix: 'hooks',
      log: () => {},
      onRejected: (key, reason) => rejected.push([key, reason]),
    });
    const other = new TieredCache({ redis: new RedisRest({ url: servers.bridge.url, token: TOKEN }), signer: { keys: { k1: generateSecureKey() } }, prefix: 'hooks', log: () => {} });
    const redis = new RedisRest({ url: servers.bridge.url, token: TOKEN });
    await redis.set('hooks:v:r|plain', 'not an envelope');
    await other.set('forged', 'x');
    await redis.set('hooks:n:r|count', 'twelve');
    assert.equal(await c.get('plain'), undefined);
    assert.equal(await c.get('forged'), undefined);
    assert.equal(await c.counter('count'), undefined);
    assert.equal(c.stats().l2.rejected, 3);
    assert.deepEqual(rejected.map(([k]) => k), ['plain', 'forged', 'count']);
    assert.equal(rejected[0][1], 'MALFORMED_ENVELOPE');
    assert.equal(rejected[1][1], 'BAD_SIGNATURE');
    assert.equal(rejected[2][1], 'NOT_AN_INTEGER');
    await c.close?.();
    await other.close?.();
  });

  test('onL2Error and onBreaker through an outage: closed -> open -> half-open -> closed', async () => {
    const r2 = await startRedis();
    const b2 = await startBridge({ redisUrl: r2.url, token: TOKEN });
    const errors = [];
    const moves = [];
    try {
      const c = new TieredCache({
        redis: new RedisRest({ url: b2.url, token: TOKEN, timeout: 1000, retries: 0 }),
        signer: new Signer({ keys: { k1: SECRET } }),
        prefix: 'outage',
        l1Ttl: 0,
        maxStaleness: false,
        breaker: { threshold: 2, cooldown: 300 },
        log: () => {},
        onL2Error: (e) => errors.push(e),
        onBreaker: (state, previous) => moves.push(`${previous}->${state}`),
      });
      await c.set('k', 'v');
      assert.deepEqual([errors, moves], [[], []]);
      await r2.stop();
      await c.get('a');
      await c.get('b'); // the second failure opens the breaker
      await c.get('c'); // refused by the open breaker
      assert.deepEqual(moves, ['closed->open']);
      assert.ok(errors.length >= 3 && errors.every((e) => e instanceof EdgeCacheError && e.code.startsWith('L2_')), errors.map((e) => e.code).join());
      assert.equal(errors.at(-1).code, 'L2_UNAVAILABLE');
      const counted = Object.values(c.stats().l2.errors).reduce((a, b) => a + b, 0);
      assert.equal(errors.length, counted, 'one call per error stats() counts');

      const r3 = await startRedisOn(r2.port);
      try {
        await new Promise((r) => setTimeout(r, 400)); // past the cooldown
        await c.set('after', 'a'); // the probe succeeds
        assert.deepEqual(moves, ['closed->open', 'open->half-open', 'half-open->closed']);
        assert.equal(c.stats().breaker.state, 'closed');
      } finally {
        await r3.stop();
      }
    } finally {
      await b2.stop();
      await r2.stop();
    }
  });

  test('hooks must be functions', () => {
    for (const h of ['onL2Error', 'onBreaker', 'onRejected']) {
      assert.throws(
        () => new TieredCache({ redis: { url: 'http://127.0.0.1:1', token: 't' }, signer: { keys: { k1: SECRET } }, prefix: 'p', [h]: 'no' }),
        (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION' && e.message.includes(`\`${h}\` must be a function`),
      );
    }
  });
});
