// Signed envelopes: values sealed with HMAC-SHA256 (computed in wasm)
// before they leave the isolate. The format is specified, with test
// vectors, in docs/ENVELOPE.md.
import { EdgeCacheError, rethrow } from './errors.js';
import { SignerCore, decodeSecret, generateSecureKey as coreGenerateSecureKey, signerMemory, type LayoutCore } from './wasm/edgecache.js';
import { ensureWasm } from '#wasm-init';
import { wellFormed } from './text.js';
import type { TagVersion } from './tags.js';
/** @internal The rule of tags (js/tags.ts), for the tiers and the tests. */
export { checkTags } from './tags.js';

/**
 * A new signing secret: 32 bytes from `crypto.getRandomValues`, as 43
 * characters of base64url. Store it as a secret (`wrangler secret put`)
 * and pass it in {@link SignerOptions.keys}.
 *
 * @example
 * ```ts
 * const signer = new Signer({ keys: { k1: generateSecureKey() }, current: 'k1' });
 * ```
 */
export function generateSecureKey(): string {
  ensureWasm();
  try {
    return coreGenerateSecureKey();
  } catch (e) {
    if ((e as { code?: unknown })?.code === 'RANDOM_UNAVAILABLE') throw randomUnavailable(e);
    rethrow(e);
  }
}

/**
 * Why the random source failed, in words the user can act on. Cloudflare
 * Workers have `crypto.getRandomValues` but refuse it outside a request (at
 * module scope); only a platform without it has "no random source".
 */
function randomUnavailable(cause: unknown): EdgeCacheError {
  const crypto = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => unknown } }).crypto;
  if (typeof crypto?.getRandomValues !== 'function') {
    return new EdgeCacheError('RANDOM_UNAVAILABLE', 'this platform has no crypto.getRandomValues, so no secure random source: generate the key elsewhere and pass it in', { cause });
  }
  let why = 'it failed';
  try {
    crypto.getRandomValues(new Uint8Array(1));
  } catch (e) {
    why = `it threw: ${e instanceof Error ? e.message : String(e)}`;
  }
  return new EdgeCacheError(
    'RANDOM_UNAVAILABLE',
    `crypto.getRandomValues is there but ${why}. Cloudflare Workers give random numbers only while handling a request, ` +
      'not at module scope: call generateSecureKey() inside fetch(), or rather generate the key once and store it as a secret ' +
      '(wrangler secret put) read from env',
    { cause },
  );
}

/** A signing secret: base64url or base64 text of at least 32 bytes, or the raw bytes. */
export type SignerSecret = string | Uint8Array | ArrayBuffer;

/** The tenant and/or user an envelope is bound to. */
export interface EnvelopeScope {
  /**
   * The tenant. A number becomes its decimal string.
   * @default undefined (no tenant)
   */
  tenant?: string | number;
  /**
   * The user. A number becomes its decimal string.
   * @default undefined (no user)
   */
  user?: string | number;
}

/** Options of {@link Signer}. */
export interface SignerOptions {
  /**
   * Key id → secret. Every key verifies; {@link SignerOptions.current} seals.
   * A key id is 1 to 64 printable ASCII characters without spaces. A secret
   * is at least 32 bytes ({@link generateSecureKey} makes one); text is
   * read as base64url or base64, shorter secrets throw `WEAK_KEY`.
   *
   * To rotate: add the new key and make it current (old envelopes still
   * open), then, once they have expired or been rewritten, remove the old
   * key (its envelopes then throw `UNKNOWN_KEY_ID`).
   */
  keys: Record<string, SignerSecret>;
  /**
   * The id of the key that seals.
   * @default the only key, when `keys` has exactly one
   */
  current?: string;
  /**
   * The clock, in ms since the Unix epoch, used for `ttl` and expiry.
   * @default Date.now
   */
  now?: () => number;
  /**
   * The largest payload in bytes (UTF-8 JSON or raw) that `seal` writes
   * and `open` reads; larger ones throw `ENVELOPE_TOO_LARGE`, and `open`
   * refuses them from their length alone.
   * @default 1048576 (1 MiB)
   */
  maxPayloadBytes?: number;
  /**
   * Also open envelopes of format version 1, written before envelopes bound
   * the cache's prefix (docs/ENVELOPE.md), during a migration window. A
   * version 1 value opens under any prefix or `context`: one copied from
   * another cache sharing the secret is served. Leave it off (version 1 is
   * then refused with `OUTDATED_ENVELOPE`; the Redis tier counts it as
   * rejected, a miss) once the old values have expired or been rewritten.
   * Sealing always writes version 2 (3 with tags).
   * @default false
   */
  acceptV1?: boolean;
}

