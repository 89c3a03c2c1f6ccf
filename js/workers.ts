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
//   EDGECACHE_DEFAULT_TTL, EDGECACHE_L1_TTL   optional vars
//
// Wording of the warnings after upstash/redis-js's platforms/cloudflare.ts:
// each names the binding and the command that fixes it.
import { EdgeCacheError } from './errors.js';
import { CACHE_IDENTITY, MemoryCache, type CacheStats, type MemoryCacheOptions, type ScopeOptions, type SetOptions } from './cache.js';
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
  /** As `TieredCacheOptions.breaker`. */
  breaker?: { threshold?: number; cooldown?: number };
  /** ms a request to Redis may take. @default 5000 */
  timeout?: number;
  /** Where warnings go (the L1-only notice included). @default console.warn */
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
  /** The L1 cache (this view's). */
  get l1(): MemoryCache<unknown> {
    return this.#l1;
  }
}

/** What {@link fromEnv} returns: tiered when Redis is configured, else L1 only. */
export type WorkersCache<V = unknown> = TieredCache<V> | L1Cache<V>;

/** One cache per isolate and configuration. */
const instances = new Map<string, WorkersCache<unknown>>();

function text(env: WorkersEnv, name: string): string | undefined {
  const v = env[name];
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v !== 'string') {
    throw new EdgeCacheError('INVALID_OPTION', `the binding ${name} must be a string ([vars] in wrangler.toml, or a secret), got ${typeof v}`);
  }
  return v.trim();
}

/** A whole number of the binding `name`, strictly: digits only (or `Infinity` where allowed). */
function integer(env: WorkersEnv, name: string, min: number, infinite = false): number | undefined {
  const t = text(env, name);
  if (t === undefined) return undefined;
  if (infinite && t === 'Infinity') return Infinity;
  const n = /^\d{1,16}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw new EdgeCacheError(
      'INVALID_OPTION',
      `the binding ${name} must be a whole number >= ${min}${infinite ? ' (or Infinity)' : ''}, got ${JSON.stringify(t)}`,
    );
  }
  return n;
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

const HOW_TO_L2 =
  'to share it between isolates through Redis, set EDGECACHE_REDIS_URL ([vars] in wrangler.toml, or .dev.vars locally, then restart wrangler dev) and add the secrets with `wrangler secret put EDGECACHE_REDIS_TOKEN` and `wrangler secret put EDGECACHE_SIGNING_KEYS`';

