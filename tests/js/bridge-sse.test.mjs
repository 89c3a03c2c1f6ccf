// edgecache-bridge's subscribe over server-sent events (bridge/src/sse.rs)
// against a real redis-server, with @upstash/redis 1.39 unchanged as the
// client (its redis.subscribe()/psubscribe()), and a plain fetch reading
// the stream as the SSE standard reads it: confirmations and messages,
// messages published through the bridge and straight to Redis, 50
// subscribers, each stream's own Redis connection freed when the client
// leaves, the --max-streams bound, SIGTERM, Redis lost or silent, tokens;
// and edgecache's own RedisRest.subscribe()/psubscribe() on the same stream.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { Redis } from '@upstash/redis';
import { redisAndBridge, startRedis, startBridge } from './servers.mjs';
import { RedisRest, EdgeCacheError } from '../../dist/index.js';

const TOKEN = 'sse-token-0123456789abcdef';
const RO = 'sse-read-only-0123456789ab';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cli = (r, ...args) => execFileSync('redis-cli', ['-p', String(r.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');
const upstash = (b, token = TOKEN) => new Redis({ url: b.url, token, enableTelemetry: false });

/** Resolves once `cond()` is true; fails after `ms` with `what`. */
async function until(cond, what, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Redis's connections but redis-cli's own: `{ all, subscribed }` counts. */
function connections(r) {
  const list = cli(r, 'CLIENT', 'LIST')
    .split('\n')
    .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => kv.split(/=(.*)/s).slice(0, 2))))
    .filter((c) => c.cmd !== 'client|list');
  return { all: list.length, subscribed: list.filter((c) => c.sub !== '0' || c.psub !== '0').length, list };
}

/**
 * A stream read with fetch as the SSE standard reads it: `events` (each
 * the `data:` lines of one event joined by "\n"), `comments`, `status`;
 * `ended` resolves to 'end' (the stream ended cleanly) or the error that
 * broke it; `close()` aborts.
 */
async function openStream(b, path, { token = TOKEN, method = 'POST' } = {}) {
  const ac = new AbortController();
  const res = await fetch(b.url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    body: method === 'POST' ? '[]' : undefined,
    signal: ac.signal,
  });
  const s = { status: res.status, headers: res.headers, events: [], comments: [], close: () => ac.abort() };
  if (!res.ok) {
    s.body = await res.json();
    s.ended = Promise.resolve('refused');
    return s;
  }
  s.ended = (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    let data = null;
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === '') {
            if (data !== null) s.events.push(data.join('\n'));
            data = null;
          } else if (line.startsWith(':')) s.comments.push(line.slice(1).trim());
          else if (line.startsWith('data:')) {
            const v = line.slice(5);
            (data ??= []).push(v.startsWith(' ') ? v.slice(1) : v);
          }
        }
      }
      return 'end';
    } catch (e) {
      return e;
    }
  })();
  return s;
}

/** `@upstash/redis`'s subscriber, with every event it dispatches recorded. */
function record(subscriber) {
  const seen = { subscribe: [], psubscribe: [], unsubscribe: [], punsubscribe: [], message: [], pmessage: [], error: [] };
  for (const type of Object.keys(seen)) subscriber.on(type, (d) => seen[type].push(d));
  return seen;
}

