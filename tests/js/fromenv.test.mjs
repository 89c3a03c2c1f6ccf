// fromEnv(env): the bindings it reads, strictly; one cache per isolate and
// configuration; L1-only (L1Cache, the same async API) without Redis, said
// once; Redis without signing keys refused with the fix. The Worker itself
// runs in workerd in worker.test.mjs.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fromEnv, L1Cache, TieredCache, Signer, EdgeCacheError, memoize, generateSecureKey } from 'edgecache';
import { readFileSync } from 'node:fs';
import { startRedis, startBridge } from './servers.mjs';
// The settings fromEnv reads (internal: not exported by the package).
import { readSettings } from '../../dist/workers.js';

let n = 0;
/** A distinct configuration per test (instances are kept per isolate). */
const fresh = (env = {}) => ({ EDGECACHE_PREFIX: `t${++n}`, ...env });
const quiet = { log: () => {} };
const KEY = generateSecureKey();

function throwsCode(fn, code, re) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgeCacheError, String(e));
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}

describe('fromEnv without Redis', () => {
  test('an L1Cache, said once in the log with how to enable L2; the same instance on every call', () => {
    const logs = [];
    const env = fresh();
    const a = fromEnv(env, { log: (m) => logs.push(m) });
    assert.ok(a instanceof L1Cache);
    assert.equal(fromEnv({ ...env }, { log: (m) => logs.push(m) }), a, 'same binding values, same cache');
    assert.equal(fromEnv(env), a);
    assert.equal(logs.length, 1);
    assert.match(logs[0], /L1-only/);
    assert.match(logs[0], /EDGECACHE_REDIS_URL/);
    // In Node (a service, not a Worker): environment variables, no wrangler (workerd's: 'the hints of the runtime' below).
    assert.match(logs[0], /set the environment variables EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN and EDGECACHE_SIGNING_KEYS/);
    assert.match(logs[0], /npx edgecache keygen/);
    assert.doesNotMatch(logs[0], /wrangler|\.dev\.vars/);
    const b = fromEnv(fresh(), quiet);
    assert.notEqual(b, a, 'another configuration, another cache');
  });

  test('options are part of the identity without Redis too: two prefixes, two L1 caches', async () => {
    const env = { EDGECACHE_DEFAULT_TTL: '7777' }; // no EDGECACHE_PREFIX: it would override the option
    const billing = fromEnv(env, { ...quiet, prefix: 'billing' });
    const guest = fromEnv(env, { ...quiet, prefix: 'guest' });
    assert.notEqual(guest, billing);
    await billing.set('k', 'billing');
    assert.equal(await guest.get('k'), undefined);
    assert.equal(fromEnv(env, { prefix: 'billing', log: () => {} }), billing);
    assert.notEqual(fromEnv(env, { ...quiet, prefix: 'billing', maxEntries: 50 }), billing);
    throwsCode(() => fromEnv(env, { maxEntries: 5n }), 'INVALID_OPTION', /maxEntries/);
    throwsCode(() => fromEnv(env, { breaker: { threshold: '5' } }), 'INVALID_OPTION', /breaker\.threshold/);
  });

  test('L1Cache has the async methods of TieredCache', async () => {
    const c = fromEnv(fresh({ EDGECACHE_DEFAULT_TTL: '60000' }), quiet);
    for (const m of Object.getOwnPropertyNames(TieredCache.prototype)) {
      if (m === 'constructor' || m === 'redis' || m === 'free') continue;
      assert.ok(m in c, `L1Cache lacks ${m}`);
    }
    assert.equal(await c.set('a', { x: 1 }), c);
    assert.deepEqual(await c.get('a'), { x: 1 });
    let loads = 0;
    const load = () => ++loads;
    assert.deepEqual([await c.getOrSet('g', load), await c.getOrSet('g', load), loads], [1, 1, 1], 'getOrSet: loaded once');
    assert.equal(await c.has('a'), true);
    assert.ok((await c.ttl('a')) <= 60_000);
    await c.setMany([['b', 2], ['c', 3, { ttl: 0 }]]);
    assert.deepEqual(await c.getMany(['a', 'b', 'zz']), [{ x: 1 }, 2, undefined]);
    assert.equal(await c.ttl('c'), Infinity);
    assert.equal(await c.incr('n', 5), 5);
    assert.equal(await c.decr('n'), 4);
    assert.equal(await c.counter('n'), 4);
    assert.deepEqual((await c.keys('[ab]')).sort(), ['a', 'b']);
    assert.equal(await c.deletePattern('[ab]'), 2);
    assert.equal(await c.delete('c'), true);
    assert.equal(await c.deleteMany(['n', 'zz']), 1);
    const s = c.scope({ tenant: 'acme' });
    await s.set('a', 1);
    assert.equal(await c.get('a'), undefined, 'scopes stay apart');
    assert.equal(await s.get('a'), 1);
    await s.clear();
    assert.equal(await s.get('a'), undefined);
    await c.set('t1', 1, { tags: ['product:7'] });
    await c.set('t2', 2, { tags: ['product:8'] });
    assert.equal(await c.invalidateTags(['product:7']), 1);
    assert.deepEqual(await c.getMany(['t1', 't2']), [undefined, 2], 'tags: the invalidated entry misses, the other hits');
    const st = c.stats();
    assert.equal(st.l2, null);
    assert.equal(st.breaker, null);
    assert.ok(st.l1.sets >= 4);
    assert.equal(typeof c.now(), 'number');
    assert.equal(c.l1.maxEntries ?? c.l1.stats().maxEntries, 10_000);
    // memoize takes it as its cache.
    let calls = 0;
    const f = memoize(async (x) => (++calls, x * 2), { cache: c, prefix: 'f:' });
    assert.equal(await f(2), 4);
    assert.equal(await f(2), 4);
    assert.equal(calls, 1);
  });

  test('bounds and TTLs from the bindings (strings or numbers), over the options', () => {
    const c = fromEnv(fresh({ EDGECACHE_MAX_ENTRIES: '5', EDGECACHE_MAX_BYTES: 4096 }), { ...quiet, maxEntries: 7, maxBytes: 100_000 });
    assert.equal(c.stats().l1.maxEntries, 5);
    assert.equal(c.stats().l1.maxBytes, 4096);
    const d = fromEnv(fresh(), { ...quiet, maxEntries: 7, maxBytes: 100_000 });
    assert.equal(d.stats().l1.maxEntries, 7);
    assert.equal(d.stats().l1.maxBytes, 100_000);
    // The option may say Infinity; the binding is a number of bytes, as in Rust.
    assert.ok(fromEnv(fresh(), { ...quiet, maxBytes: Infinity }).stats().l1.maxBytes >= Number.MAX_SAFE_INTEGER, 'no byte bound');
    throwsCode(() => fromEnv(fresh({ EDGECACHE_MAX_BYTES: 'Infinity' }), quiet), 'INVALID_OPTION', /EDGECACHE_MAX_BYTES must be a whole number from 1 to 9007199254740991 \(bytes\)/);
  });

  test('the settings corpus shared with the Rust binding (tests/fixtures/settings.json)', () => {
    // src/worker/settings.rs runs the same cases (cargo test --features worker --lib worker).
    const { cases } = JSON.parse(readFileSync(new URL('../fixtures/settings.json', import.meta.url), 'utf8'));
    assert.ok(cases.length > 50);
    const valueOf = (s, setting) => {
      switch (setting) {
        case 'EDGECACHE_REDIS_URL':
          return s.redis?.url ?? null;
        case 'EDGECACHE_REDIS_TOKEN':
          return s.redis?.token ?? null;
        case 'EDGECACHE_SIGNING_KEYS':
          return s.signingKeys ?? null;
        default: {
          const name = setting.replace(/^EDGECACHE_(REDIS_)?/, '').toLowerCase().replace(/_(.)/g, (_, c) => c.toUpperCase());
          assert.ok(name in s, `the corpus names a setting fromEnv does not read: ${setting}`);
          return s[name];
        }
      }
    };
    for (const c of cases) {
      const what = JSON.stringify(c);
      if (c.error === undefined) {
        assert.deepEqual(valueOf(readSettings(c.env), c.setting), c.value, what);
        assert.doesNotThrow(() => fromEnv(c.env, quiet), what);
      } else {
        for (const read of [() => readSettings(c.env), () => fromEnv(c.env, quiet)]) {
          assert.throws(read, (e) => {
            assert.ok(e instanceof EdgeCacheError, `${what}: ${e}`);
            assert.equal(e.code, c.error, `${what}: ${e.message}`);
            assert.ok(e.message.includes(c.setting), `${what}: the error names ${c.setting}: ${e.message}`);
            return true;
          }, what);
        }
      }
    }
  });

  test('a TOML number in [vars] is read as its decimal text: whole numbers only', () => {
    assert.equal(readSettings({ EDGECACHE_L1_TTL: 250 }).l1Ttl, 250);
    assert.equal(readSettings({ EDGECACHE_MAX_BYTES: 2 ** 53 - 1 }).maxBytes, 2 ** 53 - 1);
    for (const v of [1.5, -1, 1e21, 2 ** 53, Infinity, NaN]) {
      throwsCode(() => readSettings({ EDGECACHE_MAX_BYTES: v }), 'INVALID_OPTION', /EDGECACHE_MAX_BYTES/);
    }
  });

  test('a bad value is INVALID_OPTION naming the binding', () => {
    const bad = [
      ['EDGECACHE_MAX_ENTRIES', '10k'],
      ['EDGECACHE_MAX_ENTRIES', '0'],
      ['EDGECACHE_MAX_ENTRIES', '1e3'],
      ['EDGECACHE_MAX_ENTRIES', 1.5],
      ['EDGECACHE_MAX_BYTES', '-1'],
      ['EDGECACHE_DEFAULT_TTL', '-5'],
      ['EDGECACHE_DEFAULT_TTL', '60s'],
      ['EDGECACHE_L1_TTL', 'soon'],
      ['EDGECACHE_DEFAULT_TTL', true],
    ];
    for (const [name, value] of bad) {
      throwsCode(() => fromEnv(fresh({ [name]: value }), quiet), 'INVALID_OPTION', new RegExp(name));
    }
    throwsCode(() => fromEnv(fresh(), { nope: 1 }), 'INVALID_OPTION', /unknown option `nope`/);
    throwsCode(() => fromEnv(null), 'INVALID_OPTION', /env/);
  });
});

