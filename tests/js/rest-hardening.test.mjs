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
