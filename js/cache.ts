// MemoryCache: the L1 cache, one per isolate.
//
// Division of labour, chosen by measurement (see bench/cache.bench.mjs):
// keys and values stay in JS (a `Map` from key to slot, and two arrays by
// slot), because handing a JS string to wasm costs a UTF-8 copy per call;
// the wasm slot engine (src/lru.rs) owns recency, expiry, byte accounting,
// eviction and statistics, and is called with plain numbers only. The two
// most frequent things cross no call (src/wasm.rs, `WasmLru`): a lookup of
// a cache without TTLs is recorded in a block of wasm memory shared with
// the engine, which applies such records, in order, before anything else it
// does; and the slots an insert removed are read from wasm memory in place.
import { Lru, Glob, encodeScope, signerMemory } from './wasm/edgecache.js';
import { EdgeCacheError, rethrow } from './errors.js';
import { ensureWasm } from '#wasm-init';
import { wellFormed } from './text.js';
import { getOrSet, tagsOf, type GetOrSetOptions } from './getorset.js';
import { checkTagList } from './tags.js';
import { dropFlightsTagged } from './keys.js';

/** Options of {@link MemoryCache}. */
export interface MemoryCacheOptions<V = unknown> {
  /**
   * The most entries the cache holds, all scopes together; the least
   * recently used entry is evicted to make room. An integer >= 1.
   * @default 10000
   */
  maxEntries?: number;
  /**
   * The most bytes the cache holds, all scopes together: for each entry its
   * key (2 bytes per UTF-16 code unit), its value as measured by `sizeOf`,
   * and a fixed overhead of 64 bytes. `Infinity` for no byte bound.
   * @default 33554432 (32 MiB)
   */
  maxBytes?: number;
  /**
   * TTL in milliseconds for writes that do not give one. `0`: entries do not
   * expire.
   * @default 0
   */
  defaultTtl?: number;
  /**
   * Measures a value in bytes (the key is added by the cache). The default
   * estimate: strings 2 bytes per UTF-16 code unit; numbers, booleans,
   * `null` 8; an `ArrayBuffer` its `byteLength`, a typed array or
   * `DataView` the whole buffer it keeps alive; bigints 16; functions and
   * symbols 64; other objects 2 bytes per character of their
   * `JSON.stringify` form, with Maps and Sets written as their entries and
   * nested `DataView`s charged as above. It cannot see private fields,
   * non-enumerable or symbol-keyed properties, or closures: pass `sizeOf`
   * for such values, to avoid the cost, or to cache values that JSON
   * cannot represent (cyclic objects).
   * @default the estimate above
   */
  sizeOf?: (value: V, key: string) => number;
  /**
   * The clock, in milliseconds. Inject one in tests to move time by hand.
   * It is called only once TTLs are in use, and must return a finite
   * number (a write with a TTL throws `INVALID_OPTION` otherwise).
   * @default Date.now
   */
  now?: () => number;
  /**
   * Called with the key and value of each entry evicted to make room (what
   * `stats().evictions` counts; not expirations, deletions or overwrites),
   * once the write that evicted it is complete, so the cache it sees is
   * consistent. For metrics without polling `stats()`. An exception it
   * throws is reported (`queueMicrotask`) and does not undo the write. A
   * scope's entries come with the key as the scope wrote it. Given no hook,
   * evictions cost nothing more.
   * @default none
   */
  onEvict?: (key: string, value: V) => void;
}

/** Options of {@link MemoryCache.set}. */
export interface SetOptions {
  /**
   * Milliseconds this entry lives; `0` for no expiry.
   * @default the cache's `defaultTtl`
   */
  ttl?: number;
  /**
   * Tags of the entry: `invalidateTags([tag])` on the same view (the root,
   * or the same scope) makes it miss. 1 to 64 distinct tags (duplicates are
   * dropped), each 1 to 256 UTF-8 bytes of well-formed Unicode without
   * control characters or comma; `INVALID_TAG` otherwise. Each tag is
   * charged `2 × length + 8` bytes in the entry's size.
   * @default no tags
   */
  tags?: readonly string[];
}

/** What `stats().tags` counts. */
export interface TagStats {
  /** Tags raised by `invalidateTags` (each tag of each call). */
  invalidations: number;
  /** Entries a read (or a write, delete or listing) found invalidated by a tag, and dropped. */
  invalidated: number;
}

/** A scope: a tenant, a user, or both. Numbers stand for their decimal string. */
export interface ScopeOptions {
  /** The tenant; a non-empty string or a finite number. */
  tenant?: string | number;
  /** The user; a non-empty string or a finite number. */
  user?: string | number;
}

/** What {@link MemoryCache.stats} returns. */
export interface CacheStats {
  /** Lookups (`get`, `getMany`) that found a live entry. */
  hits: number;
  /** Lookups that found nothing or an expired entry. */
  misses: number;
  /** `hits / (hits + misses)`, `0` before the first lookup. */
  hitRate: number;
  /** Writes: new entries, overwrites and counter updates. */
  sets: number;
  /** Explicit deletions of live entries. */
  deletes: number;
  /** Live entries evicted to make room. */
  evictions: number;
  /** Entries removed because their TTL ran out. */
  expirations: number;
  /** Entries held now (expired ones not yet reclaimed included). */
  entries: number;
  /** Bytes charged now. */
  bytes: number;
  /** The cache's bound on entries (shared by all scopes). */
  maxEntries: number;
  /** The cache's bound on bytes (shared by all scopes). */
  maxBytes: number;
  /** Tag invalidations and the entries they made miss. */
  tags: TagStats;
}

/** Bits of `Lru.insert`'s answer (src/wasm.rs): the slot is in the low 29. */
const SLOT_MASK = (1 << 29) - 1;
const ONE_REMOVED = 1 << 29;
const MAX_ENTRIES = SLOT_MASK;
/** `insert`/`update`/`resize` answers (TOO_LARGE, OUT_OF_MEMORY in src/wasm.rs). */
const TOO_LARGE = -1;
/** @internal The engine charges an entry at most 2^32 - 1 bytes (a `u32` per slot), whatever `maxBytes` is. */
export const MAX_ENTRY_BYTES = 2 ** 32 - 1;
/** Bytes charged per entry on top of key and value (ENTRY_OVERHEAD in src/lru.rs). */
export const ENTRY_OVERHEAD = 64;
const NO_NS = 0xffffffff;
/** The block shared with the engine (src/wasm.rs): words of `Lru.io()`. */
const IO_REMOVED_AT = 0;
const IO_REMOVED_LEN = 1;
const IO_PENDING = 2;
/** Lookups recorded before the engine must apply them (BATCH in src/wasm.rs). */
const BATCH = 256;
/** A recorded miss (MISS in src/wasm.rs): `MISS | ns`. */
const MISS = 1 << 31;