/** Options of {@link Signer.seal}. */
export interface SealOptions {
  /**
   * The scope the value is written for; `open` must give the same one.
   * @default undefined (the root keyspace, distinct from every scope)
   */
  scope?: EnvelopeScope;
  /**
   * The namespace the value is written for, such as the KV namespace or
   * store it goes to: `open` must give the same one, so a value copied
   * between two namespaces signed with one secret does not open. Any
   * string of well-formed Unicode; never equal to a `TieredCache`'s
   * context.
   * @default '' (the default namespace)
   */
  context?: string;
  /**
   * Time to live in ms; after it `open` returns `undefined`.
   * @default 0 (never expires)
   */
  ttl?: number;
  /**
   * Tags, each with the version it is written under (`[tag, version]`,
   * the version an integer from 0 to 2^53 - 1): signed in the envelope
   * (format version 3, docs/ENVELOPE.md), so they can be neither stripped
   * nor changed. Such an envelope opens with {@link Signer.openTagged}
   * only, which returns them for the caller to check; `open` refuses it
   * (`MALFORMED_ENVELOPE`). A tag is 1 to 256 UTF-8 bytes without control
   * characters or commas, at most 64, each once (`INVALID_TAG`).
   * @default [] (no tags: a version 2 envelope)
   */
  tags?: readonly TagVersion[];
}

/** Options of {@link Signer.open}. */
export interface OpenOptions {
  /**
   * The scope the value was written for.
   * @default undefined (the root keyspace)
   */
  scope?: EnvelopeScope;
  /**
   * The namespace the value was written for ({@link SealOptions.context}).
   * @default '' (the default namespace)
   */
  context?: string;
}

function secretBytes(id: string, secret: SignerSecret): Uint8Array {
  if (typeof secret === 'string') return decodeSecret(secret);
  if (secret instanceof Uint8Array) return secret;
  if (secret instanceof ArrayBuffer) return new Uint8Array(secret);
  throw new EdgeCacheError('INVALID_OPTION', `the secret of key id ${JSON.stringify(id)} must be a string, Uint8Array or ArrayBuffer, got ${secret === undefined ? 'undefined: an unset environment variable?' : secret === null ? 'null' : typeof secret}`);
}

function part(name: string, v: string | number | undefined): string | undefined {
  if (v === undefined) return v;
  // NaN would seal under "NaN": every caller whose id failed to parse would share one scope.
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'string' && wellFormed(v)) return v;
  throw new EdgeCacheError(
    'INVALID_SCOPE',
    `${name} must be a finite number or a string of well-formed Unicode (no lone surrogates), got ${typeof v === 'string' ? 'a string with a lone surrogate' : String(v)}`,
  );
}

/** The tenant and user of a scope option; `undefined` for the root keyspace. */
function scopeOf(scope: unknown): { tenant: string | undefined; user: string | undefined } | undefined {
  if (scope === undefined) return undefined;
  if (scope === null || typeof scope !== 'object') {
    throw new EdgeCacheError('INVALID_SCOPE', `scope takes { tenant?, user? }, got ${scope === null ? 'null' : typeof scope}`);
  }
  for (const name of Object.keys(scope)) {
    if (name !== 'tenant' && name !== 'user') {
      throw new EdgeCacheError('INVALID_SCOPE', `unknown scope field ${JSON.stringify(name)}; known: tenant, user`);
    }
  }
  const s = scope as EnvelopeScope;
  return { tenant: part('tenant', s.tenant), user: part('user', s.user) };
}