describe('fromEnv with Redis bindings', () => {
  const URL_ = 'http://127.0.0.1:9';
  test('Redis without signing keys is an error naming the fix, never an unsigned L2', () => {
    for (const env of [
      { EDGECACHE_REDIS_URL: URL_, EDGECACHE_REDIS_TOKEN: 't' },
      { UPSTASH_REDIS_REST_URL: URL_, UPSTASH_REDIS_REST_TOKEN: 't' },
    ]) {
      throwsCode(() => fromEnv(fresh(env), quiet), 'INVALID_OPTION', /npx edgecache keygen.*environment variable EDGECACHE_SIGNING_KEYS/);
    }
  });

  test('half a Redis configuration is an error naming the missing binding', () => {
    throwsCode(() => fromEnv(fresh({ EDGECACHE_REDIS_URL: URL_, EDGECACHE_SIGNING_KEYS: `k1:${KEY}` }), quiet), 'INVALID_OPTION', /set the environment variable EDGECACHE_REDIS_TOKEN/);
    throwsCode(() => fromEnv(fresh({ EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: `k1:${KEY}` }), quiet), 'INVALID_OPTION', /EDGECACHE_REDIS_URL is not/);
  });

  test('signing keys are checked: format, duplicates, strength, naming the binding', () => {
    const env = (keys) => fresh({ EDGECACHE_REDIS_URL: URL_, EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: keys });
    // The same cases as the Rust binding's signing_keys_follow_the_js_rule.
    for (const k of ['nokey', 'k1:', ':abc', `k1:${KEY},`, `k1:${KEY},k2`, ` , k1:${KEY}`, `k1:${KEY},,k2:${KEY}`]) {
      throwsCode(() => fromEnv(env(k), quiet), 'INVALID_OPTION', /EDGECACHE_SIGNING_KEYS/);
    }
    throwsCode(() => fromEnv(env(`k1:${KEY},k1:${generateSecureKey()}`), quiet), 'INVALID_OPTION', /twice/);
    throwsCode(() => fromEnv(env('k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'), quiet), 'WEAK_KEY', /EDGECACHE_SIGNING_KEYS/);
    throwsCode(() => fromEnv(fresh({ EDGECACHE_REDIS_URL: URL_, EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: `k1:${KEY}`, EDGECACHE_PREFIX: 'a:b' }), quiet), 'INVALID_OPTION', /EDGECACHE_PREFIX/);
    throwsCode(() => fromEnv(fresh({ EDGECACHE_REDIS_URL: 'ftp://x', EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: `k1:${KEY}` }), quiet), 'INVALID_OPTION', /EDGECACHE_REDIS_URL/);
  });

  test('the UPSTASH_REDIS_REST_* names work too; one instance per configuration', () => {
    const env = fresh({ UPSTASH_REDIS_REST_URL: URL_, UPSTASH_REDIS_REST_TOKEN: 't', EDGECACHE_SIGNING_KEYS: `k1:${KEY}` });
    const c = fromEnv(env, quiet);
    assert.ok(c instanceof TieredCache);
    assert.equal(fromEnv({ ...env }, quiet), c);
    assert.notEqual(fromEnv({ ...env, EDGECACHE_SIGNING_KEYS: `k2:${KEY}` }, quiet), c);
  });
});

