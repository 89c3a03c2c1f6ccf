// Stage-3 (TC39) method decorators: @cached, @invalidates, @invalidatesPattern.
// They need TypeScript >= 5.0 *without* `experimentalDecorators` (or any
// compiler that implements the standard decorators).
//
// How a decorator finds its cache, first match wins:
//   1. its `cache` option: a cache, or a function of the instance (`this`)
//      that returns one;
//   2. `this.cache`, if the instance (or, for a static method, the class)
//      has a property `cache` with get/set/delete/deletePattern methods;
//   3. the shared default cache (`getDefaultCache()`, replaceable with
//      `setDefaultCache()`).
// @cached and the invalidation decorators of a class resolve it the same way,
// so with the same options they read and delete in the same cache.
//
// Keys: @cached stores a result at `prefix + key(...args)`, where `key`
// defaults to `argsKey(args)` and `prefix` to the class and method names
// (`Users.get:`; `Users.get~2:` for a second class of the same name), so
// that two classes never share results in a shared cache.
// @invalidates deletes the *full* keys its `keys` function returns, and
// @invalidatesPattern the keys matching a Redis glob: give @cached an explicit
// prefix such as 'user:' and a readable `key`, and invalidate 'user:42' or
// 'user:*'.
import { keepAlive } from '#wasm-init';
import { EdgeCacheError } from './errors.js';
import { checkOptionNames } from './cache.js';
import { argsKey, dropFlights, dropFlightsMatching, isThenable } from './keys.js';
import { isCacheLike, ownCache, tagOption, type CacheLike } from './memoize.js';
import { clockOf, Engine, policy } from './getorset.js';

/** Where a decorator finds its cache: a cache, or a function of `this` returning one. */
export type CacheSource<This> = CacheLike | ((self: This) => CacheLike);

/**
 * Options of {@link cached}. `A` is inferred from `key`'s parameters; a
 * `key` whose parameters have no types gets them as `unknown` (not a
 * silent `any`), so `(id) => \`u:${id}\`` compiles under `--strict` and
 * `(id) => id.trim()` asks for `(id: string)`. Written as methods, `key`
 * and `keys` take typed parameters also when `This` alone is given
 * (`cached<Service>({ key: (id: number) => ... })`).
 */
export interface CachedOptions<This = any, A extends unknown[] = unknown[]> {
  /**
   * Milliseconds a result stays fresh; `0` for no expiry.
   * @default the cache's `defaultTtl`
   */
  ttl?: number;
  /**
   * Prepended to the key of every result. Use the same prefix in the keys or
   * pattern of `@invalidates` / `@invalidatesPattern`. Give one explicitly
   * when the cache is shared between isolates (a `TieredCache`): the
   * default is fixed on the first call, and two classes of the same name
   * are told apart by the order in which they are first called.
   * @default the class and method names and a colon, e.g. `'Users.get:'`
   */
  prefix?: string;
  /**
   * Maps the arguments (with `this` bound to the instance) to the part of the
   * key after the prefix. `this` is not part of the default key: include
   * what distinguishes instances here if their results differ.
   * @default argsKey(args)
   */
  key?(this: This, ...args: A): string;
  /**
   * The cache, or a function of the instance that returns it.
   * @default `this.cache` if it is a cache, else the shared default cache
   */
  cache?: CacheSource<This>;
  /**
   * Milliseconds after `ttl` during which a stale result is served while
   * one call refreshes it in the background. Needs `ttl > 0`.
   * @default 0
   */
  staleWhileRevalidate?: number;
  /**
   * Whether errors (rejections) are cached like results.
   * @default false
   */
  cacheErrors?: boolean | ((error: unknown) => boolean);
  /**
   * The clock for stale-while-revalidate, in milliseconds.
   * @default the cache's `now()` if it has one, else `Date.now`
   */
  now?: () => number;
  /**
   * Tags each result is stored with, or a function of the arguments (with
   * `this` bound) returning them, called on each miss before the method;
   * as `memoize`'s `tags`. `cache.invalidateTags(tags)` on the same cache
   * (and scope) makes the results carrying them miss.
   * @default no tags
   */
  tags?: readonly string[] | { tags(this: This, ...args: A): readonly string[] | undefined }['tags'];
}

/** Options of {@link invalidates}. */
export interface InvalidatesOptions<This = any, A extends unknown[] = unknown[]> {
  /**
   * The full keys (prefix included) to delete once the method has
   * succeeded, computed from its arguments (with `this` bound).
   */
  keys(this: This, ...args: A): readonly string[];
  /**
   * The cache, or a function of the instance that returns it.
   * @default `this.cache` if it is a cache, else the shared default cache
   */
  cache?: CacheSource<This>;
}

/**
 * A pattern as a function of the arguments, `(this: This, ...args: A) =>
 * string`, its parameters checked as a method's are (so a typed one is
 * taken also when only `This` is given).
 */
export type PatternOf<This, A extends unknown[]> = { pattern(this: This, ...args: A): string }['pattern'];

