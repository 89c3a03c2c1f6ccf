// Tests of signed envelopes (js/signer.ts over src/envelope.rs), through
// the package's public entry. The test vectors come from docs/ENVELOPE.md
// and are re-derived here with node:crypto from the documented layout; the
// Redis tier's context (issue 14: the prefix is bound) is checked against a
// real redis-server and the real bridge.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { EdgeCacheError, RedisRest, Signer, TieredCache, generateSecureKey } from 'edgecache';
// The tier's key layout, which the tier passes to sealPayload/openPayload:
// the same module instance as the package's (dist/signer.js imports it).
import { LayoutCore } from '../../dist/wasm/edgecache.js';
import { redisAndBridge } from './servers.mjs';

const doc = readFileSync(new URL('../../docs/ENVELOPE.md', import.meta.url), 'utf8');
const vectors = JSON.parse(doc.split('<!-- vectors:begin -->')[1].split('<!-- vectors:end -->')[0].replace(/```(json)?/g, ''));

const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
const SECRET2 = generateSecureKey();

/** Asserts that `fn` throws an EdgeCacheError with `code` (or one of `code`). */
function throwsCode(fn, code, what = '') {
  const codes = Array.isArray(code) ? code : [code];
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdgeCacheError, `${what}: expected EdgeCacheError, got ${e}`);
    assert.ok(codes.includes(e.code), `${what}: expected ${codes.join('|')}, got ${e.code}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected ${codes.join('|')}, nothing thrown`);
}

// ---- an independent implementation of docs/ENVELOPE.md ----

const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const u32 = (n) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/** The scope encoding as the document describes it. */
function scopeEncoding(scope) {
  const parts = [scope.tenant, scope.user].filter((p) => p !== undefined).map(String);
  const tag = scope.tenant !== undefined && scope.user !== undefined ? 'b' : scope.tenant !== undefined ? 't' : 'u';
  return tag + parts.map((p) => `${Buffer.byteLength(p)}:${p}`).join('') + '|';
}

const u16 = (n) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

/** Version 3's tag section: tagCount, then per tag u16 length, bytes, u64 version. */
function tagSection(tags) {
  return Buffer.concat([Buffer.from([tags.length]), ...tags.flatMap(([t, v]) => [u16(Buffer.byteLength(t)), Buffer.from(t), u64(v)])]);
}

function body({ version = 2, keyId, expiresAt, encoding, payload, tags = [] }) {
  const section = version === 3 ? tagSection(tags) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([version, keyId.length]), Buffer.from(keyId, 'ascii'), u64(expiresAt), Buffer.from([encoding]), section, u32(payload.length), payload]);
}

/** `u64(len) || bytes`. */
const field = (text) => {
  const b = Buffer.from(text);
  return Buffer.concat([u64(b.length), b]);
};

/**
 * The context field of version 2: `{ namespace }` (a Signer on its own,
 * marker 0x00) or `{ prefix, kind: 'v' }` (a cache's values, marker 'v').
 */
function contextField(context) {
  if (context.prefix !== undefined) return Buffer.concat([Buffer.from(context.kind), field(context.prefix)]);
  return Buffer.concat([Buffer.from([0]), field(context.namespace)]);
}

/** The MAC input; `context` null for version 1, which binds none. */
function macInput(bodyBytes, scope, key, context = { namespace: '' }) {
  const scopeField = scope == null ? Buffer.from([0]) : Buffer.concat([Buffer.from([1]), field(scopeEncoding(scope))]);
  const contextBytes = context === null ? Buffer.alloc(0) : contextField(context);
  return Buffer.concat([Buffer.from('edgecache/envelope\0'), bodyBytes, contextBytes, scopeField, field(key)]);
}

const payloadOf = (v) => (v.json !== undefined ? Buffer.from(v.json) : Buffer.from(v.bytesHex, 'hex'));

const v2 = vectors.filter((v) => v.version === 2);
const v3 = vectors.filter((v) => v.version === 3);
const v1 = vectors.filter((v) => v.version === 1);
const inTier = (v) => v.context?.prefix !== undefined;
const valueOf = (v) => (v.json !== undefined ? JSON.parse(v.json) : new Uint8Array(Buffer.from(v.bytesHex, 'hex')));
const nowFor = (v) => (v.expiresAt === 0 ? 1_000 : v.expiresAt - 60_000);

test('test vectors: node:crypto reproduces every documented tag and envelope', () => {
  assert.ok(v2.length >= 6 && v1.length >= 4 && v3.length >= 2);
  assert.ok(v3.some(inTier) && v3.some((v) => !inTier(v)));
  assert.ok(v2.some(inTier) && v2.some((v) => v.context.namespace !== undefined && v.context.namespace !== ''));
  for (const v of vectors) {
    const what = `v${v.version} ${v.key} ${JSON.stringify(v.context)}`;
    const secret = Buffer.from(v.secret, 'base64url');
    assert.equal(secret.toString('hex'), v.secretHex);
    if (v.scope) assert.equal(scopeEncoding(v.scope), v.scopeEncoding);
    assert.equal(v.context === null, v.version === 1, what);
    assert.equal(v.tags !== undefined, v.version === 3, what);
    const b = body({ version: v.version, keyId: v.keyId, expiresAt: v.expiresAt, encoding: v.json !== undefined ? 1 : 0, payload: payloadOf(v), tags: v.tags });
    const input = macInput(b, v.scope, v.key, v.context);
    assert.equal(input.toString('hex'), v.macInputHex, `MAC input of ${what}`);
    const tag = createHmac('sha256', secret).update(input).digest();
    assert.equal(tag.toString('hex'), v.tagHex, `tag of ${what}`);
    assert.equal(Buffer.concat([b, tag]).toString('base64url'), v.envelope, `envelope of ${what}`);
  }
  // admin and shop: one value, two caches, one secret, two tags.
  const [admin, shop] = ['admin', 'shop'].map((p) => v2.find((v) => v.context.prefix === p));
  assert.equal(admin.json, shop.json);
  assert.notEqual(admin.tagHex, shop.tagHex);
});

test('test vectors: open accepts them and seal reproduces them, in their context', () => {
  for (const v of v2) {
    const now = nowFor(v);
    const ttl = v.expiresAt === 0 ? 0 : v.expiresAt - now;
    for (const secret of [v.secret, Buffer.from(v.secretHex, 'hex'), new Uint8Array(Buffer.from(v.secretHex, 'hex')).buffer]) {
      const signer = new Signer({ keys: { [v.keyId]: secret }, current: v.keyId, now: () => now });
      if (inTier(v)) {
        // What TieredCache does: the layout of its prefix is the context.
        const layout = new LayoutCore(v.context.prefix);
        const opened = signer.openPayload(v.key, v.envelope, v.scope ?? undefined, layout);
        assert.deepEqual(opened, { payload: v.json, expiresAt: v.expiresAt });
        assert.equal(signer.sealPayload(v.key, v.json, 1, v.scope ?? undefined, ttl, layout), v.envelope, `sealPayload of ${v.key}`);
        // Not a Signer's own value, in no namespace.
        throwsCode(() => signer.open(v.key, v.envelope, { scope: v.scope ?? undefined, context: v.context.prefix }), 'BAD_SIGNATURE');
        layout.free();
      } else {
        const opts = { ...(v.scope ? { scope: v.scope } : {}), ...(v.context.namespace ? { context: v.context.namespace } : {}) };
        const value = signer.open(v.key, v.envelope, opts);
        assert.deepEqual(value, valueOf(v));
        assert.equal(signer.seal(v.key, value, { ...opts, ttl }), v.envelope, `seal of ${v.key}`);
      }
      signer.free();
    }
  }
});

test('test vectors: version 3 (tags) opens with its tags and seal reproduces it, in JS as in Rust', () => {
  for (const v of v3) {
    const now = nowFor(v);
    const ttl = v.expiresAt === 0 ? 0 : v.expiresAt - now;
    const signer = new Signer({ keys: { [v.keyId]: v.secret }, current: v.keyId, now: () => now });
    const scope = v.scope ?? undefined;
    const [payload, encoding] = v.json !== undefined ? [v.json, 1] : [new Uint8Array(Buffer.from(v.bytesHex, 'hex')), 0];
    if (inTier(v)) {
      const layout = new LayoutCore(v.context.prefix);
      assert.deepEqual(signer.openPayload(v.key, v.envelope, scope, layout), { payload, expiresAt: v.expiresAt, tags: v.tags });
      assert.equal(signer.sealPayload(v.key, payload, encoding, scope, ttl, layout, v.tags), v.envelope, `sealPayload of ${v.key}`);
      // Without its tags, or with other versions: another envelope, which the documented one is not.
      assert.notEqual(signer.sealPayload(v.key, payload, encoding, scope, ttl, layout), v.envelope);
      assert.notEqual(signer.sealPayload(v.key, payload, encoding, scope, ttl, layout, v.tags.map(([t, n]) => [t, n + 1])), v.envelope);
      layout.free();
    } else {
      const opts = scope ? { scope } : {};
      assert.deepEqual(signer.openTagged(v.key, v.envelope, opts), { value: valueOf(v), tags: v.tags });
      assert.equal(signer.seal(v.key, valueOf(v), { ...opts, ttl, tags: v.tags }), v.envelope, `seal of ${v.key}`);
      // The default context through the internal API too.
      assert.deepEqual(signer.openPayload(v.key, v.envelope, scope, undefined), { payload, expiresAt: v.expiresAt, tags: v.tags });
      assert.equal(signer.sealPayload(v.key, payload, encoding, scope, ttl, undefined, v.tags), v.envelope);
      // open cannot check tags, so it refuses them, as a reader that does not know version 3 does.
      throwsCode(() => signer.open(v.key, v.envelope, opts), 'MALFORMED_ENVELOPE', v.key);
    }
    signer.free();
  }
});

test('tags in envelopes: untagged stays version 2, bad tags are refused, and open refuses tagged envelopes', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  const plain = signer.seal('k', { a: 1 });
  assert.equal(Buffer.from(plain, 'base64url')[0], 2);
  assert.equal(signer.seal('k', { a: 1 }, { tags: [] }), plain);
  assert.equal(signer.sealPayload('k', '{"a":1}', 1, undefined, 0, undefined, []), plain);
  assert.deepEqual(signer.openTagged('k', plain), { value: { a: 1 }, tags: [] });
  assert.equal('tags' in signer.openPayload('k', plain, undefined, undefined), false);
  const tagged = signer.seal('k', { a: 1 }, { tags: [['product:7', 2], ['Zoë', 0]] });
  assert.equal(Buffer.from(tagged, 'base64url')[0], 3);
  assert.deepEqual(signer.openTagged('k', tagged), { value: { a: 1 }, tags: [['product:7', 2], ['Zoë', 0]] });
  throwsCode(() => signer.open('k', tagged), 'MALFORMED_ENVELOPE');
  // Bound: another key or scope does not open it.
  throwsCode(() => signer.openTagged('j', tagged), 'BAD_SIGNATURE');
  throwsCode(() => signer.openTagged('k', tagged, { scope: { tenant: 'a' } }), 'BAD_SIGNATURE');
  const bad = [
    'product:7',
    [['', 0]],
    [['a,b', 0]],
    [['a\n', 0]],
    [['x'.repeat(257), 0]],
    [['\uD800', 0]],
    [['a', -1]],
    [['a', 1.5]],
    [['a', 2 ** 53]],
    [['a', '1']],
    [['a', 0], ['a', 1]],
    [['a']],
    ['a'],
    Array.from({ length: 65 }, (_, i) => [`t${i}`, 0]),
  ];
  for (const tags of bad) {
    throwsCode(() => signer.seal('k', 1, { tags }), 'INVALID_TAG', JSON.stringify(tags).slice(0, 60));
    if (Array.isArray(tags)) throwsCode(() => signer.sealPayload('k', '1', 1, undefined, 0, undefined, tags), 'INVALID_TAG');
  }
  // The most: 64 tags of 256 bytes (2^53 - 1 the largest version).
  const most = Array.from({ length: 64 }, (_, i) => [String(i).padStart(256, 'x'), 2 ** 53 - 1]);
  const big = signer.seal('k', 'v', { tags: most });
  assert.deepEqual(signer.openTagged('k', big).tags, most);
  signer.free();
});

test('test vectors: version 1 is refused (OUTDATED_ENVELOPE) unless acceptV1, then opens in any context', () => {
  for (const v of v1) {
    const now = nowFor(v);
    const scope = v.scope ?? undefined;
    const strict = new Signer({ keys: { [v.keyId]: v.secret }, now: () => now });
    const e = throwsCode(() => strict.open(v.key, v.envelope, { scope }), 'OUTDATED_ENVELOPE', v.key);
    assert.match(e.message, /acceptV1/);
    const lenient = new Signer({ keys: { [v.keyId]: v.secret }, now: () => now, acceptV1: true });
    assert.deepEqual(lenient.open(v.key, v.envelope, { scope }), valueOf(v));
    // What version 1 gives up: the context is not bound.
    assert.deepEqual(lenient.open(v.key, v.envelope, { scope, context: 'elsewhere' }), valueOf(v));
    const shop = new LayoutCore('shop');
    assert.notEqual(lenient.openPayload(v.key, v.envelope, scope, shop), undefined);
    throwsCode(() => strict.openPayload(v.key, v.envelope, scope, shop), 'OUTDATED_ENVELOPE');
    shop.free();
    // Still bound to its scope and key.
    throwsCode(() => lenient.open(v.key + 'x', v.envelope, { scope }), 'BAD_SIGNATURE');
    // And never written: sealing the same value gives version 2.
    const ttl = v.expiresAt === 0 ? 0 : v.expiresAt - now;
    const resealed = lenient.seal(v.key, valueOf(v), { scope, ttl });
    assert.equal(Buffer.from(resealed, 'base64url')[0], 2);
    const twin = v2.find((w) => w.key === v.key && w.context.namespace === '');
    if (twin) assert.equal(resealed, twin.envelope, `the version 2 vector of ${v.key}`);
  }
  throwsCode(() => new Signer({ keys: { k1: SECRET }, acceptV1: 'yes' }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { k1: SECRET }, acceptV1: 1 }), 'INVALID_OPTION');
});

test('issue 14: the context option binds a namespace; the default is distinct from every other', () => {
  const signer = new Signer({ keys: { k1: SECRET }, now: () => 0 });
  const names = [undefined, '', 'a', 'b', 'ab', 'kv:sessions', 'é', 'test'];
  for (const [i, context] of names.entries()) {
    const sealed = signer.seal('k', { i }, { context });
    for (const [j, other] of names.entries()) {
      const same = i === j || (context ?? '') === (other ?? '');
      if (same) assert.deepEqual(signer.open('k', sealed, { context: other }), { i });
      else throwsCode(() => signer.open('k', sealed, { context: other }), 'BAD_SIGNATURE', `${context} as ${other}`);
    }
  }
  // A namespace spelled like a cache's prefix is not that cache.
  const layout = new LayoutCore('test');
  const asNamespace = signer.seal('k', 1, { context: 'test' });
  throwsCode(() => signer.openPayload('k', asNamespace, undefined, layout), 'BAD_SIGNATURE');
  const asTier = signer.sealPayload('k', '1', 1, undefined, 0, layout);
  throwsCode(() => signer.open('k', asTier, { context: 'test' }), 'BAD_SIGNATURE');
  throwsCode(() => signer.open('k', asTier), 'BAD_SIGNATURE');
  assert.equal(signer.openPayload('k', asTier, undefined, layout).payload, '1');
  layout.free();
  for (const bad of [null, 1, {}, 'x\uD800']) {
    throwsCode(() => signer.seal('k', 1, { context: bad }), 'INVALID_OPTION', String(bad));
    throwsCode(() => signer.open('k', asNamespace, { context: bad }), 'INVALID_OPTION', String(bad));
  }
});

test('independently sealed envelopes open (node:crypto as the writer)', () => {
  const secret = Buffer.from(SECRET2, 'base64url');
  const scope = { tenant: 'acme', user: 7 };
  const b = body({ keyId: 'ext', expiresAt: 0, encoding: 1, payload: Buffer.from('{"a":[1,"é"]}') });
  const tag = createHmac('sha256', secret).update(macInput(b, scope, 'k')).digest();
  const signer = new Signer({ keys: { ext: SECRET2 } });
  assert.deepEqual(signer.open('k', Buffer.concat([b, tag]).toString('base64url'), { scope }), { a: [1, 'é'] });
});

// ---- issue 14: the Redis tier binds its prefix ----

describe('issue 14: envelopes in Redis are bound to the cache prefix (real redis-server and bridge)', () => {
  const token = generateSecureKey();
  const servers = redisAndBridge({ token });

  /** redis-cli against the test Redis: anyone with write access to it. */
  const cli = (...args) => execFileSync('redis-cli', ['-p', String(servers.redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');

  /** A TieredCache under `prefix`, its own isolate (L1, client), collecting its log. */
  function tier(prefix, options = {}) {
    const logs = [];
    const cache = new TieredCache({
      redis: new RedisRest({ url: servers.bridge.url, token }),
      signer: { keys: { k1: SECRET } },
      prefix,
      log: (m) => logs.push(m),
      ...options,
    });
    return Object.assign(cache, { logs });
  }

  test('a value copied from admin to shop under one secret is a miss for shop, counted as rejected', async () => {
    // One Signer (one secret) shared by both caches, as in one process.
    const signer = new Signer({ keys: { k1: SECRET } });
    const admin = tier('admin', { signer });
    const shop = tier('shop', { signer });
    await admin.set('flags', { admin: true });
    await admin.scope({ tenant: 'acme' }).set('flags', ['beta']);
    // Someone with access to Redis copies admin's values to shop's keys:
    // with redis-cli, and with a RedisRest client through the bridge.
    cli('SET', 'shop:v:r|flags', cli('GET', 'admin:v:r|flags'));
    const rest = new RedisRest({ url: servers.bridge.url, token });
    await rest.set('shop:v:t4:acme|flags', await rest.get('admin:v:t4:acme|flags'));
    assert.equal(await shop.get('flags'), undefined, 'shop must not serve admin\'s value');
    assert.equal(await shop.scope({ tenant: 'acme' }).get('flags'), undefined, 'nor in a scope');
    assert.equal(shop.stats().l2.rejected, 2);
    assert.equal(shop.stats().l2.hits, 0);
    assert.equal(shop.logs.length, 1, 'warned once');
    assert.match(shop.logs[0], /BAD_SIGNATURE/);
    // Another isolate of shop, with its own Signer of the same secret: the same.
    const other = tier('shop');
    assert.equal(await other.get('flags'), undefined);
    assert.equal(other.stats().l2.rejected, 1);
    // Not deleted (a rotation must not destroy values), and admin still reads them.
    assert.equal(cli('EXISTS', 'shop:v:r|flags'), '1');
    const reader = tier('admin');
    assert.deepEqual(await reader.get('flags'), { admin: true });
    assert.deepEqual(await reader.scope({ tenant: 'acme' }).get('flags'), ['beta']);
    assert.equal(reader.stats().l2.rejected, 0);
  });

  test('what the tier writes is the documented vector of its prefix, byte for byte, and it reads it back', async () => {
    const vs = v2.filter(inTier);
    assert.ok(vs.length >= 3);
    for (const v of vs) {
      const now = () => nowFor(v);
      const ttl = v.expiresAt === 0 ? 0 : v.expiresAt - now();
      const writer = tier(v.context.prefix, { signer: { keys: { [v.keyId]: v.secret } }, now });
      const view = v.scope ? writer.scope(v.scope) : writer;
      await view.set(v.key, JSON.parse(v.json), { ttl });
      const redisKey = `${v.context.prefix}:v:${v.scopeEncoding ?? 'r|'}${v.key}`;
      assert.equal(cli('GET', redisKey), v.envelope, redisKey);
      const reader = tier(v.context.prefix, { signer: { keys: { [v.keyId]: v.secret } }, now });
      assert.deepEqual(await (v.scope ? reader.scope(v.scope) : reader).get(v.key), JSON.parse(v.json));
      assert.equal(reader.stats().l2.hits, 1);
    }
  });

  test('a version 1 value is refused (rejected, OUTDATED_ENVELOPE) unless the signer has acceptV1', async () => {
    const old = v1.find((v) => v.key === 'user:1' && v.scope === null);
    assert.equal(old.secret, SECRET);
    cli('SET', 'mig:v:r|user:1', old.envelope);
    const strict = tier('mig');
    assert.equal(await strict.get('user:1'), undefined);
    assert.equal(strict.stats().l2.rejected, 1);
    assert.match(strict.logs[0], /OUTDATED_ENVELOPE/);
    assert.equal(cli('GET', 'mig:v:r|user:1'), old.envelope, 'a miss, not deleted');
    const migrating = tier('mig', { signer: { keys: { k1: SECRET }, acceptV1: true } });
    assert.deepEqual(await migrating.get('user:1'), JSON.parse(old.json));
    assert.equal(migrating.stats().l2.rejected, 0);
    // What acceptV1 gives up, as documented: a version 1 value copied to
    // another prefix is served there too.
    cli('SET', 'elsewhere:v:r|user:1', old.envelope);
    assert.deepEqual(await tier('elsewhere', { signer: { keys: { k1: SECRET }, acceptV1: true } }).get('user:1'), JSON.parse(old.json));
    assert.equal(await tier('elsewhere').get('user:1'), undefined);
    // Writes are version 2 whatever the option.
    await migrating.set('user:1', JSON.parse(old.json));
    assert.equal(Buffer.from(cli('GET', 'mig:v:r|user:1'), 'base64url')[0], 2);
    assert.deepEqual(await tier('mig').get('user:1'), JSON.parse(old.json));
  });
});

// ---- tampering ----

function small() {
  const signer = new Signer({ keys: { k1: SECRET }, current: 'k1', now: () => 0 });
  const scope = { tenant: 't', user: 'u' };
  return { signer, scope, sealed: signer.seal('k', 1, { scope }) };
}

test('every single-bit flip of the envelope bytes is rejected', () => {
  const { signer, scope, sealed } = small();
  const raw = Buffer.from(sealed, 'base64url');
  assert.equal(raw.length, 47 + 2 + 1);
  const tagStart = raw.length - 32;
  let checked = 0;
  for (let i = 0; i < raw.length * 8; i++) {
    const b = Buffer.from(raw);
    b[i >> 3] ^= 1 << (i & 7);
    const byte = i >> 3;
    // Flips in the expiry, payload or tag leave a well-formed envelope whose
    // tag no longer matches; flips elsewhere break the header.
    const expected = (byte >= 4 && byte < 12) || byte >= 17 ? 'BAD_SIGNATURE'
      : ['BAD_SIGNATURE', 'MALFORMED_ENVELOPE', 'UNKNOWN_KEY_ID', 'ENVELOPE_TOO_LARGE'];
    throwsCode(() => signer.open('k', b.toString('base64url'), { scope }), expected, `bit ${i} (byte ${byte}, tag at ${tagStart})`);
    checked++;
  }
  assert.equal(checked, 400);
  assert.equal(signer.open('k', sealed, { scope }), 1);
});

test('every bit flip and every substitution of an envelope character is rejected', () => {
  const { signer, scope, sealed } = small();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  let checked = 0;
  for (let i = 0; i < sealed.length; i++) {
    const variants = new Set();
    for (let bit = 0; bit < 16; bit++) variants.add(String.fromCharCode(sealed.charCodeAt(i) ^ (1 << bit)));
    for (const c of alphabet) variants.add(c);
    variants.delete(sealed[i]);
    for (const c of variants) {
      const s = sealed.slice(0, i) + c + sealed.slice(i + 1);
      // (The first characters can spell version 1: refused as outdated.)
      throwsCode(() => signer.open('k', s, { scope }), ['BAD_SIGNATURE', 'MALFORMED_ENVELOPE', 'OUTDATED_ENVELOPE', 'UNKNOWN_KEY_ID', 'ENVELOPE_TOO_LARGE'], `char ${i} -> ${JSON.stringify(c)}`);
      checked++;
    }
  }
  assert.ok(checked > sealed.length * 70);
});

test('an envelope moved to another key or scope is rejected', () => {
  const signer = new Signer({ keys: { k1: SECRET }, now: () => 0 });
  const contexts = [
    undefined,
    { tenant: 'acme' },
    { user: 'acme' },
    { tenant: 'acme', user: '1' },
    { tenant: 'acme', user: '2' },
    { tenant: 'other', user: '1' },
    { tenant: '1', user: 'acme' },
  ];
  for (const [i, scope] of contexts.entries()) {
    const sealed = signer.seal('user:1', { i }, { scope });
    for (const [j, other] of contexts.entries()) {
      if (i === j) assert.deepEqual(signer.open('user:1', sealed, { scope: other }), { i });
      else throwsCode(() => signer.open('user:1', sealed, { scope: other }), 'BAD_SIGNATURE', `${i} as ${j}`);
    }
    for (const key of ['user:2', 'user:1 ', 'User:1', '']) throwsCode(() => signer.open(key, sealed, { scope }), 'BAD_SIGNATURE', key);
  }
  // A root key spelled like a scope's encoding plus a key is not that scope.
  const root = signer.seal('t4:acme|user:1', 1);
  throwsCode(() => signer.open('user:1', root, { scope: { tenant: 'acme' } }), 'BAD_SIGNATURE');
  // Numbers are their decimal string, as in MemoryCache.scope.
  const n = signer.seal('k', 1, { scope: { tenant: 7, user: 42 } });
  assert.equal(signer.open('k', n, { scope: { tenant: '7', user: '42' } }), 1);
  // A refused scope between two calls changes nothing (the core caches the last scope).
  const a = signer.seal('k', 'a', { scope: { tenant: 'a' } });
  throwsCode(() => signer.seal('k', 'a', { scope: { tenant: '' } }), 'INVALID_SCOPE');
  throwsCode(() => signer.open('k', a, { scope: { tenant: 'a', user: '' } }), 'INVALID_SCOPE');
  assert.equal(signer.open('k', a, { scope: { tenant: 'a' } }), 'a');
  throwsCode(() => signer.open('k', a, { scope: { user: 'a' } }), 'BAD_SIGNATURE');
  throwsCode(() => signer.open('k', a), 'BAD_SIGNATURE');
  assert.equal(signer.open('k', a, { scope: { tenant: 'a' } }), 'a');
  // Another secret under the same key id.
  const impostor = new Signer({ keys: { k1: SECRET2 } });
  throwsCode(() => impostor.open('k', n, { scope: { tenant: 7, user: 42 } }), 'BAD_SIGNATURE');
});

// ---- rotation ----

test('rotation: k2 seals while k1 still verifies; removing k1 refuses its envelopes', () => {
  const v1 = new Signer({ keys: { k1: SECRET }, current: 'k1' });
  const old = v1.seal('k', 'old');
  const v2 = new Signer({ keys: { k1: SECRET, k2: SECRET2 }, current: 'k2' });
  assert.equal(v2.currentKeyId, 'k2');
  const fresh = v2.seal('k', 'new');
  const header = Buffer.from(fresh, 'base64url');
  assert.equal(header.subarray(2, 2 + header[1]).toString(), 'k2');
  assert.equal(v2.open('k', old), 'old');
  assert.equal(v2.open('k', fresh), 'new');
  throwsCode(() => v1.open('k', fresh), 'UNKNOWN_KEY_ID');
  const v3 = new Signer({ keys: { k2: SECRET2 }, current: 'k2' });
  assert.equal(v3.open('k', fresh), 'new');
  const e = throwsCode(() => v3.open('k', old), 'UNKNOWN_KEY_ID');
  assert.match(e.message, /"k1"/);
});

// ---- expiry ----

test('expiry follows the injected clock; exactly at the expiry time it has expired', () => {
  let t = 1_000_000;
  const signer = new Signer({ keys: { k1: SECRET }, now: () => t });
  const sealed = signer.seal('k', { v: 1 }, { ttl: 100 });
  const forever = signer.seal('k', { v: 2 });
  t += 99;
  assert.deepEqual(signer.open('k', sealed), { v: 1 });
  t += 1;
  assert.equal(signer.open('k', sealed), undefined);
  t += 1;
  assert.equal(signer.open('k', sealed), undefined);
  t = 8.64e15;
  assert.deepEqual(signer.open('k', forever), { v: 2 });
  // The absolute expiry is in the envelope: another signer agrees.
  const other = new Signer({ keys: { k1: SECRET }, now: () => 1_000_099 });
  assert.deepEqual(other.open('k', sealed), { v: 1 });
  // A fractional clock rounds the expiry up, never down.
  t = 500.5;
  const frac = signer.seal('k', 1, { ttl: 10 });
  t = 510.9;
  assert.equal(signer.open('k', frac), 1);
  t = 511;
  assert.equal(signer.open('k', frac), undefined);
  // An altered expired envelope is an error, not a quiet miss.
  t = 2_000_000;
  assert.equal(signer.open('k', sealed), undefined);
  const raw = Buffer.from(sealed, 'base64url');
  raw[raw.length - 1] ^= 1;
  throwsCode(() => signer.open('k', raw.toString('base64url')), 'BAD_SIGNATURE');
  for (const ttl of [-1, NaN, Infinity]) throwsCode(() => signer.seal('k', 1, { ttl }), 'INVALID_TTL', String(ttl));
});

// ---- keys ----

test('generateSecureKey: 43 base64url characters of 32 random bytes', () => {
  const keys = new Set();
  for (let i = 0; i < 100; i++) {
    const k = generateSecureKey();
    assert.match(k, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(k, 'base64url').length, 32);
    keys.add(k);
  }
  assert.equal(keys.size, 100);
});

test('weak and invalid keys are refused', () => {
  for (const secret of ['short', 'hunter2', 'A'.repeat(42), new Uint8Array(31), new Uint8Array(32), new ArrayBuffer(16), 'A'.repeat(43)]) {
    throwsCode(() => new Signer({ keys: { k1: secret } }), 'WEAK_KEY', String(secret));
  }
  throwsCode(() => new Signer({ keys: { k1: '!'.repeat(43) } }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { k1: 42 } }), 'INVALID_OPTION');
  // Standard base64 with padding (openssl rand -base64 32) is the same key.
  const std = Buffer.from(SECRET2, 'base64url').toString('base64');
  const a = new Signer({ keys: { k: SECRET2 } });
  const b = new Signer({ keys: { k: std } });
  assert.equal(b.open('x', a.seal('x', 1)), 1);
});

test('a secret left undefined (an unset environment variable) says so', () => {
  assert.throws(
    () => new Signer({ keys: { k1: process.env.EDGECACHE_TEST_UNSET_VARIABLE } }),
    (e) => e.code === 'INVALID_OPTION' && /key id "k1" must be a string, Uint8Array or ArrayBuffer, got undefined: an unset environment variable\?/.test(e.message),
  );
  assert.throws(() => new Signer({ keys: { k1: 42 } }), /got number/);
});

test('signer options are checked', () => {
  throwsCode(() => new Signer({ keys: {} }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { a: SECRET, b: SECRET2 } }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { a: SECRET }, current: 'b' }), 'UNKNOWN_KEY_ID');
  throwsCode(() => new Signer({ keys: { 'a b': SECRET } }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { ['x'.repeat(65)]: SECRET } }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { a: SECRET }, maxPayloadBytes: 0 }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { a: SECRET }, maxPayloadBytes: 1.5 }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { a: SECRET }, now: 5 }), 'INVALID_OPTION');
  const s = new Signer({ keys: { a: SECRET } });
  throwsCode(() => s.seal(1, 'v'), 'INVALID_KEY');
  throwsCode(() => s.open(undefined, 'v'), 'INVALID_KEY');
  throwsCode(() => s.seal('k', 'v', { scope: {} }), 'INVALID_SCOPE');
  throwsCode(() => s.seal('k', 'v', { scope: { tenant: '' } }), 'INVALID_SCOPE');
  throwsCode(() => s.open('k', 'v', { scope: { user: {} } }), 'INVALID_SCOPE');
  // lone surrogates would encode as U+FFFD: 'a\uD800' and 'a\uDC00' would bind the same bytes
  throwsCode(() => s.seal('a\uD800', 'v'), 'INVALID_KEY');
  throwsCode(() => s.open('a\uDC00', s.seal('a\uFFFD', 'v')), 'INVALID_KEY');
  throwsCode(() => s.seal('k', 'v', { scope: { tenant: 'x\uDBFF' } }), 'INVALID_SCOPE');
  assert.equal(s.open('a\u{1F600}', s.seal('a\u{1F600}', 'ok')), 'ok', 'a surrogate pair is fine');
});

// ---- malformed input and limits ----

test('malformed envelopes are refused', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  const sealed = signer.seal('k', 'hello');
  const raw = Buffer.from(sealed, 'base64url');
  const open = (s) => () => signer.open('k', s);
  const bytes = (b) => open(Buffer.from(b).toString('base64url'));
  for (const s of [undefined, 42, null, {}]) throwsCode(open(s), 'MALFORMED_ENVELOPE', String(s));
  for (const s of ['', 'A', 'AA', '!!!!', sealed + '=', sealed + 'A', sealed.slice(0, -1), ' ' + sealed, sealed.slice(0, 5) + '+' + sealed.slice(6), sealed.slice(0, 20) + '\u00e9' + sealed.slice(21)]) {
    throwsCode(open(s), 'MALFORMED_ENVELOPE', JSON.stringify(s));
  }
  for (let cut = 0; cut < raw.length; cut++) throwsCode(bytes(raw.subarray(0, cut)), 'MALFORMED_ENVELOPE', `truncated to ${cut}`);
  throwsCode(bytes(Buffer.concat([raw, Buffer.from([0])])), 'MALFORMED_ENVELOPE', 'overlong');
  for (const version of [0, 3, 255]) {
    const b = Buffer.from(raw);
    b[0] = version;
    const e = throwsCode(bytes(b), 'MALFORMED_ENVELOPE', `version ${version}`);
    assert.match(e.message, /version/);
  }
  const old = Buffer.from(raw);
  old[0] = 1;
  throwsCode(bytes(old), 'OUTDATED_ENVELOPE', 'version 1');
  const enc = Buffer.from(raw);
  enc[2 + 2 + 8] = 9;
  throwsCode(bytes(enc), 'MALFORMED_ENVELOPE', 'encoding');
  const kid = Buffer.from(raw);
  kid[1] = 0;
  throwsCode(bytes(kid), 'MALFORMED_ENVELOPE', 'empty key id');
  kid[1] = 65;
  throwsCode(bytes(kid), 'MALFORMED_ENVELOPE', 'key id too long');
  // The header decides before the payload: an unknown key id with a
  // garbled payload is reported as the unknown key id.
  const big = signer.seal('k', 'x'.repeat(3000));
  const garbled = big.slice(0, 500) + '!' + big.slice(501);
  throwsCode(() => new Signer({ keys: { zz: SECRET2 } }).open('k', garbled), 'UNKNOWN_KEY_ID');
  throwsCode(() => signer.open('k', garbled), 'MALFORMED_ENVELOPE');
});

test('the payload size limit applies to seal and open', () => {
  const small = new Signer({ keys: { k1: SECRET }, maxPayloadBytes: 16 });
  const big = new Signer({ keys: { k1: SECRET } });
  assert.equal(small.open('k', small.seal('k', 'x'.repeat(14))), 'x'.repeat(14)); // "xx..." is 16 bytes of JSON
  throwsCode(() => small.seal('k', 'x'.repeat(15)), 'ENVELOPE_TOO_LARGE');
  throwsCode(() => small.seal('k', new Uint8Array(17)), 'ENVELOPE_TOO_LARGE');
  throwsCode(() => small.open('k', big.seal('k', 'x'.repeat(15))), 'ENVELOPE_TOO_LARGE');
  // Judged from the length: a huge string of garbage is refused as too large.
  throwsCode(() => big.open('k', '!'.repeat(4 << 20)), 'ENVELOPE_TOO_LARGE');
  // Unicode counts in UTF-8 bytes: "é" is 2.
  throwsCode(() => small.seal('k', 'é'.repeat(8)), 'ENVELOPE_TOO_LARGE');
});

// ---- values ----

test('JS values round-trip as JSON, bytes as Uint8Array', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  const rt = (v) => signer.open('k', signer.seal('k', v));
  for (const v of [null, 0, -1.5, true, '', 'héllo 🦀', [], [1, 'a', null], { a: { b: [1, 2] }, c: 'd' }, 'x'.repeat(10_000)]) {
    assert.deepEqual(rt(v), v);
  }
  assert.deepEqual(rt(new Date(0)), new Date(0).toISOString());
  const u8 = new Uint8Array([0, 1, 2, 253, 254, 255]);
  const out = rt(u8);
  assert.ok(out instanceof Uint8Array);
  assert.deepEqual(out, u8);
  assert.deepEqual(rt(u8.buffer), u8);
  assert.deepEqual(rt(u8.subarray(2, 4)), new Uint8Array([2, 253]));
  assert.deepEqual(rt(new Uint8Array(0)), new Uint8Array(0));
  // A sealed Uint8Array is bytes, not the JSON of an object.
  assert.notEqual(signer.seal('k', u8), signer.seal('k', { 0: 0, 1: 1, 2: 2, 3: 253, 4: 254, 5: 255 }));
  for (const v of [undefined, () => 1, Symbol('s'), 10n]) throwsCode(() => signer.seal('k', v), 'UNSERIALIZABLE_VALUE');
});

test('seal is deterministic; free() and Symbol.dispose release the signer', () => {
  let t = 0;
  const signer = new Signer({ keys: { k1: SECRET }, now: () => t++ });
  assert.equal(signer.seal('k', { a: 1 }), signer.seal('k', { a: 1 }));
  const sealed = signer.seal('k', 1);
  signer.free();
  signer.free();
  throwsCode(() => signer.open('k', sealed), 'FREED');
  throwsCode(() => signer.seal('k', 1), 'FREED');
  const d = new Signer({ keys: { k1: SECRET } });
  d[Symbol.dispose]();
  throwsCode(() => d.currentKeyId, 'FREED');
});

test('non-ASCII keys, scopes and values, and payloads that grow wasm memory', () => {
  const signer = new Signer({ keys: { k1: SECRET }, maxPayloadBytes: 4 << 20 });
  const other = new Signer({ keys: { k1: SECRET } });
  const scope = { tenant: 'Zoë', user: '🦀' };
  const v = { s: 'ключ 🦀 é'.repeat(50) };
  const sealed = signer.seal('ключ:🦀', v, { scope });
  assert.deepEqual(other.open('ключ:🦀', sealed, { scope }), v);
  throwsCode(() => other.open('ключ:🦀', sealed, { scope: { tenant: 'Zoe', user: '🦀' } }), 'BAD_SIGNATURE');
  // Growing wasm memory detaches old views: later calls must still work.
  for (const size of [1 << 20, 3 << 20]) {
    const big = { s: 'é'.repeat(size / 2 - 8) };
    const e = signer.seal('big', big);
    assert.deepEqual(signer.open('big', e), big);
    const bytes = new Uint8Array(size).map((_, i) => i * 7);
    assert.deepEqual(signer.open('big', signer.seal('big', bytes)), bytes);
  }
  assert.deepEqual(other.open('ключ:🦀', sealed, { scope }), v);
  assert.equal(signer.open('k', signer.seal('k', 'small')), 'small');
});

// ---- issue 8: hardening ----

test('issue 8: every seal/open failure is an EdgeCacheError', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  const cyclic = {};
  cyclic.self = cyclic;
  for (const v of [undefined, 10n, cyclic, { n: 1n }]) throwsCode(() => signer.seal('k', v), 'UNSERIALIZABLE_VALUE');
  throwsCode(() => signer.seal('k', 1, { scope: null }), 'INVALID_SCOPE');
  throwsCode(() => signer.seal('k', 1, { scope: 'acme' }), 'INVALID_SCOPE');
  throwsCode(() => signer.open('k', signer.seal('k', 1), { scope: null }), 'INVALID_SCOPE');
  throwsCode(() => signer.seal('k', 1, null), 'INVALID_OPTION');
  // Authentic, but its payload (marked JSON) is not JSON.
  const notJson = signer.sealPayload('k', '{not json', 1, undefined, 0, undefined);
  throwsCode(() => signer.open('k', notJson), 'MALFORMED_ENVELOPE');
});

test('issue 8: typed arrays other than Uint8Array, and DataViews, are refused, not sealed as {}', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  const buf = new Uint8Array([1, 2, 3, 4]).buffer;
  for (const v of [new DataView(buf), new Uint16Array(buf), new Float64Array(1), new Int8Array(buf)]) {
    throwsCode(() => signer.seal('k', v), 'UNSERIALIZABLE_VALUE');
  }
  assert.deepEqual(signer.open('k', signer.seal('k', new Uint8Array(buf, 1, 2))), new Uint8Array([2, 3]));
});

test('issue 8: no silent coercion of ttl or scope values; unknown options refused', () => {
  const signer = new Signer({ keys: { k1: SECRET } });
  for (const ttl of ['10', true, null, '', NaN, -1, Infinity, {}]) {
    throwsCode(() => signer.seal('k', 1, { ttl }), 'INVALID_TTL', String(ttl));
  }
  for (const bad of [NaN, Infinity, -Infinity]) {
    throwsCode(() => signer.seal('k', 1, { scope: { tenant: bad } }), 'INVALID_SCOPE');
    throwsCode(() => signer.seal('k', 1, { scope: { user: bad } }), 'INVALID_SCOPE');
    throwsCode(() => signer.open('k', signer.seal('k', 1), { scope: { tenant: bad } }), 'INVALID_SCOPE');
  }
  throwsCode(() => signer.seal('k', 1, { scope: { tenant: true } }), 'INVALID_SCOPE');
  throwsCode(() => signer.seal('k', 1, { scope: { tennant: 'acme' } }), 'INVALID_SCOPE');
  throwsCode(() => signer.seal('k', 1, { tll: 10 }), 'INVALID_OPTION');
  throwsCode(() => signer.open('k', signer.seal('k', 1), { scop: {} }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { k1: SECRET }, curent: 'k1' }), 'INVALID_OPTION');
  throwsCode(() => new Signer({ keys: { k1: SECRET }, maxPayloadBytes: '10' }), 'INVALID_OPTION');
  throwsCode(() => new Signer(null), 'INVALID_OPTION');
  // still fine: finite numbers stand for their decimal string
  const sealed = signer.seal('k', 1, { scope: { tenant: 42 }, ttl: 0 });
  assert.equal(signer.open('k', sealed, { scope: { tenant: '42' } }), 1);
});

test('issue 8: obviously weak secrets are refused, not only one repeated byte', () => {
  throwsCode(() => new Signer({ keys: { k1: 'g'.repeat(43) } }), 'WEAK_KEY');
  throwsCode(() => new Signer({ keys: { k1: new Uint8Array(32).map((_, i) => i % 2) } }), 'WEAK_KEY');
  throwsCode(() => new Signer({ keys: { k1: new TextEncoder().encode('abcd'.repeat(8)) } }), 'WEAK_KEY');
  for (let i = 0; i < 200; i++) new Signer({ keys: { k1: generateSecureKey() } }).free();
});

test('issue 8: when crypto.getRandomValues throws, the error says why and what to do', () => {
  const original = Object.getOwnPropertyDescriptor(globalThis.crypto, 'getRandomValues');
  globalThis.crypto.getRandomValues = () => {
    throw new Error('Disallowed operation called within global scope.');
  };
  try {
    assert.throws(generateSecureKey, (e) => {
      assert.ok(e instanceof EdgeCacheError);
      assert.equal(e.code, 'RANDOM_UNAVAILABLE');
      assert.match(e.message, /only while handling a request/);
      assert.match(e.message, /Disallowed operation/);
      assert.doesNotMatch(e.message, /has no crypto/);
      return true;
    });
  } finally {
    if (original) Object.defineProperty(globalThis.crypto, 'getRandomValues', original);
    else delete globalThis.crypto.getRandomValues;
  }
  assert.equal(generateSecureKey().length, 43);
});
