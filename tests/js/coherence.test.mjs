// Coherence across isolates (docs/REDIS.md, "Coherence across isolates"):
// two TieredCaches on one real redis-server and bridge, each its own
// "isolate" (its own L1, client and writer id). Every mutation kind in one
// leaves the other's L1 within maxStaleness, is still served from L1 before
// it (the lease, not a miss), and the gaps (the log trimmed or deleted,
// FLUSHALL, Redis restarted empty) drop L1 rather than serve the older
// value. The multi-process check with the bound is
// tests/js/coherence-multi.test.mjs.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { TieredCache, RedisRest, generateSecureKey, EdgeCacheError } from 'edgecache';
import { redisAndBridge, startRedisOn, countingFetch } from './servers.mjs';

const TOKEN = 'coherence-test-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
const servers = redisAndBridge({ token: TOKEN });
const M = 400; // maxStaleness of these tests, ms (room for a loaded machine)
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let prefixes = 0;

function cli(...args) {
  return execFileSync('redis-cli', ['-p', String(servers.redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');
}


/** Two isolates on a fresh prefix, and whatever options they take. */
function pair(opts = {}) {
  const prefix = `coh${++prefixes}`;
  const make = (extra = {}) => {
    const { fetch: f, ...rest } = { ...opts, ...extra };
    return new TieredCache({
      redis: new RedisRest({ url: servers.bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}) }),
      signer: { keys: { k1: SECRET } },
      prefix,
      l1Ttl: 60_000, // far past every wait here: only coherence can drop L1
      maxStaleness: M,
      log: () => {},
      ...rest,
    });
  };
  return { prefix, make, a: make(), b: make() };
}

describe('coherence: each mutation elsewhere leaves L1 within maxStaleness', () => {
  // [name, what the writer does, what the reader reads, value before, value after]
  const cases = [
    ['set', (w) => w.set('k', 'new'), (r) => r.get('k'), 'old', 'new'],
    ['setMany', (w) => w.setMany([['k', 'new'], ['j', 'x']]), (r) => r.get('k'), 'old', 'new'],
    ['delete', (w) => w.delete('k'), (r) => r.get('k'), 'old', undefined],
    ['deleteMany', (w) => w.deleteMany(['j', 'k']), (r) => r.get('k'), 'old', undefined],
    ['deletePattern', (w) => w.deletePattern('k*'), (r) => r.get('k'), 'old', undefined],
    ['clear', (w) => w.clear(), (r) => r.get('k'), 'old', undefined],
    ['a scope clear', (w) => w.scope({ tenant: 't' }).clear(), (r) => r.scope({ tenant: 't' }).get('k'), 'old', undefined],
    ['a scoped set', (w) => w.scope({ user: 'u"*' }).set('k', 'new'), (r) => r.scope({ user: 'u"*' }).get('k'), 'old', 'new'],
  ];
  for (const [name, write, read, before, after] of cases) {
    test(name, async (t) => {
      const { a, b } = pair();
      for (const c of [a, a.scope({ tenant: 't' }), a.scope({ user: 'u"*' })]) await c.set('k', before);
      // b reads it from Redis into its L1 (its lease starts after this).
      const leased = performance.now();
      assert.equal(await read(b), before);
      const hits = b.stats().l2.hits;
      await write(a);
      // Within the lease, b's L1 still serves (not a miss: no L2 read),
      // if the write came back within it (on a loaded machine it may not).
      if (performance.now() - leased < M - 30) {
        assert.equal(await read(b), before, 'before maxStaleness: L1');
        assert.equal(b.stats().l2.hits, hits);
      } else t.diagnostic('the write took longer than the lease: the check within it was skipped');
      await sleep(M + 20);
      assert.equal(await read(b), after, 'after maxStaleness');
      const st = b.stats().coherence;
      assert.ok(st.entries >= 1, 'applied an entry of the other writer');
      assert.equal(st.gaps, 0);
      assert.ok(st.invalidated >= 1, 'counted the dropped entry');
    });
  }

  test('incr and decr', async (t) => {
    const { a, b } = pair();
    await a.incr('n', 5);
    const leased = performance.now();
    assert.equal(await b.counter('n'), 5);
    await a.decr('n', 2);
    if (performance.now() - leased < M - 30) assert.equal(await b.counter('n'), 5, 'before maxStaleness: L1');
    else t.diagnostic('the decrement took longer than the lease: the check within it was skipped');
    await sleep(M + 20);
    assert.equal(await b.counter('n'), 3);
  });

  test('getMany renews the lease before serving L1', async () => {
    const { a, b } = pair();
    await a.setMany([['x', 1], ['y', 2]]);
    assert.deepEqual(await b.getMany(['x', 'y']), [1, 2]);
    await a.set('x', 10);
    await a.delete('y');
    await sleep(M + 20);
    assert.deepEqual(await b.getMany(['x', 'y']), [10, undefined]);
  });

  test('has() too', async () => {
    const { a, b } = pair();
    await a.set('h', 1);
    assert.equal(await b.has('h'), true);
    await a.delete('h');
    await sleep(M + 20);
    assert.equal(await b.has('h'), false);
  });

  test('with coherence off, the older value stays in L1 (what the tests above would catch)', async () => {
    const { make } = pair();
    const a = make();
    const b = make({ maxStaleness: false });
    await a.set('k', 'old');
    assert.equal(await b.get('k'), 'old');
    await a.set('k', 'new');
    await sleep(M + 20);
    assert.equal(await b.get('k'), 'old', 'l1Ttl alone bounds it');
    assert.equal(b.stats().coherence, undefined);
  });
});

describe('coherence: what it costs', () => {
  test('a lease read is one request of three commands, shared by concurrent L1 hits', async () => {
    const f = countingFetch();
    const { a, make } = pair();
    const b = make({ fetch: f });
    await a.set('k', 1);
    assert.equal(await b.get('k'), 1);
    await sleep(M + 10);
    f.requests = 0;
    f.commands.length = 0;
    const got = await Promise.all(Array.from({ length: 50 }, () => b.get('k')));
    assert.deepEqual(got, Array(50).fill(1));
    assert.equal(f.requests, 1, 'one log read for 50 hits');
    assert.deepEqual(
      f.commands.map((c) => c[0]),
      ['GET', 'XREVRANGE', 'GET'],
    );
    // Fresh again: hits ask nothing.
    f.requests = 0;
    for (let i = 0; i < 100; i++) await b.get('k');
    assert.equal(f.requests, 0);
  });

  test('a write carries its log append in the same request, after it', async () => {
    const f = countingFetch();
    const { make, prefix } = pair();
    const a = make({ fetch: f });
    await a.get('warm'); // the first log read goes alone
    f.requests = 0;
    f.commands.length = 0;
    await a.set('k', 1);
    assert.equal(f.requests, 1);
    // (Past half the lease, a log read rides along after them.)
    const names = f.commands.map((c) => c[0]);
    assert.deepEqual(names.slice(0, 4), ['SET', 'SET', 'XADD', 'PUBLISH']);
    assert.ok(names.length === 4 || names.slice(4).join() === 'GET,XREVRANGE,GET', names.join());
    assert.equal(f.commands[1][1], `${prefix}:c:{${prefix}:0}:epoch`);
    assert.equal(f.commands[3][1], `${prefix}:c:{${prefix}:0}:push`);
    assert.equal(cli('XLEN', `${prefix}:c:{${prefix}:0}:log`), '1');
  });

  test('past half the lease, a request made anyway reads the log too (piggyback)', async () => {
    const f = countingFetch();
    const { make } = pair();
    const b = make({ fetch: f });
    await b.get('warm');
    await sleep(M / 2 + 10);
    f.requests = 0;
    f.commands.length = 0;
    await b.get('missing');
    assert.equal(f.requests, 1);
    assert.deepEqual(
      f.commands.map((c) => c[0]),
      ['GET', 'GET', 'XREVRANGE', 'GET'],
    );
  });

  test('coherence off sends no log command', async () => {
    const f = countingFetch();
    const { make } = pair();
    const a = make({ fetch: f, maxStaleness: false });
    await a.set('k', 1);
    await a.get('k');
    await a.delete('k');
    await a.incr('n');
    assert.ok(f.commands.every((c) => !['XADD', 'XREVRANGE'].includes(c[0])), JSON.stringify(f.commands));
  });
});

describe('coherence: gaps are never silent', () => {
  async function warm() {
    const p = pair();
    await p.a.set('k', 'old');
    assert.equal(await p.b.get('k'), 'old');
    return p;
  }

  test('the log deleted (lost)', async () => {
    const { a, b, prefix } = await warm();
    await a.set('other', 1);
    cli('DEL', `${prefix}:c:{${prefix}:0}:log`);
    // An overwrite straight to Redis, which no log entry names.
    cli('SET', 'x', 'y');
    await sleep(M + 10);
    await b.get('k');
    const st = b.stats().coherence;
    assert.equal(st.gaps, 1);
    assert.equal(st.lost + st.trimmed, 1, JSON.stringify(st));
  });

  test('the log trimmed past the reader (trimmed)', async () => {
    const { a, b, prefix } = await warm();
    for (let i = 0; i < 5; i++) await a.set(`o${i}`, i);
    cli('XTRIM', `${prefix}:c:{${prefix}:0}:log`, 'MAXLEN', '1');
    await sleep(M + 10);
    await b.get('k');
    assert.equal(b.stats().coherence.trimmed, 1);
  });

  test('FLUSHALL, then a new write: every reader sees it', async () => {
    const { make, a, b } = await warm();
    const c = make();
    assert.equal(await c.get('k'), 'old');
    cli('FLUSHALL');
    await a.set('k', 'after-flush');
    await sleep(M + 10);
    assert.equal(await b.get('k'), 'after-flush');
    assert.equal(await c.get('k'), 'after-flush');
    assert.equal(b.stats().coherence.epoch, 1);
  });

  test('FLUSHALL alone: the older value is not served from L1', async () => {
    const { b } = await warm();
    cli('FLUSHALL');
    await sleep(M + 10);
    assert.equal(await b.get('k'), undefined);
    assert.equal(b.stats().coherence.epoch, 1);
  });

  test('an entry this version cannot read drops L1 (unreadable)', async () => {
    const { b, prefix } = await warm();
    cli('XADD', `${prefix}:c:{${prefix}:0}:log`, '*', 'w', 'planted0123456789', 'op', 'zap', '0', `${prefix}:v:r|k`);
    await sleep(M + 10);
    assert.equal(await b.get('k'), 'old', 'read again from Redis');
    assert.equal(b.stats().coherence.unreadable, 1);
  });
});

describe('coherence: Redis unreachable', () => {
  test('by default (failOpen) L1 keeps serving, counted; strict refuses; both recover', async () => {
    const redis = await startRedisOn(await (await import('./servers.mjs')).freePort());
    const { startBridge } = await import('./servers.mjs');
    const bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
    try {
      const make = (extra) =>
        new TieredCache({
          redis: new RedisRest({ url: bridge.url, token: TOKEN, timeout: 500, retries: 0 }),
          signer: { keys: { k1: SECRET } },
          prefix: 'down',
          l1Ttl: 60_000,
          maxStaleness: M,
          breaker: { threshold: 100 },
          log: () => {},
          ...extra,
        });
      const lenient = make();
      const strict = make({ staleWhileUnreachable: false });
      await lenient.set('k', 'v');
      assert.equal(await strict.get('k'), 'v');
      assert.equal(await lenient.get('k'), 'v');
      await redis.stop();
      await sleep(M + 10);
      assert.equal(await lenient.get('k'), 'v', 'stale-while-unreachable');
      assert.equal(lenient.stats().coherence.staleServed, 1);
      assert.equal(await strict.get('k'), undefined, 'strict: refused, and Redis misses (failOpen)');
      assert.equal(strict.stats().coherence.refused, 1);
      const strictThrow = make({ failOpen: false });
      await assert.rejects(strictThrow.get('k'), (e) => e instanceof EdgeCacheError && e.code.startsWith('L2_'));
      const again = await startRedisOn(redis.port);
      try {
        // The bridge reconnects on its own; until then a write fails (open).
        for (let i = 0; i < 100 && !(await fetch(`${bridge.url}/healthz`)).ok; i++) await sleep(50);
        await lenient.set('k', 'back');
        assert.equal(await lenient.get('k'), 'back', JSON.stringify(lenient.stats()));
        await sleep(M + 10);
        // Restarted empty: the epoch is new, strict drops its L1 and reads Redis.
        assert.equal(await strict.get('k'), 'back');
        assert.ok(strict.stats().coherence.epoch + strict.stats().coherence.lost >= 1);
      } finally {
        await again.stop();
      }
    } finally {
      await bridge.stop();
    }
  });
});

describe('coherence: options', () => {
  test('bad values are refused with a clear error', () => {
    for (const maxStaleness of [-1, NaN, Infinity, '100', true, 86_400_001]) {
      assert.throws(
        () => new TieredCache({ redis: { url: 'http://127.0.0.1:1', token: 't' }, signer: { keys: { k1: SECRET } }, prefix: 'p', maxStaleness }),
        (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION' && /maxStaleness/.test(e.message),
        String(maxStaleness),
      );
    }
    assert.throws(
      () => new TieredCache({ redis: { url: 'http://127.0.0.1:1', token: 't' }, signer: { keys: { k1: SECRET } }, prefix: 'p', staleWhileUnreachable: 'no' }),
      (e) => e.code === 'INVALID_OPTION' && /staleWhileUnreachable/.test(e.message),
    );
  });
});

describe('coherence: push (a stream held open, for runtimes that live long)', () => {
  test('a mutation elsewhere leaves L1 at once, long before maxStaleness; every kind', async () => {
    const { make } = pair();
    const a = make();
    const b = make({ push: true, maxStaleness: 30_000 });
    try {
      await a.set('k', 'old');
      await a.incr('n');
      await a.scope({ tenant: 't' }).set('k', 'old');
      assert.equal(await b.get('k'), 'old');
      assert.equal(await b.counter('n'), 1);
      assert.equal(await b.scope({ tenant: 't' }).get('k'), 'old');
      for (let i = 0; i < 100 && b.stats().coherence.push.state !== 'open'; i++) await sleep(20);
      assert.equal(b.stats().coherence.push.state, 'open');
      const steps = [
        [() => a.set('k', 'new'), () => b.get('k'), 'new'],
        [() => a.incr('n', 2), () => b.counter('n'), 3],
        [() => a.delete('k'), () => b.get('k'), undefined],
        [() => a.scope({ tenant: 't' }).clear(), () => b.scope({ tenant: 't' }).get('k'), undefined],
      ];
      for (const [write, read, want] of steps) {
        await write();
        const t0 = performance.now();
        let got;
        while ((got = await read()) !== want && performance.now() - t0 < 2_000) await sleep(2);
        assert.equal(got, want);
        assert.ok(performance.now() - t0 < 1_000, `pushed, not waited out (${(performance.now() - t0).toFixed(0)} ms)`);
      }
      assert.ok(b.stats().coherence.push.messages >= 4, JSON.stringify(b.stats().coherence.push));
    } finally {
      b.close();
    }
    assert.equal(b.stats().coherence.push.state, 'closed');
  });

  test('a planted or malformed message only drops, never serves', async () => {
    const { make, prefix } = pair();
    const a = make();
    const b = make({ push: true, maxStaleness: 30_000 });
    try {
      await a.set('k', 'v');
      assert.equal(await b.get('k'), 'v');
      for (let i = 0; i < 100 && b.stats().coherence.push.state !== 'open'; i++) await sleep(20);
      cli('PUBLISH', `${prefix}:c:{${prefix}:0}:push`, 'not json');
      cli('PUBLISH', `${prefix}:c:{${prefix}:0}:push`, '[1,2,3]');
      await sleep(100);
      assert.equal(b.stats().coherence.push.malformed, 2);
      assert.equal(await b.get('k'), 'v');
    } finally {
      b.close();
    }
  });

  test('the bridge killed under the stream: the cache subscribes again, then pushes arrive again', async () => {
    const { startRedis, startBridgeOn, freePort } = await import('./servers.mjs');
    const redis = await startRedis();
    const port = await freePort();
    let bridge = await startBridgeOn(port, { redisUrl: redis.url, token: TOKEN });
    const make = (extra) =>
      new TieredCache({
        redis: new RedisRest({ url: bridge.url, token: TOKEN, retries: 0 }),
        signer: { keys: { k1: SECRET } },
        prefix: 'pushkill',
        l1Ttl: 60_000,
        maxStaleness: 30_000,
        log: () => {},
        ...extra,
      });
    const a = make();
    const b = make({ push: true });
    try {
      await a.set('k', 1);
      assert.equal(await b.get('k'), 1);
      for (let i = 0; i < 100 && b.stats().coherence.push.state !== 'open'; i++) await sleep(20);
      bridge.proc.kill('SIGKILL');
      await sleep(200);
      bridge = await startBridgeOn(port, { redisUrl: redis.url, token: TOKEN });
      for (let i = 0; i < 200 && b.stats().coherence.push.connects < 2; i++) await sleep(25);
      assert.equal(b.stats().coherence.push.connects, 2, JSON.stringify(b.stats().coherence.push));
      await a.set('k', 2);
      const t0 = performance.now();
      while ((await b.get('k')) !== 2 && performance.now() - t0 < 2_000) await sleep(5);
      assert.equal(await b.get('k'), 2);
    } finally {
      b.close();
      await bridge.stop();
      await redis.stop();
    }
  });
});
