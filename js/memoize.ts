// memoize(): read-through caching of a function's results in any cache that
// has get/set/delete (the synchronous MemoryCache, or an asynchronous tier),
// with single-flight, optional stale-while-revalidate and error caching.
//
// Hot path (a MemoryCache hit): build the key, one `cache.get`, one
// `instanceof` check, return the value, or for an async function the
// promise kept on the entry: no promise is allocated per hit.
import { EdgeCacheError } from './errors.js';
import { MemoryCache, checkOptionNames, estimate } from './cache.js';
import { argsKey, flightsOf, isThenable } from './keys.js';
import { ASYNC, ERROR, Engine, Memo, asMemo, clockOf, policy, tagsOf } from './getorset.js';

// The read-through machinery lives in getorset.ts: memoize is `getOrSet`
// with a key derived from the arguments.

/**
 * What `memoize`, the decorators and `cachePage` need from a cache: the
 * synchronous {@link MemoryCache} has it, and so does a cache whose methods
 * return promises. Results are awaited only when they are thenables.
 */
export interface CacheLike {
  /** The value of `key`, or `undefined` (or a promise of either). */
  get(key: string): unknown;
  /**
   * Stores `value` under `key`; `ttl` in milliseconds, `0` for no expiry;
   * `tags` (given only when the helper has a `tags` option) for
   * `invalidateTags`.
   */
  set(key: string, value: never, options?: { ttl?: number; tags?: readonly string[] }): unknown;
  /** Deletes `key`. */
  delete(key: string): unknown;
  /** Deletes the keys matching a Redis glob pattern. */
  deletePattern(pattern: string): unknown;
  /** Invalidates the entries carrying any of `tags` (`MemoryCache`, `TieredCache`); optional. */
  invalidateTags?(tags: readonly string[]): unknown;
}

/** @internal Whether `x` has the methods of a {@link CacheLike}. */
export function isCacheLike(x: unknown): x is CacheLike {
  if (x === null || typeof x !== 'object') return false;
  const c = x as Record<string, unknown>;
  return (
    typeof c.get === 'function' &&
    typeof c.set === 'function' &&
    typeof c.delete === 'function' &&
    typeof c.deletePattern === 'function'
  );
}

/** `true` if the cache's `get` returns a promise. */
export type IsAsyncCache<C> = C extends { get(key: string): infer G }
  ? [G] extends [PromiseLike<unknown>]
    ? true
    : false
  : false;

/** `T`, or a promise of `T` when the cache `C` is asynchronous. */
export type CacheResult<C, T> = IsAsyncCache<C> extends true ? Promise<T> : T;

/** What a memoized call returns: `R` itself, or a promise when the cache is asynchronous. */
export type MemoizedReturn<C, R> = IsAsyncCache<C> extends true ? Promise<Awaited<R>> : R;

/**
 * `F` if it is a function type, else `never`. {@link memoize} takes any
 * `F extends Function` and types its result with `Callable<F>`: a
 * constraint with a call signature, `(...args: any[]) => any`, would hand
 * an unannotated parameter (`async (id) => ...`) the type `any` silently,
 * even under `--strict`.
 */
export type Callable<F> = F extends (...args: any[]) => any ? F : never;

/** Options of {@link memoize}. */
export interface MemoizeOptions<F extends (...args: any[]) => any, C extends CacheLike = MemoryCache> {
  /**
   * Where results live. Share one cache between several memoized functions
   * by giving each a distinct `prefix`.
   * @default a scope of its own in the one default `MemoryCache` that every
   * helper without a `cache` shares (10 000 entries, 32 MiB in all)
   */
  cache?: C;
  /**
   * Milliseconds a result stays fresh; `0` for no expiry.
   * @default the cache's `defaultTtl`
   */
  ttl?: number;
  /**
   * Maps the arguments (and `this`) to the key of the result, instead of the
   * default serialization ({@link argsKey}). The prefix is prepended.
   * @default argsKey(args)
   */
  key?: (this: ThisParameterType<F>, ...args: Parameters<F>) => string;
  /**
   * Prepended to every key, to keep functions apart in a shared cache and to
   * invalidate them all with `cache.deletePattern(prefix + '*')`.
   * @default ''
   */
  prefix?: string;
  /**
   * Milliseconds after `ttl` during which a stale result is still served
   * while one call refreshes it in the background. Needs `ttl > 0`.
   * A failed refresh keeps the stale result.
   * @default 0 (no stale results)
   */
  staleWhileRevalidate?: number;
  /**
   * Whether a thrown error (or a rejection) is cached like a result, for
   * `ttl`, and thrown (rejected) again on later calls. A function decides
   * per error; if it throws, the error is not cached.
   * @default false
   */
  cacheErrors?: boolean | ((error: unknown) => boolean);
  /**
   * The clock, in milliseconds, for stale-while-revalidate: give the same
   * clock as the cache's `now` option.
   * @default the cache's `now()` if it has one, else `Date.now`
   */
  now?: () => number;
  /**
   * Tags each result is stored with, or a function of the arguments (with
   * `this`) that returns them, called on each miss before `fn` (a bad tag
   * throws `INVALID_TAG` from the call, and `fn` is not called).
   * `fn.cache.invalidateTags(tags)` then makes every result carrying one of
   * them miss; a computation under way with one of them does not store its
   * result. In a shared cache that reaches the other entries of the same
   * scope with these tags too. Tags follow `SetOptions.tags`' rule.
   * @default no tags
   */
  tags?: readonly string[] | ((this: ThisParameterType<F>, ...args: Parameters<F>) => readonly string[] | undefined);
}

