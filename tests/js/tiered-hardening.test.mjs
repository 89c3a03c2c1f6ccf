// TieredCache findings of the outside review (issue 14), each against a
// real redis-server and the real bridge: reads and writes that overlap a
// delete (#5), a MemoryCache shared as L1 (#4), clear() and other programs'
// keys (#9), lone surrogates in patterns (#10), key names that are not
// UTF-8 (#13) and the counter rule both bindings share (#18).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { TieredCache, RedisRest, MemoryCache, EdgeCacheError, generateSecureKey, memoize } from 'edgecache';
import { redisAndBridge } from './servers.mjs';

const TOKEN = 'test-token-' + Math.random().toString(36).slice(2);
const SECRET = generateSecureKey();
const counters = JSON.parse(readFileSync(new URL('../fixtures/counters.json', import.meta.url), 'utf8'));
const servers = redisAndBridge({ token: TOKEN });
let seq = 0;

/** A fresh prefix per test, so tests never see each other's keys. */
const fresh = () => `h${++seq}x${process.pid}`;

function tier(prefix, opts = {}) {
  const { fetch: f, secret = SECRET, ...rest } = opts;
  return new TieredCache({
    redis: new RedisRest({ url: servers.bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}) }),
    signer: { keys: { k1: secret } },
    prefix,
    log: () => {},
    ...rest,
  });
}

/** Straight to Redis (another isolate, or an attacker with write access). */
const direct = () => new RedisRest({ url: servers.bridge.url, token: TOKEN });

/** One command in RESP, raw bytes allowed, straight to redis-server. */
function resp(...parts) {
  return new Promise((resolve, reject) => {
    const s = net.connect(servers.redis.port, '127.0.0.1');
    const bufs = parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(String(p))));
    s.on('connect', () => {
      s.write(`*${bufs.length}\r\n`);
      for (const b of bufs) s.write(Buffer.concat([Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n')]));
    });
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString('latin1'));
    });
    s.on('error', reject);
  });
}

/**
 * A fetch whose requests reach the bridge (so Redis runs them) but whose
 * answers, for requests carrying one of `hold`'s commands, wait until
 * `release()`: a slow network on the way back.
 */
