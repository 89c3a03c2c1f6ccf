// Stable, type-tagged serialization of function arguments into cache keys,
// for `memoize` and `@cached`.
//
// One string argument is its own key: `f('alice')` is stored at 'alice'
// (after the prefix), which is readable, easy to invalidate, and on a hit
// costs no new string (the caller's string is already hashed). Every other
// argument list, and a lone string that starts with '~', encodes to '~'
// followed by one self-delimiting token per argument, so two different
// argument lists never give the same key:
//
//   string      s<length>:<raw text>        "ab"        -> s2:ab
//   number      n<String(n)>;  (-0 is n-0;) 1           -> n1;
//   bigint      b<digits>;                  1n          -> b1;
//   boolean     t / f
//   null        N
//   undefined   u               (an array hole is h)
//   Date        D<epoch ms>;                            -> D0;
//   array       [<tokens>]
//   object      {<key token><value token>...}  keys sorted
//   Map         M{<key token><value token>...} entries sorted by key token
//   Set         S{<tokens>}                    tokens sorted
//   RegExp      R<source token><flags token>
//   bytes       B<type name token><hex>;    ArrayBuffer, typed arrays, DataView
//   URL         U<href token>
//   toJSON()    J<constructor name token><token of toJSON()>
//
// e.g. f(1) -> '~n1;', f('a', 1) -> '~s1:an1;', f() -> '~', f('~x') -> '~s2:~x'.
//
// Plain objects, Maps and Sets are order-independent; arrays are not.
// Functions, symbols (as values or as object keys), cycles, values nested
// more than 256 deep and class instances without `toJSON` are refused with an `EdgeCacheError`
// ('UNSERIALIZABLE_ARGUMENT') instead of being given a key that could
// collide: pass a `key` function for those.

import { EdgeCacheError } from './errors.js';
import { CACHE_IDENTITY, compileGlob } from './cache.js';

const hasOwn = Object.prototype.hasOwnProperty;
/** Deeper arguments are refused (a key that long is no use, and recursion must not overflow the stack). */
const MAX_DEPTH = 256;
const objectProto = Object.prototype;

function refuse(what: string, path: string): never {
  throw new EdgeCacheError(
    'UNSERIALIZABLE_ARGUMENT',
    `cannot derive a cache key from ${what} at ${path}: pass a \`key\` function that maps the arguments to a string`,
  );
}

function str(s: string): string {
  return 's' + s.length + ':' + s;
}

function num(n: number): string {
  // String(-0) is "0": keep the sign, it is observable (1 / -0).
  return n === 0 && 1 / n < 0 ? 'n-0;' : 'n' + n + ';';
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    out += (b < 16 ? '0' : '') + b.toString(16);
  }
  return out;
}

function encode(v: unknown, path: string, seen: unknown[]): string {
  switch (typeof v) {
    case 'string':
      return str(v);
    case 'number':
      return num(v);
    case 'boolean':
      return v ? 't' : 'f';
    case 'undefined':
      return 'u';
    case 'bigint':
      return 'b' + v + ';';
    case 'function':
      return refuse('a function', path);
    case 'symbol':
      return refuse('a symbol', path);
  }
  if (v === null) return 'N';
  const o = v as object;
  if (seen.includes(o)) refuse('a cycle', path);
  if (seen.length >= MAX_DEPTH) refuse(`a value nested more than ${MAX_DEPTH} levels deep`, path.length > 80 ? `${path.slice(0, 80)}…` : path);
  seen.push(o);
  try {
    return encodeObject(o, path, seen);
  } finally {
    seen.pop();
  }
}