/** A memoized function: `fn`'s parameters and result, plus cache controls. */
export type Memoized<F extends (...args: any[]) => any, C extends CacheLike = MemoryCache> = ((
  this: ThisParameterType<F>,
  ...args: Parameters<F>
) => MemoizedReturn<C, ReturnType<F>>) & {
  /**
   * Deletes the result for these arguments (a computation under way for
   * them will not store its result). Returns what the cache's `delete` does.
   */
  invalidate(...args: Parameters<F>): ReturnType<C['delete']>;
  /**
   * The result that a call with these arguments would serve from the cache
   * (fresh or stale), without calling the function; `undefined` if none or
   * if an error is cached.
   */
  peek(...args: Parameters<F>): CacheResult<C, Awaited<ReturnType<F>> | undefined>;
  /** The cache holding the results. */
  readonly cache: C;
};

// ---- entries ----


const MEMOIZE_OPTIONS = ['cache', 'ttl', 'key', 'prefix', 'staleWhileRevalidate', 'cacheErrors', 'now', 'tags'] as const;

/**
 * @internal A `tags` option of memoize or `@cached`: checked tags, or a
 * function of `(self, args)` giving the checked tags of one call.
 */
export function tagOption(
  tags: unknown,
): readonly string[] | ((self: unknown, args: unknown[]) => () => readonly string[] | undefined) | undefined {
  if (typeof tags !== 'function') return tagsOf(tags);
  // A function's undefined is no tags; anything else not an array is INVALID_TAG.
  return (self, args) => () => tagsOf((tags as (...a: unknown[]) => unknown).apply(self, args));
}

// ---- the default cache of helpers given none ----

/** The default estimate (cache.ts), for the value inside a Memo; never refuses a value (a cycle counts 1 KiB). */
function sizeOfMemo(value: unknown, key: string): number {
  const v = value instanceof Memo ? value.v : value;
  try {
    return estimate(v, key);
  } catch {
    return 1024;
  }
}

let defaultRoot: MemoryCache | undefined;
let helpers = 0;

/**
 * @internal The cache of a helper (`memoize`, `cachePage`, the decorators)
 * given none: a scope of its own in one shared default `MemoryCache`
 * (created on first use, with a size estimate that accepts any value).
 * Helpers created per request so cost a view object, not a cache (whose
 * wasm memory would only come back on a finalizer), and all of them
 * together are bounded by the default cache's 10 000 entries and 32 MiB.
 */
export function ownCache(kind: string): MemoryCache {
  defaultRoot ??= new MemoryCache({ sizeOf: sizeOfMemo });
  return defaultRoot.scope({ tenant: `edgecache:${kind}#${++helpers}` });
}

/**
 * Caches the results of `fn` (sync or async) by its arguments.
 *
 * - Concurrent calls that miss the same key share one call of `fn` and its
 *   result or rejection (single-flight); a rejection is not cached unless
 *   `cacheErrors` says so. Not in Cloudflare Workers, where a request must
 *   never wait on another request's I/O: there each concurrent miss calls
 *   `fn`, and the result is shared through the cache once stored.
 * - With `staleWhileRevalidate`, a result older than `ttl` is still served
 *   for that long while one background call refreshes it.
 * - Async results are served as the same resolved promise on every hit.
 *
 * `this` is passed to `fn` and `key` but is not part of the default key.
 *
 * @example
 * ```ts
 * const getUser = memoize(async (id: number) => db.user(id), { ttl: 60_000, prefix: 'user:' });
 * await getUser(1);      // calls db.user(1)
 * await getUser(1);      // cached
 * getUser.invalidate(1); // the next call reloads
 * ```
 * @throws {EdgeCacheError} `INVALID_TTL` / `INVALID_OPTION` for bad options;
 * a call throws `UNSERIALIZABLE_ARGUMENT` for arguments the default key
 * refuses (functions, symbols, cycles, class instances without `toJSON`).
 *
 * Give `fn`'s parameters their types: under `--strict`, `memoize(async (id)
 * => ...)` is an implicit `any` error (TS7006), as in any function, not a
 * silent `any` (`F` is constrained to `Function`, which gives an arrow no
 * contextual parameter types; see {@link Callable}).
 */