function contextOf(context: unknown): string {
  if (context === undefined) return '';
  if (typeof context === 'string' && wellFormed(context)) return context;
  throw new EdgeCacheError(
    'INVALID_OPTION',
    `invalid option \`context\`: a string of well-formed Unicode (no lone surrogates), got ${typeof context === 'string' ? 'a string with a lone surrogate' : context === null ? 'null' : typeof context}`,
  );
}

/** Refuses a non-object and unknown option names. */
function checkOptions(options: unknown, known: readonly string[], where: string): void {
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', `${where}: options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new EdgeCacheError('INVALID_OPTION', `${where}: unknown option ${JSON.stringify(name)}; known: ${known.join(', ')}`);
    }
  }
}

function checkTtl(ttl: unknown): number {
  if (ttl === undefined) return 0;
  if (typeof ttl !== 'number' || !(ttl >= 0) || ttl === Infinity) {
    throw new EdgeCacheError(
      'INVALID_TTL',
      `ttl must be a finite number of milliseconds >= 0 (0 = never expires), got ${typeof ttl === 'string' ? JSON.stringify(ttl) : String(ttl)}`,
    );
  }
  return ttl;
}

/** The payload of a value: raw bytes (encoding 0) or JSON text (1). */
function payloadOf(value: unknown): [string | Uint8Array, 0 | 1] {
  if (value instanceof Uint8Array) return [value, 0];
  if (value instanceof ArrayBuffer) return [new Uint8Array(value), 0];
  if (ArrayBuffer.isView(value)) {
    throw new EdgeCacheError(
      'UNSERIALIZABLE_VALUE',
      `a ${value.constructor.name} cannot be sealed: seal its bytes as a Uint8Array ` +
        '(new Uint8Array(view.buffer, view.byteOffset, view.byteLength)); only Uint8Array and ArrayBuffer travel as bytes',
    );
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (cause) {
    throw new EdgeCacheError('UNSERIALIZABLE_VALUE', `the value cannot be sealed as JSON (${String(cause)}): give a JSON value, a Uint8Array or an ArrayBuffer`, { cause });
  }
  if (json === undefined) {
    throw new EdgeCacheError('UNSERIALIZABLE_VALUE', `a ${typeof value} cannot be sealed: give a JSON value, a Uint8Array or an ArrayBuffer`);
  }
  return [json, 1];
}

const SIGNER_OPTIONS = ['keys', 'current', 'now', 'maxPayloadBytes', 'acceptV1'] as const;

// ---- moving arguments into wasm ----
// A call writes its strings back to back into the signer's input buffer in
// wasm memory with TextEncoder.encodeInto (a native copy) and passes only
// their lengths; see src/wasm_signer.rs.

const encoder = new TextEncoder();
let memory: WebAssembly.Memory | undefined;
let heap = new Uint8Array(0);

/** A view of wasm memory (renewed after the memory grows, which detaches the old one). */
function wasmBytes(): Uint8Array {
  if (heap.byteLength === 0) {
    memory ??= signerMemory() as WebAssembly.Memory;
    heap = new Uint8Array(memory.buffer);
  }
  return heap;
}

// The lengths written by the last `put`, passed on to the core (-1: absent).
let nameLen = 0;
let keyLen = 0;
let tenantLen = -1;
let userLen = -1;
let restLen = 0;
let tailLen = 0;

/**
 * Writes the context's name, key, tenant, user, then `rest` (text or
 * bytes), then `tail` (text: a seal's tags) into `core`'s input buffer.
 */
function put(core: SignerCore, name: string, key: string, tenant: string | undefined, user: string | undefined, rest: string | Uint8Array, tail = ''): void {
  const small = 3 * (name.length + key.length + (tenant?.length ?? 0) + (user?.length ?? 0) + tail.length);
  // Room for ASCII text first (the usual case for JSON and always for
  // envelopes); the UTF-8 worst case only if that did not fit.
  let room = small + rest.length + 8;
  for (;;) {
    const start = core.input(room);
    const mem = wasmBytes();
    const end = start + room;
    let at = start;
    nameLen = 0;
    if (name !== '') at += nameLen = encoder.encodeInto(name, mem.subarray(at, end)).written;
    at += keyLen = encoder.encodeInto(key, mem.subarray(at, end)).written;
    tenantLen = userLen = -1;
    if (tenant !== undefined) at += tenantLen = encoder.encodeInto(tenant, mem.subarray(at, end)).written;
    if (user !== undefined) at += userLen = encoder.encodeInto(user, mem.subarray(at, end)).written;
    tailLen = 0;
    if (typeof rest !== 'string') {
      mem.set(rest, at);
      restLen = rest.length;
      if (tail !== '') tailLen = encoder.encodeInto(tail, mem.subarray(at + restLen, end)).written;
      return;
    }
    const r = encoder.encodeInto(rest, mem.subarray(at, end));
    if (r.read === rest.length) {
      restLen = r.written;
      if (tail !== '') tailLen = encoder.encodeInto(tail, mem.subarray(at + restLen, end)).written;
      return;
    }
    room = small + 3 * rest.length + 8;
  }
}

/**
 * (tag, version) pairs as the core reads them: `<version>:<tag>` joined
 * with `,` (src/wasm_signer.rs); '' for none. Refuses (`INVALID_TAG`) what
 * would not cross exactly: a pair that is not `[string, number]`, a tag
 * with a lone surrogate (it would become U+FFFD) or a comma (it would
 * split), a version that is not an integer from 0 to 2^53 - 1. The core
 * checks the rest of the rule.
 */
function tagText(tags: readonly TagVersion[] | undefined): string {
  if (tags === undefined) return '';
  if (!Array.isArray(tags)) throw new EdgeCacheError('INVALID_TAG', `invalid tag: tags must be an array of [tag, version] pairs, got ${tags === null ? 'null' : typeof tags}`);
  let out = '';
  for (let i = 0; i < tags.length; i++) {
    const pair: unknown = tags[i];
    const [tag, version] = Array.isArray(pair) && pair.length === 2 ? (pair as [unknown, unknown]) : [undefined, undefined];
    if (typeof tag !== 'string' || !wellFormed(tag) || tag.includes(',')) {
      throw new EdgeCacheError('INVALID_TAG', `invalid tag: tags[${i}] must be a [tag, version] pair whose tag is a string of well-formed Unicode without commas`);
    }
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) {
      throw new EdgeCacheError('INVALID_TAG', `invalid tag: the version of tags[${i}] must be an integer from 0 to 2^53 - 1, got ${String(version)}`);
    }
    out += (i === 0 ? '' : ',') + version + ':' + tag;
  }
  return out;
}

