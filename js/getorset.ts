// getOrSet(): cache-aside with single-flight, per-call stale-while-revalidate
// and the loader's errors passed through. It is the read-through machinery
// of `MemoryCache.getOrSet`, `TieredCache.getOrSet`, `memoize` and
// `@cached`: all four store the same entries (a `Memo`, below) and share
// one in-flight registry per cache identity (keys.ts), so a key read
// through one of them is a hit for the others.
//
// It imports nothing of cache.ts, so cache.ts can import it.
import { EdgeCacheError } from './errors.js';
import { keepAlive } from '#wasm-init';
import { flightsOf, isThenable, shareFlights, type Flight, type Flights } from './keys.js';
import { checkTags } from './tags.js';

/** @internal What `getOrSet` needs of a cache: `get` and `set`, either of which may return a promise. */
export interface ReadThrough {
  get(key: string): unknown;
  set(key: string, value: never, options?: { ttl?: number; tags?: readonly string[] }): unknown;
}

/**
 * @internal `checkTags` (the core's rule), with no tags as `undefined`, so
 * that a write without tags hands `set` no `tags` key (a cache that knows
 * no tags refuses one).
 */
export function tagsOf(tags: unknown): string[] | undefined {
  if (tags === undefined) return undefined;
  // Tags repeat (a set with tags runs this each time, and the core's check
  // crosses into wasm and back): a list of distinct tags the core has
  // already accepted is accepted again without it.
  if (Array.isArray(tags) && tags.length <= 64) {
    let i = 0;
    while (i < tags.length && accepted.has(tags[i]) && tags.indexOf(tags[i]) === i) i++;
    if (i === tags.length) return i === 0 ? undefined : (tags.slice() as string[]);
  }
  const t = checkTags(tags);
  if (accepted.size + t.length > 4096) accepted.clear();
  for (const x of t) accepted.add(x);
  return t.length === 0 ? undefined : t;
}

/** Tags `checkTags` accepted (at most 4096; forgotten all at once beyond). */
const accepted = new Set<unknown>();

/**
 * @internal The tags a result is stored with: checked tags, or a function
 * giving them (evaluated once per load, before the loader is called, so a
 * bad tag throws before anything runs).
 */
export type TagSource = readonly string[] | (() => readonly string[] | undefined) | undefined;

/** Options of `getOrSet` on {@link MemoryCache} and {@link TieredCache}. */
export interface GetOrSetOptions {
  /**
   * Milliseconds the loaded value stays fresh; `0` for no expiry.
   * @default the cache's `defaultTtl`
   */
  ttl?: number;
  /**
   * Milliseconds after `ttl` during which the stale value is still served
   * while one call of the loader refreshes it in the background (a failed
   * refresh keeps the stale value). Needs `ttl > 0`.
   * @default 0 (no stale values)
   */
  staleWhileRevalidate?: number;
  /**
   * Tags the loaded value is stored with (see `SetOptions.tags`):
   * `invalidateTags` of one of them makes it miss. A load under way when
   * one of its tags is invalidated does not store its result.
   * @default no tags
   */
  tags?: readonly string[];
}

// ---- entries ----

/** @internal Entry status bits. */
export const ASYNC = 1;
/** @internal */
export const ERROR = 2;

/**
 * @internal What getOrSet (and so memoize) stores: the value (or error), whether it came from
 * a promise, and until when it is fresh (0: no stale-while-revalidate).
 * `p` keeps the resolved promise served to async callers; it is not part of
 * the serialized form.
 */
export class Memo {
  p: Promise<unknown> | undefined = undefined;
  constructor(
    readonly v: unknown,
    readonly s: number,
    readonly f: number,
  ) {}
  toJSON(): { v: unknown; s: number; f: number } {
    return { v: this.v, s: this.s, f: this.f };
  }
}