/** Options of {@link invalidatesPattern}. */
export interface InvalidatesPatternOptions<This = any> {
  /**
   * The cache, or a function of the instance that returns it.
   * @default `this.cache` if it is a cache, else the shared default cache
   */
  cache?: CacheSource<This>;
}

type Method<This, A extends any[], R> = (this: This, ...args: A) => R;
// The decorators accept methods whose parameters start with those of the
// `key`/`keys`/pattern function (which may ignore trailing ones).

let shared: CacheLike | undefined;

/**
 * The cache that decorators use when they have no `cache` option and the
 * instance no `cache` property: a `MemoryCache` with the default bounds,
 * created on first use.
 */
export function getDefaultCache(): CacheLike {
  return (shared ??= ownCache('decorators'));
}

/** Replaces the shared default cache of the decorators (e.g. one per test). */
export function setDefaultCache(cache: CacheLike): void {
  if (!isCacheLike(cache)) {
    throw new EdgeCacheError('INVALID_OPTION', 'setDefaultCache takes a cache (get, set, delete, deletePattern)');
  }
  shared = cache;
}

function resolveCache<This>(source: CacheSource<This> | undefined, self: This, where: string): CacheLike {
  if (source !== undefined) {
    const c = typeof source === 'function' ? source(self) : source;
    if (!isCacheLike(c)) {
      throw new EdgeCacheError('INVALID_OPTION', `${where}: the cache option did not give a cache (get, set, delete, deletePattern)`);
    }
    return c;
  }
  if (self !== null && self !== undefined) {
    const own = (self as { cache?: unknown }).cache;
    if (isCacheLike(own)) return own;
  }
  return getDefaultCache();
}

function checkSource(source: unknown, where: string): void {
  if (source !== undefined && typeof source !== 'function' && !isCacheLike(source)) {
    throw new EdgeCacheError('INVALID_OPTION', `${where}: cache must be a cache or a function returning one`);
  }
}

function methodName(context: ClassMethodDecoratorContext<any, any>): string {
  return typeof context.name === 'symbol' ? (context.name.description ?? '') : context.name;
}

/** How many decorated methods have claimed each default prefix. */
const defaultPrefixes = new Map<string, number>();

/**
 * The default prefix of a decorated method, `Class.method:`, worked out on
 * its first call: the class is the one whose prototype (or, for a static
 * method, the class itself) holds the decorated function, found from
 * `this`. A second class of the same name gets `Class.method~2:`.
 */
function defaultPrefix(context: ClassMethodDecoratorContext<any, any>, self: unknown, method: unknown): string {
  let owner: unknown;
  if (!context.private && self !== null && (typeof self === 'object' || typeof self === 'function')) {
    for (let o: object | null = self as object; o !== null; o = Object.getPrototypeOf(o)) {
      if (Object.getOwnPropertyDescriptor(o, context.name)?.value === method) {
        owner = o;
        break;
      }
    }
  }
  owner ??= self;
  const cls = context.static ? owner : (owner as { constructor?: unknown } | undefined)?.constructor;
  const name = (typeof cls === 'function' && cls.name) || 'anonymous';
  const base = `${name}.${methodName(context)}`;
  const n = (defaultPrefixes.get(base) ?? 0) + 1;
  defaultPrefixes.set(base, n);
  return n === 1 ? `${base}:` : `${base}~${n}:`;
}

function checkKind(context: ClassMethodDecoratorContext<any, any>, where: string): void {
  if (context === null || typeof context !== 'object' || context.kind !== 'method') {
    throw new EdgeCacheError(
      'INVALID_OPTION',
      `${where} decorates methods with standard (stage-3) decorators; turn off experimentalDecorators`,
    );
  }
}

/**
 * Caches a method's results (sync or async) by its arguments, with the
 * single-flight and stale-while-revalidate behaviour of `memoize`.
 *
 * @example
 * ```ts
 * class Users {
 *   constructor(readonly cache: MemoryCache) {}
 *   @cached({ prefix: 'user:', key: (id: number) => String(id), ttl: 60_000 })
 *   async get(id: number) { return db.user(id) }
 *   @invalidates({ keys: (id: number) => [`user:${id}`] })
 *   async rename(id: number, name: string) { await db.rename(id, name) }
 * }
 * ```
 */
export function cached<This = any, A extends unknown[] = unknown[]>(options: CachedOptions<This, A> = {}) {
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', '@cached: options must be an object');
  }
  checkOptionNames(options, ['ttl', 'prefix', 'key', 'cache', 'staleWhileRevalidate', 'cacheErrors', 'now', 'tags'], '@cached');
  const p = policy(options, '@cached');
  const tags = tagOption(options.tags);
  const key = options.key;
  if (key !== undefined && typeof key !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', '@cached: key must be a function returning a string');
  }
  if (options.prefix !== undefined && typeof options.prefix !== 'string') {
    throw new EdgeCacheError('INVALID_OPTION', '@cached: prefix must be a string');
  }
  checkSource(options.cache, '@cached');
  return function <T extends This, M extends [...A, ...any[]], R>(
    target: Method<T, M, R>,
    context: ClassMethodDecoratorContext<T, Method<T, M, R>>,
  ): Method<T, M, R> {
    checkKind(context, '@cached');
    let prefix = options.prefix;
    const engine = new Engine(p);
    const method = function (this: T, ...args: M): R {
      prefix ??= defaultPrefix(context, this, method);
      const cache = resolveCache(options.cache as CacheSource<T> | undefined, this, '@cached');
      let k: string;
      if (key === undefined) k = prefix + argsKey(args);
      else {
        const part = key.apply(this, args as unknown as A);
        if (typeof part !== 'string') {
          throw new EdgeCacheError('INVALID_KEY', `@cached: the key function must return a string, got ${typeof part}`);
        }
        k = prefix + part;
      }
      const t = typeof tags === 'function' ? tags(this, args) : tags;
      return engine.call(cache, clockOf(p, cache), k, () => target.apply(this, args), t) as R;
    };
    return method;
  };
}

