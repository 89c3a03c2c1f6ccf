// fromEnv(): the cache of a Cloudflare Worker, built from its bindings, one
// per isolate. With the Redis bindings it is a TieredCache (this isolate's
// L1 in front of Redis through the bridge or hosted Upstash, values signed);
// without them an L1Cache: the same asynchronous methods over a
// MemoryCache alone, so that code written for one runs on the other.
//
// Bindings (wrangler.toml [vars] for the plain ones, `wrangler secret put`
// for the secrets):
//   EDGECACHE_REDIS_URL    var     the REST URL (or UPSTASH_REDIS_REST_URL)
//   EDGECACHE_REDIS_TOKEN  secret  its token   (or UPSTASH_REDIS_REST_TOKEN)
//   EDGECACHE_SIGNING_KEYS secret  `kid:key,kid:key`: the first one signs
//   EDGECACHE_PREFIX, EDGECACHE_MAX_ENTRIES, EDGECACHE_MAX_BYTES,
//   EDGECACHE_DEFAULT_TTL, EDGECACHE_L1_TTL, EDGECACHE_REDIS_TIMEOUT,
//   EDGECACHE_BREAKER_THRESHOLD, EDGECACHE_BREAKER_COOLDOWN,
//   EDGECACHE_MAX_STALENESS (ms, or `off`),
//   EDGECACHE_STALE_WHILE_UNREACHABLE (`true`, `false`)   optional vars
//
// The Rust binding (src/worker/settings.rs) reads the same bindings by the
// same rule; tests/fixtures/settings.json holds the cases both run.
//
// Wording of the warnings after upstash/redis-js's platforms/cloudflare.ts:
// each names the binding and the command that fixes it.
import { EdgeCacheError } from './errors.js';
import { inWorkers } from './keys.js';
import { CACHE_IDENTITY, MemoryCache, type CacheStats, type MemoryCacheOptions, type ScopeOptions, type SetOptions } from './cache.js';
import type { GetOrSetOptions } from './getorset.js';
import { Signer } from './signer.js';
import { RedisRest } from './redis.js';
import { TieredCache } from './tiered.js';

/** The `env` of a Worker's fetch handler (only string or number bindings are read). `fromEnv` takes any object. */
export type WorkersEnv = Record<string, unknown>;

/** Options of {@link fromEnv}: defaults that the bindings, when set, override. */
export interface FromEnvOptions {
  /** Names this cache's keys in Redis. Binding `EDGECACHE_PREFIX`. @default 'edgecache' */
  prefix?: string;
  /** Most L1 entries. Binding `EDGECACHE_MAX_ENTRIES`. @default 10000 */
  maxEntries?: number;
  /** Most L1 bytes. Binding `EDGECACHE_MAX_BYTES`. @default 33554432 */
  maxBytes?: number;
  /** ms a value lives when `set` gives no `ttl`; 0 = no expiry. Binding `EDGECACHE_DEFAULT_TTL`. @default 0 */
  defaultTtl?: number;
  /** The longest L1 keeps a value before asking Redis again. Binding `EDGECACHE_L1_TTL`. @default 10000 */
  l1Ttl?: number;
  /** As `TieredCacheOptions.failOpen`. @default true */
  failOpen?: boolean;
  /** As `TieredCacheOptions.breaker`. Bindings `EDGECACHE_BREAKER_THRESHOLD`, `EDGECACHE_BREAKER_COOLDOWN`. @default { threshold: 5, cooldown: 5000 } */
  breaker?: { threshold?: number; cooldown?: number };
  /** ms a request to Redis may take. Binding `EDGECACHE_REDIS_TIMEOUT`. @default 5000 */
  timeout?: number;
  /**
   * Where warnings go (the L1-only notice included). Not part of the
   * cache's identity: the cache keeps the `log` of the call that made it.
   * @default console.warn
   */
  log?: (message: string) => void;
}

const OPTIONS = new Set(['prefix', 'maxEntries', 'maxBytes', 'defaultTtl', 'l1Ttl', 'failOpen', 'breaker', 'timeout', 'log']);

/** What {@link L1Cache.stats} returns: `TieredStats` without a Redis tier. */
export interface L1Stats {
  l1: CacheStats;
  l2: null;
  breaker: null;
}