/** @internal An entry read from the cache: a Memo, its JSON form (from a remote tier), or not ours. */
export function asMemo(x: unknown): Memo | undefined {
  if (x instanceof Memo) return x;
  if (x !== null && typeof x === 'object' && typeof (x as Memo).s === 'number' && 'v' in x) {
    const m = x as Memo;
    return new Memo(m.v, m.s, typeof m.f === 'number' ? m.f : 0);
  }
  return undefined;
}

/** The result of a hit: the value, its promise, or the cached error. */
function replay(m: Memo): unknown {
  switch (m.s) {
    case 0:
      return m.v;
    case ASYNC:
      return (m.p ??= Promise.resolve(m.v));
    case ERROR:
      throw m.v;
    default:
      return Promise.reject(m.v);
  }
}

function noop(): void {}

/** @internal Whether a cache error means "this value cannot be cached" (then the result is just not stored). */
export function isTooLarge(e: unknown): boolean {
  return e instanceof EdgeCacheError && (e.code === 'VALUE_TOO_LARGE' || e.code === 'UNMEASURABLE_VALUE');
}

function checkTtl(ttl: unknown, name: string): number | undefined {
  if (ttl === undefined) return undefined;
  if (typeof ttl !== 'number' || !(ttl >= 0) || ttl === Infinity) {
    throw new EdgeCacheError(
      'INVALID_TTL',
      `${name} must be a finite number of milliseconds >= 0 (0 = no expiry), got ${String(ttl)}`,
    );
  }
  return ttl;
}

/**
 * A `cacheErrors` predicate that throws means "do not cache": its error must
 * not escape from the flight's rejection handler, which would leave the
 * flight registered (and every later call joined to it) for good.
 */
function safePredicate(ce: (e: unknown) => boolean): (e: unknown) => boolean {
  return (e) => {
    try {
      return Boolean(ce(e));
    } catch {
      return false;
    }
  };
}

/** @internal The validated policy shared by `memoize` and `@cached`. */
export interface Policy {
  ttl: number | undefined;
  swr: number;
  cacheErrors: (e: unknown) => boolean;
  now: (() => number) | undefined;
  /** `{ ttl: ttl + swr }`, allocated once. */
  setOptions: { ttl: number } | undefined;
}

/** @internal */
export function policy(
  o: { ttl?: number; staleWhileRevalidate?: number; cacheErrors?: boolean | ((e: unknown) => boolean); now?: () => number },
  where: string,
): Policy {
  const ttl = checkTtl(o.ttl, `${where}: ttl`);
  const swr = o.staleWhileRevalidate ?? 0;
  if (typeof swr !== 'number' || !(swr >= 0) || swr === Infinity) {
    throw new EdgeCacheError(
      'INVALID_OPTION',
      `${where}: staleWhileRevalidate must be a finite number of milliseconds >= 0, got ${String(swr)}`,
    );
  }
  if (swr > 0 && !(ttl !== undefined && ttl > 0)) {
    throw new EdgeCacheError(
      'INVALID_OPTION',
      `${where}: staleWhileRevalidate needs a ttl > 0 (the time a result stays fresh)`,
    );
  }
  const ce = o.cacheErrors ?? false;
  if (typeof ce !== 'boolean' && typeof ce !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', `${where}: cacheErrors must be a boolean or a function`);
  }
  if (o.now !== undefined && typeof o.now !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', `${where}: now must be a function returning milliseconds`);
  }
  return {
    ttl,
    swr,
    cacheErrors: typeof ce === 'function' ? safePredicate(ce) : () => ce,
    now: o.now,
    setOptions: ttl === undefined ? undefined : { ttl: ttl + swr },
  };
}

/** @internal The clock for freshness: the option, the cache's own, or Date.now. */
export function clockOf(p: Policy, cache: ReadThrough): () => number {
  if (p.now !== undefined) return p.now;
  const c = (cache as { now?: unknown }).now;
  if (typeof c === 'function') return () => (c as () => number).call(cache);
  return Date.now;
}

