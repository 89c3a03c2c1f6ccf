// RedisRest against a real redis-server and the real bridge (issue 14):
// what one request carries must never decide another caller's answer, a
// request stays within the server's limits, multi() and every read keep
// the bytes Redis holds, and a command is sent again after a lost answer
// only if a second run cannot be told from one.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RedisRest, TieredCache, generateSecureKey } from '../../dist/index.js';
// A namespace import: on a build without these exports the tests that use
// them fail one by one instead of the whole file.
import * as internals from '../../dist/redis.js';
import { startRedis, startBridge, startTcpFaultProxy } from './servers.mjs';

const TOKEN = 'hardening-token-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
/** RedisRest's default maxRequestBytes, and the --max-body of a bridge just above it. */
const DEFAULT_REQUEST = 1_048_576;
const SMALL_BODY = 1_200_000;

let redis;
let bridge;
let small;

before(async () => {
  redis = await startRedis();
  bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
  small = await startBridge({
    redisUrl: redis.url,
    token: TOKEN,
    args: ['--max-body', String(SMALL_BODY), '--max-pipeline', '1000'],
  });
});

after(async () => {
  await small?.stop();
  await bridge?.stop();
  await redis?.stop();
});

/** A fetch that records each request: its path, commands, body size and status. */
function recorder() {
  const f = async (input, init) => {
    const entry = { path: new URL(String(input)).pathname, commands: JSON.parse(init.body), bytes: Buffer.byteLength(init.body) };
    f.requests.push(entry);
    const res = await fetch(input, init);
    entry.status = res.status;
    return res;
  };
  f.requests = [];
  return f;
}

function client(opts = {}) {
  return new RedisRest({ url: bridge.url, token: TOKEN, ...opts });
}

function tiered(redisClient, prefix) {
  return new TieredCache({ redis: redisClient, signer: { keys: { k1: SECRET } }, prefix, log: () => {} });
}

describe('multi() through /multi-exec (finding 3)', () => {
  test('returns what Redis holds: text that looks like base64, OK, binary and UTF-8', async () => {
    const r = client();
    const texts = ['QUJD', 'abcd', 'hello', '', 'OK', 'Zoë 🚀 ✓', '\u00ff\u0000'];
    for (const [i, v] of texts.entries()) await r.set(`multi:${i}`, v);
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    // Binary through the bridge's path form: the body is the value, raw.
    const put = await fetch(`${bridge.url}/set/multi:bin`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: bytes });
    assert.equal(put.status, 200);

    const out = await r.multi([...texts.map((_, i) => ['GET', `multi:${i}`]), ['GET', 'multi:bin'], ['SET', 'multi:set', 'QUJD'], ['GET', 'multi:set'], ['INCRBY', 'multi:0', 1]]);
    assert.deepEqual(out.slice(0, texts.length), texts.map((value) => ({ ok: true, value })));
    assert.deepEqual(out[texts.length], { ok: true, value: bytes });
    assert.deepEqual(out.slice(texts.length + 1, texts.length + 3), [{ ok: true, value: 'OK' }, { ok: true, value: 'QUJD' }]);
    assert.equal(out[texts.length + 3].ok, false, 'INCRBY of "QUJD" fails in its own entry');
    assert.match(out[texts.length + 3].error, /not an integer/);
    // The same values as GET through /pipeline.
    for (const [i, v] of texts.entries()) assert.equal(await r.get(`multi:${i}`), v);
    assert.deepEqual(await r.command(['GET', 'multi:bin']), bytes);
    assert.deepEqual(await r.multi([]), []);
  });
});