/** The core's `lastTags()` text read back as (tag, version) pairs. */
function tagsOf(text: string): [string, number][] {
  const out: [string, number][] = [];
  for (const pair of text.split(',')) {
    const i = pair.indexOf(':');
    out.push([pair.slice(i + 1), Number(pair.slice(0, i))]);
  }
  return out;
}

// A tier's prefix, read from its layout once (one string from wasm per tier).
const prefixes = new WeakMap<LayoutCore, string>();

/** The context name of a tier: its prefix; '' without one. */
function prefixOf(tier: LayoutCore | undefined): string {
  if (tier === undefined) return '';
  let p = prefixes.get(tier);
  if (p === undefined) prefixes.set(tier, (p = tier.prefix));
  return p;
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new EdgeCacheError('INVALID_KEY', `key must be a string, got ${typeof key}`);
  if (!wellFormed(key)) throw new EdgeCacheError('INVALID_KEY', 'key must be well-formed Unicode: a lone surrogate has no UTF-8 form, so it could not be bound to the envelope');
}

/**
 * Seals values in signed envelopes (HMAC-SHA256, computed in wasm) before
 * they leave the isolate, and opens them again. An envelope is bound to the
 * cache key, scope and context it was written for (a `TieredCache` binds
 * its prefix): a reader never gets back a value that was altered, moved to
 * another key, tenant, user, namespace or cache, sealed with an unknown
 * key, or expired.
 *
 * JS values travel as UTF-8 JSON; a `Uint8Array` or `ArrayBuffer` travels
 * as raw bytes and opens as a `Uint8Array`. The envelope is a base64url
 * string, safe to store in Redis.
 *
 * @example
 * ```ts
 * const signer = new Signer({ keys: { k1: env.CACHE_KEY }, current: 'k1' });
 * const sealed = signer.seal('user:1', { name: 'Ada' }, { scope: { tenant: 'acme' }, ttl: 60_000 });
 * signer.open('user:1', sealed, { scope: { tenant: 'acme' } }); // { name: 'Ada' }
 * ```
 */
