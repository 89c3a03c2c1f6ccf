// TieredCache against a real redis-server and the real bridge on loopback
// (started here, stopped at the end): reads and writes through both tiers,
// scopes and patterns, counters, tampering through redis-cli, Redis killed
// and restarted under a serving cache, and two Node processes sharing L2.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TieredCache, RedisRest, Signer, MemoryCache, EdgeCacheError, generateSecureKey, memoize, cachePage, cached } from 'edgecache';
import { startRedis, startRedisOn, startBridge, countingFetch } from './servers.mjs';

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

/** redis-cli against the test Redis: the attacker with write access. */
function cli(...args) {
  return execFileSync('redis-cli', ['-p', String(redis.port), '--no-raw', ...args], { encoding: 'utf8' }).trim();
}
function cliRaw(...args) {
  return execFileSync('redis-cli', ['-p', String(redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');
}


/** A new "isolate": its own L1 and client, the same Redis and secret. */
function isolate(opts = {}) {
  const { fetch: f, redisOptions, ...rest } = opts;
  return new TieredCache({
    redis: new RedisRest({ url: bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}), ...redisOptions }),
    signer: { keys: { k1: SECRET } }, // options: the signer then shares the cache's clock
    prefix: 'test',
    log: () => {},
    ...rest,
  });
}

/** A manual clock. */
function clock(t = Date.now()) {
  const now = () => t;
  now.advance = (ms) => {
    t += ms;
  };
  return now;
}

describe('TieredCache: reads and writes through both tiers', () => {
  test('a value written in one isolate is read from Redis by another, then from its L1', async () => {
    const a = isolate();
    const f = countingFetch();
    // The tier's own requests: coherence adds its log reads (counted in
    // tests/js/coherence.test.mjs).
    const b = isolate({ fetch: f, maxStaleness: false });
    await a.set('user:1', { name: 'Ada', langs: ['en', 'fr'] });
    assert.deepEqual(await b.get('user:1'), { name: 'Ada', langs: ['en', 'fr'] });
    assert.deepEqual(await b.get('user:1'), { name: 'Ada', langs: ['en', 'fr'] });
    assert.equal(f.requests, 1, 'the second read is an L1 hit');
    const st = b.stats();
    assert.equal(st.l2.hits, 1);
    assert.equal(st.l1.hits, 1);
    assert.equal(st.breaker.state, 'closed');
    assert.match(cli('GET', 'test:v:r|user:1'), /^"Ag/, 'Redis holds an envelope (version 2)');
  });

  test('misses are misses; concurrent misses of one key share one request', async () => {
    const f = countingFetch();
    const b = isolate({ fetch: f });
    assert.equal(await b.get('nope'), undefined);
    f.commands.length = 0;
    const got = await Promise.all(Array.from({ length: 10 }, () => b.get('shared-miss')));
    assert.deepEqual(got, Array(10).fill(undefined));
    assert.deepEqual(f.commands, [['GET', 'test:v:r|shared-miss']]);
    assert.equal(b.stats().l2.misses, 2);
  });

  test('set writes PX and the envelope expiry; ttl() reads it back', async () => {
    const a = isolate();
    await a.set('short', 'x', { ttl: 60_000 });
    const pttl = Number(cliRaw('PTTL', 'test:v:r|short'));
    assert.ok(pttl > 55_000 && pttl <= 60_000, `PTTL ${pttl}`);
    const t = await isolate().ttl('short');
    assert.ok(t > 55_000 && t <= 60_000, `ttl ${t}`);
    await a.set('forever', 1);
    assert.equal(cli('PTTL', 'test:v:r|forever'), '(integer) -1');
    assert.equal(await isolate().ttl('forever'), Infinity);
    assert.equal(await isolate().ttl('absent'), undefined);
  });

  test('an expired envelope is a miss even if Redis still holds it', async () => {
    const now = clock();
    const a = isolate({ now });
    await a.set('exp', 'v', { ttl: 1000 });
    cli('PERSIST', 'test:v:r|exp'); // Redis forgets the expiry; the envelope does not
    const b = isolate({ now });
    now.advance(1001);
    assert.equal(await b.get('exp'), undefined);
  });

  test('l1Ttl bounds how stale another isolate\'s write looks', async () => {
    const now = clock();
    const a = isolate({ now, l1Ttl: 5_000 });
    const b = isolate({ now, l1Ttl: 5_000 });
    await a.set('cfg', 1);
    assert.equal(await b.get('cfg'), 1);
    await a.set('cfg', 2);
    assert.equal(await b.get('cfg'), 1, 'within l1Ttl: L1');
    now.advance(5_000);
    assert.equal(await b.get('cfg'), 2, 'after l1Ttl: Redis again');
  });

  test('L1 never keeps a value longer than it lives', async () => {
    const now = clock();
    const a = isolate({ now, l1Ttl: 60_000 });
    await a.set('brief', 'v', { ttl: 2_000 });
    const b = isolate({ now, l1Ttl: 60_000 });
    assert.equal(await b.get('brief'), 'v');
    assert.ok(b.l1.ttl('brief') <= 2_000);
  });

  test('getMany: L1 first, one MGET for the rest; setMany: one request', async () => {
    const f = countingFetch();
    const a = isolate({ fetch: f, maxStaleness: false });
    await a.setMany([['m1', 1], ['m2', 2, { ttl: 60_000 }], ['m3', { three: 3 }]]);
    assert.equal(f.requests, 1);
    const g = countingFetch();
    const b = isolate({ fetch: g, maxStaleness: false });
    assert.equal(await b.get('m1'), 1);
    g.commands.length = 0;
    assert.deepEqual(await b.getMany(['m1', 'm2', 'missing', 'm3']), [1, 2, undefined, { three: 3 }]);
    assert.deepEqual(g.commands, [['MGET', 'test:v:r|m2', 'test:v:r|missing', 'test:v:r|m3']]);
  });

  test('setMany validates everything before writing anything', async () => {
    const a = isolate();
    await assert.rejects(a.setMany([['ok1', 1], ['bad', () => 1]]), { code: 'UNSERIALIZABLE_VALUE' });
    assert.equal(cli('EXISTS', 'test:v:r|ok1'), '(integer) 0');
  });

  test('delete and deleteMany remove from both tiers', async () => {
    const a = isolate();
    const b = isolate();
    await a.set('d1', 1);
    await a.set('d2', 2);
    await a.set('d3', 3);
    assert.equal(await b.get('d1'), 1);
    assert.equal(await b.delete('d1'), true);
    assert.equal(await b.get('d1'), undefined);
    assert.equal(await isolate().get('d1'), undefined);
    assert.equal(await b.deleteMany(['d2', 'd3', 'd4']), 2);
    assert.equal(cli('EXISTS', 'test:v:r|d2', 'test:v:r|d3'), '(integer) 0');
    assert.equal(await b.delete('d1'), false);
  });

  test('values JSON cannot carry are refused at set; what JSON changes is the same in every tier', async () => {
    const a = isolate();
    for (const v of [() => 1, Symbol('s'), 10n, undefined, { f() {} }, { n: 1n }]) {
      await assert.rejects(a.set('bad', v), { code: 'UNSERIALIZABLE_VALUE' }, String(typeof v));
    }
    const cyclic = {};
    cyclic.self = cyclic;
    await assert.rejects(a.set('bad', cyclic), { code: 'UNSERIALIZABLE_VALUE' });
    const d = new Date(0);
    await a.set('date', { d });
    assert.deepEqual(await a.get('date'), { d: d.toISOString() }, 'L1 holds what Redis holds');
    assert.deepEqual(await isolate().get('date'), { d: d.toISOString() });
  });

  test('bytes round-trip byte for byte', async () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await isolate().set('bin', bytes);
    const got = await isolate().get('bin');
    assert.ok(got instanceof Uint8Array);
    assert.deepEqual([...got], [...bytes]);
  });

  test('a custom serializer', async () => {
    const serializer = {
      serialize: (v) => JSON.stringify({ t: v instanceof Date ? 'date' : 'json', v: v instanceof Date ? v.getTime() : v }),
      deserialize: (p) => {
        const o = JSON.parse(p);
        return o.t === 'date' ? new Date(o.v) : o.v;
      },
    };
    await isolate({ serializer }).set('when', new Date(5));
    const got = await isolate({ serializer }).get('when');
    assert.ok(got instanceof Date && got.getTime() === 5);
  });

  test('an oversized value is refused before anything is written', async () => {
    const a = isolate({ signer: new Signer({ keys: { k1: SECRET }, maxPayloadBytes: 1024 }) });
    await assert.rejects(a.set('big', 'x'.repeat(2000)), { code: 'ENVELOPE_TOO_LARGE' });
    assert.equal(cli('EXISTS', 'test:v:r|big'), '(integer) 0');
  });

  test('options are checked', () => {
    assert.throws(() => isolate({ prefix: 'a:b' }), { code: 'INVALID_OPTION' });
    assert.throws(() => isolate({ prefix: '' }), { code: 'INVALID_OPTION' });
    assert.throws(() => isolate({ l1ttl: 5 }), { code: 'INVALID_OPTION' });
    assert.throws(() => isolate({ breaker: { threshold: 0 } }), { code: 'INVALID_OPTION' });
    assert.throws(() => isolate({ l1Ttl: -1 }), { code: 'INVALID_TTL' });
    assert.throws(() => new TieredCache({ redis: { url: bridge.url, token: TOKEN }, prefix: 'x' }), /signed/);
    return assert.rejects(isolate().set('k', 1, { tll: 5 }), { code: 'INVALID_OPTION' });
  });
});

describe('TieredCache: counters', () => {
  test('incr/decr are INCRBY, shared by every isolate; counter() reads them; get never does', async () => {
    const a = isolate();
    const b = isolate();
    assert.equal(await a.incr('hits'), 1);
    assert.equal(await b.incr('hits', 5), 6);
    assert.equal(await a.decr('hits', 2), 4);
    assert.equal(await isolate().counter('hits'), 4);
    assert.equal(cli('GET', 'test:n:r|hits'), '"4"');
    assert.equal(await a.get('hits'), undefined, 'counters are not values');
    await assert.rejects(a.incr('hits', 1.5), { code: 'NOT_AN_INTEGER' });
  });

  test('a counter holding garbage is an error on incr and unserved by counter()', async () => {
    cli('SET', 'test:n:r|junk', 'abc');
    await assert.rejects(isolate().incr('junk'), { code: 'NOT_AN_INTEGER' });
    assert.equal(await isolate().counter('junk'), undefined);
    cli('SET', 'test:n:r|huge', '9223372036854775807');
    await assert.rejects(isolate().incr('huge'), { code: 'OVERFLOW' });
  });
});

describe('TieredCache: scopes and patterns', () => {
  test('scopes never see each other or the root, in L1 or in Redis', async () => {
    const root = isolate();
    const acme = root.scope({ tenant: 'acme' });
    const acme7 = acme.scope({ user: 7 });
    await root.set('k', 'root');
    await acme.set('k', 'acme');
    await acme7.set('k', 'acme/7');
    const other = isolate();
    assert.equal(await other.get('k'), 'root');
    assert.equal(await other.scope({ tenant: 'acme' }).get('k'), 'acme');
    assert.equal(await other.scope({ tenant: 'acme', user: '7' }).get('k'), 'acme/7');
    assert.equal(await other.scope({ user: 7 }).get('k'), undefined);
    assert.equal(cli('EXISTS', 'test:v:t4:acme|k', 'test:v:b4:acme1:7|k'), '(integer) 2');
    assert.throws(() => acme.scope({ tenant: 'evil' }), { code: 'INVALID_SCOPE' });
  });

  test('keys and deletePattern use SCAN and stay in their view; glob characters in names are escaped', async () => {
    const c = isolate({ prefix: 'pat' });
    const star = c.scope({ tenant: 'a*' });
    const ab = c.scope({ tenant: 'ab' });
    await star.set('user:1', 1);
    await star.incr('user:2');
    await ab.set('user:1', 1);
    await c.set('user:1', 1);
    assert.deepEqual((await star.keys('user:*')).sort(), ['user:1', 'user:2']);
    assert.deepEqual(await ab.keys(), ['user:1']);
    assert.deepEqual(await c.keys('user:*'), ['user:1'], 'the root sees no scope');
    assert.equal(await star.deletePattern('*'), 2);
    assert.deepEqual(await ab.keys(), ['user:1'], 'tenant ab untouched by tenant a*');
    assert.equal(await isolate({ prefix: 'pat' }).scope({ tenant: 'ab' }).get('user:1'), 1);
    assert.deepEqual(await star.keys(), []);
  });

  test('clear(): a scope clears itself; the root clears its prefix and nothing else', async () => {
    const c = isolate({ prefix: 'clr' });
    const other = isolate({ prefix: 'clr2' });
    await c.set('a', 1);
    await c.scope({ tenant: 't' }).set('a', 1);
    await c.scope({ tenant: 'u' }).set('a', 1);
    await other.set('a', 1);
    cli('SET', 'unrelated', 'x');
    await c.scope({ tenant: 't' }).clear();
    assert.equal(await isolate({ prefix: 'clr' }).scope({ tenant: 't' }).get('a'), undefined);
    assert.equal(await isolate({ prefix: 'clr' }).scope({ tenant: 'u' }).get('a'), 1);
    await c.clear();
    // Only the invalidation log and its epoch stay: they are not cache
    // keys (docs/REDIS.md), and the clear is in the log.
    assert.deepEqual(cliRaw('KEYS', 'clr:*').split('\n').sort(), ['clr:c:{clr:0}:epoch', 'clr:c:{clr:0}:log']);
    assert.match(cliRaw('XREVRANGE', 'clr:c:{clr:0}:log', '+', '-', 'COUNT', '1'), /\nop\nclear\n0\nclr:\[vn\]:\[rtub\]\*$/);
    assert.equal(await other.get('a'), 1);
    assert.equal(cli('GET', 'unrelated'), '"x"');
  });

  test('a deletePattern racing a read is not undone by the read', async () => {
    const a = isolate();
    await a.set('race', 'old');
    const b = isolate();
    const read = b.get('race');
    await b.deletePattern('race');
    await read;
    assert.equal(b.l1.get('race'), undefined, 'the stale read was not promoted');
  });
});

describe('TieredCache: what an attacker with write access to Redis can do', () => {
  async function seeded() {
    const a = isolate({ prefix: 'atk' });
    await a.set('victim', { role: 'user' });
    await a.scope({ tenant: 'acme' }).set('victim', { role: 'admin' });
    await a.set('other', { role: 'admin' });
    return a;
  }
  const fresh = () => isolate({ prefix: 'atk' });

  test('a flipped character is never served, counted, and not deleted', async () => {
    await seeded();
    const env = cliRaw('GET', 'atk:v:r|victim');
    const i = env.length - 10;
    const flipped = env.slice(0, i) + (env[i] === 'A' ? 'B' : 'A') + env.slice(i + 1);
    cli('SET', 'atk:v:r|victim', flipped);
    const c = fresh();
    assert.equal(await c.get('victim'), undefined);
    assert.equal(c.stats().l2.rejected, 1);
    assert.equal(cliRaw('GET', 'atk:v:r|victim'), flipped, 'left in place');
  });

  test('an envelope copied to another key is never served', async () => {
    await seeded();
    cli('SET', 'atk:v:r|victim', cliRaw('GET', 'atk:v:r|other'));
    assert.equal(await fresh().get('victim'), undefined);
  });

  test("another tenant's envelope is never served", async () => {
    await seeded();
    cli('SET', 'atk:v:r|victim', cliRaw('GET', 'atk:v:t4:acme|victim'));
    assert.equal(await fresh().get('victim'), undefined);
    const acme = fresh().scope({ tenant: 'acme' });
    cli('SET', 'atk:v:t4:acme|victim', cliRaw('GET', 'atk:v:r|other'));
    assert.equal(await acme.get('victim'), undefined);
  });

  test('an integer in place of a signed value is rejected, not returned as a number', async () => {
    await seeded();
    cli('SET', 'atk:v:r|victim', '42');
    const c = fresh();
    assert.equal(await c.get('victim'), undefined);
    assert.deepEqual(await c.getMany(['victim']), [undefined]);
    assert.equal(c.stats().l2.rejected, 2);
  });

  test('a value of another Redis type is a miss, not an error', async () => {
    cli('DEL', 'atk:v:r|victim');
    cli('RPUSH', 'atk:v:r|victim', 'x');
    assert.equal(await fresh().get('victim'), undefined);
  });

  test('an envelope signed with a key this isolate does not hold is a miss, and survives for those who hold it', async () => {
    const k2 = generateSecureKey();
    const newer = isolate({ prefix: 'atk', signer: new Signer({ keys: { k1: SECRET, k2 }, current: 'k2' }) });
    await newer.set('rotated', 'v2');
    assert.equal(await fresh().get('rotated'), undefined);
    assert.equal(await isolate({ prefix: 'atk', signer: new Signer({ keys: { k1: SECRET, k2 }, current: 'k2' }) }).get('rotated'), 'v2');
  });
});

describe('TieredCache: when Redis fails', () => {
  /** A cache over its own bridge `b2` (which a test may kill), L1 copies kept for good. */
  const outageTier = (b2, prefix, cooldown) =>
    new TieredCache({
      redis: new RedisRest({ url: b2.url, token: TOKEN, timeout: 1000, retries: 0 }),
      signer: new Signer({ keys: { k1: SECRET } }),
      prefix,
      l1Ttl: 0,
      breaker: { threshold: 2, cooldown },
      log: () => {},
    });

  test('Redis killed: L1 keeps serving, nothing throws, the breaker opens; after a restart it closes and writes reach Redis', async () => {
    const r2 = await startRedis();
    const b2 = await startBridge({ redisUrl: r2.url, token: TOKEN });
    try {
      const c = outageTier(b2, 'kill', 1500);
      await c.set('kept', 'v');
      await r2.stop();
      assert.equal(await c.get('kept'), 'v', 'L1 serves');
      assert.equal(await c.get('lost'), undefined, 'a miss stays a miss');
      await c.set('local', 'l');
      assert.equal(await c.get('local'), 'l', 'the write landed in L1');
      assert.equal(await c.get('lost2'), undefined);
      const st = c.stats();
      assert.equal(st.breaker.state, 'open');
      assert.ok(Object.values(st.l2.errors).reduce((a, b) => a + b, 0) >= 2, JSON.stringify(st.l2.errors));
      assert.ok(st.l2.errors.L2_UNAVAILABLE >= 1, 'calls fail fast while open');
      await assert.rejects(c.delete('kept'), (e) => e instanceof EdgeCacheError && e.code.startsWith('L2_'), 'deletes fail closed');
      await assert.rejects(c.incr('n'), (e) => e.code.startsWith('L2_'), 'counters are never counted locally');

      const r3 = await startRedisOn(r2.port); // a restart on the same port
      try {
        const t0 = Date.now();
        let healed = false;
        while (Date.now() - t0 < 5_000) {
          await new Promise((r) => setTimeout(r, 100));
          try {
            await c.set('after', 'a');
          } catch {}
          if (c.stats().breaker.state === 'closed') {
            healed = true;
            break;
          }
        }
        assert.ok(healed, 'the breaker closed once Redis was back');
        await c.set('after', 'a');
        assert.match(execFileSync('redis-cli', ['-p', String(r2.port), 'GET', 'kill:v:r|after'], { encoding: 'utf8' }), /^Ag/);
      } finally {
        await r3.stop();
      }
    } finally {
      await b2.stop();
      await r2.stop();
    }
  });

  test('failOpen: false throws the L2 errors', async () => {
    const c = new TieredCache({
      redis: new RedisRest({ url: 'http://127.0.0.1:1', token: 'x', retries: 0 }),
      signer: new Signer({ keys: { k1: SECRET } }),
      prefix: 'closed',
      failOpen: false,
      log: () => {},
    });
    await assert.rejects(c.get('k'), { code: 'L2_HTTP' });
    await assert.rejects(c.set('k', 1), { code: 'L2_HTTP' });
    assert.equal(c.l1.get('k'), undefined, 'a write that threw left L1 unchanged');
  });

  test('counter() during an outage: served from L1 when L1 holds it, else the L2 error (never undefined)', async () => {
    const r2 = await startRedis();
    const b2 = await startBridge({ redisUrl: r2.url, token: TOKEN });
    try {
      const c = outageTier(b2, 'outage', 60_000);
      assert.equal(await c.incr('held', 3), 3);
      b2.proc.kill('SIGKILL'); // the bridge is gone: connection refused
      await b2.stop();
      assert.equal(await c.counter('held'), 3, 'L1 holds the count');
      await assert.rejects(c.counter('unknown'), (e) => e instanceof EdgeCacheError && e.code === 'L2_HTTP', 'not in L1: the L2 error');
      await assert.rejects(c.counter('unknown'), { code: 'L2_HTTP' });
      assert.equal(c.stats().breaker.state, 'open');
      await assert.rejects(c.counter('unknown'), { code: 'L2_UNAVAILABLE' }, 'the breaker open: thrown as well');
      assert.equal(await c.counter('held'), 3);
    } finally {
      await b2.stop();
      await r2.stop();
    }
  });

  test('a wrong token is logged at its first failure, once, naming the fix', async () => {
    const logs = [];
    const c = new TieredCache({
      redis: new RedisRest({ url: bridge.url, token: 'wrong-token-0123456789' }),
      signer: new Signer({ keys: { k1: SECRET } }),
      prefix: 'auth2',
      log: (m) => logs.push(m),
    });
    assert.equal(await c.get('k'), undefined);
    assert.equal(logs.length, 1, logs.join('\n'));
    assert.match(logs[0], /refused the token \(HTTP 401/);
    assert.match(logs[0], /EDGECACHE_REDIS_TOKEN, or the `token` option/);
    await c.set('k', 1);
    await c.get('j');
    assert.equal(logs.length, 1, 'once');
  });

  test('a wrong token is L2_AUTH, counted, and the cache serves from L1', async () => {
    const c = new TieredCache({
      redis: new RedisRest({ url: bridge.url, token: 'wrong' }),
      signer: new Signer({ keys: { k1: SECRET } }),
      prefix: 'auth',
      log: () => {},
    });
    await c.set('k', 1);
    assert.equal(await c.get('k'), 1);
    // The first log read (alone), the SET (with a log read), then the get's log read: the
    // lease is expired, and L1 still serves (staleWhileUnreachable follows
    // failOpen), counted.
    assert.equal(c.stats().l2.errors.L2_AUTH, 3);
    assert.equal(c.stats().coherence.failures, 3, 'the SET carried one too');
    assert.equal(c.stats().coherence.staleServed, 1);
  });
});

describe('RedisRest against the bridge: errors that say what is wrong', () => {
  test('a wrong token (401) names the token; a denied command (NOPERM) does not', async () => {
    const bad = new RedisRest({ url: bridge.url, token: 'wrong-token-0123456789' });
    await assert.rejects(bad.get('k'), (e) => e.code === 'L2_AUTH' && /refused the token/.test(e.message) && /EDGECACHE_REDIS_TOKEN/.test(e.message));
    const good = new RedisRest({ url: bridge.url, token: TOKEN });
    await assert.rejects(good.command(['FLUSHALL']), (e) => {
      assert.equal(e.code, 'L2_AUTH');
      // The bridge answers a denied command in its own entry of /pipeline
      // (as Upstash does), no longer the whole request with 403.
      assert.match(e.message, /refused the command: NOPERM 'FLUSHALL' is on the bridge's deny list/);
      assert.doesNotMatch(e.message, /token/i);
      return true;
    });
  });

  test('get of a value that is not UTF-8 text says so and names command(), which returns the bytes', async () => {
    execFileSync('redis-cli', ['-p', String(redis.port), '-x', 'SET', 'raw:bin'], { input: Buffer.from([0xff, 0xfe, 0x00, 0x41]) });
    const r = new RedisRest({ url: bridge.url, token: TOKEN });
    await assert.rejects(r.get('raw:bin'), (e) => e.code === 'L2_PROTOCOL' && /not UTF-8 text/.test(e.message) && /command\(\['GET'/.test(e.message));
    await assert.rejects(r.mget(['raw:bin']), (e) => e.code === 'L2_PROTOCOL' && /not UTF-8 text/.test(e.message));
    assert.deepEqual(await r.command(['GET', 'raw:bin']), new Uint8Array([0xff, 0xfe, 0x00, 0x41]));
  });
});

describe('TieredCache with memoize, @cached and cachePage', () => {
  // The helpers return a result before its write to Redis has landed (the
  // write finishes in the background), so another isolate may miss it for
  // a moment: wait for the key in Redis before reading from elsewhere.
  async function untilInRedis(pattern) {
    const deadline = Date.now() + 2_000;
    while (cliRaw('KEYS', pattern) === '') {
      assert.ok(Date.now() < deadline, `nothing matching ${pattern} reached Redis`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  test('memoize reads through both tiers', async () => {
    let calls = 0;
    const load = async (id) => {
      calls++;
      return { id, at: calls };
    };
    const m1 = memoize(load, { cache: isolate({ prefix: 'memo' }), prefix: 'u:', ttl: 60_000 });
    const m2 = memoize(load, { cache: isolate({ prefix: 'memo' }), prefix: 'u:', ttl: 60_000 });
    assert.deepEqual(await m1(1), { id: 1, at: 1 });
    await untilInRedis('memo:v:*');
    assert.deepEqual(await m2(1), { id: 1, at: 1 }, 'the other isolate got it from Redis');
    assert.equal(calls, 1);
    const [key] = await isolate({ prefix: 'memo' }).keys('u:*');
    assert.ok(key, 'the result is in Redis');
    await m2.invalidate(1);
    assert.equal(await isolate({ prefix: 'memo' }).get(key), undefined, 'invalidate reached Redis');
  });

  test('@cached with a TieredCache', async () => {
    const tier = isolate({ prefix: 'deco' });
    let calls = 0;
    async function get(id) {
      calls++;
      return { id };
    }
    // The stage-3 decorator applied by hand (Node runs no decorator syntax).
    const ctx = { kind: 'method', name: 'get', static: false, private: false, addInitializer() {}, metadata: {} };
    const decorated = cached({ cache: tier, ttl: 60_000 })(get, ctx);
    const self = {};
    assert.deepEqual(await decorated.call(self, 1), { id: 1 });
    assert.deepEqual(await decorated.call(self, 1), { id: 1 });
    assert.equal(calls, 1);
    await untilInRedis('deco:v:*');
    assert.equal((await tier.keys('*')).length, 1, 'the result is in Redis');
  });

  test('@cached through a fresh scope view per call shares one flight per tenant, never across tenants', async () => {
    const tier = isolate({ prefix: 'flight' });
    const loads = { acme: 0, globex: 0 };
    let open;
    const gate = new Promise((r) => (open = r));
    async function get(id) {
      loads[this.tenant]++;
      await gate;
      return `${this.tenant}:${id}`;
    }
    const ctx = { kind: 'method', name: 'get', static: false, private: false, addInitializer() {}, metadata: {} };
    const decorated = cached({ cache: (self) => tier.scope({ tenant: self.tenant }), ttl: 60_000 })(get, ctx);
    const acme = { tenant: 'acme' };
    const globex = { tenant: 'globex' };
    const calls = [decorated.call(acme, 1), decorated.call(acme, 1), decorated.call(acme, 1), decorated.call(globex, 1)];
    // The misses go to Redis first (and the cache's first log read): wait
    // for the loads to begin, however loaded the machine, then for any more.
    for (let i = 0; i < 200 && loads.acme + loads.globex < 2; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(loads, { acme: 1, globex: 1 }, 'one load per tenant');
    open();
    assert.deepEqual(await Promise.all(calls), ['acme:1', 'acme:1', 'acme:1', 'globex:1']);
  });

  test('cachePage stores pages in Redis for every isolate', async () => {
    let calls = 0;
    const handler = async () => {
      calls++;
      return new Response(`page ${calls}`, { headers: { 'cache-control': 'public, max-age=60', 'content-type': 'text/plain' } });
    };
    const p1 = cachePage(handler, { cache: isolate({ prefix: 'page' }), ttl: 60_000 });
    const p2 = cachePage(handler, { cache: isolate({ prefix: 'page' }), ttl: 60_000 });
    assert.equal(await (await p1(new Request('https://x.test/a'))).text(), 'page 1');
    await untilInRedis('page:v:*');
    assert.equal(await (await p2(new Request('https://x.test/a'))).text(), 'page 1');
    assert.equal(calls, 1);
  });
});

describe('TieredCache: two Node processes share L2', () => {
  const peer = fileURLToPath(new URL('./tiered-peer.mjs', import.meta.url));
  function run(ops) {
    return new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [peer], {
        env: { ...process.env, BRIDGE_URL: bridge.url, BRIDGE_TOKEN: TOKEN, SECRET, OPS: JSON.stringify(ops) },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      p.stdout.on('data', (d) => (out += d));
      p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`peer exited ${code}: ${out}`))));
    });
  }

  test('one writes, the other reads, in the root and in scopes; counters add up', async () => {
    await run([
      ['set', null, 'shared', { from: 'peer' }],
      ['set', { tenant: 'acme' }, 'shared', 'acme-only'],
      ['set', { tenant: 'acme', user: 'u1' }, 'shared', 'u1-only'],
    ]);
    const here = isolate({ prefix: 'peer' });
    assert.deepEqual(await here.get('shared'), { from: 'peer' });
    assert.equal(await here.scope({ tenant: 'acme' }).get('shared'), 'acme-only');
    assert.equal(await here.scope({ tenant: 'acme', user: 'u1' }).get('shared'), 'u1-only');
    await here.scope({ tenant: 'zeta' }).set('mine', [1, 2, 3]);
    const [got] = await run([['get', { tenant: 'zeta' }, 'mine']]);
    assert.deepEqual(got, [1, 2, 3]);

    const ops = Array.from({ length: 50 }, () => ['incr', null, 'sum', 1]);
    const [p1, p2] = await Promise.all([run(ops), run(ops)]);
    for (let i = 0; i < 50; i++) await here.incr('sum', 2);
    assert.equal(p1.length + p2.length, 100);
    assert.equal(await isolate({ prefix: 'peer' }).counter('sum'), 200);
  });
});
