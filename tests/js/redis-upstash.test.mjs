// docs/REDIS.md, "Coming from @upstash/redis": every row of its table, run
// against both clients (the official @upstash/redis and RedisRest) over a
// real bridge and redis-server, so that the table stays true.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis, errors } from '@upstash/redis';

const { UpstashError } = errors;
import { RedisRest, EdgeCacheError } from 'edgecache';
import { redisAndBridge } from './servers.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const TOKEN = 'upstash-diff-token-0123456789';
const servers = redisAndBridge({ token: TOKEN });
const clients = () => [new Redis({ url: servers.bridge.url, token: TOKEN }), new RedisRest({ url: servers.bridge.url, token: TOKEN })];

test('the table is there, with the rows tested below', () => {
  const md = readFileSync(path.join(root, 'docs/REDIS.md'), 'utf8');
  const table = md.slice(md.indexOf('### Coming from `@upstash/redis`'), md.indexOf('## `TieredCache`'));
  const rows = [...table.matchAll(/^\| `([^`]+)`/gm)].map((m) => m[1]).filter((r) => r !== 'call');
  assert.deepEqual(rows, [
    'set(k, v)',
    'set(k, v, { nx: true })',
    'set(k, { a: 1 })',
    'get(k)',
    "mget('a', 'b')",
    'set(k, v, { xx, get, keepTtl, exat, pxat })',
    'hgetall',
    'scan(cursor, { match, count })',
    'pipeline()',
    'multi()',
    'Redis.fromEnv()',
  ]);
  assert.match(table, /\| a Redis error \(`ERR \.\.\.`\) \| `UpstashError` \|/);
});

test('set: "OK" and null there, true and false here; objects and numbers', async () => {
  const [up, ec] = clients();
  assert.equal(await up.set('u:set', 'v'), 'OK');
  assert.equal(await ec.set('u:set', 'v'), true);
  assert.equal(await up.set('u:set', 'v', { nx: true }), null);
  assert.equal(await ec.set('u:set', 'v', { nx: true }), false);
  assert.equal(await up.set('u:obj', { a: 1 }), 'OK');
  assert.equal(await ec.get('u:obj'), '{"a":1}', 'upstash stored JSON.stringify(value)');
  await assert.rejects(ec.set('u:obj2', /** @type {any} */ ({ a: 1 })), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION');
  assert.equal(await ec.set('u:num', /** @type {any} */ (5)), true);
  assert.equal(await ec.get('u:num'), '5');
});

test('get and mget: JSON parsed there, text here; mget takes one array', async () => {
  const [up, ec] = clients();
  await ec.set('u:json', '{"a":1}');
  await ec.set('u:42', '42');
  assert.deepEqual(await up.get('u:json'), { a: 1 });
  assert.equal(await up.get('u:42'), 42);
  assert.equal(await new Redis({ url: servers.bridge.url, token: TOKEN, automaticDeserialization: false }).get('u:42'), '42');
  assert.equal(await ec.get('u:json'), '{"a":1}');
  assert.equal(await ec.get('u:42'), '42');
  assert.deepEqual(await up.mget('u:json', 'u:42'), [{ a: 1 }, 42]);
  assert.deepEqual(await ec.mget(['u:json', 'u:42']), ['{"a":1}', '42']);
});

test('set options other than px, ex and nx are ignored by RedisRest (the SET runs without them)', async () => {
  const [up, ec] = clients();
  // xx: upstash does not create a missing key; RedisRest ignores xx and creates it.
  assert.equal(await up.set('u:xx:a', 'v', { xx: true }), null);
  assert.equal(await up.get('u:xx:a'), null);
  assert.equal(await ec.set('u:xx:b', 'v', /** @type {any} */ ({ xx: true })), true);
  assert.equal(await ec.get('u:xx:b'), 'v');
  // get: upstash answers the old value; RedisRest answers true.
  assert.equal(await up.set('u:xx:b', 'w', { get: true }), 'v');
  assert.equal(await ec.set('u:xx:b', 'x', /** @type {any} */ ({ get: true })), true);
  // keepTtl: upstash keeps the TTL; RedisRest's SET clears it.
  await ec.set('u:ttl', 'v', { px: 60_000 });
  await up.set('u:ttl', 'w', { keepTtl: true });
  assert.ok((await ec.pttl('u:ttl')) > 0);
  await ec.set('u:ttl', 'x', /** @type {any} */ ({ keepTtl: true }));
  assert.equal(await ec.pttl('u:ttl'), -1);
  // The way to send them: command().
  assert.equal(await ec.command(['SET', 'u:xx:c', 'v', 'XX']), null);
});

test('commands without a method: raw replies through command()', async () => {
  const [up, ec] = clients();
  assert.equal(await ec.command(['HSET', 'u:h', 'f', 1]), 1);
  assert.deepEqual(await up.hgetall('u:h'), { f: 1 });
  assert.deepEqual(await ec.command(['HGETALL', 'u:h']), ['f', '1']);
  assert.equal(typeof (/** @type {any} */ (ec).hgetall), 'undefined');
});

test('scan: the same [cursor, keys], the cursor a string in both', async () => {
  const [up, ec] = clients();
  await ec.set('u:scan', '1');
  const a = await up.scan(0, { match: 'u:scan', count: 1000 });
  const b = await ec.scan('0', { match: 'u:scan', count: 1000 });
  assert.equal(typeof a[0], 'string');
  assert.deepEqual(b, a);
});

test('pipeline and multi: a builder that throws at the first failed command there; outcomes per command here', async () => {
  const [up, ec] = clients();
  await ec.set('u:text', 'x');
  const p = up.pipeline();
  p.set('u:p', 'x');
  p.incr('u:text');
  await assert.rejects(p.exec(), (e) => e instanceof UpstashError && /not an integer/.test(e.message));
  const kept = up.pipeline();
  kept.set('u:p', 'x');
  kept.incr('u:text');
  const keptOut = await kept.exec({ keepErrors: true });
  assert.equal(keptOut[0].result, 'OK');
  assert.match(keptOut[1].error, /not an integer/);
  assert.deepEqual(await ec.pipeline([['SET', 'u:p', 'x'], ['INCR', 'u:text']]), [
    { ok: true, value: 'OK' },
    { ok: false, error: 'ERR value is not an integer or out of range' },
  ]);
  const m = up.multi();
  m.set('u:m', 'y');
  m.get('u:m');
  assert.deepEqual(await m.exec(), ['OK', 'y']);
  assert.deepEqual(await ec.multi([['SET', 'u:m', 'y'], ['GET', 'u:m']]), [
    { ok: true, value: 'OK' },
    { ok: true, value: 'y' },
  ]);
});

test('errors: UpstashError there, EdgeCacheError L2_REDIS here; fromEnv reads the EDGECACHE_ names first', async () => {
  const [up, ec] = clients();
  await ec.set('u:text2', 'x');
  await assert.rejects(up.incrby('u:text2', 1), (e) => e instanceof UpstashError);
  await assert.rejects(ec.incrby('u:text2', 1), (e) => e instanceof EdgeCacheError && e.code === 'L2_REDIS');
  const env = { EDGECACHE_REDIS_URL: servers.bridge.url, EDGECACHE_REDIS_TOKEN: TOKEN, UPSTASH_REDIS_REST_URL: 'http://127.0.0.1:1', UPSTASH_REDIS_REST_TOKEN: 'nope' };
  assert.equal(await RedisRest.fromEnv(env).ping(), 'PONG');
  const onlyUpstash = { UPSTASH_REDIS_REST_URL: servers.bridge.url, UPSTASH_REDIS_REST_TOKEN: TOKEN };
  assert.equal(await RedisRest.fromEnv(onlyUpstash).ping(), 'PONG');
});

test('alike: get, del, incrby, pttl, ping, non-ASCII text', async () => {
  const [up, ec] = clients();
  await ec.set('u:same', 'ÿ é 日本');
  assert.equal(await up.get('u:same'), await ec.get('u:same'));
  assert.equal(await up.get('u:none'), await ec.get('u:none'));
  assert.equal(await up.incrby('u:c', 2), 2);
  assert.equal(await ec.incrby('u:c', 2), 4);
  assert.equal(await up.pttl('u:none'), await ec.pttl('u:none'));
  assert.equal(await up.ping(), await ec.ping());
  assert.equal(await up.del('u:same'), 1);
  assert.equal(await ec.del('u:same'), 0);
});
