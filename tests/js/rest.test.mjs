// RedisRest against a fault-injecting HTTP server of the tests' own, and
// the strict decoder against the corpus shared with the Rust core
// (tests/fixtures/rest.json). Every malformed answer must be a typed
// error, never a wrong value; INCRBY is never retried.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { RedisRest, EdgeCacheError } from '../../dist/index.js';
import { decodeCommand, decodePipeline } from '../../dist/rest.js';

const corpus = JSON.parse(readFileSync(new URL('../fixtures/rest.json', import.meta.url), 'utf8'));

describe('the strict decoder: the corpus shared with src/rest.rs', () => {
  for (const c of corpus) {
    test(c.name, () => {
      let got;
      try {
        got = c.pipeline !== undefined ? decodePipeline(c.status, c.body, c.pipeline, c.base64) : decodeCommand(c.status, c.body, c.base64);
      } catch (e) {
        assert.ok(e instanceof EdgeCacheError, `a typed error, got ${e}`);
        assert.equal(e.code, c.expect, e.message);
        return;
      }
      assert.equal('ok', c.expect, `decoded ${JSON.stringify(got)} where ${c.expect} was expected`);
      if ('value' in c) assert.deepEqual(got, c.value);
    });
  }

  test('integers JavaScript cannot hold exactly are refused, not rounded', () => {
    assert.throws(() => decodeCommand(200, '{"result":9007199254740993}', true), { code: 'L2_PROTOCOL' });
    assert.equal(decodeCommand(200, '{"result":9007199254740991}', true), 9007199254740991);
  });

  test('binary strings come back as bytes, text as strings', () => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    const b64 = Buffer.from(bytes).toString('base64');
    assert.deepEqual(decodeCommand(200, JSON.stringify({ result: b64 }), true), bytes);
    const text = 'Zoë 🚀 ✓';
    assert.equal(decodeCommand(200, JSON.stringify({ result: Buffer.from(text).toString('base64') }), true), text);
  });

  test('hostile nesting is refused', () => {
    const deep = `{"result":${'['.repeat(10_000)}1${']'.repeat(10_000)}}`;
    assert.throws(() => decodeCommand(200, deep, true), { code: 'L2_PROTOCOL' });
  });
});

// ---- a server that answers what each test tells it to ----

let server;
let url;
let handler = () => {};
const seen = [];

before(async () => {
  server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const entry = { method: req.method, url: req.url, headers: req.headers, body };
      seen.push(entry);
      handler(req, res, entry);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

function answer(status, body, headers = {}) {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(typeof body === 'string' ? body : JSON.stringify(body));
  };
}

/** Answers every command of a pipeline with `result` (base64 for strings). */
function ok(result) {
  return (_req, res, { body }) => {
    const n = JSON.parse(body).length;
    const enc = typeof result === 'string' && result !== 'OK' ? Buffer.from(result).toString('base64') : result;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(Array.from({ length: n }, () => ({ result: enc }))));
  };
}

function client(opts = {}) {
  return new RedisRest({ url, token: 'secret', timeout: 500, ...opts });
}