export class Signer {
  #core: SignerCore | undefined;
  readonly #now: () => number;
  /** The core's envelope length limit, checked before copying an envelope into wasm. */
  #maxEnvelope = 0;

  constructor(options: SignerOptions) {
    ensureWasm();
    if (options === null || typeof options !== 'object') {
      throw new EdgeCacheError('INVALID_OPTION', 'new Signer takes { keys, current?, now?, maxPayloadBytes?, acceptV1? }');
    }
    checkOptions(options, SIGNER_OPTIONS, 'Signer');
    if (options.keys === null || typeof options.keys !== 'object') {
      throw new EdgeCacheError('INVALID_OPTION', 'invalid option `keys`: an object of key id -> secret, e.g. { k1: generateSecureKey() }');
    }
    const keys = Object.entries(options.keys);
    if (keys.length === 0) throw new EdgeCacheError('INVALID_OPTION', 'invalid option `keys`: give at least one key, e.g. { k1: generateSecureKey() }');
    const current = options.current ?? (keys.length === 1 ? keys[0]![0] : undefined);
    if (current === undefined) throw new EdgeCacheError('INVALID_OPTION', 'invalid option `current`: name the key id that seals when `keys` has several');
    if (options.maxPayloadBytes !== undefined && typeof options.maxPayloadBytes !== 'number') {
      throw new EdgeCacheError('INVALID_OPTION', `invalid option \`maxPayloadBytes\`: an integer from 1 to 2^30, got ${typeof options.maxPayloadBytes}`);
    }
    if (options.current !== undefined && typeof options.current !== 'string') {
      throw new EdgeCacheError('INVALID_OPTION', 'invalid option `current`: the key id (a string) that seals');
    }
    if (options.now !== undefined && typeof options.now !== 'function') throw new EdgeCacheError('INVALID_OPTION', 'invalid option `now`: a function returning ms since the Unix epoch');
    if (options.acceptV1 !== undefined && typeof options.acceptV1 !== 'boolean') throw new EdgeCacheError('INVALID_OPTION', 'invalid option `acceptV1`: true or false');
    this.#now = options.now ?? Date.now;
    let core: SignerCore | undefined;
    try {
      for (const [id, secret] of keys) {
        const bytes = secretBytes(id, secret);
        if (core === undefined) core = new SignerCore(id, bytes);
        else core.addKey(id, bytes);
      }
      core!.setCurrent(current);
      if (options.maxPayloadBytes !== undefined) core!.setMaxPayload(options.maxPayloadBytes);
      if (options.acceptV1 === true) core!.setAcceptV1(true);
    } catch (e) {
      core?.free();
      rethrow(e);
    }
    this.#core = core;
    this.#maxEnvelope = core!.maxEnvelopeLength();
  }

  #live(): SignerCore {
    if (this.#core === undefined) throw new EdgeCacheError('FREED', 'this Signer was used after free()');
    return this.#core;
  }

  /** The id of the key that seals. */
  get currentKeyId(): string {
    return this.#live().currentKeyId();
  }

