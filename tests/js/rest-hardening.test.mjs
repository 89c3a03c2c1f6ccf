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

function tiered(redisClient, prefix, extra = {}) {
  return new TieredCache({ redis: redisClient, signer: { keys: { k1: SECRET } }, prefix, log: () => {}, ...extra });
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

describe("one caller's refused command fails that caller only (finding 7)", () => {
  test('a denied FLUSHALL and a lone surrogate in the same tick as GETs and a delete', async () => {
    const writer = tiered(client(), 'h7');
    const f = recorder();
    const r = client({ fetch: f });
    // Coherence off: its log reads go in requests of their own, and this
    // is about the commands that auto-pipelining puts in one.
    const cache = tiered(r, 'h7', { maxStaleness: false });
    await r.set('h7:plain', 'p');
    for (let round = 0; round < 6; round++) {
      await writer.set(`held${round}`, { round });
      await writer.set(`gone${round}`, 'x');
      f.requests.length = 0;
      const [got, del, plain, flush, lone, loneKey] = await Promise.allSettled([
        cache.get(`held${round}`),
        cache.delete(`gone${round}`),
        r.get('h7:plain'),
        r.command(['FLUSHALL']),
        r.command(['SET', 'h7:lone', 'a\uD800b']),
        r.get('h7:\uDC00'),
      ]);
      assert.deepEqual(got, { status: 'fulfilled', value: { round } }, 'the value Redis holds');
      assert.deepEqual(del, { status: 'fulfilled', value: true });
      assert.deepEqual(plain, { status: 'fulfilled', value: 'p' });
      assert.equal(flush.status, 'rejected');
      assert.equal(flush.reason.code, 'L2_AUTH', flush.reason.message);
      for (const bad of [lone, loneKey]) {
        assert.equal(bad.status, 'rejected');
        assert.equal(bad.reason.code, 'INVALID_OPTION');
        assert.match(bad.reason.message, /lone surrogate/);
      }
      // They did share a request: FLUSHALL travelled with the others.
      const first = f.requests[0].commands.map((c) => c[0]);
      assert.ok(first.includes('FLUSHALL') && first.includes('GET') && first.includes('UNLINK'), `first request: ${first}`);
      assert.ok(f.requests.every((q) => !JSON.stringify(q.commands).includes('lone')), 'the lone surrogates were never sent');
      assert.equal(await r.command(['EXISTS', `h7:v:r|gone${round}`]), 0, 'the delete reached Redis');
    }
    const st = cache.stats();
    assert.deepEqual(st.l2.errors, {}, 'nothing of the others was counted as an error');
    assert.equal(st.breaker.state, 'closed');
    assert.equal(st.l2.hits, 6);
    assert.equal(await r.get('h7:plain'), 'p', 'FLUSHALL never ran');
  });

  test('an explicit pipeline and multi refuse a lone surrogate before sending', async () => {
    const f = recorder();
    const r = client({ fetch: f });
    await assert.rejects(r.pipeline([['GET', 'a'], ['SET', 'b', '\uD83D']]), { code: 'INVALID_OPTION' });
    await assert.rejects(r.multi([['SET', '\uDE00', 'v']]), { code: 'INVALID_OPTION' });
    assert.equal(f.requests.length, 0);
    assert.equal(await r.command(['ECHO', 'pair 😀 ok']), 'pair 😀 ok', 'a surrogate pair is fine');
  });
});

describe('requests are bounded by count and by bytes (finding 8)', () => {
  test('setMany of 10,001 entries reaches Redis', async () => {
    const f = recorder();
    const cache = tiered(client({ fetch: f }), 'h8n');
    const entries = Array.from({ length: 10_001 }, (_, i) => [`k${i}`, i]);
    await cache.setMany(entries);
    const st = cache.stats();
    assert.deepEqual(st.l2.errors, {});
    assert.equal(st.l2.writes, 10_001);
    assert.ok(f.requests.every((q) => q.commands.length <= 1000 && q.status === 200), 'within maxPipeline');
    const sent = f.requests.flatMap((q) => q.commands);
    assert.equal(sent.filter((c) => c[0] === 'SET' && c[1].startsWith('h8n:v:')).length, 10_001);
    // The coherence log: after the last SET, an entry per 64 keys.
    const xadds = sent.flatMap((c, i) => (c[0] === 'XADD' ? [i] : []));
    assert.equal(xadds.length, Math.ceil(10_001 / 64));
    assert.ok(xadds[0] > sent.findLastIndex((c) => c[0] === 'SET' && c[1].startsWith('h8n:v:')));
    const other = tiered(client(), 'h8n');
    assert.deepEqual(await other.getMany(['k0', 'k5000', 'k10000']), [0, 5000, 10_000]);
  });

  test('three concurrent sets over --max-body together each reach Redis', async () => {
    const f = recorder();
    const cache = tiered(new RedisRest({ url: small.url, token: TOKEN, fetch: f }), 'h8b');
    // Each envelope is about 670 kB: two fit no request of the default bound, three no body of this bridge.
    const big = (c) => c.repeat(500_000);
    await Promise.all(['a', 'b', 'c'].map((c) => cache.set(c, big(c))));
    const st = cache.stats();
    assert.deepEqual(st.l2.errors, {}, 'no 413, no breaker failure');
    assert.equal(st.l2.writes, 3);
    assert.ok(f.requests.every((q) => q.bytes <= DEFAULT_REQUEST && q.status === 200), JSON.stringify(f.requests.map((q) => [q.bytes, q.status])));
    const other = tiered(new RedisRest({ url: small.url, token: TOKEN }), 'h8b');
    assert.deepEqual(await other.getMany(['a', 'b', 'c']), [big('a'), big('b'), big('c')]);
  });

  test('an explicit pipeline is split by bytes and by count, and runs in order', async () => {
    const f = recorder();
    const r = new RedisRest({ url: small.url, token: TOKEN, fetch: f });
    // Three SETs of 600 kB: one body over --max-body, two over the default bound.
    const v = (c) => c.repeat(600_000) + '✓';
    const out = await r.pipeline([
      ['SET', 'p8:a', v('a')], ['GET', 'p8:a'], ['SET', 'p8:b', v('b')], ['GET', 'p8:b'],
      ['SET', 'p8:c', v('c')], ['GET', 'p8:c'], ['APPEND', 'p8:c', 'x'], ['STRLEN', 'p8:c'],
    ]);
    assert.deepEqual(out, [
      { ok: true, value: 'OK' }, { ok: true, value: v('a') }, { ok: true, value: 'OK' }, { ok: true, value: v('b') },
      { ok: true, value: 'OK' }, { ok: true, value: v('c') }, { ok: true, value: 600_004 }, { ok: true, value: 600_004 },
    ]);
    assert.deepEqual(f.requests.map((q) => q.commands.length), [2, 2, 4]);
    assert.ok(f.requests.every((q) => q.bytes <= DEFAULT_REQUEST), JSON.stringify(f.requests.map((q) => q.bytes)));

    f.requests.length = 0;
    const pushes = Array.from({ length: 2_500 }, (_, i) => ['RPUSH', 'p8:list', i]);
    const replies = await r.pipeline(pushes);
    assert.deepEqual(replies.map((o) => o.value), Array.from({ length: 2_500 }, (_, i) => i + 1), 'each RPUSH after the one before');
    assert.deepEqual(f.requests.map((q) => q.commands.length), [1000, 1000, 500]);
    const list = await r.command(['LRANGE', 'p8:list', 0, -1]);
    assert.deepEqual(list, Array.from({ length: 2_500 }, (_, i) => String(i)));
  });

  test('a command over the bound goes alone; one over --max-body fails only its caller', async () => {
    const f = recorder();
    const r = new RedisRest({ url: small.url, token: TOKEN, fetch: f });
    const alone = 'y'.repeat(DEFAULT_REQUEST + 50_000);
    const huge = 'z'.repeat(SMALL_BODY);
    await r.set('p8:small', 's');
    f.requests.length = 0;
    const [a, b, c, d] = await Promise.allSettled([r.set('p8:alone', alone), r.get('p8:small'), r.set('p8:huge', huge), r.get('p8:small')]);
    assert.deepEqual(a, { status: 'fulfilled', value: true });
    assert.deepEqual(b, { status: 'fulfilled', value: 's' });
    assert.deepEqual(d, { status: 'fulfilled', value: 's' });
    assert.equal(c.status, 'rejected');
    assert.equal(c.reason.code, 'L2_HTTP');
    assert.equal(c.reason.status, 413);
    assert.match(c.reason.message, /maxRequestBytes/);
    assert.equal(await r.get('p8:alone'), alone);
    assert.equal(await r.get('p8:huge'), null);
    const alones = f.requests.filter((q) => q.commands.length === 1 && q.commands[0][0] === 'SET');
    assert.equal(alones.length, 2, 'the two large SETs went alone');
  });

  test('concurrent pipelines share requests with commands, each kept whole and in order', async () => {
    const f = recorder();
    const r = client({ fetch: f });
    // 40 callers' pipelines (as 40 concurrent tier writes with their log appends) and 10 single commands.
    const pipes = Array.from({ length: 40 }, (_, i) => r.pipeline([['SET', `pg:${i}`, `v${i}`], ['INCR', `pg:n:${i}`], ['GET', `pg:${i}`], ['HGET', `pg:${i}`, 'x']]));
    const singles = Array.from({ length: 10 }, (_, i) => r.command(['ECHO', `e${i}`]));
    const outs = await Promise.all(pipes);
    assert.deepEqual(await Promise.all(singles), Array.from({ length: 10 }, (_, i) => `e${i}`));
    outs.forEach((o, i) => {
      assert.deepEqual(o.slice(0, 3), [{ ok: true, value: 'OK' }, { ok: true, value: 1 }, { ok: true, value: `v${i}` }]);
      assert.equal(o[3].ok, false, 'a command Redis refused is an outcome of its own pipeline, not a rejection');
      assert.match(o[3].error, /WRONGTYPE/);
    });
    assert.equal(f.requests.length, 1, `one request, not ${f.requests.length}`);
    assert.equal(f.requests[0].commands.length, 170);

    // Past maxPipeline, requests are cut between callers' pipelines, never inside one.
    const g = recorder();
    const small = client({ fetch: g, maxPipeline: 10 });
    const parts = await Promise.all(Array.from({ length: 7 }, (_, i) => small.pipeline([['SET', `pc:${i}`, 'a'], ['APPEND', `pc:${i}`, 'b'], ['GET', `pc:${i}`]])));
    for (const o of parts) assert.deepEqual(o.map((x) => x.value), ['OK', 2, 'ab']);
    assert.deepEqual(g.requests.map((q) => q.commands.length), [9, 9, 3]);
  });

  test('a request refused as a whole is halved between callers, never inside a pipeline', async () => {
    // An older bridge refuses a request with a denied command as a whole (403).
    const f = async (input, init) => {
      f.bodies.push(JSON.parse(init.body));
      if (init.body.includes('"FLUSHALL"')) return new Response('{"error":"ERR denied"}', { status: 403 });
      return fetch(input, init);
    };
    f.bodies = [];
    const r = client({ fetch: f });
    const [a, b, c] = await Promise.allSettled([
      r.pipeline([['SET', 'ph:a', '1'], ['GET', 'ph:a']]),
      r.pipeline([['SET', 'ph:b', '2'], ['FLUSHALL'], ['GET', 'ph:b']]),
      r.pipeline([['SET', 'ph:c', '3'], ['GET', 'ph:c']]),
    ]);
    assert.deepEqual(a.value.map((o) => o.value), ['OK', '1']);
    assert.deepEqual(c.value.map((o) => o.value), ['OK', '3']);
    assert.equal(b.status, 'rejected');
    const sent = f.bodies.slice();
    assert.ok(sent.length >= 3, 'halved, then sent again');
    assert.equal(await r.command(['GET', 'ph:b']), null, 'the refused pipeline ran none of its commands');
    for (const body of sent) {
      const text = JSON.stringify(body);
      // Every request holds whole pipelines: ph:b's SET never travels without its FLUSHALL.
      if (text.includes('"ph:b"')) assert.ok(text.includes('"FLUSHALL"'), text);
    }
  });

  test('maxRequestBytes is an option, checked, and bounds every request', async () => {
    for (const bad of [0, -1, 1.5, '1', NaN]) {
      assert.throws(() => client({ maxRequestBytes: bad }), { code: 'INVALID_OPTION' });
    }
    const f = recorder();
    const r = client({ fetch: f, maxRequestBytes: 40_000 });
    const got = await Promise.all(['a', 'b', 'c'].map((c) => r.set(`p8:opt:${c}`, c.repeat(25_000))));
    assert.deepEqual(got, [true, true, true]);
    assert.deepEqual(f.requests.map((q) => q.commands.length), [1, 1, 1]);
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