describe('RedisRest against a fault-injecting server', () => {
  test('sends the token, asks for base64, decodes it, and keeps the sync token', async () => {
    seen.length = 0;
    handler = (req, res, e) => {
      const n = JSON.parse(e.body).length;
      res.writeHead(200, { 'content-type': 'application/json', 'upstash-sync-token': `t${seen.length}` });
      res.end(JSON.stringify(Array.from({ length: n }, () => ({ result: Buffer.from('héllo').toString('base64') }))));
    };
    const r = client();
    assert.equal(await r.get('k'), 'héllo');
    assert.equal(await r.get('k'), 'héllo');
    assert.equal(seen[0].url, '/pipeline');
    assert.equal(seen[0].headers.authorization, 'Bearer secret');
    assert.equal(seen[0].headers['upstash-encoding'], 'base64');
    assert.deepEqual(JSON.parse(seen[0].body), [['GET', 'k']]);
    assert.equal(seen[0].headers['upstash-sync-token'], undefined);
    assert.equal(seen[1].headers['upstash-sync-token'], 't1');
  });

  test('commands of one tick travel in one request, in order, split at maxPipeline', async () => {
    seen.length = 0;
    handler = (_req, res, { body }) => {
      const cmds = JSON.parse(body);
      res.writeHead(200);
      res.end(JSON.stringify(cmds.map((c) => ({ result: Buffer.from(c[1]).toString('base64') }))));
    };
    const r = client({ maxPipeline: 40 });
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const got = await Promise.all(keys.map((k) => r.get(k)));
    assert.deepEqual(got, keys);
    assert.deepEqual(seen.map((s) => JSON.parse(s.body).length), [40, 40, 20]);
  });

  const malformed = [
    ['not JSON', answer(200, '<html>oops</html>'), 'L2_PROTOCOL'],
    ['truncated body', answer(200, '[{"result":"YQ'), 'L2_PROTOCOL'],
    ['wrong shape', answer(200, { result: 'YQ==' }), 'L2_PROTOCOL'],
    ['a short pipeline answer', answer(200, []), 'L2_PROTOCOL'],
    ['bad base64', answer(200, [{ result: '%%%%' }]), 'L2_PROTOCOL'],
    ['a float', answer(200, [{ result: 1.5 }]), 'L2_PROTOCOL'],
    ['500', answer(500, 'Internal Server Error'), 'L2_HTTP'],
    ['503 with JSON', answer(503, { error: 'redis is unreachable' }), 'L2_HTTP'],
    ['401', answer(401, { error: 'WRONGPASS invalid or missing auth token' }), 'L2_AUTH'],
    ['403', answer(403, { error: 'ERR command is not allowed' }), 'L2_AUTH'],
  ];
  for (const [name, h, code] of malformed) {
    test(`${name} is ${code}, never a value`, async () => {
      handler = h;
      await assert.rejects(client().get('k'), (e) => e instanceof EdgeCacheError && e.code === code);
    });
  }

  test('a result of the wrong type for a typed helper is L2_PROTOCOL', async () => {
    handler = ok(5);
    await assert.rejects(client().get('k'), { code: 'L2_PROTOCOL' });
    handler = ok('x');
    await assert.rejects(client().incrby('k', 1), { code: 'L2_PROTOCOL' });
  });

  test('a Redis error fails only its own command', async () => {
    handler = (_req, res, { body }) => {
      const cmds = JSON.parse(body);
      res.writeHead(200);
      res.end(JSON.stringify(cmds.map((c) => (c[0] === 'INCRBY' ? { error: 'ERR value is not an integer or out of range' } : { result: 'YQ==' }))));
    };
    const r = client();
    const [a, b] = await Promise.allSettled([r.get('x'), r.incrby('y', 1)]);
    assert.deepEqual(a, { status: 'fulfilled', value: 'a' });
    assert.equal(b.status, 'rejected');
    assert.equal(b.reason.code, 'L2_REDIS');
    assert.match(b.reason.message, /not an integer/);
  });

  test('a NOPERM entry (a denied command answered per entry) is L2_AUTH for its caller only', async () => {
    handler = (_req, res, { body }) => {
      const cmds = JSON.parse(body);
      res.writeHead(200);
      res.end(JSON.stringify(cmds.map((c) => (c[0] === 'FLUSHALL' ? { error: "NOPERM 'FLUSHALL' is on the bridge's deny list (see --allow)" } : { result: 'YQ==' }))));
    };
    const r = client();
    const [a, b, c] = await Promise.allSettled([r.get('x'), r.command(['FLUSHALL']), r.get('y')]);
    assert.deepEqual(a, { status: 'fulfilled', value: 'a' });
    assert.deepEqual(c, { status: 'fulfilled', value: 'a' });
    assert.equal(b.reason.code, 'L2_AUTH');
    assert.match(b.reason.message, /deny list/);
  });

  test('a request refused as a whole is cut in halves until the refusal reaches only its caller', async () => {
    seen.length = 0;
    // A server that refuses a whole pipeline for one denied command, as the bridge did.
    handler = (_req, res, { body }) => {
      const cmds = JSON.parse(body);
      if (cmds.some((c) => c[0] === 'FLUSHALL')) return answer(403, { error: "NOPERM 'FLUSHALL' is on the bridge's deny list" })(_req, res);
      res.writeHead(200);
      res.end(JSON.stringify(cmds.map((c) => ({ result: Buffer.from(c[1]).toString('base64') }))));
    };
    const r = client();
    const keys = Array.from({ length: 64 }, (_, i) => `k${i}`);
    const calls = keys.map((k, i) => (i === 37 ? r.command(['FLUSHALL']) : r.get(k)));
    const got = await Promise.allSettled(calls);
    for (const [i, g] of got.entries()) {
      if (i === 37) assert.equal(g.reason.code, 'L2_AUTH');
      else assert.deepEqual(g, { status: 'fulfilled', value: keys[i] });
    }
    assert.ok(seen.length <= 1 + 2 * Math.log2(64), `${seen.length} requests`);
    // Two refused callers among eight.
    seen.length = 0;
    const two = await Promise.allSettled([r.get('a'), r.command(['FLUSHALL']), r.get('b'), r.get('c'), r.get('d'), r.get('e'), r.command(['FLUSHALL']), r.get('f')]);
    assert.deepEqual(two.map((g) => g.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    // A 401 is the token: every caller's, not split.
    seen.length = 0;
    handler = answer(401, { error: 'WRONGPASS invalid or missing auth token' });
    const all = await Promise.allSettled([r.get('a'), r.get('b'), r.get('c')]);
    assert.ok(all.every((g) => g.reason.code === 'L2_AUTH'));
    assert.equal(seen.length, 1);
  });

  test('multi asks for base64, as the pipeline does', async () => {
    seen.length = 0;
    handler = ok('QUJD');
    assert.deepEqual(await client().multi([['GET', 'k']]), [{ ok: true, value: 'QUJD' }]);
    assert.equal(seen[0].url, '/multi-exec');
    assert.equal(seen[0].headers['upstash-encoding'], 'base64');
  });

  test('a slow answer past the timeout is L2_TIMEOUT', async () => {
    handler = (_req, res) => setTimeout(() => ok('late')(_req, res, { body: '[[1]]' }), 1500);
    const t0 = Date.now();
    await assert.rejects(client({ timeout: 200 }).get('k'), { code: 'L2_TIMEOUT' });
    assert.ok(Date.now() - t0 < 1200, 'gave up at the timeout');
  });

  test('network failures: GET is retried, INCRBY never', async () => {
    let calls = 0;
    handler = (req, res, e) => {
      calls++;
      if (calls === 1) return req.socket.destroy();
      ok(1)(req, res, e);
    };
    seen.length = 0;
    const r = client({ retries: 2 });
    await assert.doesNotReject(r.command(['GET', 'k']));
    assert.equal(calls, 2, 'one reset, one retry');

    calls = 0;
    handler = (req) => {
      calls++;
      req.socket.destroy();
    };
    await assert.rejects(r.incrby('counter', 1), { code: 'L2_HTTP' });
    assert.equal(calls, 1, 'INCRBY went out once');
    calls = 0;
    await assert.rejects(r.get('k'), { code: 'L2_HTTP' });
    assert.equal(calls, 3, 'GET: the first try and 2 retries');
  });

  test('a pipeline that mixes INCRBY with reads is not retried', async () => {
    let calls = 0;
    handler = (req) => {
      calls++;
      req.socket.destroy();
    };
    const r = client({ retries: 3 });
    const both = await Promise.allSettled([r.get('a'), r.incrby('n', 1)]);
    assert.ok(both.every((x) => x.status === 'rejected' && x.reason.code === 'L2_HTTP'));
    assert.equal(calls, 1);
  });

  test('SET NX is not retried; plain SET is', async () => {
    let calls = 0;
    handler = (req) => {
      calls++;
      req.socket.destroy();
    };
    const r = client({ retries: 1 });
    await assert.rejects(r.set('k', 'v', { nx: true }), { code: 'L2_HTTP' });
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(r.set('k', 'v', { px: 10 }), { code: 'L2_HTTP' });
    assert.equal(calls, 2);
  });

  test('an unreachable server is L2_HTTP', async () => {
    const r = new RedisRest({ url: 'http://127.0.0.1:1', token: 't', retries: 0, timeout: 2000 });
    await assert.rejects(r.get('k'), { code: 'L2_HTTP' });
  });

  test('options and commands are checked', () => {
    assert.throws(() => new RedisRest({ url: 'ftp://x', token: 't' }), { code: 'INVALID_OPTION' });
    assert.throws(() => new RedisRest({ url, token: '' }), { code: 'INVALID_OPTION' });
    assert.throws(() => new RedisRest({ url, token: 't', timout: 5 }), { code: 'INVALID_OPTION' });
    assert.throws(() => new RedisRest({ url, token: 't', retries: -1 }), { code: 'INVALID_OPTION' });
    assert.throws(() => new RedisRest({ url, token: 't', maxRequestBytes: 0 }), { code: 'INVALID_OPTION' });
    return assert.rejects(client().command(['SET', 'k', {}]), { code: 'INVALID_OPTION' });
  });

  test('fromEnv reads EDGECACHE_* first, then UPSTASH_*, and names what is missing', () => {
    assert.ok(RedisRest.fromEnv({ EDGECACHE_REDIS_URL: url, EDGECACHE_REDIS_TOKEN: 't' }) instanceof RedisRest);
    assert.ok(RedisRest.fromEnv({ UPSTASH_REDIS_REST_URL: url, UPSTASH_REDIS_REST_TOKEN: 't' }) instanceof RedisRest);
    assert.throws(() => RedisRest.fromEnv({ EDGECACHE_REDIS_URL: url }), (e) => e.code === 'INVALID_OPTION' && /wrangler secret put EDGECACHE_REDIS_TOKEN/.test(e.message));
    assert.throws(() => RedisRest.fromEnv({}), (e) => e.code === 'INVALID_OPTION' && /EDGECACHE_REDIS_URL/.test(e.message));
  });

  test('fromEnv names a fix for Node as well as for a Worker', () => {
    assert.throws(() => RedisRest.fromEnv({}), (e) => /an environment variable; in a Worker, \[vars\] in wrangler\.toml/.test(e.message));
    assert.throws(() => RedisRest.fromEnv({ EDGECACHE_REDIS_URL: url }), (e) => /an environment variable; in a Worker, a secret/.test(e.message));
  });
});