/** PUBLISH on a raw RESP socket, not through the bridge; resolves to the receivers count. */
function publishRaw(r, channel, message) {
  return new Promise((resolve, reject) => {
    const s = net.connect(r.port, '127.0.0.1');
    const bulk = (x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`;
    s.on('connect', () => s.write(`*3\r\n${bulk('PUBLISH')}${bulk(channel)}${bulk(message)}`));
    s.on('data', (d) => {
      s.destroy();
      resolve(Number(/^:(\d+)/.exec(d.toString())[1]));
    });
    s.on('error', reject);
  });
}

describe('edgecache-bridge: subscribe over SSE, as @upstash/redis speaks it', () => {
  const servers = redisAndBridge({ token: TOKEN, args: ['--read-only-token', RO] });

  test('subscribe: the confirmation, then a message published through the bridge and one published straight to Redis', async () => {
    const { redis, bridge } = servers;
    const r = upstash(bridge);
    const sub = r.subscribe('sse:chat');
    const seen = record(sub);
    const own = [];
    sub.on('message:sse:chat', (d) => own.push(d));
    await until(() => seen.subscribe.length === 1, 'the subscribe confirmation');
    assert.deepEqual(seen.subscribe, [1], 'the stream connection has one subscription');
    assert.equal(await r.publish('sse:chat', { hello: 'bridge' }), 1, 'one receiver');
    assert.equal(cli(redis, 'PUBLISH', 'sse:chat', '"straight to Redis"'), '1');
    await until(() => seen.message.length === 2, 'two messages');
    assert.deepEqual(seen.message, [
      { channel: 'sse:chat', message: { hello: 'bridge' } },
      { channel: 'sse:chat', message: 'straight to Redis' },
    ]);
    assert.deepEqual(own, seen.message);
    assert.deepEqual(seen.error, []);
    await sub.unsubscribe();
    await until(() => connections(redis).subscribed === 0, "the stream's Redis connection closed");
  });

  test('psubscribe: pmessage with the pattern and the channel, from the bridge and from a raw RESP socket', async () => {
    const { redis, bridge } = servers;
    const r = upstash(bridge);
    const sub = r.psubscribe('sse:news.*');
    const seen = record(sub);
    await until(() => seen.psubscribe.length === 1, 'the psubscribe confirmation');
    assert.deepEqual(seen.psubscribe, [1]);
    assert.equal(await r.publish('sse:news.a', { n: 1 }), 1);
    assert.equal(await publishRaw(redis, 'sse:news.b', '{"n":2}'), 1);
    await r.publish('sse:sports', { n: 3 });
    await until(() => seen.pmessage.length === 2, 'two pmessages');
    await sleep(50);
    assert.deepEqual(seen.pmessage, [
      { pattern: 'sse:news.*', channel: 'sse:news.a', message: { n: 1 } },
      { pattern: 'sse:news.*', channel: 'sse:news.b', message: { n: 2 } },
    ]);
    await sub.unsubscribe();
    await until(() => connections(redis).subscribed === 0, "the stream's Redis connection closed");
  });

  test('the wire format Upstash documents; several channels in one path share one stream and one Redis connection', async () => {
    const { redis, bridge } = servers;
    const before = connections(redis).all;
    const s = await openStream(bridge, '/subscribe/sse:a/sse:b');
    assert.equal(s.status, 200);
    assert.equal(s.headers.get('content-type'), 'text/event-stream');
    assert.equal(s.headers.get('cache-control'), 'no-cache');
    assert.ok(s.headers.get('upstash-sync-token'), 'the sync token header, as on every route');
    await until(() => s.events.length === 2, 'two confirmations');
    assert.deepEqual(s.events, ['subscribe,sse:a,1', 'subscribe,sse:b,2']);
    const now = connections(redis);
    assert.equal(now.all, before + 1, 'one more Redis connection');
    assert.equal(now.list.filter((c) => c.sub === '2').length, 1);
    cli(redis, 'PUBLISH', 'sse:b', 'plain text');
    await until(() => s.events.length === 3, 'the message');
    assert.equal(s.events[2], 'message,sse:b,plain text');
    // GET works too (EventSource sends GET, with ?_token=).
    const g = await fetch(`${bridge.url}/psubscribe/sse:g*?_token=${RO}`);
    assert.equal(g.status, 200);
    const reader = g.body.getReader();
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), 'data: psubscribe,sse:g*,1\n\n');
    await reader.cancel();
    s.close();
    await until(() => connections(redis).all === before, 'the connections closed');
    // A subscription needs a name; the JSON routes still refuse SUBSCRIBE.
    const none = await fetch(`${bridge.url}/subscribe`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(none.status, 400);
    assert.match((await none.json()).error, /wrong number of arguments/);
    const body = await fetch(bridge.url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '["SUBSCRIBE","x"]' });
    assert.equal(body.status, 403);
    assert.match((await body.json()).error, /^NOPERM 'SUBSCRIBE' cannot run/);
  });

  test('50 concurrent subscribers all receive a message, each on a Redis connection of its own', async () => {
    const { redis, bridge } = servers;
    const before = connections(redis).all;
    const r = upstash(bridge);
    const subs = Array.from({ length: 50 }, () => r.subscribe('sse:fan'));
    const seen = subs.map(record);
    await until(() => seen.every((s) => s.subscribe.length === 1), '50 confirmations', 10_000);
    assert.equal(connections(redis).subscribed, 50);
    assert.equal(await r.publish('sse:fan', { to: 'all' }), 50, 'Redis counts 50 receivers');
    await until(() => seen.every((s) => s.message.length === 1), 'the message at every subscriber');
    for (const s of seen) assert.deepEqual(s.message, [{ channel: 'sse:fan', message: { to: 'all' } }]);
    // Commands still run beside the streams.
    assert.equal(await r.set('sse:k', 'v'), 'OK');
    assert.equal(await r.get('sse:k'), 'v');
    await Promise.all(subs.map((s) => s.unsubscribe()));
    await until(() => connections(redis).all === before, 'every stream connection closed');
  });

  test("unsubscribe or abort frees the stream's Redis connection at once (CLIENT LIST)", async () => {
    const { redis, bridge } = servers;
    const baseline = connections(redis);
    assert.equal(baseline.subscribed, 0);
    const sub = upstash(bridge).subscribe('sse:free');
    const seen = record(sub);
    const raw = await openStream(bridge, '/psubscribe/sse:free*');
    await until(() => seen.subscribe.length === 1 && raw.events.length === 1, 'both confirmations');
    assert.equal(connections(redis).all, baseline.all + 2);
    // The pings are 15 s apart here: what closes them is the client's
    // connection closing, noticed at once.
    const started = Date.now();
    await sub.unsubscribe();
    await until(() => connections(redis).all === baseline.all + 1, 'the unsubscribed connection closed', 2_000);
    raw.close();
    await until(() => connections(redis).all === baseline.all, 'the aborted connection closed', 2_000);
    assert.ok(Date.now() - started < 2_000);
    assert.equal(connections(redis).subscribed, 0);
  });

  test('the read-only token can subscribe; a wrong or missing token cannot, and opens nothing', async () => {
    const { redis, bridge } = servers;
    const baseline = connections(redis).all;
    const roSub = upstash(bridge, RO).subscribe('sse:ro');
    const ro = record(roSub);
    await until(() => ro.subscribe.length === 1, 'the read-only confirmation');
    await upstash(bridge).publish('sse:ro', 'for readers');
    await until(() => ro.message.length === 1, 'the message');
    assert.deepEqual(ro.message, [{ channel: 'sse:ro', message: 'for readers' }]);
    // ... but it still cannot publish.
    await assert.rejects(upstash(bridge, RO).publish('sse:ro', 'x'), /read-only/);

    const wrong = record(upstash(bridge, 'not-the-token-0123456789').subscribe('sse:ro'));
    await until(() => wrong.error.length === 1, "the wrong token's error");
    assert.match(String(wrong.error[0]), /WRONGPASS/);
    const raw = await openStream(bridge, '/subscribe/sse:ro', { token: 'not-the-token-0123456789' });
    assert.equal(raw.status, 401);
    assert.match(raw.body.error, /^WRONGPASS/);
    const none = await fetch(`${bridge.url}/subscribe/sse:ro`, { method: 'POST' });
    assert.equal(none.status, 401);
    assert.equal(connections(redis).all, baseline + 1, 'only the read-only stream has a connection');
    assert.deepEqual(wrong.message, []);
    await roSub.unsubscribe();
    await until(() => connections(redis).all === baseline, 'the read-only stream closed');
  });

  test("a line break in a message forges no event: @upstash/redis gets its first line, an SSE reader the whole message", async () => {
    const { bridge } = servers;
    const r = upstash(bridge);
    const lines = r.subscribe('sse:lines');
    const seen = record(lines);
    const other = [];
    lines.on('message:sse:other', (d) => other.push(d));
    const raw = await openStream(bridge, '/subscribe/sse:lines');
    await until(() => seen.subscribe.length === 1 && raw.events.length === 1, 'the confirmations');
    const tricky = 'first\ndata: message,sse:other,forged\r\n subscribe,sse:lines,99\rlast';
    await r.publish('sse:lines', tricky);
    await r.publish('sse:lines', 'after');
    await until(() => seen.message.length === 2 && raw.events.length === 3, 'both messages');
    assert.deepEqual(
      seen.message.map((m) => m.message),
      ['first', 'after'],
    );
    assert.deepEqual(other, [], 'no forged message');
    assert.deepEqual(seen.subscribe, [1], 'no forged confirmation');
    assert.equal(raw.events[1], `message,sse:lines,${tricky.replace(/\r\n|\r/g, '\n')}`);
    await lines.unsubscribe();
    raw.close();
  });
});

describe('edgecache-bridge: the ends of a stream', () => {
  test('pings keep a quiet stream going, and @upstash/redis ignores them', async () => {
    const redis = await startRedis();
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--stream-ping', '100'] });
    try {
      const raw = await openStream(bridge, '/subscribe/sse:quiet');
      const seen = record(upstash(bridge).subscribe('sse:quiet'));
      await until(() => raw.comments.length >= 3, 'three pings');
      assert.deepEqual([...new Set(raw.comments)], ['ping']);
      await upstash(bridge).publish('sse:quiet', 'still here');
      await until(() => seen.message.length === 1 && raw.events.length === 2, 'the message after the pings');
      assert.deepEqual(seen.subscribe, [1]);
      assert.deepEqual(seen.error, []);
      assert.deepEqual([...raw.events], ['subscribe,sse:quiet,1', 'message,sse:quiet,still here']);
      raw.close();
    } finally {
      await bridge.stop();
      await redis.stop();
    }
  });

  test('the stream limit: past --max-streams, 503 with a JSON error; a place frees when a stream ends', async () => {
    const redis = await startRedis();
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--max-streams', '3'] });
    try {
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await openStream(bridge, `/subscribe/sse:lim${i}`));
      assert.deepEqual(open.map((s) => s.status), [200, 200, 200]);
      const over = await openStream(bridge, '/subscribe/sse:lim3');
      assert.equal(over.status, 503);
      assert.equal(over.headers.get('content-type'), 'application/json');
      assert.match(over.body.error, /too many open streams \(--max-streams 3\)/);
      const seen = record(upstash(bridge).subscribe('sse:lim4'));
      await until(() => seen.error.length === 1, "@upstash/redis's error");
      assert.match(String(seen.error[0]), /--max-streams 3/);
      assert.equal(connections(redis).subscribed, 3, 'a refused stream opens no Redis connection');
      // Commands are not counted against streams.
      assert.equal(await upstash(bridge).set('sse:k', 'v'), 'OK');
      open[0].close();
      await until(() => connections(redis).subscribed === 2, 'the place freed');
      const again = await openStream(bridge, '/subscribe/sse:lim5');
      assert.equal(again.status, 200);
      for (const s of [...open, again]) s.close();
      const off = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--max-streams', '0'] });
      try {
        const r = await openStream(off, '/subscribe/sse:off');
        assert.equal(r.status, 403);
        assert.match(r.body.error, /^NOPERM subscriptions are turned off/);
      } finally {
        await off.stop();
      }
    } finally {
      await bridge.stop();
      await redis.stop();
    }
  });

  test('SIGTERM ends open streams within the shutdown timeout: unsubscribe events, then a clean end', async () => {
    const redis = await startRedis();
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--shutdown-timeout', '10000'] });
    try {
      const raw = await openStream(bridge, '/subscribe/sse:bye/sse:bye2');
      const praw = await openStream(bridge, '/psubscribe/sse:bye*');
      const seen = record(upstash(bridge).subscribe('sse:bye'));
      await until(() => raw.events.length === 2 && praw.events.length === 1 && seen.subscribe.length === 1, 'the confirmations');
      assert.equal(connections(redis).subscribed, 3);
      const exited = new Promise((resolve) => bridge.proc.once('exit', (code, signal) => resolve({ code, signal })));
      const started = Date.now();
      bridge.proc.kill('SIGTERM');
      assert.equal(await raw.ended, 'end', 'the stream ended cleanly');
      assert.equal(await praw.ended, 'end');
      // Redis ends them in its own order; the count reaches 0 last.
      const ends = raw.events.slice(2);
      assert.deepEqual(ends.map((e) => e.split(',')[1]).sort(), ['sse:bye', 'sse:bye2']);
      assert.deepEqual(ends.map((e) => e.split(',')[0]), ['unsubscribe', 'unsubscribe']);
      assert.deepEqual(ends.map((e) => e.split(',')[2]), ['1', '0']);
      assert.deepEqual(praw.events.slice(1), ['punsubscribe,sse:bye*,0']);
      await until(() => seen.unsubscribe.length === 1, "@upstash/redis's unsubscribe event");
      assert.deepEqual(seen.unsubscribe, [0]);
      assert.deepEqual(await exited, { code: 0, signal: null });
      const took = Date.now() - started;
      assert.ok(took < 3_000, `exited after ${took} ms, well within --shutdown-timeout 10000`);
      await until(() => connections(redis).all === 0, 'every connection closed');
    } finally {
      await bridge.stop();
      await redis.stop();
    }
  });

  test('Redis lost or silent breaks the stream (an error, not a quiet end); Redis down refuses a new one with 503', async () => {
    const redis = await startRedis();
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--stream-ping', '200', '--request-timeout', '1000'] });
    try {
      // The connection killed.
      const a = await openStream(bridge, '/subscribe/sse:lost');
      await until(() => a.events.length === 1, 'the confirmation');
      cli(redis, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
      const broke = await a.ended;
      assert.ok(broke instanceof Error, `the stream broke: ${broke}`);
      // Redis stopped (SIGSTOP): no answer to the stream's PING.
      const b = await openStream(bridge, '/subscribe/sse:silent');
      await until(() => b.events.length === 1, 'the confirmation');
      const started = Date.now();
      redis.proc.kill('SIGSTOP');
      try {
        const silent = await b.ended;
        assert.ok(silent instanceof Error, `the stream broke: ${silent}`);
        assert.ok(Date.now() - started < 2_000, `broke after ${Date.now() - started} ms`);
      } finally {
        redis.proc.kill('SIGCONT');
      }
      // Back: a new stream works.
      const c = await openStream(bridge, '/subscribe/sse:back');
      assert.equal(c.status, 200);
      c.close();
      // Redis down: 503, nothing subscribed.
      await redis.stop();
      const d = await openStream(bridge, '/subscribe/sse:down');
      assert.equal(d.status, 503);
      assert.match(d.body.error, /Redis is unreachable.*nothing was subscribed/);
    } finally {
      await bridge.stop();
      await redis.stop();
    }
  });
});

describe("edgecache's RedisRest.subscribe and psubscribe, on the same stream", () => {
  const servers = redisAndBridge({ token: TOKEN, args: ['--read-only-token', RO, '--max-streams', '4'] });
  const rest = (token = TOKEN) => new RedisRest({ url: servers.bridge.url, token });

  test('messages from the bridge and straight from Redis; names with commas, one a prefix of another; whole multi-line messages', async () => {
    const { redis } = servers;
    const got = [];
    const sub = rest().subscribe(['sse:js', 'sse:js,a'], (m) => got.push(m));
    await sub.ready;
    assert.equal(connections(redis).subscribed, 1, 'one stream for both channels');
    cli(redis, 'PUBLISH', 'sse:js,a', 'x,y');
    assert.equal(await rest().command(['PUBLISH', 'sse:js', 'two\nlines, and\r\nthree']), 1);
    await until(() => got.length === 2, 'two messages');
    assert.deepEqual(got, [
      { channel: 'sse:js,a', message: 'x,y' },
      { channel: 'sse:js', message: 'two\nlines, and\nthree' },
    ]);
    const pgot = [];
    const psub = rest(RO).psubscribe('sse:jp.*', (m) => pgot.push(m));
    await psub.ready;
    await publishRaw(redis, 'sse:jp.1', '{"json":true}');
    await until(() => pgot.length === 1, 'the pmessage');
    assert.deepEqual(pgot, [{ pattern: 'sse:jp.*', channel: 'sse:jp.1', message: '{"json":true}' }]);
    sub.close();
    psub.close();
    await sub.closed;
    await psub.closed;
    await until(() => connections(redis).subscribed === 0, 'the streams closed');
  });

  test('close(), an aborted signal, or a throwing onMessage end it and free its Redis connection; refusals are typed errors', async () => {
    const { redis } = servers;
    const ac = new AbortController();
    const a = rest().subscribe('sse:j1', () => {}, { signal: ac.signal });
    const b = rest().subscribe('sse:j2', () => {
      throw new Error('from onMessage');
    });
    await Promise.all([a.ready, b.ready]);
    assert.equal(connections(redis).subscribed, 2);
    ac.abort();
    await a.closed;
    cli(redis, 'PUBLISH', 'sse:j2', 'boom');
    await assert.rejects(b.closed, /from onMessage/);
    await until(() => connections(redis).subscribed === 0, 'both connections closed', 2_000);

    const wrong = rest('not-the-token-0123456789').subscribe('sse:j3', () => {});
    await assert.rejects(wrong.ready, (e) => e instanceof EdgeCacheError && e.code === 'L2_AUTH' && /WRONGPASS/.test(e.message));
    await assert.rejects(wrong.closed, (e) => e.code === 'L2_AUTH');
    const open = await Promise.all([1, 2, 3, 4].map(async (i) => {
      const s = rest().subscribe(`sse:m${i}`, () => {});
      await s.ready;
      return s;
    }));
    const over = rest().subscribe('sse:m5', () => {});
    await assert.rejects(over.closed, (e) => e.code === 'L2_HTTP' && e.status === 503 && /--max-streams 4/.test(e.message));
    for (const s of open) s.close();
    assert.throws(() => rest().subscribe([], () => {}), (e) => e.code === 'INVALID_OPTION');
    assert.throws(() => rest().subscribe('\ud800', () => {}), (e) => e.code === 'INVALID_OPTION');
    assert.throws(() => rest().psubscribe('x'), (e) => e.code === 'INVALID_OPTION');
    await until(() => connections(redis).subscribed === 0, 'every connection closed');
  });

  test('the stream ends cleanly at SIGTERM (closed resolves) and breaks when Redis drops it (closed rejects L2_HTTP)', async () => {
    const redis = await startRedis();
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
    try {
      const r = new RedisRest({ url: bridge.url, token: TOKEN });
      const lost = r.subscribe('sse:jl', () => {});
      await lost.ready;
      cli(redis, 'CLIENT', 'KILL', 'TYPE', 'pubsub');
      await assert.rejects(lost.closed, (e) => e instanceof EdgeCacheError && e.code === 'L2_HTTP');
      const bye = r.subscribe('sse:jb', () => {});
      await bye.ready;
      bridge.proc.kill('SIGTERM');
      await bye.closed;
    } finally {
      await bridge.stop();
      await redis.stop();
    }
  });
});