let memory: WebAssembly.Memory | undefined;
let heap32: Uint32Array = new Uint32Array(0);
/** The wasm memory as 32-bit words; renewed after the memory grew, which detaches the old view. */
function words(): Uint32Array {
  if (heap32.length === 0) {
    memory ??= signerMemory() as WebAssembly.Memory;
    heap32 = new Uint32Array(memory.buffer);
  }
  return heap32;
}
const DEFAULT_MAX_ENTRIES = 10_000;
const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;
const OPTION_NAMES = new Set(['maxEntries', 'maxBytes', 'defaultTtl', 'sizeOf', 'now', 'onEvict']);
/**
 * @internal How `memoize`, the decorators and `cachePage` tell scope views
 * of one cache apart (see flightsOf in keys.ts): a cache whose
 * `[CACHE_IDENTITY]()` returns `{ root, scope }` shares its in-flight
 * computations with every other view of the same root and scope, even when
 * views are created per call. A registered symbol, so another cache class
 * can implement it without importing this module.
 */
export const CACHE_IDENTITY: unique symbol = Symbol.for('edgecache.cacheIdentity') as never;
/**
 * @internal `cache[PRIVATE_VIEW]()`: a view of the same cache (same bounds,
 * same engine) whose keys, of the root and of every scope made from it,
 * live in a namespace of their own that no other view can name. A
 * `TieredCache` given a shared `l1` keeps its entries there, so it never
 * serves what another tier, a memoize helper or the user put in the cache.
 * Its `clear` and `stats` cover its namespace, every scope of it included.
 */
export const PRIVATE_VIEW: unique symbol = Symbol('edgecache.privateView') as never;
/** Numbers the private namespaces; scope names start with `t`, `u` or `b`, never U+0001. */
let privateSpaces = 0;
const dispose: typeof Symbol.dispose = Symbol.dispose ?? Symbol.for('Symbol.dispose');

/**
 * A tag of one namespace, shared by the entries that carry it. Its
 * `invalidateTags` retires it (`dead`) and the namespace's next entry with
 * that tag gets a new one: an entry is valid while none of its tags is
 * dead. (That is the version rule of TAGS.md, with the version kept as the
 * identity of the object; nothing is scanned.) A live tag is forgotten
 * when its last entry goes, so a namespace keeps only the tags its entries
 * carry.
 */
class Tag {
  refs = 0;
  dead = false;
  constructor(readonly name: string) {}
}

/** Bytes an entry is charged for its tags: per tag, 2 per UTF-16 code unit and 8. */
function tagBytes(tags: readonly string[] | undefined): number {
  if (tags === undefined) return 0;
  let n = 0;
  for (const t of tags) n += 2 * t.length + 8;
  return n;
}

/** Whether an entry's tags include an invalidated one. */
function invalid(tags: Tag[]): boolean {
  for (let i = 0; i < tags.length; i++) if (tags[i]!.dead) return true;
  return false;
}

/** A namespace: the keys of the root or of one scope. */
class Space {
  readonly map = new Map<string, number>();
  live = true;
  /** The live tags of this namespace's entries, by name; `undefined` until one is tagged. */
  tags: Map<string, Tag> | undefined = undefined;
  /** `stats().tags` of this namespace. */
  invalidations = 0;
  invalidated = 0;
  constructor(
    readonly id: number,
    readonly name: string,
  ) {}
}

function describe(x: unknown): string {
  if (typeof x === 'string') return JSON.stringify(x.length > 60 ? `${x.slice(0, 60)}…` : x);
  if (x === null) return 'null';
  return typeof x === 'object' || typeof x === 'function' ? typeof x : `${typeof x} ${String(x)}`;
}

function badKey(key: unknown): EdgeCacheError {
  return new EdgeCacheError('INVALID_KEY', `keys are strings, got ${describe(key)}`);
}

function checkTtl(ttl: unknown, name = 'ttl'): number {
  if (typeof ttl !== 'number' || !(ttl >= 0) || ttl === Infinity) {
    throw new EdgeCacheError(
      'INVALID_TTL',
      `${name} must be a finite number of milliseconds >= 0 (0 = no expiry), got ${describe(ttl)}`,
    );
  }
  return ttl;
}

/** The TTL that `options` of a write ask for; unknown options are refused. */
function ttlOf(options: SetOptions, defaultTtl: number): number {
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', `write options are { ttl?, tags? }, got ${describe(options)}`);
  }
  for (const name in options) {
    if (name !== 'ttl' && name !== 'tags') {
      throw new EdgeCacheError('INVALID_OPTION', `unknown write option ${JSON.stringify(name)}; known: ttl, tags`);
    }
  }
  return options.ttl === undefined ? defaultTtl : checkTtl(options.ttl);
}

/** @internal Refuses option names outside `known` (a typo must not pass silently). */
export function checkOptionNames(options: object, known: readonly string[], where: string): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `${where}: unknown option ${JSON.stringify(name)}; known: ${known.join(', ')}`,
      );
    }
  }
}

/** Bytes a typed array or ArrayBuffer keeps alive: a view keeps its whole buffer. */
function bufferBytes(x: ArrayBufferView | ArrayBuffer): number {
  return ArrayBuffer.isView(x) ? x.buffer.byteLength : x.byteLength;
}

/**
 * The default size estimate of a value, in bytes; see
 * {@link MemoryCacheOptions.sizeOf}. Objects are measured by their JSON
 * form, with Maps and Sets counted by their entries, and buffers (also
 * nested ones) by the bytes they keep alive.
 * @internal
 */
export function estimate(value: unknown, key: string): number {
  switch (typeof value) {
    case 'string':
      return 2 * value.length;
    case 'number':
    case 'boolean':
    case 'undefined':
      return 8;
    case 'bigint':
      return 16;
    case 'object': {
      if (value === null) return 8;
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) return bufferBytes(value);
      let json: string | undefined;
      let extra = 0;
      try {
        json = JSON.stringify(value);
        // Maps, Sets, DataViews and objects with only private fields write
        // "{}": only then measure again, expanding Maps and Sets and charging
        // buffers (a replacer halves the speed of every object). Typed arrays
        // nested without such a "{}" count as their JSON text, which is at
        // least their length.
        if (json !== undefined && json.includes('{}')) {
          json = JSON.stringify(value, function expand(_k: string, v: unknown): unknown {
            if (typeof v !== 'object' || v === null) return v;
            if (v instanceof Map || v instanceof Set) return Array.from(v);
            if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) {
              extra += bufferBytes(v);
              return null;
            }
            return v;
          });
        }
      } catch (cause) {
        throw new EdgeCacheError(
          'UNMEASURABLE_VALUE',
          `cannot estimate the size of the value for key ${describe(key)} (${String(cause)}); pass a sizeOf option`,
          { cause },
        );
      }
      return 2 * (json === undefined ? 0 : json.length) + extra;
    }
    default:
      return 64;
  }
}

