// Races the chaos harness (bench/chaos.mjs) found in TieredCache, each
// reproduced deterministically: a fetch that holds one request (or its
// answer) makes the interleaving certain. In each, a read that began after
// a delete was acknowledged served the deleted value from this isolate's
// L1, which the chaos run reports as a wrong value.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { TieredCache, RedisRest, generateSecureKey } from 'edgecache';
import { startRedis, startBridge } from './servers.mjs';

const TOKEN = 'races-token-' + Math.random().toString(36).slice(2);
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A fetch that holds requests whose commands include `command`: before
 * sending (`when: 'request'`, so Redis runs it late) or after the answer
 * (`when: 'answer'`, so Redis runs it now and the client learns late).
 */
function holding(command, when, ms = 300) {
  return async (input, init) => {
    // The coherence log's own reads (keys `<prefix>:c:{…}`) are not held.
    const held = JSON.parse(init.body).some((c) => c[0] === command && !String(c[1]).includes(':c:{'));
    if (held && when === 'request') await sleep(ms);
    const res = await fetch(input, init);
    if (held && when === 'answer') {
      const text = await res.text();
      await sleep(ms);
      return new Response(text, { status: res.status, headers: res.headers });
    }
    return res;
  };
}

let n = 0;
function isolate(f) {
  return new TieredCache({
    redis: new RedisRest({ url: bridge.url, token: TOKEN, ...(f ? { fetch: f } : {}) }),
    signer: { keys: { k1: SECRET } },
    prefix: `races${++n}`,
    log: () => {},
  });
}

/** Two isolates on one prefix: `writer` (plain) and `reader` (with fetch `f`). */
function pair(f) {
  const prefix = `races${++n}`;
  const make = (g) =>
    new TieredCache({
      redis: new RedisRest({ url: bridge.url, token: TOKEN, ...(g ? { fetch: g } : {}) }),
      signer: { keys: { k1: SECRET } },
      prefix,
      log: () => {},
    });
  return { writer: make(), reader: make(f) };
}

describe('TieredCache: a read concurrent with a delete never outlives it in L1', () => {
  test('deletePattern: a get between its SCAN and its UNLINK does not keep the value in L1', async () => {
    const { writer, reader } = pair(holding('UNLINK', 'request'));
    await writer.set('g:k', 'v1');
    const del = reader.deletePattern('g:*'); // SCAN now, UNLINK held 300 ms
    await sleep(100);
    assert.equal(await reader.get('g:k'), 'v1', 'concurrent with the delete: the old value may be read');
    await del;
    assert.equal(await reader.get('g:k'), undefined, 'read after deletePattern resolved');
  });

  test('delete: a read that begins after it does not join a read in flight from before it', async () => {
    const { writer, reader } = pair(holding('GET', 'answer'));
    await writer.set('k', 'v1');
    const early = reader.get('k'); // GET runs now, its answer is held 300 ms
    await sleep(20);
    await reader.delete('k');
    assert.equal(await reader.get('k'), undefined, 'read after delete resolved');
    assert.equal(await early, 'v1');
    assert.equal(await reader.get('k'), undefined);
  });

  test('getMany: a batch read in flight across a delete does not put the old value in L1', async () => {
    const { writer, reader } = pair(holding('MGET', 'answer'));
    await writer.set('a', 'va');
    await writer.set('b', 'vb');
    const early = reader.getMany(['a', 'b']); // MGET runs now, its answer is held
    await sleep(20);
    await reader.delete('a');
    assert.deepEqual(await early, ['va', 'vb']);
    assert.equal(await reader.get('a'), undefined, 'read after delete resolved');
    assert.equal(await reader.get('b'), 'vb');
  });

  test('getMany across deletePattern', async () => {
    const { writer, reader } = pair(holding('MGET', 'answer'));
    await writer.set('p:a', 'va');
    const early = reader.getMany(['p:a']);
    await sleep(20);
    await reader.deletePattern('p:*');
    await early;
    assert.equal(await reader.get('p:a'), undefined);
  });

  test('set: a read in flight across a set does not put the older value back in L1', async () => {
    const { writer, reader } = pair(holding('GET', 'answer'));
    await writer.set('k', 'v1');
    const early = reader.get('k'); // reads v1 now, answer held
    await sleep(20);
    await reader.set('k', 'v2');
    assert.equal(await reader.get('k'), 'v2');
    await early;
    assert.equal(await reader.get('k'), 'v2', 'the held v1 did not replace v2 in L1');
  });

  test('a single isolate still shares one request between concurrent misses', async () => {
    let requests = 0;
    const c = isolate((i, init) => {
      requests++;
      return fetch(i, init);
    });
    await c.set('x', 1);
    c.l1.clear();
    requests = 0;
    assert.deepEqual(await Promise.all([c.get('x'), c.get('x'), c.get('x')]), [1, 1, 1]);
    assert.equal(requests, 1);
  });
});

describe('TieredCache: a TTL counts from the set call, in L1 as in the envelope', () => {
  test('a set whose request is slow does not keep its value in L1 past its TTL', async () => {
    const c = isolate(holding('SET', 'request', 300));
    await c.set('slow', 'v', { ttl: 200 });
    // 300 ms after the call: the envelope has expired, so has the L1 copy.
    assert.equal(await c.get('slow'), undefined);
  });

  test('setMany: the same', async () => {
    const c = isolate(holding('SET', 'request', 300));
    await c.setMany([['a', 1, { ttl: 200 }], ['b', 2, { ttl: 5_000 }]]);
    assert.deepEqual(await c.getMany(['a', 'b']), [undefined, 2]);
  });
});