/**
 * Runs `invalidate(result)` after the method has succeeded: at once for a
 * synchronous result, after resolution for a promise (whose settlement then
 * waits for the invalidation). A throw or a rejection skips it.
 */
function afterSuccess<R>(result: R, invalidate: () => unknown): R {
  if (isThenable(result)) {
    return Promise.resolve(result).then((v) => {
      const done = invalidate();
      return isThenable(done) ? Promise.resolve(done).then(() => v) : v;
    }) as R;
  }
  const done = invalidate();
  // A synchronous method cannot wait for an asynchronous cache: the
  // deletion goes on in the background and its failure is ignored.
  if (isThenable(done)) keepAlive(Promise.resolve(done).catch(() => {}));
  return result;
}

function all(results: unknown[]): unknown {
  return results.some(isThenable) ? Promise.all(results) : undefined;
}

/**
 * Deletes cache keys after the method succeeds (after its promise resolves
 * for an async method; not if it throws or rejects). Computations of those
 * keys already under way in `memoize`/`@cached` will not store their results.
 *
 * @example
 * ```ts
 * @invalidates({ keys: (id: number) => [`user:${id}`, `user:${id}:posts`] })
 * async updateUser(id: number, patch: Patch) { ... }
 * ```
 */
export function invalidates<This = any, A extends unknown[] = unknown[]>(options: InvalidatesOptions<This, A>) {
  if (options === null || typeof options !== 'object' || typeof options.keys !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', '@invalidates takes { keys: (...args) => string[] }');
  }
  checkOptionNames(options, ['keys', 'cache'], '@invalidates');
  checkSource(options.cache, '@invalidates');
  const keysOf = options.keys;
  return function <T extends This, M extends [...A, ...any[]], R>(
    target: Method<T, M, R>,
    context: ClassMethodDecoratorContext<T, Method<T, M, R>>,
  ): Method<T, M, R> {
    checkKind(context, '@invalidates');
    return function (this: T, ...args: M): R {
      const result = target.apply(this, args);
      return afterSuccess(result, () => {
        const keys = keysOf.apply(this, args as unknown as A);
        if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) {
          throw new EdgeCacheError('INVALID_KEY', '@invalidates: keys must return an array of strings');
        }
        const cache = resolveCache(options.cache as CacheSource<T> | undefined, this, '@invalidates');
        dropFlights(cache, keys);
        return all(keys.map((k) => cache.delete(k)));
      });
    };
  };
}

/**
 * Deletes the cache keys matching a Redis glob pattern (`*`, `?`, `[a-z]`,
 * `\` escapes) after the method succeeds. The pattern may be a function of
 * the arguments: `(id) => \`user:${id}:*\``.
 *
 * @example
 * ```ts
 * @invalidatesPattern('user:*')
 * async importUsers(rows: Row[]) { ... }
 * ```
 */
export function invalidatesPattern<This = any, A extends unknown[] = unknown[]>(
  pattern: string | PatternOf<This, A>,
  options: InvalidatesPatternOptions<This> = {},
) {
  if (typeof pattern !== 'string' && typeof pattern !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', '@invalidatesPattern takes a glob pattern or a function returning one');
  }
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', '@invalidatesPattern: options must be an object');
  }
  checkOptionNames(options, ['cache'], '@invalidatesPattern');
  checkSource(options.cache, '@invalidatesPattern');
  return function <T extends This, M extends [...A, ...any[]], R>(
    target: Method<T, M, R>,
    context: ClassMethodDecoratorContext<T, Method<T, M, R>>,
  ): Method<T, M, R> {
    checkKind(context, '@invalidatesPattern');
    return function (this: T, ...args: M): R {
      const result = target.apply(this, args);
      return afterSuccess(result, () => {
        const glob = typeof pattern === 'string' ? pattern : pattern.apply(this, args as unknown as A);
        if (typeof glob !== 'string') {
          throw new EdgeCacheError('INVALID_OPTION', '@invalidatesPattern: the pattern function must return a string');
        }
        const cache = resolveCache(options.cache as CacheSource<T> | undefined, this, '@invalidatesPattern');
        dropFlightsMatching(cache, glob);
        return cache.deletePattern(glob);
      });
    };
  };
}