/** Encodes a string as WTF-8: UTF-8, except that a lone surrogate keeps its own 3 bytes (not U+FFFD's). */
function wtf8(s: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Uint8Array.from(out);
}

/** @internal A compiled Redis glob, as `keys` and `deletePattern` match. */
export interface KeyMatcher {
  matches(key: string): boolean;
  free(): void;
}

/**
 * @internal Compiles a Redis glob (wasm). Keys and patterns are matched on
 * their UTF-8 bytes, as Redis does; a string with a lone surrogate (which
 * has no UTF-8 form) is matched on its WTF-8 bytes instead, so it matches
 * only itself and never U+FFFD or another lone surrogate.
 */
export function compileGlob(pattern: string): KeyMatcher {
  ensureWasm();
  const glob = wellFormed(pattern) ? new Glob(pattern) : Glob.fromBytes(wtf8(pattern));
  return {
    matches: (key) => (wellFormed(key) ? glob.matches(key) : glob.matchesBytes(wtf8(key))),
    free: () => glob.free(),
  };
}

function outOfMemory(cause?: unknown): EdgeCacheError {
  return new EdgeCacheError(
    'OUT_OF_MEMORY',
    'the wasm memory cannot grow any further: lower maxEntries, free() caches no longer used, or share one cache',
    { cause },
  );
}

/** A copy of `a` with exactly `n` elements, the new ones `undefined` (a dense array, never a sparse one). */
function resized<T>(a: (T | undefined)[], n: number): (T | undefined)[] {
  const out = new Array<T | undefined>(n).fill(undefined);
  for (let i = 0; i < a.length && i < n; i++) out[i] = a[i];
  return out;
}

function freedError(): EdgeCacheError {
  return new EdgeCacheError('FREED', 'this cache was freed with free(); create a new one');
}

function freedLru(): Lru {
  const fail = () => {
    throw freedError();
  };
  return new Proxy({} as Lru, { get: () => fail });
}

/** State shared by a cache and all its scope views. */
class Core<V> {
  lru: Lru;
  /** The word index of the engine's shared block (see `record`); -1 until first used. */
  io = -1;
  keys: (string | undefined)[];
  values: (V | undefined)[];
  /** The space of each scoped slot; `null` until the first scope is written. */
  slotSpace: (Space | undefined)[] | null = null;
  /** The tags of each tagged slot; `null` until the first tagged write (untagged reads then test nothing else). */
  slotTags: (Tag[] | undefined)[] | null = null;
  /**
   * With `slotTags`, by slot: `-1` if untagged, else the `epoch` at which
   * its tags were last seen valid. A read compares it with `epoch` (one
   * load, no tag touched) and checks the tags only if an invalidation
   * retired a tag since.
   */
  checked: Float64Array | null = null;
  /** Raised by each `invalidateTags` that retires a tag some entry carries. */
  epoch = 0;
  /** `stats().tags` of the whole cache. */
  invalidations = 0;
  invalidated = 0;
  readonly root = new Space(0, '');
  readonly spaces = new Map<string, Space>();
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly defaultTtl: number;
  readonly sizeOf: ((value: V, key: string) => number) | undefined;
  readonly clock: () => number;
  /** Whether any entry may have an expiry; until then the clock is not read. */
  ttlUsed: boolean;
  /** Set by `free()`: every later call throws `FREED`. */
  freed = false;
  readonly onEvict: ((key: string, value: V) => void) | undefined;
  /** With `onEvict`: the engine's eviction count as last seen (only removals change it). */
  evictionsSeen = 0;
  /** With `onEvict`: the entries the write under way evicted, delivered once it is complete. */
  evicted: [string, V][] = [];