function gatedFetch(...hold) {
  let release;
  const gate = new Promise((r) => (release = r));
  const f = async (input, init) => {
    const commands = JSON.parse(init.body);
    // The coherence log's own reads (keys `<prefix>:c:{…}`) are not held.
    const held = commands.some((c) => hold.includes(String(c[0]).toUpperCase()) && !String(c[1]).includes(':c:{'));
    const res = await fetch(input, init);
    if (held) {
      const body = await res.text();
      f.held++;
      await gate;
      return new Response(body, { status: res.status, headers: res.headers });
    }
    return res;
  };
  f.held = 0;
  f.release = () => release();
  f.answered = async () => {
    for (let i = 0; f.held === 0; i++) {
      if (i > 500) throw new Error('the held request never came back from the bridge');
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return f;
}

describe('#5: a read or write under way during delete() puts nothing old in L1', () => {
  test('set(): Redis ran the SET, a delete began and ended before its answer: the value is not in L1', async () => {
    const prefix = fresh();
    const f = gatedFetch('SET');
    const c = tier(prefix, { fetch: f });
    const setting = c.set('k', 'v');
    await f.answered();
    assert.equal(await c.delete('k'), true);
    f.release();
    await setting;
    assert.equal(await direct().get(`${prefix}:v:r|k`), null, 'Redis holds nothing');
    assert.equal(await c.get('k'), undefined, 'the deleted value is not served from L1');
  });

  test('incr(): the count of an increment overtaken by a delete is not kept in L1', async () => {
    const f = gatedFetch('INCRBY');
    const c = tier(fresh(), { fetch: f });
    const incr = c.incr('hits', 5);
    await f.answered();
    await c.delete('hits');
    f.release();
    assert.equal(await incr, 5);
    assert.equal(await c.counter('hits'), undefined, 'the deleted count is not served from L1');
  });

  test('counter(): a read overlapping a delete does not put the count in L1', async () => {
    const prefix = fresh();
    await direct().set(`${prefix}:n:r|hits`, '7');
    const f = gatedFetch('GET');
    const c = tier(prefix, { fetch: f });
    const read = c.counter('hits');
    await f.answered();
    await c.delete('hits');
    f.release();
    assert.equal(await read, 7, "the read's own answer");
    assert.equal(await c.counter('hits'), undefined, 'the deleted count is not served from L1');
  });

  test('get(): a read overlapping a set of the same key keeps the newer value in L1', async () => {
    const prefix = fresh();
    const f = gatedFetch('GET');
    const c = tier(prefix, { fetch: f });
    await tier(prefix).set('k', 'old');
    const read = c.get('k');
    await f.answered();
    await c.set('k', 'new');
    f.release();
    assert.equal(await read, 'old', "the read's own answer");
    assert.equal(await c.get('k'), 'new');
  });
});

describe('#4: a MemoryCache shared as l1', () => {
  test('tiers with other prefixes and signers, memoize and the user never see each other through it', async () => {
    const shared = new MemoryCache();
    const billing = tier(fresh(), { l1: shared, secret: generateSecureKey() });
    const guest = tier(fresh(), { l1: shared });
    await billing.set('flags', { admin: true });
    assert.equal(await guest.get('flags'), undefined, "billing's value is not served by guest");
    assert.equal(await guest.has('flags'), false);
    // A memoize helper and the user's own code on the shared cache.
    const hello = memoize((name) => `hello ${name}`, { cache: shared, key: (name) => name });
    assert.equal(await hello('x'), 'hello x');
    shared.set('mine', 1);
    assert.equal(await guest.get('mine'), undefined);
    assert.equal(await guest.get('x'), undefined);
    assert.deepEqual(shared.keys('flags'), [], "the tier's entries stay out of the user's keys");
    // Scopes of two tiers stay apart too.
    await billing.scope({ tenant: 'acme' }).set('t', 1);
    assert.equal(await guest.scope({ tenant: 'acme' }).get('t'), undefined);
    // clear() and stats() of a tier cover its own entries only.
    assert.equal(guest.stats().l1.entries, 0);
    assert.equal(billing.stats().l1.entries, 2, 'its root and its scope');
    await billing.clear();
    assert.equal(shared.get('mine'), 1, "billing's clear() leaves the user's entries");
    assert.equal(billing.stats().l1.entries, 0);
    assert.equal(await billing.get('flags'), undefined);
  });
});

describe('#9: clear() deletes exactly the cache\'s keys', () => {
  test('other programs\' keys under the same prefix survive a clear()', async () => {
    const prefix = fresh();
    const c = tier(prefix);
    const r = direct();
    await r.set(`${prefix}:sessions:42`, 'alive');
    await r.set(`${prefix}:v:junk`, 'not ours either');
    await c.set('a', 1);
    await c.scope({ tenant: 't' }).set('b', 2);
    await c.incr('n');
    await c.clear();
    assert.equal(await r.get(`${prefix}:sessions:42`), 'alive');
    assert.equal(await r.get(`${prefix}:v:junk`), 'not ours either');
    assert.deepEqual(await r.scan('0', { match: `${prefix}:[vn]:[rtub]*`, count: 1000 }).then(([, k]) => k), []);
    assert.equal(await c.get('a'), undefined);
  });
});

describe('#10: a lone surrogate in a pattern', () => {
  test('deletePattern and keys refuse it, and the well-formed U+FFFD key survives', async () => {
    const c = tier(fresh());
    await c.set('id:\uFFFD', 1);
    for (const call of [() => c.deletePattern('id:\uD800'), () => c.keys('id:\uDC00*')]) {
      await assert.rejects(call, (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION' && /surrogate/.test(e.message));
    }
    assert.equal(await c.get('id:\uFFFD'), 1);
    assert.deepEqual(await c.keys('id:*'), ['id:\uFFFD']);
  });
});

describe('#13: a key name that is not UTF-8', () => {
  test('clear(), deletePattern("*") and keys() skip it, count it, and finish their work', async () => {
    const prefix = fresh();
    const c = tier(prefix);
    const bad = Buffer.concat([Buffer.from(`${prefix}:v:r|bad`), Buffer.from([0xff])]);
    assert.equal(await resp('SET', bad, 'planted'), '+OK\r\n');
    await c.setMany([['a', 1], ['b', 2]]);
    const keys = await c.keys();
    assert.deepEqual(keys.sort(), ['a', 'b']);
    assert.equal(await c.deletePattern('*'), 2);
    await c.set('c', 3);
    await c.clear();
    assert.equal(await c.get('c'), undefined);
    assert.equal(await tier(prefix).get('c'), undefined, 'clear() reached Redis');
    assert.ok(c.stats().l2.foreignKeys >= 3, 'skipped and counted each time');
    assert.equal(await resp('EXISTS', bad), ':1\r\n', 'never deleted');
  });
});

describe('#18: counters read by one rule in both bindings (tests/fixtures/counters.json)', () => {
  test('every case of the corpus', async () => {
    const prefix = fresh();
    const c = tier(prefix);
    const r = direct();
    for (const { text, value, js } of counters.cases) {
      await r.set(`${prefix}:n:r|c`, text);
      if (js === 'OVERFLOW') {
        await assert.rejects(c.counter('c'), (e) => e.code === 'OVERFLOW', text);
      } else {
        assert.equal(await c.counter('c'), value === null ? undefined : Number(value), JSON.stringify(text));
      }
      await c.delete('c');
    }
  });
});
