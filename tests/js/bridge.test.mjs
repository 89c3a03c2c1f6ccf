// edgecache-bridge against a real redis-server on loopback: the protocol,
// every status code, base64, pipelines, transactions, shutdown, Redis going
// away and coming back, and the official @upstash/redis client, unchanged.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Redis } from '@upstash/redis';
import { startRedis, startBridge, startBridgeOn, startProxy } from './servers.mjs';

const TOKEN = 'test-token-0123456789abcdef';
const RO = 'read-only-token-0123456789';
const MAX_BODY = 64 * 1024;

let redis;
let bridge;
before(async () => {
  redis = await startRedis();
  bridge = await startBridge({
    redisUrl: redis.url,
    token: TOKEN,
    args: ['--read-only-token', RO, '--max-body', String(MAX_BODY)],
  });
});
after(async () => {
  await bridge?.stop();
  await redis?.stop();
});

const cli = (r, ...args) => execFileSync('redis-cli', ['-p', String(r.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');

/** One request; resolves to { status, body (parsed JSON), headers }. */
async function call(path, { method = 'POST', body, token = TOKEN, headers = {}, base = bridge.url } = {}) {
  const h = { ...headers };
  if (token !== null) h.authorization = `Bearer ${token}`;
  const init = { method, headers: h };
  if (body !== undefined) {
    init.body = typeof body === 'string' || body instanceof Uint8Array || body instanceof ReadableStream ? body : JSON.stringify(body);
    if (body instanceof ReadableStream) init.duplex = 'half';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    assert.fail(`${method} ${path} answered ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

const b64 = (s) => Buffer.from(s).toString('base64');

describe('edgecache-bridge: the protocol', () => {
  test('POST / runs one JSON command; numbers and booleans are arguments', async () => {
    const set = await call('/', { body: ['SET', 'p:1', 'v1', 'EX', 100] });
    assert.equal(set.status, 200);
    assert.deepEqual(set.body, { result: 'OK' });
    assert.equal(set.headers.get('content-type'), 'application/json');
    const ttl = Number(cli(redis, 'TTL', 'p:1'));
    assert.ok(ttl > 90 && ttl <= 100, `TTL ${ttl}`);
    assert.deepEqual((await call('/', { body: ['GET', 'p:1'] })).body, { result: 'v1' });
    assert.deepEqual((await call('/', { body: ['INCRBY', 'p:n', 5] })).body, { result: 5 });
    assert.deepEqual((await call('/', { body: ['SET', 'p:b', true] })).body, { result: 'OK' });
    assert.equal(cli(redis, 'GET', 'p:b'), 'true');
    assert.deepEqual((await call('/', { body: ['GET', 'p:none'] })).body, { result: null });
  });

  test('the path form, percent-decoded, with a POST or PUT body as the last argument', async () => {
    assert.deepEqual((await call('/set/p%2Fpath/h%C3%A9llo/EX/100', { method: 'GET' })).body, { result: 'OK' });
    assert.equal(cli(redis, 'GET', 'p/path'), 'héllo');
    assert.deepEqual((await call('/get/p%2Fpath', { method: 'GET' })).body, { result: 'héllo' });
    assert.deepEqual((await call('/set/p:posted', { body: 'from the body' })).body, { result: 'OK' });
    assert.deepEqual((await call('/set/p:put/EX/50', { method: 'PUT', body: 'put body' })).status, 400, 'the body is the last argument: SET k EX 50 <body> is a syntax error');
    assert.deepEqual((await call('/set/p:put', { method: 'PUT', body: 'put body' })).body, { result: 'OK' });
    assert.equal(cli(redis, 'GET', 'p:put'), 'put body');
    assert.deepEqual((await call('/get/p:posted', { method: 'GET' })).body, { result: 'from the body' });
  });

  test('base64: every string but OK, recursively; errors never; binary values byte for byte', async () => {
    const bytes = new Uint8Array(256).map((_, i) => i);
    assert.deepEqual((await call('/set/p:bin', { body: bytes })).body, { result: 'OK' });
    assert.equal(cli(redis, 'STRLEN', 'p:bin'), '256');
    const enc = { 'upstash-encoding': 'base64' };
    const got = await call('/get/p:bin', { method: 'GET', headers: enc });
    assert.deepEqual(Buffer.from(got.body.result, 'base64'), Buffer.from(bytes));
    const p = await call('/pipeline', {
      headers: enc,
      body: [['SET', 'p:s', 'OK'], ['SET', 'p:t', 'text'], ['MGET', 'p:t', 'p:missing', 'p:s'], ['INCR', 'p:t'], ['PING'], ['INCR', 'p:cnt']],
    });
    assert.equal(p.status, 200);
    assert.deepEqual(p.body, [
      { result: 'OK' },
      { result: 'OK' },
      { result: [b64('text'), null, 'OK'] },
      { error: 'ERR value is not an integer or out of range' },
      { result: b64('PONG') },
      { result: 1 },
    ]);
    const plain = await call('/pipeline', { body: [['GET', 'p:t'], ['ECHO', 'héllo ✓']] });
    assert.deepEqual(plain.body, [{ result: 'text' }, { result: 'héllo ✓' }]);
  });

  test('pipelines answer one outcome per command, in order', async () => {
    const cmds = [];
    for (let i = 0; i < 300; i++) cmds.push(i % 3 === 2 ? ['INCR', 'p:order'] : i % 3 === 0 ? ['SET', `p:o${i}`, String(i)] : ['GET', `p:o${i - 1}`]);
    const { status, body } = await call('/pipeline', { body: cmds });
    assert.equal(status, 200);
    assert.equal(body.length, 300);
    for (let i = 0; i < 300; i++) {
      const want = i % 3 === 2 ? (i + 1) / 3 : i % 3 === 0 ? 'OK' : String(i - 1);
      assert.deepEqual(body[i], { result: want }, `command ${i}`);
    }
  });

  test('every status code answers JSON with result or error', async () => {
    await call('/set/p:str/abc', { method: 'GET' });
    const cases = [
      [400, await call('/', { body: ['INCR', 'p:str'] }), /^ERR value is not an integer/],
      [400, await call('/', { body: '["SET","k"' }), /^ERR failed to parse the request body as JSON/],
      [400, await call('/', { body: [] }), /^ERR failed to parse|^ERR empty command/],
      [400, await call('/', { body: ['SET', 'k', { a: 1 }] }), /a string, a number or a boolean/],
      [400, await call('/', { body: ['FLUSHALL ASYNC'] }), /^ERR unknown command/],
      [400, await call('/pipeline', { body: [['GET', 'a'], 'GET'] }), /^ERR failed to parse/],
      [400, await call('/', { body: new Uint8Array([0x5b, 0x22, 0xff, 0x22, 0x5d]) }), /^ERR failed to parse/],
      [401, await call('/', { body: ['PING'], token: null }), /^WRONGPASS invalid or missing auth token$/],
      [401, await call('/', { body: ['PING'], token: 'wrong-token-0123456789' }), /^WRONGPASS/],
      [401, await call('/get/x?_token=nope', { method: 'GET', token: null }), /^WRONGPASS/],
      [403, await call('/', { body: ['FLUSHALL'] }), /deny list/],
      [403, await call('/', { body: ['CONFIG', 'SET', 'save', ''] }), /deny list/],
      [403, await call('/', { body: ['EVAL', 'return 1', 0] }), /deny list/],
      [403, await call('/', { body: ['BLPOP', 'q', 0] }), /cannot run through the bridge/],
      [403, await call('/', { body: ['SELECT', 1] }), /cannot run through the bridge/],
      [403, await call('/multi-exec', { body: [['GET', 'a'], ['SUBSCRIBE', 'c']] }), /cannot run through the bridge/],
      [403, await call('/', { body: ['SET', 'p:ro', 'x'], token: RO }), /read-only/],
      [405, await call('/pipeline', { method: 'GET' }), /method not allowed/],
      [405, await call('/get/x', { method: 'DELETE' }), /method not allowed/],
      [405, await call('/', { method: 'PUT', body: ['PING'] }), /method not allowed/],
    ];
    for (const [status, res, msg] of cases) {
      assert.equal(res.status, status, JSON.stringify(res.body));
      assert.match(res.body.error, msg);
      assert.ok(res.headers.get('upstash-sync-token'), 'every answer carries the sync token');
    }
    assert.equal(cli(redis, 'EXISTS', 'p:ro'), '0', 'the read-only token wrote nothing');
    assert.deepEqual((await call(`/get/p:str?_token=${RO}`, { method: 'GET', token: null })).body, { result: 'abc' });
    assert.deepEqual((await call('/', { body: ['DBSIZE'], token: RO })).status, 200);
    assert.equal((await call('/multi-exec', { body: [['GET', 'a'], ['DEL', 'a']], token: RO })).status, 403, 'one write refuses the whole transaction');
  });

  test('a pipeline answers each command in its place: a refused or malformed one gets its own error, the others run', async () => {
    await call('/set/pp:k/v', { method: 'GET' });
    // JSON.stringify escapes a lone surrogate: valid JSON, no Unicode text.
    const body = `[["INCR","pp:n"],["FLUSHALL"],["SET","pp:bad","\\ud800"],["SUBSCRIBE","c"],["GET","pp:k"],["SET",{"a":1}],[],["INCR","pp:n"]]`;
    assert.equal(JSON.parse(body)[2][2], '\ud800');
    const r = await call('/pipeline', { body });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.length, 8);
    assert.deepEqual(r.body[0], { result: 1 });
    assert.match(r.body[1].error, /^NOPERM 'FLUSHALL' is on the bridge's deny list/);
    assert.match(r.body[2].error, /^ERR failed to parse this command as JSON/);
    assert.match(r.body[3].error, /^NOPERM 'SUBSCRIBE' cannot run through the bridge/);
    assert.deepEqual(r.body[4], { result: 'v' });
    assert.match(r.body[5].error, /a string, a number or a boolean/);
    assert.equal(r.body[6].error, 'ERR empty command');
    assert.deepEqual(r.body[7], { result: 2 }, 'the commands around the refused ones ran, in order');
    assert.equal(cli(redis, 'EXISTS', 'pp:k'), '1', 'FLUSHALL did not run');
    assert.equal(cli(redis, 'EXISTS', 'pp:bad'), '0');
    // The read-only token: its writes are refused in their places.
    const ro = await call('/pipeline', { body: [['GET', 'pp:k'], ['DEL', 'pp:k'], ['EVAL_RO', 'return 1', 0]], token: RO });
    assert.equal(ro.status, 200);
    assert.deepEqual(ro.body[0], { result: 'v' });
    assert.match(ro.body[1].error, /^NOPERM this token is read-only/);
    assert.ok(ro.body[2].error, 'no script for the read-only token');
    assert.equal(cli(redis, 'EXISTS', 'pp:k'), '1');
    // Every command refused: nothing goes to Redis, still one answer each.
    const none = await call('/pipeline', { body: [['FLUSHDB'], ['MONITOR']] });
    assert.equal(none.status, 200);
    assert.equal(none.body.length, 2);
    // A body that is not an array of commands is refused whole.
    for (const bad of ['[["GET","a"],"GET"]', '["GET","a"]', '[]', '[["GET","a"]', '{"cmd":["GET"]}']) {
      const res = await call('/pipeline', { body: bad });
      assert.equal(res.status, 400, bad);
      assert.match(res.body.error, /^ERR (failed to parse the request body as JSON|no commands)/, bad);
    }
  });

  test('413 for a body over --max-body: at once when Content-Length says so, else while reading', async () => {
    const big = 'x'.repeat(MAX_BODY + 1);
    const r = await call('/set/p:big', { body: big });
    assert.equal(r.status, 413);
    assert.match(r.body.error, /--max-body/);
    // A chunked body has no length up front: the bridge stops reading once
    // it passes the limit and answers, while the client is still sending.
    const { status, sent } = await new Promise((resolve, reject) => {
      const sock = net.connect(new URL(bridge.url).port, '127.0.0.1');
      let sent = 0;
      let answer = '';
      sock.on('data', (d) => {
        answer += d;
        const m = /^HTTP\/1\.1 (\d+)/.exec(answer);
        if (m) {
          sock.destroy();
          resolve({ status: Number(m[1]), sent });
        }
      });
      sock.on('error', () => {});
      sock.on('close', () => reject(new Error(`closed without an answer after ${sent} bytes`)));
      sock.write(`POST /set/p:big HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ntransfer-encoding: chunked\r\n\r\n`);
      const chunk = `4000\r\n${'a'.repeat(0x4000)}\r\n`;
      const pump = () => {
        while (sent < 8 * MAX_BODY && !sock.destroyed) {
          sent += 0x4000;
          if (!sock.write(chunk)) return sock.once('drain', pump);
        }
        if (!sock.destroyed) sock.write('0\r\n\r\n');
      };
      pump();
    });
    assert.equal(status, 413);
    assert.equal(cli(redis, 'EXISTS', 'p:big'), '0');
    assert.equal((await call('/set/p:fits', { body: 'x'.repeat(MAX_BODY - 100) })).status, 200);
  });

  test('the sync token increases with every write, not with reads', async () => {
    const t0 = BigInt((await call('/', { body: ['GET', 'a'] })).headers.get('upstash-sync-token'));
    const t1 = BigInt((await call('/', { body: ['SET', 'p:sync', 1] })).headers.get('upstash-sync-token'));
    const t2 = BigInt((await call('/', { body: ['GET', 'p:sync'] })).headers.get('upstash-sync-token'));
    const t3 = BigInt((await call('/pipeline', { body: [['INCR', 'p:sync']] })).headers.get('upstash-sync-token'));
    assert.ok(t1 > t0 && t2 === t1 && t3 > t2, `${t0} ${t1} ${t2} ${t3}`);
  });
});

describe('edgecache-bridge: transactions', () => {
  test('concurrent multi-execs never interleave', async () => {
    const runs = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        call('/multi-exec', { body: [['SET', 'tx:k', `v${i}`], ['APPEND', 'tx:k', '-'], ['GET', 'tx:k'], ['INCR', 'tx:n']] }),
      ),
    );
    const counts = new Set();
    runs.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.slice(0, 3), [{ result: 'OK' }, { result: `v${i}-`.length }, { result: `v${i}-` }]);
      counts.add(r.body[3].result);
    });
    assert.equal(counts.size, 24, 'each INCR ran once, in its own transaction');
  });

  test('a runtime error is that command\'s outcome; a discarded transaction is one 400; WATCH is refused', async () => {
    const ok = await call('/multi-exec', { body: [['SET', 'tx:s', 'x'], ['INCR', 'tx:s'], ['GET', 'tx:s']] });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, [{ result: 'OK' }, { error: 'ERR value is not an integer or out of range' }, { result: 'x' }]);
    const discarded = await call('/multi-exec', { body: [['SET', 'tx:d', '1'], ['SET', 'tx:d']] });
    assert.equal(discarded.status, 400);
    assert.match(discarded.body.error, /^EXECABORT/);
    assert.equal(cli(redis, 'EXISTS', 'tx:d'), '0', 'nothing of a discarded transaction ran');
    assert.equal((await call('/multi-exec', { body: [['WATCH', 'tx:s'], ['GET', 'tx:s']] })).status, 403);
    const after = await call('/multi-exec', { body: [['INCR', 'tx:after']] });
    assert.deepEqual(after.body, [{ result: 1 }], 'the transaction connection is clean afterwards');
  });
});

describe('edgecache-bridge: one round trip per pipeline, Redis down, shutdown', () => {
  test('a pipeline is one round trip to Redis', async () => {
    const proxy = await startProxy(redis.port);
    const slow = await startBridge({ redisUrl: `redis://127.0.0.1:${proxy.port}`, token: TOKEN });
    try {
      proxy.setDelay(150);
      const t0 = Date.now();
      const r = await call('/pipeline', { base: slow.url, body: Array.from({ length: 40 }, () => ['INCR', 'rt:n']) });
      const ms = Date.now() - t0;
      assert.equal(r.status, 200);
      assert.deepEqual(r.body.map((o) => o.result), Array.from({ length: 40 }, (_, i) => i + 1));
      // 40 round trips would take 40 x 2 x 150 ms = 12 s.
      assert.ok(ms < 2_500, `40 commands took ${ms} ms through a 150 ms link`);
    } finally {
      await slow.stop();
      await proxy.stop();
    }
  });

  test('Redis down: 503 at once, /healthz says so, and it recovers by itself', async () => {
    const r2 = await startRedis();
    const b2 = await startBridge({ redisUrl: r2.url, token: TOKEN });
    try {
      assert.deepEqual((await call('/set/d:k/v', { base: b2.url, method: 'GET' })).body, { result: 'OK' });
      r2.proc.kill('SIGKILL');
      await r2.stop();
      const t0 = Date.now();
      const down = await call('/get/d:k', { base: b2.url, method: 'GET' });
      assert.equal(down.status, 503);
      assert.match(down.body.error, /Redis is unreachable/);
      assert.ok(Date.now() - t0 < 3_000, 'it fails fast');
      assert.equal((await fetch(`${b2.url}/healthz`)).status, 503);
      // The same port again: the bridge reconnects without a restart.
      const back = execFileSync('redis-server', ['--port', String(r2.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes']);
      void back;
      // Reconnection backs off to 1 s; a loaded CI machine needs slack.
      const deadline = Date.now() + 20_000;
      let res;
      while (Date.now() < deadline) {
        res = await call('/set/d:k/again', { base: b2.url, method: 'GET' });
        if (res.status === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(res.status, 200, 'recovered');
      assert.equal((await fetch(`${b2.url}/healthz`)).status, 200);
    } finally {
      await b2.stop();
      try {
        execFileSync('redis-cli', ['-p', String(r2.port), 'shutdown', 'nosave']);
      } catch {}
    }
  });

  test('the first /multi-exec right after "listening on" runs: every connection is up before the bridge says it listens', async () => {
    for (let i = 0; i < 5; i++) {
      const b = await startBridgeOn(0, { redisUrl: redis.url, token: TOKEN, waitHealthy: false });
      try {
        const [tx, one] = await Promise.all([
          call('/multi-exec', { base: b.url, body: [['INCR', 'st:n'], ['ECHO', 'x']] }),
          call('/', { base: b.url, body: ['PING'] }),
        ]);
        assert.equal(tx.status, 200, `start ${i}: ${JSON.stringify(tx.body)}`);
        assert.deepEqual(tx.body[1], { result: 'x' });
        assert.deepEqual(one.body, { result: 'PONG' });
      } finally {
        await b.stop();
      }
    }
  });

  test('SIGTERM finishes the requests in flight, then exits 0', async () => {
    const proxy = await startProxy(redis.port);
    const b3 = await startBridge({ redisUrl: `redis://127.0.0.1:${proxy.port}`, token: TOKEN });
    try {
      proxy.setDelay(300);
      const inflight = Array.from({ length: 5 }, (_, i) => call('/', { base: b3.url, body: ['SET', `sd:${i}`, 'v'] }));
      await new Promise((r) => setTimeout(r, 150));
      const exited = new Promise((r) => b3.proc.once('exit', (code) => r(code)));
      b3.proc.kill('SIGTERM');
      const done = await Promise.all(inflight);
      assert.deepEqual(done.map((d) => d.status), [200, 200, 200, 200, 200]);
      assert.equal(await exited, 0);
      await assert.rejects(fetch(`${b3.url}/healthz`), 'no longer listening');
      for (let i = 0; i < 5; i++) assert.equal(cli(redis, 'GET', `sd:${i}`), 'v');
    } finally {
      await b3.stop();
      await proxy.stop();
    }
  });
});

describe('edgecache-bridge: the official @upstash/redis client, unchanged', () => {
  const client = () => new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false });

  test('get/set with EX, incr/incrby, mget with a missing key, hset/hgetall', async () => {
    const r = client();
    assert.equal(await r.set('up:k', 'v', { ex: 100 }), 'OK');
    assert.equal(await r.get('up:k'), 'v');
    const ttl = await r.ttl('up:k');
    assert.ok(ttl > 90 && ttl <= 100);
    assert.equal(await r.incr('up:n'), 1);
    assert.equal(await r.incrby('up:n', 41), 42);
    assert.deepEqual(await r.mget('up:k', 'up:missing', 'up:n'), ['v', null, 42]);
    assert.equal(await r.hset('up:h', { a: '1', b: 'two' }), 2);
    assert.deepEqual(await r.hgetall('up:h'), { a: 1, b: 'two' });
  });

  test('an explicit pipeline and a multi-exec', async () => {
    const r = client();
    const p = r.pipeline();
    p.set('up:p', 1);
    p.incr('up:p');
    p.get('up:p');
    assert.deepEqual(await p.exec(), ['OK', 2, 2]);
    const tx = r.multi();
    tx.set('up:t', 'a');
    tx.append('up:t', 'b');
    tx.get('up:t');
    assert.deepEqual(await tx.exec(), ['OK', 2, 'ab']);
  });

  test('100 commands in one Promise.all travel auto-pipelined', async () => {
    const r = new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false, enableAutoPipelining: true });
    const before = Number(cli(redis, 'INFO', 'stats').match(/total_commands_processed:(\d+)/)[1]);
    const got = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? r.incr('up:auto') : r.set(`up:a${i}`, i))));
    assert.equal(got.filter((x) => x === 'OK').length, 50);
    assert.deepEqual(got.filter((x) => typeof x === 'number').sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
    const after = Number(cli(redis, 'INFO', 'stats').match(/total_commands_processed:(\d+)/)[1]);
    assert.ok(after - before >= 100, 'every command ran');
  });

  test('a JSON object with non-ASCII text, and a binary value', async () => {
    const r = client();
    const doc = { name: 'Ada Lovelace', city: 'Zürich', emoji: '🦀', jp: '東京', quote: '"x" \\ y' };
    await r.set('up:json', doc);
    assert.deepEqual(await r.get('up:json'), doc);
    const raw = '\u0000\u0001\u007f\u0080\u00ff\ud7ff\ue000\uffff';
    await r.set('up:bin', raw);
    const back = await new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false, automaticDeserialization: false }).get('up:bin');
    assert.equal(back, raw);
    assert.deepEqual(Buffer.from(cli(redis, 'GET', 'up:bin'), 'utf8').subarray(0, 3), Buffer.from([0, 1, 0x7f]));
  });

  test('auto-pipelined: one caller\'s refused or malformed command fails that caller only', async () => {
    const r = new Redis({ url: bridge.url, token: TOKEN, enableTelemetry: false, enableAutoPipelining: true });
    const [a, refused, bad, b] = await Promise.allSettled([
      r.set('up:ap', 'x'),
      r.flushall(),
      r.set('up:ap-bad', '\ud800'),
      r.incr('up:ap-n'),
    ]);
    assert.equal(a.status, 'fulfilled');
    assert.equal(a.value, 'OK');
    assert.equal(refused.status, 'rejected');
    assert.match(refused.reason.message, /deny list/);
    assert.equal(bad.status, 'rejected');
    assert.match(bad.reason.message, /failed to parse this command/);
    assert.equal(b.status, 'fulfilled');
    assert.equal(b.value, 1);
    assert.equal(cli(redis, 'GET', 'up:ap'), 'x', 'FLUSHALL did not run');
  });

  test('a Redis error and a wrong token', async () => {
    const r = client();
    await r.set('up:str', 'abc');
    await assert.rejects(r.incr('up:str'), /ERR value is not an integer/);
    const bad = new Redis({ url: bridge.url, token: 'wrong-token-0123456789', enableTelemetry: false, retry: false });
    await assert.rejects(bad.get('up:k'), /WRONGPASS/);
  });
});