  /**
   * Seals `value` for `key` (and `options.scope` and `options.context`)
   * with the current key. Deterministic: the same value, key, scope,
   * context, key id and expiry give the same envelope.
   *
   * @throws EdgeCacheError `UNSERIALIZABLE_VALUE` if `value` has no JSON
   * form (`undefined`, a function, a symbol, a BigInt, a cycle) or is a
   * typed array other than `Uint8Array` (or a `DataView`); `INVALID_TTL`
   * unless `ttl` is a finite number >= 0; `INVALID_SCOPE` for a scope that
   * is not an object or has a non-finite number, a lone surrogate or an
   * unknown field; `INVALID_OPTION` for unknown options or a `context`
   * that is not a string of well-formed Unicode; `INVALID_TAG` for `tags`
   * that break the rule ({@link SealOptions.tags}).
   */
  seal(key: string, value: unknown, options?: SealOptions): string {
    const core = this.#live();
    checkKey(key);
    checkOptions(options, ['scope', 'ttl', 'context', 'tags'], 'seal');
    const namespace = contextOf(options?.context);
    const scope = scopeOf(options?.scope);
    const scoped = scope !== undefined;
    const tenant = scope?.tenant;
    const user = scope?.user;
    const ttl = checkTtl(options?.ttl);
    const tags = tagText(options?.tags);
    const [rest, encoding] = payloadOf(value);
    const now = this.#now();
    try {
      put(core, namespace, key, tenant, user, rest, tags);
      return core.seal(false, nameLen, scoped, keyLen, tenantLen, userLen, encoding, restLen, tailLen, now, ttl);
    } catch (e) {
      rethrow(e);
    }
  }

  /**
   * Opens an envelope sealed for `key` (and `options.scope` and
   * `options.context`): the value, or `undefined` if it has expired. `T` is
   * not checked: the tag proves who wrote the value, not its shape.
   *
   * @throws EdgeCacheError `BAD_SIGNATURE` if it was altered or sealed for
   * another key, scope, context or secret; `UNKNOWN_KEY_ID` if its key is
   * not in `keys`; `OUTDATED_ENVELOPE` if it is of format version 1 (see
   * {@link SignerOptions.acceptV1}); `MALFORMED_ENVELOPE` if it is not an
   * envelope (not a string, bad base64url, truncated, overlong, an unknown
   * version) or carries tags (open it with {@link Signer.openTagged});
   * and `ENVELOPE_TOO_LARGE` if it is over `maxPayloadBytes`.
   */
  open<T = unknown>(key: string, sealed: string, options?: OpenOptions): T | undefined {
    return this.#open<T>(key, sealed, options, false, 'open')?.value;
  }

  /**
   * {@link Signer.open} that also opens tagged envelopes (sealed with
   * {@link SealOptions.tags}): the value and its tags with the versions
   * they were written under (`[]` for an untagged envelope), or `undefined`
   * if it has expired. The caller decides whether the value is still
   * valid: it is iff every recorded version is at least the tag's current
   * one. Throws as {@link Signer.open} does.
   */
  openTagged<T = unknown>(key: string, sealed: string, options?: OpenOptions): { value: T; tags: [string, number][] } | undefined {
    return this.#open<T>(key, sealed, options, true, 'openTagged');
  }

  #open<T>(key: string, sealed: string, options: OpenOptions | undefined, tagged: boolean, where: string): { value: T; tags: [string, number][] } | undefined {
    const core = this.#live();
    checkKey(key);
    if (typeof sealed !== 'string') throw new EdgeCacheError('MALFORMED_ENVELOPE', `malformed envelope: expected a string, got ${typeof sealed}`);
    checkOptions(options, ['scope', 'context'], where);
    const namespace = contextOf(options?.context);
    const scope = scopeOf(options?.scope);
    const scoped = scope !== undefined;
    const tenant = scope?.tenant;
    const user = scope?.user;
    const now = this.#now();
    let out: unknown;
    try {
      // Too long to be an envelope: refused before it is copied.
      if (sealed.length > this.#maxEnvelope) core.checkEnvelopeLength(sealed.length);
      put(core, namespace, key, tenant, user, sealed);
      out = core.open(false, nameLen, scoped, keyLen, tenantLen, userLen, restLen, now, tagged);
    } catch (e) {
      rethrow(e);
    }
    if (out === undefined) return undefined;
    const text = tagged ? core.lastTags() : undefined;
    const tags = text === undefined ? [] : tagsOf(text);
    if (typeof out !== 'string') return { value: out as T, tags };
    try {
      return { value: JSON.parse(out) as T, tags };
    } catch (cause) {
      // Authentic (the tag matched) but not JSON: written by another implementation, or by sealPayload.
      throw new EdgeCacheError('MALFORMED_ENVELOPE', 'malformed envelope: its payload is marked JSON but does not parse as JSON', { cause });
    }
  }