function encodeObject(o: object, path: string, seen: unknown[]): string {
  if (Array.isArray(o)) {
    let out = '[';
    for (let i = 0; i < o.length; i++) {
      const item = o[i];
      out += item === undefined && !(i in o) ? 'h' : encode(item, `${path}[${i}]`, seen);
    }
    return out + ']';
  }
  const proto = Object.getPrototypeOf(o);
  if (proto === objectProto || proto === null) {
    if (Object.getOwnPropertySymbols(o).length > 0) refuse('an object with symbol keys', path);
    const keys = Object.keys(o).sort();
    let out = '{';
    for (const k of keys) out += str(k) + encode((o as Record<string, unknown>)[k], `${path}.${k}`, seen);
    return out + '}';
  }
  if (o instanceof Date) return 'D' + o.getTime() + ';';
  if (o instanceof Map) {
    const entries: string[] = [];
    for (const [k, val] of o) entries.push(encode(k, `${path}<key>`, seen) + encode(val, `${path}<value>`, seen));
    return 'M{' + entries.sort().join('') + '}';
  }
  if (o instanceof Set) {
    const items: string[] = [];
    for (const item of o) items.push(encode(item, `${path}<item>`, seen));
    return 'S{' + items.sort().join('') + '}';
  }
  if (o instanceof RegExp) return 'R' + str(o.source) + str(o.flags);
  if (ArrayBuffer.isView(o)) {
    const bytes = new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
    return 'B' + str(o.constructor.name) + hex(bytes) + ';';
  }
  if (o instanceof ArrayBuffer) return 'B' + str('ArrayBuffer') + hex(new Uint8Array(o)) + ';';
  if (typeof URL === 'function' && o instanceof URL) return 'U' + str(o.href);
  const toJSON = (o as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    const name = (o.constructor as { name?: string } | undefined)?.name ?? '';
    return 'J' + str(name) + encode(toJSON.call(o), `${path}.toJSON()`, seen);
  }
  const name = (o.constructor as { name?: string } | undefined)?.name;
  return refuse(`an instance of ${name || 'a class'} (no toJSON method)`, path);
}

/** The first character of every encoded (non-verbatim) key. */
export const TAG = '~';
const TAG_CODE = 126;

/**
 * The default cache key of an argument list, as `memoize` and `@cached`
 * compute it (before the prefix). One string argument is its own key
 * (unless it starts with `~`); anything else is a type-tagged encoding that
 * starts with `~`. Use it to build the keys that `@invalidates` deletes:
 * `keys: (id) => ['user:' + argsKey([id])]`.
 *
 * Distinguishes types (`1` and `'1'`, `null` and `undefined`, `-0` and `0`),
 * ignores the property order of plain objects, Maps and Sets, and throws an
 * {@link EdgeCacheError} with code `'UNSERIALIZABLE_ARGUMENT'` for functions,
 * symbols, cycles and class instances without `toJSON`.
 *
 * @example
 * ```ts
 * argsKey(['alice'])  // 'alice'
 * argsKey([42])       // '~n42;'
 * argsKey(['a', 1])   // '~s1:an1;'
 * argsKey([{ b: 1, a: 2 }]) === argsKey([{ a: 2, b: 1 }]) // true
 * ```
 */
export function argsKey(args: readonly unknown[]): string {
  if (args.length === 1) {
    const a = args[0];
    if (typeof a === 'string') return a.charCodeAt(0) === TAG_CODE ? TAG + str(a) : a;
    if (typeof a === 'number') return TAG + num(a);
  }
  let out = TAG;
  const seen: unknown[] = [];
  for (let i = 0; i < args.length; i++) out += encode(args[i], `argument ${i}`, seen);
  return out;
}

/** @internal Whether `x` is a thenable (a promise or promise-like). */
export function isThenable(x: unknown): x is PromiseLike<unknown> {
  return (
    x !== null &&
    (typeof x === 'object' || typeof x === 'function') &&
    typeof (x as { then?: unknown }).then === 'function'
  );
}

// Shared in-flight registry, so that `memoize`, `@cached` and the
// invalidation decorators agree on which computations are under way for a
// key, and invalidation can stop a computation that started before a write
// from storing its (now stale) result.
//
// It is keyed by the cache's identity, not by the object: `scope()` returns
// a new view on each call, and views of the same scope must share their
// flights (`cache: (self) => shared.scope({ tenant: self.tenant })`), while
// two scopes never do. A cache that implements `[CACHE_IDENTITY]()`
// (MemoryCache does) names its root object and its scope; any other cache
// is its own identity.

// The cross-request rule of Cloudflare Workers: a request must never wait
// on another request's I/O. An I/O object (a Response body, a stream) made
// in one request throws "Cannot perform I/O on behalf of a different
// request" in another, and a promise settled by another request's fetch
// hangs for good if that request is cancelled first. workerd gives no way
// to tell which request a call belongs to (AsyncLocalStorage needs the
// `nodejs_als` or `nodejs_compat` flag, which a library cannot require), so
// there callers never join another caller's in-flight promise: concurrent
// misses each compute (each request does its own fetch) and share only
// what the cache holds once a computation is done (plain data). Elsewhere
// (Node, Deno, Bun, browsers) concurrent misses share one computation.
// Flights are still registered in Workers, so that a delete or write that
// begins meanwhile keeps a computation's (older) result out of the cache.