/**
 * @internal The read-through machinery after the cache lookup: hit (fresh
 * or stale), miss, single-flight, storing, refresh. `load` is the loader
 * (for memoize, the function applied to the call's arguments); it is
 * called at most once per miss, and only when no flight may be joined.
 * `memoize` inlines the fresh-hit test and calls `after` for everything
 * else; `getOrSet` and `@cached` call `call`.
 */
export class Engine {
  constructor(readonly p: Policy) {}

  /** A whole call: lookup, then hit or load. */
  call(cache: ReadThrough, now: () => number, k: string, load: () => unknown, tags?: TagSource): unknown {
    const e = cache.get(k);
    if (isThenable(e)) return Promise.resolve(e).then((x) => this.after(cache, now, k, x, load, tags));
    return this.after(cache, now, k, e, load, tags);
  }

  /** Everything after the lookup returned `e` (already awaited). */
  after(cache: ReadThrough, now: () => number, k: string, e: unknown, load: () => unknown, tags?: TagSource): unknown {
    const m = asMemo(e);
    if (m !== undefined) {
      if (m.f !== 0 && m.f <= now()) this.refresh(cache, now, k, m, load, tags);
      return replay(m);
    }
    const flights = flightsOf(cache);
    const flight = flights.get(k);
    // In Workers, another caller's flight may be another request's I/O: compute instead (keys.ts).
    if (flight !== undefined && !flight.sync && shareFlights) return flight.promise;
    return this.compute(cache, now, flights, k, load, tags);
  }

  /** A miss: call the loader once, share its promise, store its result. */
  compute(cache: ReadThrough, now: () => number, flights: Flights, k: string, load: () => unknown, tags?: TagSource): unknown {
    const t = typeof tags === 'function' ? tags() : tags;
    let r: unknown;
    try {
      r = load();
    } catch (err) {
      if (this.p.cacheErrors(err)) this.store(cache, now, k, new Memo(err, ERROR, 0), undefined, flights, t);
      throw err;
    }
    if (!isThenable(r)) {
      this.store(cache, now, k, new Memo(r, 0, 0), undefined, flights, t);
      return r;
    }
    const flight: Flight = { promise: undefined as unknown as Promise<unknown>, sync: false, tags: t };
    flight.promise = Promise.resolve(r).then(
      (v) => {
        if (flights.get(k) === flight) {
          const m = new Memo(v, ASYNC, 0);
          m.p = flight.promise;
          this.store(cache, now, k, m, flight, flights, t);
        }
        return v;
      },
      (err) => {
        if (flights.get(k) === flight) {
          if (this.p.cacheErrors(err)) this.store(cache, now, k, new Memo(err, ASYNC | ERROR, 0), flight, flights, t);
          else flights.delete(k);
        }
        throw err;
      },
    );
    flights.set(k, flight);
    return flight.promise;
  }

  /**
   * Writes an entry (stamping its freshness), then releases the flight once
   * the write is done, so that no caller misses in between. A value the
   * cache refuses as too large (or unmeasurable) is just not stored; a
   * write that fails later is ignored (the call has its result already).
   *
   * The call answers without waiting for an asynchronous write (a
   * `TieredCache`'s to Redis), so the write must outlive the request that
   * started it: in Workers, workerd cancels the I/O a request leaves
   * pending when it answers, and the result would be lost (neither Redis
   * nor L1 would get it: the next request would compute it again). It is
   * handed to the request's `waitUntil` (keepAlive; nothing elsewhere).
   */
  store(cache: ReadThrough, now: () => number, k: string, m: Memo, flight: Flight | undefined, flights: Flights, tags?: readonly string[]): void {
    const p = this.p;
    const entry = p.swr > 0 ? withFreshness(m, now() + p.ttl!) : m;
    let w: unknown;
    try {
      w = cache.set(k, entry as never, tags === undefined ? p.setOptions : { ...p.setOptions, tags });
    } catch (err) {
      if (flight !== undefined && flights.get(k) === flight) flights.delete(k);
      if (isTooLarge(err)) return;
      throw err;
    }
    const release = () => {
      if (flight !== undefined && flights.get(k) === flight) flights.delete(k);
    };
    if (!isThenable(w)) return release();
    const landed = Promise.resolve(w).then(release, release);
    // Callers in this isolate join the flight until the write has landed;
    // in Workers nobody joins: release it now.
    if (!shareFlights) release();
    keepAlive(landed);
  }