describe('a leading U+FEFF is kept (finding 11)', () => {
  test('set then get a value, scan then unlink the exact key', async () => {
    const r = client();
    await r.set('bom:value', '\uFEFFhello');
    assert.equal(await r.get('bom:value'), '\uFEFFhello');
    assert.deepEqual(await r.mget(['bom:value']), ['\uFEFFhello']);
    assert.deepEqual(await r.multi([['GET', 'bom:value']]), [{ ok: true, value: '\uFEFFhello' }]);

    await r.set('\uFEFFbomkey', 'with');
    await r.set('bomkey', 'without');
    const found = [];
    let cursor = '0';
    do {
      const [next, batch] = await r.scan(cursor, { match: '*bomkey', count: 100 });
      found.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    assert.deepEqual(found.sort(), ['bomkey', '\uFEFFbomkey']);
    assert.equal(await r.unlink(found.find((k) => k !== 'bomkey')), 1);
    assert.equal(await r.get('bomkey'), 'without', 'the other key is untouched');
    assert.equal(await r.get('\uFEFFbomkey'), null);
  });
});

describe('retries only of what may run twice (finding 17)', () => {
  /** What a command leaves in Redis: for each key, whether it exists, its bytes (DUMP) and whether it expires. */
  async function state(r, keys) {
    const out = [];
    for (const k of keys) {
      const [exists, dump, pttl] = await r.pipeline([['EXISTS', k], ['DUMP', k], ['PTTL', k]]);
      out.push([k, exists.value, dump.value, Math.sign(pttl.value)]);
    }
    return out;
  }

  // Every command of RETRY_SAFE, in a state where its reply means something.
  const DATA = [
    ['SET', 'r:s', 'value'],
    ['HSET', 'r:h', 'f', '1', 'g', '2'],
    ['RPUSH', 'r:l', 'a', 'b', 'c'],
    ['SADD', 'r:set', 'a', 'b', 'c'],
    ['ZADD', 'r:z', 1, 'a', 2, 'b'],
  ];
  const KEYS = ['r:s', 'r:h', 'r:l', 'r:set', 'r:z', 'r:none', 'r:m1', 'r:m2', 'r:ps', 'r:se'];
  const SAFE = {
    GET: ['GET', 'r:s'], MGET: ['MGET', 'r:s', 'r:none'], EXISTS: ['EXISTS', 'r:s', 'r:none'], PTTL: ['PTTL', 'r:s'],
    TTL: ['TTL', 'r:s'], TYPE: ['TYPE', 'r:h'], STRLEN: ['STRLEN', 'r:s'], GETRANGE: ['GETRANGE', 'r:s', 0, 2],
    SCAN: ['SCAN', '0', 'MATCH', 'r:*', 'COUNT', 1000], PING: ['PING'], ECHO: ['ECHO', 'hi'], DBSIZE: ['DBSIZE'],
    HGET: ['HGET', 'r:h', 'f'], HMGET: ['HMGET', 'r:h', 'f', 'x'], HGETALL: ['HGETALL', 'r:h'], HKEYS: ['HKEYS', 'r:h'],
    HVALS: ['HVALS', 'r:h'], HLEN: ['HLEN', 'r:h'], HEXISTS: ['HEXISTS', 'r:h', 'f'], HSCAN: ['HSCAN', 'r:h', '0'],
    LRANGE: ['LRANGE', 'r:l', 0, -1], LLEN: ['LLEN', 'r:l'], LINDEX: ['LINDEX', 'r:l', 1],
    SMEMBERS: ['SMEMBERS', 'r:set'], SISMEMBER: ['SISMEMBER', 'r:set', 'a'], SCARD: ['SCARD', 'r:set'], SSCAN: ['SSCAN', 'r:set', '0'],
    ZRANGE: ['ZRANGE', 'r:z', 0, -1, 'WITHSCORES'], ZSCORE: ['ZSCORE', 'r:z', 'a'], ZCARD: ['ZCARD', 'r:z'], ZRANK: ['ZRANK', 'r:z', 'b'],
    ZSCAN: ['ZSCAN', 'r:z', '0'], KEYS: ['KEYS', 'r:*'],
    MSET: ['MSET', 'r:m1', '1', 'r:m2', '2'], PSETEX: ['PSETEX', 'r:ps', 100_000, 'v'], SETEX: ['SETEX', 'r:se', 100, 'v'],
  };
  const FAR = Math.floor(Date.now() / 1000) + 86_400;
  const SAFE_SET = [
    ['SET', 'r:s', 'value'],
    ['SET', 'r:s', 'value', 'PX', 100_000],
    ['SET', 'r:s', 'value', 'KEEPTTL'],
    ['SET', 'r:s', 'value', 'EXAT', FAR],
    ['SET', 'r:s', 'value', 'ex', 100],
    ['SET', 'r:none', 'value', 'PXAT', 1],
  ];
  // Left off the list: [setup, command]; a second run answers otherwise.
  const UNSAFE = [
    [[['SET', 'u:p', 'v', 'EX', 100]], ['PERSIST', 'u:p']],
    [[['SET', 'u:pe', 'v']], ['PEXPIREAT', 'u:pe', 1]],
    [[['SET', 'u:e', 'v']], ['EXPIREAT', 'u:e', 1]],
    [[['SET', 'u:nx', 'v']], ['PEXPIREAT', 'u:nx', FAR * 1000, 'NX']],
    [[['SET', 'u:gt', 'v', 'EX', 100]], ['EXPIREAT', 'u:gt', FAR, 'GT']],
    [[['SET', 'u:x', 'v']], ['EXPIRE', 'u:x', 100, 'NX']],
    [[], ['SET', 'u:setnx', 'v', 'NX']],
    [[['SET', 'u:get', 'old']], ['SET', 'u:get', 'new', 'GET']],
    [[['SET', 'u:del', 'v']], ['DEL', 'u:del']],
    [[['SET', 'u:unlink', 'v']], ['UNLINK', 'u:unlink']],
    [[], ['INCRBY', 'u:n', 1]],
    [[], ['HSET', 'u:h', 'f', 'v']],
    [[], ['SADD', 'u:s', 'a']],
  ];

  test('the list is pinned: every command on it has a case here, and only those', () => {
    assert.ok(internals.RETRY_SAFE instanceof Set, 'redis.js exports RETRY_SAFE');
    assert.deepEqual([...internals.RETRY_SAFE].sort(), Object.keys(SAFE).sort());
  });

  test('each command on the list, run twice against Redis, answers and leaves the same', async () => {
    const r = client();
    await r.pipeline(DATA);
    for (const [name, args] of Object.entries(SAFE)) {
      assert.ok(internals.retrySafe(args), name);
      const first = await r.command(args);
      const after1 = await state(r, KEYS);
      const second = await r.command(args);
      const after2 = await state(r, KEYS);
      assert.deepEqual(second, first, `${name}: the second reply`);
      assert.deepEqual(after2, after1, `${name}: the state after the second run`);
    }
    for (const args of SAFE_SET) {
      assert.ok(internals.retrySafe(args), args.join(' '));
      const first = await r.command(args);
      const after1 = await state(r, KEYS);
      assert.deepEqual(await r.command(args), first, args.join(' '));
      assert.deepEqual(await state(r, KEYS), after1, args.join(' '));
    }
  });

  test('what is left off answers otherwise the second time, and is never retried', async () => {
    const r = client();
    for (const [setup, args] of UNSAFE) {
      if (setup.length > 0) await r.pipeline(setup);
      assert.equal(internals.retrySafe(args), false, args.join(' '));
      const first = await r.command(args);
      const second = await r.command(args);
      assert.notDeepEqual(second, first, `${args.join(' ')}: ${JSON.stringify(first)} then ${JSON.stringify(second)}`);
    }
  });

  test('a PERSIST whose answer was lost is not sent again, which would answer 0 though the TTL went', async () => {
    const proxy = await startTcpFaultProxy(Number(new URL(bridge.url).port));
    try {
      const direct = client();
      await direct.set('lost:persist', 'v', { ex: 100 });
      proxy.cut(1);
      let calls = 0;
      // The first attempt goes through the proxy, which cuts the answer after the bridge ran it; any other goes straight.
      const f = (input, init) => (++calls === 1 ? fetch(String(input).replace(bridge.url, `http://127.0.0.1:${proxy.port}`), init) : fetch(input, init));
      const r = client({ fetch: f, retries: 2 });
      await assert.rejects(r.command(['PERSIST', 'lost:persist']), (e) => e.code === 'L2_HTTP' && e.status === 0);
      assert.equal(calls, 1, 'sent once');
      assert.equal(await direct.pttl('lost:persist'), -1, 'the lost request did run');
    } finally {
      await proxy.stop();
    }
  });
});