/**
 * The L1-only cache {@link fromEnv} returns when Redis is not configured:
 * a {@link MemoryCache} behind the methods of {@link TieredCache}, returning
 * promises, so a Worker's code is the same with or without Redis. `counter`
 * reads what `incr` counted; `stats()` has `l2: null` and `breaker: null`.
 */
export class L1Cache<V = unknown> {
  readonly #l1: MemoryCache<unknown>;

  constructor(l1: MemoryCache<unknown>) {
    this.#l1 = l1;
    // memoize, the decorators and cachePage treat it as its MemoryCache (cache.ts CACHE_IDENTITY).
    const identity = l1[CACHE_IDENTITY]();
    (this as unknown as Record<symbol, () => typeof identity>)[CACHE_IDENTITY] = () => identity;
  }

  async get(key: string): Promise<V | undefined> {
    return this.#l1.get(key) as V | undefined;
  }
  async has(key: string): Promise<boolean> {
    return this.#l1.has(key);
  }
  async getMany(keys: readonly string[]): Promise<(V | undefined)[]> {
    return this.#l1.getMany(keys) as (V | undefined)[];
  }
  async set(key: string, value: V, options?: SetOptions): Promise<this> {
    this.#l1.set(key, value, options);
    return this;
  }
  async setMany(entries: Iterable<readonly [string, V] | readonly [string, V, SetOptions | undefined]>): Promise<this> {
    this.#l1.setMany(entries as Iterable<readonly [string, unknown] | readonly [string, unknown, SetOptions | undefined]>);
    return this;
  }
  async delete(key: string): Promise<boolean> {
    return this.#l1.delete(key);
  }
  async deleteMany(keys: readonly string[]): Promise<number> {
    return this.#l1.deleteMany(keys);
  }
  async incr(key: string, by = 1): Promise<number> {
    return this.#l1.incr(key, by);
  }
  async decr(key: string, by = 1): Promise<number> {
    return this.#l1.decr(key, by);
  }
  async counter(key: string): Promise<number | undefined> {
    const v = this.#l1.get(key);
    return typeof v === 'number' ? v : undefined;
  }
  async ttl(key: string): Promise<number | undefined> {
    return this.#l1.ttl(key);
  }
  async keys(pattern = '*'): Promise<string[]> {
    return this.#l1.keys(pattern);
  }
  async deletePattern(pattern: string): Promise<number> {
    return this.#l1.deletePattern(pattern);
  }
  /** `MemoryCache.invalidateTags` (this isolate only: there is no Redis tier), as a promise. */
  async invalidateTags(tags: readonly string[]): Promise<number> {
    return this.#l1.invalidateTags(tags);
  }
  async clear(): Promise<void> {
    this.#l1.clear();
  }
  scope(scope: ScopeOptions): L1Cache<V> {
    return new L1Cache<V>(this.#l1.scope(scope));
  }
  stats(): L1Stats {
    return { l1: this.#l1.stats(), l2: null, breaker: null };
  }
  now(): number {
    return this.#l1.now();
  }
  /** As `TieredCache.getOrSet`: `MemoryCache.getOrSet`, always a promise. */
  async getOrSet<T extends V>(key: string, loader: () => T | PromiseLike<T>, options?: GetOrSetOptions): Promise<T> {
    return (this.#l1 as MemoryCache<T>).getOrSet(key, async () => loader(), options);
  }
  /** Nothing to close: as `TieredCache.close()`, which ends its push stream. */
  close(): void {}
  /** The L1 cache (this view's). */
  get l1(): MemoryCache<unknown> {
    return this.#l1;
  }
}

/** What {@link fromEnv} returns: tiered when Redis is configured, else L1 only. */
export type WorkersCache<V = unknown> = TieredCache<V> | L1Cache<V>;

/** One cache per isolate and distinct configuration (see {@link fromEnv}). */
const instances = new Map<string, WorkersCache<unknown>>();

/** ASCII whitespace (space, tab, LF, FF, CR), dropped around a binding's value. */
const SPACE = /^[ \t\n\f\r]+|[ \t\n\f\r]+$/g;

/** The text of a binding, without the whitespace around it; `undefined` if unset or blank. */
function text(env: WorkersEnv, name: string): string | undefined {
  let v = env[name];
  if (v === undefined || v === null) return undefined;
  // A TOML number in [vars] arrives as a number.
  if (typeof v === 'number' && Number.isFinite(v)) v = String(v);
  if (typeof v !== 'string') {
    throw new EdgeCacheError('INVALID_OPTION', `the binding ${name} must be a string (${hints().where}), got ${typeof v}`);
  }
  const t = v.replace(SPACE, '');
  return t === '' ? undefined : t;
}

/** `t` quoted, anything but printable ASCII written `\u{hex}` (an invisible U+00A0 is no digit), as the Rust binding writes it. */
function shown(t: string): string {
  return `"${t.replace(/[^\x20-\x7e]|["\\]/gu, (c) => (c === '"' || c === '\\' ? `\\${c}` : `\\u{${c.codePointAt(0)!.toString(16)}}`))}"`;
}

/** The largest number any binding takes: 2^53 - 1 (Number.MAX_SAFE_INTEGER). */
const MAX = Number.MAX_SAFE_INTEGER;

/**
 * A numeric binding: decimal digits only (no sign, unit, exponent,
 * separator or `Infinity`), from `min` to `max`; `undefined` if unset.
 */
function integer(env: WorkersEnv, name: string, min: number, max: number, unit: string): number | undefined {
  const t = text(env, name);
  if (t === undefined) return undefined;
  const n = /^[0-9]+$/.test(t) ? Number(t) : NaN;
  if (!(n >= min && n <= max)) {
    throw new EdgeCacheError(
      'INVALID_OPTION',
      `the binding ${name} must be a whole number from ${min} to ${max} (${unit}): decimal digits only, no sign, unit or exponent; got ${shown(t)}`,
    );
  }
  return n;
}

/** `EDGECACHE_MAX_STALENESS`: `off` (`false`), or ms from 0 to one day; `undefined` if unset. */
function maxStaleness(env: WorkersEnv): number | false | undefined {
  const name = 'EDGECACHE_MAX_STALENESS';
  return text(env, name) === 'off' ? false : integer(env, name, 0, 86_400_000, 'ms, or `off` to turn coherence off');
}

/** A binding that is the word `true` or `false`; `undefined` if unset. */
function flag(env: WorkersEnv, name: string, meaning: string): boolean | undefined {
  const t = text(env, name);
  if (t === undefined || t === 'true' || t === 'false') return t === undefined ? undefined : t === 'true';
  throw new EdgeCacheError('INVALID_OPTION', `the binding ${name} must be \`true\` or \`false\` (${meaning}); got ${shown(t)}`);
}

/**
 * @internal What {@link fromEnv} reads and makes the cache from: each
 * setting from its binding, else from the option, else its default. The
 * bindings follow one rule with the Rust binding (src/worker/settings.rs):
 * the cases of tests/fixtures/settings.json, which both run.
 */
export interface Settings {
  /** The Redis tier: the URL (trailing `/` dropped), its token, and the bindings they came from. */
  redis: { url: string; token: string; urlBinding: string; tokenBinding: string } | undefined;
  signingKeys: string | undefined;
  prefix: string;
  maxEntries: number;
  maxBytes: number;
  defaultTtl: number;
  l1Ttl: number;
  timeout: number;
  breakerThreshold: number;
  breakerCooldown: number;
  failOpen: boolean;
  /** `maxStaleness` of the TieredCache: ms, or `false` (coherence off). */
  maxStaleness: number | false;
  /** `staleWhileUnreachable` of the TieredCache: `false` is strict. */
  staleWhileUnreachable: boolean;
}

const DEFAULTS = {
  prefix: 'edgecache',
  maxEntries: 10_000,
  maxBytes: 32 * 1024 * 1024,
  defaultTtl: 0,
  l1Ttl: 10_000,
  timeout: 5_000,
  breaker: { threshold: 5, cooldown: 5_000 },
  failOpen: true,
  // DEFAULT_MAX_STALENESS of the Rust core (src/coherence/lease.rs).
  maxStaleness: 1_000,
};

const PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;

/** Checks the options' names and types (their ranges are checked by the cache they configure). */
function checkOptions(options: FromEnvOptions): void {
  if (options === null || typeof options !== 'object') throw new EdgeCacheError('INVALID_OPTION', 'fromEnv: options must be an object');
  for (const k of Object.keys(options)) {
    if (!OPTIONS.has(k)) throw new EdgeCacheError('INVALID_OPTION', `unknown option \`${k}\` of fromEnv; known: ${[...OPTIONS].join(', ')}`);
  }
  const o = options as Record<string, unknown>;
  const kind = (name: string, type: string, v = o[name]) => {
    if (v !== undefined && typeof v !== type) throw new EdgeCacheError('INVALID_OPTION', `fromEnv: \`${name}\` must be a ${type}, got ${typeof v}`);
  };
  for (const n of ['maxEntries', 'maxBytes', 'defaultTtl', 'l1Ttl', 'timeout']) kind(n, 'number');
  kind('prefix', 'string');
  kind('failOpen', 'boolean');
  kind('log', 'function');
  const b = o.breaker;
  if (b !== undefined) {
    if (b === null || typeof b !== 'object') throw new EdgeCacheError('INVALID_OPTION', 'fromEnv: `breaker` is { threshold?, cooldown? }');
    for (const k of Object.keys(b)) if (k !== 'threshold' && k !== 'cooldown') throw new EdgeCacheError('INVALID_OPTION', `fromEnv: unknown option \`breaker.${k}\`; known: threshold, cooldown`);
    kind('breaker.threshold', 'number', (b as Record<string, unknown>).threshold);
    kind('breaker.cooldown', 'number', (b as Record<string, unknown>).cooldown);
  }
}

/** @internal The settings from `env` and `options` (checked: {@link checkOptions}). */
export function readSettings(env: WorkersEnv, options: FromEnvOptions = {}): Settings {
  const pick = (a: string, b: string): [string, string] | undefined => {
    const x = text(env, a);
    if (x !== undefined) return [a, x];
    const y = text(env, b);
    return y === undefined ? undefined : [b, y];
  };
  const url = pick('EDGECACHE_REDIS_URL', 'UPSTASH_REDIS_REST_URL');
  const token = pick('EDGECACHE_REDIS_TOKEN', 'UPSTASH_REDIS_REST_TOKEN');
  const keys = text(env, 'EDGECACHE_SIGNING_KEYS');
  let redis: Settings['redis'];
  if (url !== undefined || token !== undefined) {
    if (url === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', `${token![0]} is set but EDGECACHE_REDIS_URL is not: ${hints().url}`);
    }
    if (token === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', `${url[0]} is set but EDGECACHE_REDIS_TOKEN is not: ${hints().token}`);
    }
    if (!/^https?:\/\/[^/]/.test(url[1])) {
      throw new EdgeCacheError('INVALID_OPTION', `the binding ${url[0]} must be an http(s) URL, the REST endpoint of Upstash or edgecache-bridge (https://<db>.upstash.io, http://127.0.0.1:8079); got ${JSON.stringify(url[1])}`);
    }
    if (keys === undefined) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `${url[0]} is set but EDGECACHE_SIGNING_KEYS is not: values in Redis are always signed. ${hints().keys}`,
      );
    }
    redis = { url: url[1].replace(/\/+$/, ''), token: token[1], urlBinding: url[0], tokenBinding: token[0] };
  }
  const prefix = text(env, 'EDGECACHE_PREFIX');
  if (prefix !== undefined && !PREFIX.test(prefix)) {
    throw new EdgeCacheError('INVALID_OPTION', `the binding EDGECACHE_PREFIX must be 1 to 64 characters of A-Z a-z 0-9 _ . -, got ${JSON.stringify(prefix)}`);
  }
  const b = options.breaker ?? {};
  return {
    redis,
    signingKeys: keys,
    prefix: prefix ?? options.prefix ?? DEFAULTS.prefix,
    maxEntries: integer(env, 'EDGECACHE_MAX_ENTRIES', 1, 2 ** 29 - 1, 'entries') ?? options.maxEntries ?? DEFAULTS.maxEntries,
    maxBytes: integer(env, 'EDGECACHE_MAX_BYTES', 1, MAX, 'bytes') ?? options.maxBytes ?? DEFAULTS.maxBytes,
    defaultTtl: integer(env, 'EDGECACHE_DEFAULT_TTL', 0, MAX, 'ms, 0 = no expiry') ?? options.defaultTtl ?? DEFAULTS.defaultTtl,
    l1Ttl: integer(env, 'EDGECACHE_L1_TTL', 0, MAX, 'ms') ?? options.l1Ttl ?? DEFAULTS.l1Ttl,
    // A timer of more than 2^31 - 1 ms fires at once.
    timeout: integer(env, 'EDGECACHE_REDIS_TIMEOUT', 1, 2 ** 31 - 1, 'ms') ?? options.timeout ?? DEFAULTS.timeout,
    breakerThreshold: integer(env, 'EDGECACHE_BREAKER_THRESHOLD', 1, 1_000_000, 'consecutive failures') ?? b.threshold ?? DEFAULTS.breaker.threshold,
    breakerCooldown: integer(env, 'EDGECACHE_BREAKER_COOLDOWN', 0, MAX, 'ms') ?? b.cooldown ?? DEFAULTS.breaker.cooldown,
    failOpen: options.failOpen ?? DEFAULTS.failOpen,
    maxStaleness: maxStaleness(env) ?? DEFAULTS.maxStaleness,
    // Follows failOpen unless set: a cache that fails open serves L1 while Redis is away.
    staleWhileUnreachable:
      flag(env, 'EDGECACHE_STALE_WHILE_UNREACHABLE', '`false`: strict, an L1 hit whose lease expired is refused while Redis is unreachable') ??
      options.failOpen ??
      DEFAULTS.failOpen,
  };
}

/** `kid:key,kid:key` → Signer keys; the first id signs. */
function signingKeys(t: string): { keys: Record<string, string>; current: string } {
  const keys: Record<string, string> = {};
  let current: string | undefined;
  for (const part of t.split(',')) {
    const item = part.trim();
    const colon = item.indexOf(':');
    const id = colon > 0 ? item.slice(0, colon).trim() : '';
    const secret = colon > 0 ? item.slice(colon + 1).trim() : '';
    if (id === '' || secret === '') {
      throw new EdgeCacheError('INVALID_OPTION', 'the binding EDGECACHE_SIGNING_KEYS must be `kid:key` or `kid:key,kid:key,...` (the first one signs), each key 32 random bytes in base64url');
    }
    if (Object.prototype.hasOwnProperty.call(keys, id)) {
      throw new EdgeCacheError('INVALID_OPTION', `the binding EDGECACHE_SIGNING_KEYS names the key id ${JSON.stringify(id)} twice`);
    }
    keys[id] = secret;
    current ??= id;
  }
  return { keys, current: current! };
}

/** Rethrows an error of a component with the binding that configured it named. */
function naming<T>(binding: string, make: () => T): T {
  try {
    return make();
  } catch (e) {
    if (e instanceof EdgeCacheError) throw new EdgeCacheError(e.code, `the binding ${binding}: ${e.message}`, { cause: e });
    throw e;
  }
}

/** How to set a binding, in the words of the runtime: wrangler's in Workers, environment variables elsewhere (a Node, Deno or Bun service). */
interface Hints {
  where: string;
  url: string;
  token: string;
  keys: string;
  l2: string;
}
const WORKERS_HINTS: Hints = {
  where: '[vars] in wrangler.toml, or a secret',
  url: 'add the bridge or Upstash REST URL to [vars] in wrangler.toml (EDGECACHE_REDIS_URL = "https://...")',
  token: 'add it as a secret with `wrangler secret put EDGECACHE_REDIS_TOKEN` (locally: a line in .dev.vars, then restart wrangler dev)',
  keys: "Add a key with `wrangler secret put EDGECACHE_SIGNING_KEYS` (the value: k1:<32 random bytes in base64url>, from `npx edgecache keygen`, or k1:$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '='); locally: a line in .dev.vars, then restart wrangler dev)",
  l2: 'to share it between isolates through Redis, set EDGECACHE_REDIS_URL ([vars] in wrangler.toml, or .dev.vars locally, then restart wrangler dev) and add the secrets with `wrangler secret put EDGECACHE_REDIS_TOKEN` and `wrangler secret put EDGECACHE_SIGNING_KEYS`',
};
const SERVICE_HINTS: Hints = {
  where: 'an environment variable',
  url: 'set the environment variable EDGECACHE_REDIS_URL to the bridge or Upstash REST URL (EDGECACHE_REDIS_URL=http://127.0.0.1:8079, or https://<db>.upstash.io), then restart the process',
  token: 'set the environment variable EDGECACHE_REDIS_TOKEN to the token the bridge or Upstash expects, then restart the process',
  keys: 'Make a key with `npx edgecache keygen` and set the environment variable EDGECACHE_SIGNING_KEYS to what it prints (k1:<32 random bytes in base64url>), the same in every process that shares the cache, then restart the process',
  l2: 'to share it between processes through Redis, set the environment variables EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN and EDGECACHE_SIGNING_KEYS (a key from `npx edgecache keygen`), then restart the process',
};
/** The hints for where this runs (read at each message: cheap, and off every hot path). */
const hints = (): Hints => (inWorkers() ? WORKERS_HINTS : SERVICE_HINTS);

/**
 * The identity of the cache of `s`: every setting, numbers as `String`
 * writes them (`JSON.stringify` writes `Infinity` and `NaN` alike), the
 * texts as JSON. Built per call, so cheap (a JSON of `s` costs twice as much).
 */
function identity(s: Settings): string {
  const r = s.redis;
  const texts = JSON.stringify([s.prefix, s.signingKeys, r?.url, r?.token, r?.urlBinding, r?.tokenBinding]);
  return `${s.maxEntries} ${s.maxBytes} ${s.defaultTtl} ${s.l1Ttl} ${s.timeout} ${s.breakerThreshold} ${s.breakerCooldown} ${s.failOpen} ${s.maxStaleness} ${s.staleWhileUnreachable} ${texts}`;
}

/**
 * The cache of a Cloudflare Worker, from its bindings: a {@link TieredCache}
 * when `EDGECACHE_REDIS_URL` and `EDGECACHE_REDIS_TOKEN` (or the
 * `UPSTASH_REDIS_REST_*` pair) are set, signing with
 * `EDGECACHE_SIGNING_KEYS`; else an {@link L1Cache} (same methods, this
 * isolate's memory only), said once in the log.
 *
 * One cache per isolate and configuration: the bindings override
 * `options`, and calls whose bindings and options come to the same settings
 * return the same instance (a map lookup), so call it in every request.
 * Different settings (another `prefix`, say) make another cache, kept for
 * the isolate's life: pass constant options, and for a partition per
 * tenant or user use `scope()` of one cache rather than a prefix per
 * request. `log` is not part of the identity.
 *
 * @example
 * ```ts
 * import { fromEnv } from 'edgecache';
 * export default {
 *   async fetch(request, env) {
 *     const cache = fromEnv<string>(env);   // V: the type of the values
 *     return new Response((await cache.get('greeting')) ?? 'none yet');
 *   },
 * } satisfies ExportedHandler<Env>;
 * ```
 * @throws {EdgeCacheError} `INVALID_OPTION` naming the binding: a malformed
 * value, a Redis URL without its token (or the other way round), or Redis
 * without `EDGECACHE_SIGNING_KEYS` (never an unsigned Redis tier);
 * `WEAK_KEY` for a signing key that is not 32 random bytes.
 */
export function fromEnv<V = unknown>(env: object, options: FromEnvOptions = {}): WorkersCache<V> {
  if (env === null || typeof env !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', 'fromEnv takes the `env` of the fetch handler');
  }
  checkOptions(options);
  const s = readSettings(env as WorkersEnv, options);
  const id = identity(s);
  const known = instances.get(id);
  if (known !== undefined) return known as WorkersCache<V>;
  const cache = make<V>(s, options.log ?? ((m: string) => console.warn(m)));
  instances.set(id, cache as WorkersCache<unknown>);
  return cache;
}

/**
 * The cache of `s`. The bindings are checked already, so an error of a
 * component but the Signer's comes from an option (and names it).
 */
function make<V>(s: Settings, log: (message: string) => void): WorkersCache<V> {
  const l1Options: MemoryCacheOptions = { maxEntries: s.maxEntries, maxBytes: s.maxBytes };
  if (s.redis === undefined) {
    const l1 = new L1Cache<V>(new MemoryCache<unknown>({ ...l1Options, defaultTtl: s.defaultTtl }));
    log(`edgecache: EDGECACHE_REDIS_URL is not set, so this cache runs L1-only (this isolate's memory, not shared); ${hints().l2}`);
    return l1;
  }
  const signerOptions = signingKeys(s.signingKeys!);
  const signer = naming('EDGECACHE_SIGNING_KEYS', () => new Signer(signerOptions));
  return new TieredCache<V>({
    redis: new RedisRest({ url: s.redis.url, token: s.redis.token, timeout: s.timeout }),
    signer,
    prefix: s.prefix,
    l1: new MemoryCache<unknown>(l1Options),
    log,
    defaultTtl: s.defaultTtl,
    l1Ttl: s.l1Ttl,
    failOpen: s.failOpen,
    breaker: { threshold: s.breakerThreshold, cooldown: s.breakerCooldown },
    maxStaleness: s.maxStaleness,
    staleWhileUnreachable: s.staleWhileUnreachable,
  });
}