  /** Serves stale, refreshes once in the background; a failed refresh keeps the stale entry. */
  refresh(cache: ReadThrough, now: () => number, k: string, stale: Memo, load: () => unknown, tags?: TagSource): void {
    const flights = flightsOf(cache);
    if (flights.has(k)) return;
    let t: readonly string[] | undefined;
    try {
      t = typeof tags === 'function' ? tags() : tags;
    } catch {
      return; // bad tags: no refresh (the next miss throws them)
    }
    // Only async loaders may join a refresh: a sync caller that misses
    // computes on its own rather than get a promise.
    const flight: Flight = { promise: undefined as unknown as Promise<unknown>, sync: (stale.s & ASYNC) === 0, tags: t };
    let status = stale.s & ASYNC;
    flight.promise = Promise.resolve()
      .then(() => {
        const r = load();
        if (isThenable(r)) status = ASYNC;
        else status = 0;
        return r;
      })
      .then(
        (v) => {
          if (flights.get(k) === flight) this.store(cache, now, k, new Memo(v, status, 0), flight, flights, t);
          return v;
        },
        (err) => {
          if (flights.get(k) === flight) flights.delete(k);
          throw err;
        },
      );
    // In Workers the refresh outlives the request that started it: without
    // waitUntil its I/O would be cancelled and the flight left for good.
    keepAlive(flight.promise.catch(noop));
    flights.set(k, flight);
  }
}

function withFreshness(m: Memo, freshUntil: number): Memo {
  const out = new Memo(m.v, m.s, freshUntil);
  out.p = m.p;
  return out;
}


const GET_OR_SET_OPTIONS = new Set(['ttl', 'staleWhileRevalidate', 'tags']);
const NEVER = () => false;

/**
 * @internal `cache.getOrSet(key, loader, options)`: checks the call, then
 * reads through. Errors are never cached (that is memoize's `cacheErrors`).
 */
export function getOrSet(cache: ReadThrough, where: string, key: unknown, loader: unknown, options: GetOrSetOptions | undefined): unknown {
  if (typeof key !== 'string') throw new EdgeCacheError('INVALID_KEY', `${where}: the key must be a string, got ${typeof key}`);
  if (typeof loader !== 'function') throw new EdgeCacheError('INVALID_OPTION', `${where}: the loader must be a function, got ${typeof loader}`);
  let p = DEFAULT_POLICY;
  let tags: string[] | undefined;
  if (options !== undefined) {
    if (options === null || typeof options !== 'object') throw new EdgeCacheError('INVALID_OPTION', `${where}: options must be an object`);
    for (const name of Object.keys(options)) {
      if (!GET_OR_SET_OPTIONS.has(name)) {
        throw new EdgeCacheError('INVALID_OPTION', `${where}: unknown option \`${name}\`; known: ttl, staleWhileRevalidate, tags`);
      }
    }
    if (options.ttl !== undefined || options.staleWhileRevalidate !== undefined) p = policy(options, where);
    tags = tagsOf(options.tags);
  }
  const e = cache.get(key);
  // A hit with no freshness to check costs no allocation (as memoize's).
  if (e instanceof Memo && e.f === 0) return replay(e);
  const engine = new Engine(p);
  const now = clockOf(p, cache);
  if (isThenable(e)) return Promise.resolve(e).then((x) => engine.after(cache, now, key, x, loader as () => unknown, tags));
  return engine.after(cache, now, key, e, loader as () => unknown, tags);
}

const DEFAULT_POLICY: Policy = { ttl: undefined, swr: 0, cacheErrors: NEVER, now: undefined, setOptions: undefined };