export function memoize<F extends Function, C extends CacheLike = MemoryCache>(
  fn: F,
  options?: MemoizeOptions<Callable<F>, C>,
): Memoized<Callable<F>, C>;
export function memoize<F extends (...args: any[]) => any, C extends CacheLike = MemoryCache>(
  fn: F,
  options: MemoizeOptions<F, C> = {},
): Memoized<F, C> {
  if (typeof fn !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', `memoize takes a function, got ${typeof fn}`);
  }
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', 'memoize: options must be an object');
  }
  checkOptionNames(options, MEMOIZE_OPTIONS, 'memoize');
  const p = policy(options, 'memoize');
  const cache = (options.cache ?? ownCache('memoize')) as C;
  if (!isCacheLike(cache)) {
    throw new EdgeCacheError('INVALID_OPTION', 'memoize: cache must have get, set, delete and deletePattern methods');
  }
  const prefix = options.prefix ?? '';
  if (typeof prefix !== 'string') throw new EdgeCacheError('INVALID_OPTION', 'memoize: prefix must be a string');
  const noPrefix = prefix === '';
  const keyFn = options.key as ((...args: unknown[]) => string) | undefined;
  if (keyFn !== undefined && typeof keyFn !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', 'memoize: key must be a function returning a string');
  }
  const engine = new Engine(p);
  const now = clockOf(p, cache);
  const swr = p.swr > 0;
  const tags = tagOption(options.tags);

  const keyOf = (self: unknown, args: unknown[]): string => {
    if (keyFn === undefined) return prefix + argsKey(args);
    const k = keyFn.apply(self, args);
    if (typeof k !== 'string') {
      throw new EdgeCacheError('INVALID_KEY', `memoize: the key function must return a string, got ${typeof k}`);
    }
    return prefix + k;
  };

  const memoized = function (this: unknown, a: unknown): unknown {
    // The commonest shape, one string argument and the default key: the
    // argument is the key (see argsKey), so the cache hashes a string that
    // is already hashed, and nothing is allocated (not even an arguments
    // array: `arguments` is only copied on the other paths).
    let k: string;
    let args: unknown[] | undefined;
    if (keyFn === undefined && arguments.length === 1 && typeof a === 'string' && a.charCodeAt(0) !== 126) {
      k = noPrefix ? a : prefix + a;
    } else {
      args = Array.prototype.slice.call(arguments);
      k = keyOf(this, args);
    }
    const e = cache.get(k);
    if (e instanceof Memo && (!swr || e.f > now())) {
      if (e.s === ASYNC) return e.p ?? (e.p = Promise.resolve(e.v));
      if (e.s === 0) return e.v;
    }
    const all = args ?? [a];
    const load = () => fn.apply(this, all);
    const t = typeof tags === 'function' ? tags(this, all) : tags;
    if (isThenable(e)) return Promise.resolve(e).then((x) => engine.after(cache, now, k, x, load, t));
    return engine.after(cache, now, k, e, load, t);
  };

  Object.defineProperty(memoized, 'name', { value: `memoized ${fn.name}`.trimEnd() });
  Object.defineProperty(memoized, 'cache', { value: cache, enumerable: true });
  (memoized as { invalidate?: unknown }).invalidate = function (this: unknown, ...args: unknown[]) {
    const k = keyOf(this, args);
    flightsOf(cache).delete(k);
    return cache.delete(k);
  };
  (memoized as { peek?: unknown }).peek = function (this: unknown, ...args: unknown[]) {
    const e = cache.get(keyOf(this, args));
    const value = (x: unknown) => {
      const m = asMemo(x);
      return m !== undefined && (m.s & ERROR) === 0 ? m.v : undefined;
    };
    return isThenable(e) ? Promise.resolve(e).then(value) : value(e);
  };
  return memoized as unknown as Memoized<F, C>;
}