  /**
   * @internal Seals a payload that is already serialized: JSON text
   * (`encoding` 1) or bytes (0). For the Redis tier, whose serializer is
   * its own: `tier` is its layout, whose prefix the envelope is bound to
   * (a value of the tier's kind "v"); `undefined` is the default context
   * of {@link Signer.seal}. `tags`: (tag, version) pairs, tags already
   * checked (`checkTags`); absent or empty, a version 2 envelope, else
   * version 3 (`INVALID_TAG` as for {@link SealOptions.tags}).
   */
  sealPayload(key: string, payload: string | Uint8Array, encoding: 0 | 1, scope: EnvelopeScope | undefined, ttl: number, tier: LayoutCore | undefined, tags?: readonly TagVersion[]): string {
    const core = this.#live();
    checkKey(key);
    const s = scopeOf(scope);
    const tenant = s?.tenant;
    const user = s?.user;
    ttl = checkTtl(ttl);
    const tail = tags === undefined || tags.length === 0 ? '' : tagText(tags);
    try {
      put(core, prefixOf(tier), key, tenant, user, payload, tail);
      return core.seal(tier !== undefined, nameLen, scope !== undefined, keyLen, tenantLen, userLen, encoding, restLen, tailLen, this.#now(), ttl);
    } catch (e) {
      rethrow(e);
    }
  }

  /**
   * @internal Opens an envelope without parsing its payload: the JSON text
   * or bytes, the absolute expiry (ms, 0 = never) and, for a tagged
   * envelope (version 3) only, its (tag, version) pairs in the order
   * sealed; `undefined` if it has expired. `tier` as for
   * {@link Signer.sealPayload}. Throws as {@link Signer.open} does, but
   * opens tagged envelopes (the caller checks their tags).
   */
  openPayload(key: string, sealed: unknown, scope: EnvelopeScope | undefined, tier: LayoutCore | undefined): { payload: string | Uint8Array; expiresAt: number; tags?: [string, number][] } | undefined {
    const core = this.#live();
    checkKey(key);
    if (typeof sealed !== 'string') throw new EdgeCacheError('MALFORMED_ENVELOPE', `malformed envelope: expected a string, got ${typeof sealed}`);
    const s = scopeOf(scope);
    const tenant = s?.tenant;
    const user = s?.user;
    try {
      if (sealed.length > this.#maxEnvelope) core.checkEnvelopeLength(sealed.length);
      put(core, prefixOf(tier), key, tenant, user, sealed);
      const out = core.open(tier !== undefined, nameLen, scope !== undefined, keyLen, tenantLen, userLen, restLen, this.#now(), true) as string | Uint8Array | undefined;
      if (out === undefined) return undefined;
      const tags = core.lastTags();
      return tags === undefined ? { payload: out, expiresAt: core.lastExpiresAt() } : { payload: out, expiresAt: core.lastExpiresAt(), tags: tagsOf(tags) };
    } catch (e) {
      rethrow(e);
    }
  }

  /** Releases the wasm memory now; later calls throw `FREED`. Idempotent. */
  free(): void {
    this.#core?.free();
    this.#core = undefined;
  }

  /** `using signer = new Signer(...)` frees it at the end of the block. */
  [Symbol.dispose](): void {
    this.free();
  }
}