/** @internal Whether this is the Cloudflare Workers runtime (workerd), by its documented user agent. */
export function inWorkers(): boolean {
  const nav = (globalThis as { navigator?: { userAgent?: unknown } }).navigator;
  return nav !== undefined && nav !== null && nav.userAgent === 'Cloudflare-Workers';
}

/**
 * @internal Whether a caller may join a computation (or a Redis read)
 * another caller started: `false` in Cloudflare Workers (see above).
 */
export const shareFlights: boolean = !inWorkers();

/** @internal A computation under way for one key. */
export interface Flight {
  promise: Promise<unknown>;
  /** A background refresh of a synchronous function: callers must not join it. */
  sync: boolean;
  /** The tags its result will be stored with, if any; `true` while they are not known yet (any invalidation stops it). */
  tags?: readonly string[] | true;
}

/** @internal The flights of one cache identity: a view of the root's map, under the scope's prefix. */
export class Flights {
  constructor(
    readonly map: Map<string, Flight>,
    /** `<length>:<scope>`: self-delimiting, so no key of one scope can spell another's. */
    readonly ns: string,
  ) {}
  get(k: string): Flight | undefined {
    return this.map.get(this.ns + k);
  }
  has(k: string): boolean {
    return this.map.has(this.ns + k);
  }
  set(k: string, f: Flight): void {
    this.map.set(this.ns + k, f);
  }
  delete(k: string): boolean {
    return this.map.delete(this.ns + k);
  }
  /** The keys of this identity's flights (without the prefix). */
  *keys(): IterableIterator<string> {
    for (const k of this.map.keys()) if (k.startsWith(this.ns)) yield k.slice(this.ns.length);
  }
}

const flightsByRoot = new WeakMap<object, Map<string, Flight>>();
const flightsByView = new WeakMap<object, Flights>();

function identityOf(cache: object): { root: object; scope: string } | undefined {
  const id = (cache as { [CACHE_IDENTITY]?: unknown })[CACHE_IDENTITY];
  if (typeof id !== 'function') return undefined;
  const out = id.call(cache) as { root?: unknown; scope?: unknown } | undefined;
  if (out === null || typeof out !== 'object' || out.root === null || typeof out.root !== 'object' || typeof out.scope !== 'string') {
    return undefined;
  }
  return out as { root: object; scope: string };
}

/** @internal The in-flight computations of a cache (of its identity: see above). */
export function flightsOf(cache: object): Flights {
  let f = flightsByView.get(cache);
  if (f !== undefined) return f;
  const id = identityOf(cache);
  const root = id?.root ?? cache;
  let map = flightsByRoot.get(root);
  if (map === undefined) {
    map = new Map();
    flightsByRoot.set(root, map);
  }
  f = new Flights(map, id === undefined ? '' : `${id.scope.length}:${id.scope}`);
  flightsByView.set(cache, f);
  return f;
}

/** @internal Forgets in-flight computations of these keys (their results will not be stored). */
export function dropFlights(cache: object, keys: readonly string[]): void {
  const f = flightsOf(cache);
  if (f.map.size === 0) return;
  for (const k of keys) f.delete(k);
}

/** @internal Forgets in-flight computations whose keys match a glob. */
export function dropFlightsMatching(cache: object, pattern: string): void {
  const f = flightsOf(cache);
  if (f.map.size === 0) return;
  // The cache's own matcher (wasm), so in-flight keys match exactly as
  // deletePattern matches stored ones (UTF-8 bytes, as Redis).
  const glob = compileGlob(pattern);
  try {
    for (const k of [...f.keys()]) if (glob.matches(k)) f.delete(k);
  } finally {
    glob.free();
  }
}

/**
 * @internal Forgets in-flight computations whose results would carry one
 * of `tags` (their results will not be stored): `invalidateTags` calls it,
 * so that a computation that began before the invalidation cannot store
 * what it read before it.
 */
export function dropFlightsTagged(cache: object, tags: readonly string[]): void {
  const f = flightsOf(cache);
  if (f.map.size === 0) return;
  for (const k of [...f.keys()]) {
    const t = f.get(k)!.tags;
    if (t === true || (t !== undefined && t.some((x) => tags.includes(x)))) f.delete(k);
  }
}