  constructor(options: MemoryCacheOptions<V>) {
    if (options === null || typeof options !== 'object') {
      throw new EdgeCacheError('INVALID_OPTION', `options must be an object, got ${describe(options)}`);
    }
    for (const name of Object.keys(options)) {
      if (!OPTION_NAMES.has(name)) {
        throw new EdgeCacheError(
          'INVALID_OPTION',
          `unknown option ${JSON.stringify(name)}; known: ${[...OPTION_NAMES].join(', ')}`,
        );
      }
    }
    const { maxEntries = DEFAULT_MAX_ENTRIES, maxBytes = DEFAULT_MAX_BYTES, defaultTtl = 0, sizeOf, now, onEvict } = options;
    if (!Number.isInteger(maxEntries) || maxEntries < 1 || maxEntries > MAX_ENTRIES) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `maxEntries must be an integer from 1 to ${MAX_ENTRIES}, got ${describe(maxEntries)}`,
      );
    }
    if (maxBytes !== Infinity && (!Number.isInteger(maxBytes) || maxBytes < 1)) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `maxBytes must be an integer >= 1 or Infinity, got ${describe(maxBytes)}`,
      );
    }
    this.defaultTtl = checkTtl(defaultTtl, 'defaultTtl');
    for (const [name, f] of [['sizeOf', sizeOf], ['now', now], ['onEvict', onEvict]] as const) {
      if (f !== undefined && typeof f !== 'function') {
        throw new EdgeCacheError('INVALID_OPTION', `${name} must be a function, got ${describe(f)}`);
      }
    }
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes === Infinity ? Number.MAX_SAFE_INTEGER : maxBytes;
    this.sizeOf = sizeOf;
    this.onEvict = onEvict;
    this.clock = now ?? Date.now;
    this.ttlUsed = this.defaultTtl > 0;
    ensureWasm();
    try {
      this.lru = new Lru(this.maxEntries, this.maxBytes);
    } catch (e) {
      // A trap here is the allocator failing to grow the wasm memory.
      if (e instanceof WebAssembly.RuntimeError) throw outOfMemory(e);
      rethrow(e);
    }
    // Nothing is reserved up front, here or in the wasm slot arrays: they
    // grow as entries arrive (slots are handed out densely, so these stay
    // packed arrays), and an idle cache costs a few hundred bytes.
    this.keys = [];
    this.values = [];
  }

  /**
   * Makes room in the arrays by slot for `slot`, doubling them like the
   * engine's (at least 8, at most `maxEntries`) into arrays of exactly
   * that length, so that no growth slack is left behind.
   */
  grow(slot: number): void {
    const n = Math.min(Math.max(2 * this.keys.length, 8, slot + 1), this.maxEntries);
    this.keys = resized(this.keys, n);
    this.values = resized(this.values, n);
    if (this.slotSpace !== null) this.slotSpace = resized(this.slotSpace, n);
    if (this.slotTags !== null) {
      this.slotTags = resized(this.slotTags, n);
      this.checked = this.checks(n);
    }
  }

  /** The `checked` array resized to `n` slots (new ones untagged). */
  checks(n: number): Float64Array {
    const a = new Float64Array(n).fill(-1);
    if (this.checked !== null) a.set(this.checked.subarray(0, Math.min(n, this.checked.length)));
    return a;
  }

  /** Allocates the shared block (an idle cache has none): its word index. */
  ioBlock(): number {
    return (this.io = this.lru.io() >>> 2);
  }

  /** Throws `FREED` once the cache was freed. */
  live(): void {
    if (this.freed) throw freedError();
  }

  /**
   * The absolute expiry of an entry written at `now` with `ttl` > 0, off the
   * fast path: the clock must give a finite time, and an expiry that lands
   * on exactly 0 (which the engine reads as "never") becomes the instant
   * just before it.
   */
  expiry(now: number, ttl: number): number {
    if (typeof now !== 'number' || !Number.isFinite(now)) {
      throw new EdgeCacheError('INVALID_OPTION', `now() must return a finite number of milliseconds, returned ${describe(now)}`);
    }
    const at = now + ttl;
    return at === 0 ? -Number.MIN_VALUE : at;
  }

  /** The error of a failed insert/update/resize answer. */
  refused(r: number, key: string, size: number): EdgeCacheError {
    return r === TOO_LARGE ? this.tooLarge(key, size) : outOfMemory();
  }

  /** Bytes of key + value, validated. */
  measure(key: string, value: V): number {
    if (this.sizeOf === undefined) {
      // Strings first: a `typeof` compared with a constant is inlined, where
      // the `switch` in `estimate` calls a builtin.
      return 2 * key.length + (typeof value === 'string' ? 2 * value.length : estimate(value, key));
    }
    const size = this.sizeOf(value, key);
    if (typeof size !== 'number' || !(size >= 0) || !Number.isFinite(size)) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `sizeOf must return a finite number >= 0, returned ${describe(size)} for key ${describe(key)}`,
      );
    }
    return 2 * key.length + Math.ceil(size);
  }

  tooLarge(key: string, size: number): EdgeCacheError {
    const limit = this.maxBytes > MAX_ENTRY_BYTES ? `the most one entry may take is ${MAX_ENTRY_BYTES} bytes` : `maxBytes is ${this.maxBytes}`;
    return new EdgeCacheError(
      'VALUE_TOO_LARGE',
      `entry for key ${describe(key)} needs ${size + ENTRY_OVERHEAD} bytes (key + value + ${ENTRY_OVERHEAD}) ` +
        `but ${limit}; nothing was stored or removed`,
    );
  }

  /** Whether the engine would refuse an entry of `size` key + value bytes as too large. */
  fits(size: number): boolean {
    const charge = size + ENTRY_OVERHEAD;
    return charge <= this.maxBytes && charge <= MAX_ENTRY_BYTES;
  }

  /** Forgets the key and value of a slot the engine has freed. */
  forget(slot: number): void {
    let space = this.root;
    if (this.slotSpace !== null) {
      const s = this.slotSpace[slot];
      if (s !== undefined) {
        space = s;
        this.slotSpace[slot] = undefined;
      }
    }
    if (this.slotTags !== null) {
      const t = this.slotTags[slot];
      if (t !== undefined) {
        this.slotTags[slot] = undefined;
        this.checked![slot] = -1;
        release(space, t);
      }
    }
    space.map.delete(this.keys[slot]!);
    this.keys[slot] = undefined;
    this.values[slot] = undefined;
    if (space !== this.root && space.map.size === 0) this.close(space);
  }

  /** The space of a slot. */
  spaceOf(slot: number): Space {
    return (this.slotSpace === null ? undefined : this.slotSpace[slot]) ?? this.root;
  }

  /** Gives a slot of `space` these tags (already checked), in place of those it had. */
  tag(slot: number, space: Space, names: readonly string[] | undefined): void {
    let st = this.slotTags;
    const old = st === null ? undefined : st[slot];
    if (names !== undefined) {
      if (st === null) {
        st = this.slotTags = resized([], this.keys.length);
        this.checked = this.checks(this.keys.length);
      }
      this.checked![slot] = this.epoch;
      const m = (space.tags ??= new Map());
      const tags = new Array<Tag>(names.length);
      for (let i = 0; i < names.length; i++) {
        const name = names[i]!;
        let t = m.get(name);
        if (t === undefined) m.set(name, (t = new Tag(name)));
        t.refs++;
        tags[i] = t;
      }
      st[slot] = tags;
    } else if (old !== undefined) {
      st![slot] = undefined;
      this.checked![slot] = -1;
    }
    if (old !== undefined) release(space, old);
  }

  /**
   * Whether the entry in `slot` is untagged or none of its tags was
   * invalidated; if one was, the entry is removed (counted in
   * `stats().tags.invalidated`) and `false` returned.
   */
  valid(slot: number): boolean {
    const ck = this.checked;
    if (ck === null) return true;
    const e = ck[slot]!;
    if (e < 0 || e === this.epoch || this.recheck(slot)) return true;
    this.drop(slot);
    return false;
  }

  /** A tagged slot seen valid before the last invalidation: whether it still is (and if so, seen valid now). */
  recheck(slot: number): boolean {
    if (invalid(this.slotTags![slot]!)) return false;
    this.checked![slot] = this.epoch;
    return true;
  }

  /**
   * Removes an entry found invalidated, as an expired one is: counted in
   * `stats().tags.invalidated` (an entry that has expired as well counts as
   * expired).
   */
  drop(slot: number): void {
    if (this.ttlUsed && !this.lru.alive(slot, this.clock())) {
      this.forget(slot);
      return;
    }
    this.lru.discard(slot);
    this.spaceOf(slot).invalidated++;
    this.invalidated++;
    this.forget(slot);
  }

  /** Forgets every slot the last insert/update removed (read in place from wasm memory). */
  forgetRemoved(): void {
    const io = this.io < 0 ? this.ioBlock() : this.io;
    const at = words()[io + IO_REMOVED_AT]! >>> 2;
    const n = words()[io + IO_REMOVED_LEN]!;
    if (this.onEvict !== undefined) this.noteEvicted(n, (i) => words()[at + i]!);
    // `forget` may close a scope, a call that can grow (and so detach) the
    // memory: the view is looked up again for each slot.
    for (let i = 0; i < n; i++) this.forget(words()[at + i]!);
  }

  /**
   * With `onEvict`, before the `n` slots a write removed are forgotten:
   * keeps those that were evicted. The engine lists the expired entries it
   * reclaimed first and the evicted ones after (src/lru.rs, `insert`), and
   * only removals change its eviction count, so the evicted are the last
   * (count - count last seen) slots.
   */
  noteEvicted(n: number, slotAt: (i: number) => number): void {
    const total = this.lru.totals()[4]!;
    // A count below the one seen: the counters were reset (clear), all of these are new.
    const k = Math.min(n, total >= this.evictionsSeen ? total - this.evictionsSeen : total);
    this.evictionsSeen = total;
    for (let i = n - k; i < n; i++) {
      const slot = slotAt(i);
      this.evicted.push([this.keys[slot]!, this.values[slot]!]);
    }
  }

  /** With `onEvict`: hands the entries the finished write evicted to the hook. */
  deliverEvicted(): void {
    const list = this.evicted;
    if (list.length === 0) return;
    this.evicted = [];
    for (const [key, value] of list) {
      try {
        this.onEvict!(key, value);
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  /**
   * Records a lookup for the engine to apply before its next operation: a
   * hit on `slot` (only while no TTL was ever used, so the entry cannot have
   * expired) or `MISS | ns`. Applied in order, before anything else the
   * engine does, records have exactly the effect of immediate calls.
   */
  record(x: number): void {
    if (this.freed) throw freedError();
    const io = this.io < 0 ? this.ioBlock() : this.io;
    let h = heap32;
    if (h.length === 0) h = words();
    const at = io + IO_PENDING;
    const n = h[at]! + 1;
    h[at + n] = x;
    h[at] = n;
    if (n === BATCH) this.lru.sync();
  }

  /** Closes an empty scope space; views re-open it on their next write. */
  close(space: Space): void {
    if (this.lru.closeNs(space.id)) {
      space.live = false;
      this.spaces.delete(space.name);
    }
  }

  open(name: string): Space {
    const space = new Space(this.lru.openNs(), name);
    this.spaces.set(name, space);
    if (this.slotSpace === null) this.slotSpace = resized([], this.keys.length);
    return space;
  }

  clearAll(): void {
    this.lru.clear();
    this.keys.fill(undefined);
    this.values.fill(undefined);
    this.slotSpace = null;
    this.slotTags = null;
    this.checked = null;
    this.root.map.clear();
    this.root.tags = undefined;
    for (const space of this.spaces.values()) {
      space.map.clear();
      this.lru.closeNs(space.id);
      space.live = false;
    }
    this.spaces.clear();
  }

  stats(counters: ArrayLike<number>, tags: TagStats): CacheStats {
    const [hits, misses, sets, deletes, evictions, expirations, entries, bytes] = Array.from(counters);
    return {
      hits,
      misses,
      hitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
      sets,
      deletes,
      evictions,
      expirations,
      entries,
      bytes,
      maxEntries: this.maxEntries,
      maxBytes: this.maxBytes,
      tags,
    };
  }
}

/** Lets go of a forgotten entry's tags: a live tag no entry carries any more is forgotten by its namespace. */
function release(space: Space, tags: Tag[]): void {
  for (const t of tags) if (--t.refs === 0 && !t.dead) space.tags!.delete(t.name);
}

const VIEW = Symbol('view');
interface ViewInit<V> {
  [VIEW]: true;
  core: Core<V>;
  space: Space;
  tenant: string | undefined;
  user: string | undefined;
  /** What this view's space names start with: `''`, or a private namespace. */
  ns: string;
  /** A private namespace's own view: its `clear` and `stats` cover every space of the namespace. */
  group: boolean;
}

function scopePart(name: 'tenant' | 'user', x: unknown): string | undefined {
  if (x === undefined) return undefined;
  if (typeof x === 'number' && Number.isFinite(x)) return String(x);
  if (typeof x === 'string' && x !== '' && wellFormed(x)) return x;
  throw new EdgeCacheError(
    'INVALID_SCOPE',
    `${name} must be a non-empty string of well-formed Unicode or a finite number, got ${describe(x)}`,
  );
}

/**
 * An LRU + TTL cache bounded by entries and bytes, with statistics, batch
 * operations, counters, Redis glob patterns and tenant/user scopes. All
 * methods are synchronous.
 *
 * @example
 * ```ts
 * import { MemoryCache } from 'edgecache';
 * const cache = new MemoryCache({ maxEntries: 1000, defaultTtl: 60_000 });
 * cache.set('user:1:profile', { name: 'Ada' });
 * cache.get('user:1:profile'); // { name: 'Ada' }
 * cache.incr('visits');         // 1
 * cache.keys('user:*');         // ['user:1:profile']
 * const acme = cache.scope({ tenant: 'acme' });
 * acme.get('user:1:profile');   // undefined: scopes never see each other
 * ```
 */
export class MemoryCache<V = unknown> {
  readonly #core: Core<V>;
  #space: Space;
  readonly #tenant: string | undefined;
  readonly #user: string | undefined;
  readonly #ns: string;
  readonly #group: boolean;

  constructor(options: MemoryCacheOptions<V> = {}) {
    const init = options as unknown as ViewInit<V>;
    if (init !== null && typeof init === 'object' && init[VIEW] === true) {
      this.#core = init.core;
      this.#space = init.space;
      this.#tenant = init.tenant;
      this.#user = init.user;
      this.#ns = init.ns;
      this.#group = init.group;
    } else {
      this.#core = new Core(options);
      this.#space = this.#core.root;
      this.#ns = '';
      this.#group = false;
    }
  }

  /** The live space of this view, or `null` while its scope holds nothing. */
  #read(): Space | null {
    const space = this.#space;
    if (space.live) return space;
    const found = this.#core.spaces.get(space.name);
    if (found === undefined) return null;
    this.#space = found;
    return found;
  }

  #write(): Space {
    const space = this.#read();
    if (space !== null) return space;
    return (this.#space = this.#core.open(this.#space.name));
  }

  /** The slot of `key` in this view (alive or expired), after checking the key and that the cache is live. */
  #slotOf(key: string): number | undefined {
    if (typeof key !== 'string') throw badKey(key);
    this.#core.live();
    return this.#read()?.map.get(key);
  }

  /** @internal See {@link CACHE_IDENTITY}: this view's root and scope. */
  [CACHE_IDENTITY](): { root: object; scope: string } {
    return { root: this.#core, scope: this.#space.name };
  }

  #now(): number {
    const c = this.#core;
    return c.ttlUsed ? c.clock() : 0;
  }

  /**
   * The cache's clock (the `now` option, or `Date.now`), in milliseconds.
   * Helpers such as {@link memoize} read time through it, so one injected
   * clock drives the cache and everything built on it.
   */
  now(): number {
    this.#core.live();
    return this.#core.clock();
  }

  /**
   * The value of `key`, or `undefined`; marks the entry most recently used.
   * @throws {EdgeCacheError} `INVALID_KEY` if `key` is not a string.
   */
  get(key: string): V | undefined {
    if (typeof key !== 'string') throw badKey(key);
    const c = this.#core;
    const space = this.#space.live ? this.#space : this.#read();
    if (space === null) {
      c.record(MISS | NO_NS);
      return undefined;
    }
    const slot = space.map.get(key);
    if (slot === undefined) {
      c.record(MISS | space.id);
      return undefined;
    }
    const ck = c.checked;
    if (ck !== null) {
      const e = ck[slot]!;
      if (e >= 0 && e !== c.epoch && !c.recheck(slot)) {
        c.record(MISS | space.id);
        c.drop(slot);
        return undefined;
      }
    }
    if (!c.ttlUsed) {
      c.record(slot);
      return c.values[slot];
    }
    if (c.lru.touch(slot, c.clock())) return c.values[slot];
    c.forget(slot);
    return undefined;
  }

  /**
   * Cache-aside: the value of `key` if the cache holds one, else the
   * loader's result, stored with `options.ttl`. Returns what the loader
   * does: a value for a synchronous loader, a promise for an asynchronous
   * one (on a hit too: the same resolved promise on every hit).
   *
   * - Concurrent calls that miss the same key share one call of the loader
   *   and its result or rejection (single-flight); not in Cloudflare
   *   Workers, where a request never waits on another request's I/O (each
   *   concurrent miss loads, and the cache shares the result once stored).
   * - The loader's errors (throws and rejections) pass through and are
   *   never cached: the next call loads again.
   * - `undefined` from the loader is a result like any other: it is stored.
   * - With `staleWhileRevalidate`, a value older than `ttl` is still served
   *   for that long while one background call of the loader refreshes it;
   *   a failed refresh keeps the stale value.
   *
   * The entry it stores is the one `memoize` stores, `{ v, s, f }` (the
   * value, whether it came from a promise, until when it is fresh): `get`
   * returns that wrapper, so read such keys with `getOrSet`; and a value
   * stored with `set` is not a hit (the loader runs and replaces it).
   * @throws {EdgeCacheError} `INVALID_KEY`, `INVALID_TTL` / `INVALID_OPTION`
   * for bad options (`staleWhileRevalidate` needs `ttl > 0`).
   */
  getOrSet<T extends V>(key: string, loader: () => Promise<T>, options?: GetOrSetOptions): Promise<T>;
  getOrSet<T extends V>(key: string, loader: () => T, options?: GetOrSetOptions): T;
  getOrSet(key: string, loader: () => unknown, options?: GetOrSetOptions): unknown {
    return getOrSet(this as unknown as MemoryCache, 'getOrSet', key, loader, options);
  }

  /**
   * Stores `value` under `key`, as the most recently used entry, evicting
   * least recently used entries if a bound requires it. Setting `undefined`
   * deletes the key.
   * @throws {EdgeCacheError} `INVALID_KEY`, `INVALID_TTL`, `VALUE_TOO_LARGE`
   * (the entry alone exceeds `maxBytes`), `UNMEASURABLE_VALUE`; the cache is
   * then unchanged.
   */
  set(key: string, value: V, options?: SetOptions): this {
    if (typeof key !== 'string') throw badKey(key);
    const c = this.#core;
    let ttl = c.defaultTtl;
    let tags: string[] | undefined;
    if (options !== undefined) {
      ttl = ttlOf(options, c.defaultTtl);
      if (options.tags !== undefined) tags = tagsOf(options.tags);
    }
    if (value === undefined) {
      this.delete(key);
      return this;
    }
    this.#store(key, value, ttl, tags === undefined ? c.measure(key, value) : c.measure(key, value) + tagBytes(tags), tags);
    return this;
  }

  /** The write itself, after validation; then the eviction hook, if any. */
  #store(key: string, value: V, ttl: number, size: number, tags?: readonly string[]): void {
    this.#put(key, value, ttl, size, tags);
    if (this.#core.evicted.length !== 0) this.#core.deliverEvicted();
  }

  #put(key: string, value: V, ttl: number, size: number, tags: readonly string[] | undefined): void {
    const c = this.#core;
    let now = 0;
    let expires = 0;
    if (ttl > 0) {
      c.ttlUsed = true;
      now = c.clock();
      expires = now + ttl;
      // 0 would mean "never", NaN "never expired": both, and any other
      // non-finite time, go the slow way (x - x is 0 only for finite x).
      if (expires === 0 || expires - expires !== 0 || typeof expires !== 'number') expires = c.expiry(now, ttl);
    } else if (c.ttlUsed) {
      now = c.clock();
    }
    const space = this.#space.live ? this.#space : this.#write();
    const slot = space.map.get(key);
    if (slot !== undefined) {
      const r = c.lru.update(slot, size, expires);
      if (r < 0) throw c.refused(r, key, size);
      c.values[slot] = value;
      if (tags !== undefined || c.slotTags !== null) c.tag(slot, space, tags);
      if (r > 0) c.forgetRemoved();
      return;
    }
    const r = c.lru.insert(space.id, size, expires, now);
    if (r < 0) {
      if (space !== c.root && space.map.size === 0) c.close(space);
      throw c.refused(r, key, size);
    }
    const s = r & SLOT_MASK;
    if (r !== s) {
      // One entry removed: its slot is the one handed out again.
      if ((r & ONE_REMOVED) !== 0) {
        if (c.onEvict !== undefined) c.noteEvicted(1, () => s);
        c.forget(s);
      } else c.forgetRemoved();
    }
    if (s >= c.keys.length) c.grow(s);
    c.keys[s] = key;
    c.values[s] = value;
    space.map.set(key, s);
    if (space !== c.root) c.slotSpace![s] = space;
    if (tags !== undefined) c.tag(s, space, tags);
  }

  /**
   * Whether `key` holds a live value. Does not change recency, hits or
   * misses (an expired entry it finds is removed, and counted as an
   * expiration, as any removal of an expired entry is).
   * @throws {EdgeCacheError} `INVALID_KEY`.
   */
  has(key: string): boolean {
    const slot = this.#slotOf(key);
    if (slot === undefined) return false;
    const c = this.#core;
    if (!c.valid(slot)) return false;
    if (c.lru.alive(slot, this.#now())) return true;
    c.forget(slot);
    return false;
  }

  /**
   * Deletes `key`. Returns whether it held a live value.
   * @throws {EdgeCacheError} `INVALID_KEY`.
   */
  delete(key: string): boolean {
    const slot = this.#slotOf(key);
    if (slot === undefined) return false;
    const c = this.#core;
    if (!c.valid(slot)) return false;
    const alive = c.lru.remove(slot, this.#now());
    c.forget(slot);
    return alive;
  }

  /**
   * The values of `keys`, in order, with `undefined` for each miss.
   * @throws {EdgeCacheError} `INVALID_KEY` if any key is not a string (nothing is read).
   */
  getMany(keys: readonly string[]): (V | undefined)[] {
    this.#core.live();
    if (!Array.isArray(keys)) throw new EdgeCacheError('INVALID_OPTION', 'getMany takes an array of keys');
    for (const k of keys) if (typeof k !== 'string') throw badKey(k);
    const out = new Array<V | undefined>(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.get(keys[i]);
    return out;
  }

  /**
   * Stores `[key, value]` or `[key, value, { ttl, tags }]` tuples. Every
   * entry is validated (keys, TTLs, tags, sizes) before any is written: on
   * an error the cache is unchanged.
   * @throws {EdgeCacheError} as {@link MemoryCache.set}.
   */
  setMany(entries: Iterable<readonly [string, V] | readonly [string, V, SetOptions | undefined]>): this {
    const c = this.#core;
    c.live();
    if (entries === null || typeof entries !== 'object' || typeof (entries as Iterable<unknown>)[Symbol.iterator] !== 'function') {
      throw new EdgeCacheError('INVALID_OPTION', `setMany takes an iterable of [key, value] or [key, value, { ttl, tags }] tuples, got ${describe(entries)}`);
    }
    const checked: [string, V, number, number, string[] | undefined][] = [];
    for (const entry of entries) {
      if (!Array.isArray(entry) || entry.length < 2) {
        throw new EdgeCacheError('INVALID_OPTION', 'setMany takes [key, value] or [key, value, { ttl, tags }] tuples');
      }
      const [key, value, options] = entry as [string, V, SetOptions | undefined];
      if (typeof key !== 'string') throw badKey(key);
      let ttl = c.defaultTtl;
      let tags: string[] | undefined;
      if (options !== undefined) {
        ttl = ttlOf(options, c.defaultTtl);
        tags = tagsOf(options.tags);
      }
      const size = value === undefined ? -1 : c.measure(key, value) + tagBytes(tags);
      // The engine's own limits, so that no entry is refused half-way.
      if (!c.fits(size)) throw c.tooLarge(key, size);
      checked.push([key, value, ttl, size, tags]);
    }
    for (const [key, value, ttl, size, tags] of checked) {
      if (value === undefined) this.delete(key);
      else this.#store(key, value, ttl, size, tags);
    }
    return this;
  }

  /**
   * Deletes `keys`; returns how many held a live value.
   * @throws {EdgeCacheError} `INVALID_KEY` if any key is not a string (nothing is deleted).
   */
  deleteMany(keys: readonly string[]): number {
    this.#core.live();
    if (!Array.isArray(keys)) throw new EdgeCacheError('INVALID_OPTION', 'deleteMany takes an array of keys');
    for (const k of keys) if (typeof k !== 'string') throw badKey(k);
    let n = 0;
    for (const k of keys) if (this.delete(k)) n++;
    return n;
  }

  /**
   * Adds `by` to the integer under `key` and returns the result. A missing
   * key starts from 0 (and gets the default TTL, no tags); an existing one
   * keeps its TTL and its tags, as Redis `INCRBY` keeps the TTL. An entry
   * invalidated by a tag counts as missing.
   * @throws {EdgeCacheError} `NOT_AN_INTEGER` if the value (or `by`) is not a
   * safe integer, `OVERFLOW` if the result would not be one; the value is
   * then unchanged. With a custom `sizeOf`, the new value is measured again
   * (and may be refused as `VALUE_TOO_LARGE`, or evict others).
   */
  incr(key: string, by = 1): number {
    if (typeof key !== 'string') throw badKey(key);
    if (!Number.isSafeInteger(by)) {
      throw new EdgeCacheError('NOT_AN_INTEGER', `the increment must be a safe integer, got ${describe(by)}`);
    }
    const c = this.#core;
    c.live();
    const space = this.#read();
    const slot = space?.map.get(key);
    if (slot !== undefined && c.valid(slot)) {
      if (c.lru.alive(slot, this.#now())) {
        const v = c.values[slot];
        if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
          throw new EdgeCacheError('NOT_AN_INTEGER', `the value of key ${describe(key)} is not a safe integer`);
        }
        const n = v + by;
        if (!Number.isSafeInteger(n)) {
          throw new EdgeCacheError(
            'OVERFLOW',
            `${v} + ${by} for key ${describe(key)} leaves the safe-integer range`,
          );
        }
        if (c.sizeOf === undefined) {
          // The default estimate of a number does not depend on its value.
          c.values[slot] = n as V;
          c.lru.write(slot);
          return n;
        }
        const tags = c.slotTags?.[slot];
        const size = c.measure(key, n as V) + (tags === undefined ? 0 : tagBytes(tags.map((t) => t.name)));
        const r = c.lru.resize(slot, size);
        if (r < 0) throw c.refused(r, key, size);
        c.values[slot] = n as V;
        if (r > 0) c.forgetRemoved();
        if (c.evicted.length !== 0) c.deliverEvicted();
        return n;
      }
      c.forget(slot);
    }
    this.#store(key, by as V, c.defaultTtl, c.measure(key, by as V));
    return by;
  }

  /**
   * Subtracts `by` from the integer under `key`; see {@link MemoryCache.incr}.
   */
  decr(key: string, by = 1): number {
    if (!Number.isSafeInteger(by)) {
      throw new EdgeCacheError('NOT_AN_INTEGER', `the decrement must be a safe integer, got ${describe(by)}`);
    }
    return this.incr(key, -by);
  }

  /**
   * Milliseconds `key` has left to live: `Infinity` if it does not expire,
   * `undefined` if it is absent or expired.
   * @throws {EdgeCacheError} `INVALID_KEY`.
   */
  ttl(key: string): number | undefined {
    const slot = this.#slotOf(key);
    if (slot === undefined) return undefined;
    const c = this.#core;
    if (!c.valid(slot)) return undefined;
    const left = c.lru.ttl(slot, this.#now());
    if (left >= 0) return left;
    c.forget(slot);
    return undefined;
  }

  /**
   * The live keys of this view (the root's keys for the cache itself, a
   * scope's keys for a scope view) that match a Redis glob pattern, in no
   * particular order: `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\` escapes,
   * matched on the UTF-8 bytes of the key exactly as Redis `KEYS` does.
   * @throws {EdgeCacheError} `INVALID_OPTION` if `pattern` is not a string.
   */
  keys(pattern = '*'): string[] {
    if (typeof pattern !== 'string') {
      throw new EdgeCacheError('INVALID_OPTION', `a pattern is a string, got ${describe(pattern)}`);
    }
    const c = this.#core;
    c.live();
    const space = this.#read();
    if (space === null) return [];
    const glob = pattern === '*' ? null : compileGlob(pattern);
    const out: string[] = [];
    const expired: number[] = [];
    const dropped: number[] = [];
    const now = this.#now();
    const ck = c.checked;
    try {
      for (const [key, slot] of space.map) {
        if (c.ttlUsed && !c.lru.alive(slot, now)) expired.push(slot);
        else if (ck !== null && ck[slot]! >= 0 && ck[slot] !== c.epoch && !c.recheck(slot)) dropped.push(slot);
        else if (glob === null || glob.matches(key)) out.push(key);
      }
    } finally {
      glob?.free();
    }
    for (const slot of expired) c.forget(slot);
    for (const slot of dropped) c.drop(slot);
    return out;
  }

  /**
   * Deletes the keys {@link MemoryCache.keys} would return for `pattern`;
   * returns how many.
   */
  deletePattern(pattern: string): number {
    let n = 0;
    for (const key of this.keys(pattern)) if (this.delete(key)) n++;
    return n;
  }

  /**
   * Statistics. On the cache itself they cover the whole cache, every scope
   * included; on a scope view, that scope only (a scope that empties is
   * forgotten, and its counters start again from zero).
   */
  stats(): CacheStats {
    const c = this.#core;
    c.live();
    if (this.#space === c.root) return c.stats(c.lru.totals(), { invalidations: c.invalidations, invalidated: c.invalidated });
    if (this.#group) {
      const sum = [0, 0, 0, 0, 0, 0, 0, 0];
      const tags = { invalidations: 0, invalidated: 0 };
      for (const space of this.#groupSpaces()) {
        const part = c.lru.stats(space.id);
        for (let i = 0; i < sum.length; i++) sum[i]! += part[i]!;
        tags.invalidations += space.invalidations;
        tags.invalidated += space.invalidated;
      }
      return c.stats(sum, tags);
    }
    const space = this.#read();
    if (space === null) return c.stats([0, 0, 0, 0, 0, 0, 0, 0], { invalidations: 0, invalidated: 0 });
    return c.stats(c.lru.stats(space.id), { invalidations: space.invalidations, invalidated: space.invalidated });
  }

  /**
   * Invalidates tags in this view's namespace: the entries of this view
   * (the root's for the cache itself, a scope's for a scope view) that
   * carry any of `tags` miss from now on, as if expired, and are dropped
   * when a read finds them. Entries written afterwards with the same tags
   * are served; entries without them, and the same tags in other scopes
   * (or at the root), are untouched. Nothing is scanned: the cost is one
   * step per tag, and each later read of a tagged entry checks its tags.
   * Computations of `getOrSet`/`memoize`/`@cached` under way with one of
   * these tags in this view will not store their results. Returns how many
   * tags were invalidated (distinct; each counts in
   * `stats().tags.invalidations`).
   * @throws {EdgeCacheError} `INVALID_TAG` if any tag breaks the rule of
   * {@link SetOptions.tags} (nothing is invalidated).
   */
  invalidateTags(tags: readonly string[]): number {
    const c = this.#core;
    c.live();
    // `tags` is required: undefined is not an array (INVALID_TAG), as null.
    const names = checkTagList(tags);
    if (names.length === 0) return 0;
    const space = this.#read();
    const m = space?.tags;
    if (m !== undefined) {
      for (const name of names) {
        const t = m.get(name);
        if (t !== undefined) {
          t.dead = true;
          m.delete(name);
          c.epoch++;
        }
      }
    }
    if (space !== null) space.invalidations += names.length;
    c.invalidations += names.length;
    dropFlightsTagged(this, names);
    return names.length;
  }

  /**
   * Removes entries: on the cache itself, every entry of every scope; on a
   * scope view, that scope's. Statistics counters are kept.
   */
  clear(): void {
    const c = this.#core;
    c.live();
    if (this.#space === c.root) {
      c.clearAll();
      return;
    }
    const spaces = this.#group ? this.#groupSpaces() : [this.#read()];
    for (const space of spaces) {
      if (space === null) continue;
      const slots = [...space.map.values()];
      for (const slot of slots) {
        c.lru.discard(slot);
        c.forget(slot);
      }
    }
  }

  /** The live spaces of this view's private namespace. */
  #groupSpaces(): Space[] {
    const out: Space[] = [];
    for (const [name, space] of this.#core.spaces) if (name.startsWith(this.#ns)) out.push(space);
    return out;
  }

  /** @internal See {@link PRIVATE_VIEW}. */
  [PRIVATE_VIEW](): MemoryCache<V> {
    this.#core.live();
    const ns = `\u0001${++privateSpaces}\u0001`;
    return this.#view(ns, this.#tenant, this.#user, true);
  }

  #view(ns: string, tenant: string | undefined, user: string | undefined, group: boolean): MemoryCache<V> {
    let name = ns;
    if (tenant !== undefined || user !== undefined) {
      try {
        name += encodeScope(tenant, user);
      } catch (e) {
        rethrow(e);
      }
    }
    const c = this.#core;
    const space = name === '' ? c.root : (c.spaces.get(name) ?? new Space(NO_NS, name));
    if (space.id === NO_NS) space.live = false;
    const init: ViewInit<V> = { [VIEW]: true, core: c, space, tenant, user, ns, group };
    return new MemoryCache<V>(init as unknown as MemoryCacheOptions<V>);
  }

  /**
   * A view of this cache whose keys live apart from the root's and every
   * other scope's, whatever characters they contain. It has the same API;
   * its `keys`, `deletePattern`, `clear` and `stats` cover only its scope.
   * Bounds are shared with the whole cache. A view can narrow its scope
   * (add a user to a tenant) but never switch tenant or user.
   * @throws {EdgeCacheError} `INVALID_SCOPE`.
   */
  scope(scope: ScopeOptions): MemoryCache<V> {
    this.#core.live();
    if (scope === null || typeof scope !== 'object') {
      throw new EdgeCacheError('INVALID_SCOPE', `scope takes { tenant?, user? }, got ${describe(scope)}`);
    }
    for (const name of Object.keys(scope)) {
      if (name !== 'tenant' && name !== 'user') {
        throw new EdgeCacheError('INVALID_SCOPE', `unknown scope field ${JSON.stringify(name)}; known: tenant, user`);
      }
    }
    let tenant = scopePart('tenant', scope.tenant);
    let user = scopePart('user', scope.user);
    if (tenant === undefined && user === undefined) {
      throw new EdgeCacheError('INVALID_SCOPE', 'a scope needs a tenant, a user, or both');
    }
    for (const [name, mine, theirs] of [
      ['tenant', this.#tenant, tenant],
      ['user', this.#user, user],
    ] as const) {
      if (mine !== undefined && theirs !== undefined && mine !== theirs) {
        throw new EdgeCacheError(
          'INVALID_SCOPE',
          `this view is bound to ${name} ${JSON.stringify(mine)} and cannot switch to ${JSON.stringify(theirs)}`,
        );
      }
    }
    tenant ??= this.#tenant;
    user ??= this.#user;
    return this.#view(this.#ns, tenant, user, false);
  }

  /**
   * Releases the wasm memory of the cache (and of all its views). Any later
   * call (but `free()` itself, which may be called again) throws `FREED`, on
   * the cache and on every view. On a scope view this does nothing: free the
   * cache.
   */
  free(): void {
    const c = this.#core;
    if (this.#space !== c.root || c.freed) return;
    c.freed = true;
    const lru = c.lru;
    c.lru = freedLru();
    c.keys = [];
    c.values = [];
    c.root.map.clear();
    c.spaces.clear();
    lru.free();
  }

  /** Same as {@link MemoryCache.free}, for `using cache = new MemoryCache()`. */
  [dispose](): void {
    this.free();
  }
}