/**
 * The cache of a Cloudflare Worker, from its bindings: a {@link TieredCache}
 * when `EDGECACHE_REDIS_URL` and `EDGECACHE_REDIS_TOKEN` (or the
 * `UPSTASH_REDIS_REST_*` pair) are set, signing with
 * `EDGECACHE_SIGNING_KEYS`; else an {@link L1Cache} (same methods, this
 * isolate's memory only), said once in the log.
 *
 * One cache per isolate: calls with the same binding values return the same
 * instance, so call it in every request. Bindings override `options`, which
 * apply when the cache is made (the first call with these binding values).
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
  return make<V>(env as WorkersEnv, options);
}

function make<V>(env: WorkersEnv, options: FromEnvOptions): WorkersCache<V> {
  if (options === null || typeof options !== 'object') throw new EdgeCacheError('INVALID_OPTION', 'fromEnv: options must be an object');
  for (const k of Object.keys(options)) {
    if (!OPTIONS.has(k)) throw new EdgeCacheError('INVALID_OPTION', `unknown option \`${k}\` of fromEnv; known: ${[...OPTIONS].join(', ')}`);
  }
  const pick = (a: string, b: string): [string, string] | undefined => {
    const x = text(env, a);
    if (x !== undefined) return [a, x];
    const y = text(env, b);
    return y === undefined ? undefined : [b, y];
  };
  const url = pick('EDGECACHE_REDIS_URL', 'UPSTASH_REDIS_REST_URL');
  const token = pick('EDGECACHE_REDIS_TOKEN', 'UPSTASH_REDIS_REST_TOKEN');
  const keys = text(env, 'EDGECACHE_SIGNING_KEYS');
  const prefix = text(env, 'EDGECACHE_PREFIX');
  const maxEntries = integer(env, 'EDGECACHE_MAX_ENTRIES', 1);
  const maxBytes = integer(env, 'EDGECACHE_MAX_BYTES', 1, true);
  const defaultTtl = integer(env, 'EDGECACHE_DEFAULT_TTL', 0);
  const l1Ttl = integer(env, 'EDGECACHE_L1_TTL', 0);
  const id = JSON.stringify([url, token, keys, prefix, maxEntries, maxBytes, defaultTtl, l1Ttl]);
  const known = instances.get(id);
  if (known !== undefined) return known as WorkersCache<V>;

  const log = options.log ?? ((m: string) => console.warn(m));
  if (typeof log !== 'function') throw new EdgeCacheError('INVALID_OPTION', 'fromEnv: log must be a function');
  const l1Options: MemoryCacheOptions = {};
  const entries = maxEntries ?? options.maxEntries;
  const bytes = maxBytes ?? options.maxBytes;
  if (entries !== undefined) l1Options.maxEntries = entries;
  if (bytes !== undefined) l1Options.maxBytes = bytes;
  const ttl = defaultTtl ?? options.defaultTtl;

  let cache: WorkersCache<V>;
  if (url === undefined && token === undefined) {
    const l1 = naming('EDGECACHE_MAX_ENTRIES / EDGECACHE_MAX_BYTES / EDGECACHE_DEFAULT_TTL', () => new MemoryCache<unknown>({ ...l1Options, ...(ttl === undefined ? {} : { defaultTtl: ttl }) }));
    cache = new L1Cache<V>(l1);
    log(`edgecache: EDGECACHE_REDIS_URL is not set, so this cache runs L1-only (this isolate's memory, not shared); ${HOW_TO_L2}`);
  } else {
    if (url === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', `${token![0]} is set but EDGECACHE_REDIS_URL is not: add the bridge or Upstash REST URL to [vars] in wrangler.toml (EDGECACHE_REDIS_URL = "https://...")`);
    }
    if (token === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', `${url[0]} is set but EDGECACHE_REDIS_TOKEN is not: add it as a secret with \`wrangler secret put EDGECACHE_REDIS_TOKEN\` (locally: a line in .dev.vars, then restart wrangler dev)`);
    }
    if (keys === undefined) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `${url[0]} is set but EDGECACHE_SIGNING_KEYS is not: values in Redis are always signed. Add a key with \`wrangler secret put EDGECACHE_SIGNING_KEYS\` (the value: k1:<32 random bytes in base64url>, e.g. k1:$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '='); locally: a line in .dev.vars, then restart wrangler dev)`,
      );
    }
    const signerOptions = signingKeys(keys);
    const signer = naming('EDGECACHE_SIGNING_KEYS', () => new Signer(signerOptions));
    const redis = naming(url[0], () => new RedisRest({ url: url[1], token: token[1], ...(options.timeout === undefined ? {} : { timeout: options.timeout }) }));
    const l1 = naming('EDGECACHE_MAX_ENTRIES / EDGECACHE_MAX_BYTES', () => new MemoryCache<unknown>(l1Options));
    const p = prefix ?? options.prefix ?? 'edgecache';
    if (prefix !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(prefix)) {
      throw new EdgeCacheError('INVALID_OPTION', `the binding EDGECACHE_PREFIX must be 1 to 64 characters of A-Z a-z 0-9 _ . -, got ${JSON.stringify(prefix)}`);
    }
    cache = new TieredCache<V>({
        redis,
        signer,
        prefix: p,
        l1,
        log,
        ...(ttl === undefined ? {} : { defaultTtl: ttl }),
        ...((l1Ttl ?? options.l1Ttl) === undefined ? {} : { l1Ttl: (l1Ttl ?? options.l1Ttl)! }),
        ...(options.failOpen === undefined ? {} : { failOpen: options.failOpen }),
        ...(options.breaker === undefined ? {} : { breaker: options.breaker }),
      });
  }
  instances.set(id, cache as WorkersCache<unknown>);
  return cache;
}