describe('fromEnv against a real bridge', () => {
  let redis;
  let bridge;
  const token = randomBytes(24).toString('base64url');
  before(async () => {
    redis = await startRedis();
    bridge = await startBridge({ redisUrl: redis.url, token });
  });
  after(async () => {
    await bridge?.stop();
    await redis?.stop();
  });

  test('the first signing key signs, every key verifies; bounds and TTLs apply', async () => {
    const k1 = generateSecureKey();
    const k2 = generateSecureKey();
    const base = { EDGECACHE_REDIS_URL: bridge.url, EDGECACHE_REDIS_TOKEN: token, EDGECACHE_PREFIX: 'fe', EDGECACHE_DEFAULT_TTL: '60000', EDGECACHE_L1_TTL: '0' };
    const writer = fromEnv({ ...base, EDGECACHE_SIGNING_KEYS: ` new:${k2} , old:${k1} ` }, quiet);
    await writer.set('x', { v: 1 });
    const sealed = execFileSync('redis-cli', ['-p', String(redis.port), '--raw', 'GET', 'fe:v:r|x'], { encoding: 'utf8' }).trim();
    assert.equal(Buffer.from(sealed, 'base64url').subarray(2, 5).toString(), 'new', 'sealed with the first key (its key id; the tier binds its prefix, so only a tier opens it)');
    assert.throws(() => new Signer({ keys: { old: k1 } }).openPayload('x', sealed), (e) => e.code === 'UNKNOWN_KEY_ID');
    const pttl = Number(execFileSync('redis-cli', ['-p', String(redis.port), 'PTTL', 'fe:v:r|x'], { encoding: 'utf8' }));
    assert.ok(pttl > 50_000 && pttl <= 60_000, String(pttl));
    // Another isolate holding both keys in the other order reads it.
    const reader = fromEnv({ ...base, EDGECACHE_SIGNING_KEYS: `old:${k1},new:${k2}`, EDGECACHE_MAX_ENTRIES: '100' }, quiet);
    assert.notEqual(reader, writer);
    assert.deepEqual(await reader.get('x'), { v: 1 });
    assert.equal(reader.stats().l2.hits, 1);
    assert.equal(reader.stats().l1.maxEntries, 100);
  });

  test('options are part of the identity: fromEnv(env, { prefix: "guest" }) after "billing" is another cache', async () => {
    const env = { EDGECACHE_REDIS_URL: bridge.url, EDGECACHE_REDIS_TOKEN: token, EDGECACHE_SIGNING_KEYS: `k1:${KEY}` };
    const billing = fromEnv(env, { ...quiet, prefix: 'billing' });
    const guest = fromEnv(env, { ...quiet, prefix: 'guest' });
    assert.notEqual(guest, billing);
    await billing.set('invoice:1', { total: 10 });
    assert.equal(await guest.get('invoice:1'), undefined, 'the guest cache does not see billing keys');
    await guest.set('invoice:1', 'guest');
    const cli = (...a) => execFileSync('redis-cli', ['-p', String(redis.port), '--raw', ...a], { encoding: 'utf8' });
    assert.match(cli('KEYS', 'billing:v:*'), /billing:v:r\|invoice:1/);
    assert.match(cli('KEYS', 'guest:v:*'), /guest:v:r\|invoice:1/);
    assert.deepEqual(await billing.get('invoice:1'), { total: 10 });
    // Called in every request with options written inline (a new object, a
    // new log function each time): one cache per configuration, not per call.
    for (let i = 0; i < 1_000; i++) {
      assert.equal(fromEnv({ ...env }, { prefix: 'billing', log: () => {} }), billing);
      assert.equal(fromEnv(env, { prefix: 'guest', failOpen: true, log: () => {} }), guest, 'a default spelt out is the same setting');
    }
    // A binding overrides the option (as documented): the same settings, the same cache.
    assert.equal(fromEnv({ ...env, EDGECACHE_PREFIX: 'billing' }, { ...quiet, prefix: 'guest' }), billing);
    assert.notEqual(fromEnv(env, { ...quiet, prefix: 'billing', timeout: 1_000 }), billing, 'another timeout, another cache');
  });

  test('in Node, fromEnv(process.env) reads the same variables (docs/REDIS.md)', async () => {
    const vars = { EDGECACHE_REDIS_URL: bridge.url, EDGECACHE_REDIS_TOKEN: token, EDGECACHE_SIGNING_KEYS: `k1:${KEY}`, EDGECACHE_PREFIX: 'node' };
    const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
    Object.assign(process.env, vars);
    try {
      const cache = fromEnv(process.env, quiet);
      assert.ok(cache instanceof TieredCache);
      await cache.set('user:1', { name: 'Ada' });
      assert.match(execFileSync('redis-cli', ['-p', String(redis.port), '--raw', 'GET', 'node:v:r|user:1'], { encoding: 'utf8' }), /^Ag/);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});

describe('the hints of the runtime', () => {
  const NODE_ERRORS = {
    keys: [{ EDGECACHE_REDIS_URL: 'http://127.0.0.1:9', EDGECACHE_REDIS_TOKEN: 't' }, /Make a key with `npx edgecache keygen` and set the environment variable EDGECACHE_SIGNING_KEYS/],
    token: [{ EDGECACHE_REDIS_URL: 'http://127.0.0.1:9', EDGECACHE_SIGNING_KEYS: `k1:${KEY}` }, /set the environment variable EDGECACHE_REDIS_TOKEN/],
    url: [{ EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: `k1:${KEY}` }, /set the environment variable EDGECACHE_REDIS_URL to the bridge or Upstash REST URL/],
    type: [{ EDGECACHE_REDIS_URL: true }, /must be a string \(an environment variable\)/],
  };

  test('in Node (fromEnv(process.env) in a service): environment variables and `npx edgecache keygen`, never wrangler', () => {
    for (const [name, [env, re]] of Object.entries(NODE_ERRORS)) {
      assert.throws(() => fromEnv(fresh(env), quiet), (e) => {
        assert.equal(e.code, 'INVALID_OPTION', name);
        assert.match(e.message, re, name);
        assert.doesNotMatch(e.message, /wrangler|\.dev\.vars/, name);
        return true;
      });
    }
  });

  test('in workerd: wrangler ([vars], wrangler secret put, .dev.vars)', { timeout: 120_000 }, async () => {
    process.env.WRANGLER_SEND_METRICS = 'false';
    const { unstable_dev } = await import('wrangler');
    const worker = await unstable_dev('tests/js/workers/fromenv-hints.js', {
      config: 'tests/js/workers/wrangler.toml',
      ip: '127.0.0.1',
      port: 0,
      logLevel: 'error',
      experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
    });
    try {
      const out = await (await worker.fetch('/')).json();
      assert.match(out.l1, /wrangler secret put EDGECACHE_SIGNING_KEYS/);
      assert.match(out.l1, /\.dev\.vars locally, then restart wrangler dev/, 'wrangler dev reads .dev.vars when it starts');
      assert.match(out.keys, /^INVALID_OPTION: .*wrangler secret put EDGECACHE_SIGNING_KEYS.*npx edgecache keygen.*\.dev\.vars, then restart wrangler dev/);
      assert.match(out.token, /^INVALID_OPTION: .*wrangler secret put EDGECACHE_REDIS_TOKEN.*\.dev\.vars, then restart wrangler dev/);
      assert.match(out.url, /^INVALID_OPTION: .*\[vars\] in wrangler\.toml/);
      assert.match(out.type, /^INVALID_OPTION: .*\[vars\] in wrangler\.toml, or a secret/);
      for (const m of Object.values(out)) assert.doesNotMatch(m, /environment variable/);
    } finally {
      await worker.stop();
    }
  });
});
