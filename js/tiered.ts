// TieredCache: the L1 MemoryCache of this isolate in front of Redis (L2),
// reached over HTTP with RedisRest. Values in Redis are signed envelopes
// (docs/ENVELOPE.md) bound to their key and scope, so a value altered,
// moved or forged in Redis is never served.
//
// The rules are the Rust core's, through wasm: the Redis key layout
// (src/layout.rs, docs/REDIS.md), how long L1 keeps a value read from L2
// (src/tier.rs promotion_ttl), when a read or write under way may put its
// value in L1 (src/fence.rs, the same rule as the Rust Workers binding's),
// how counters read (src/tier.rs parse_counter) and the circuit breaker. This
// file does the I/O and keeps an L1 hit as cheap as a MemoryCache hit plus
// one `await`.
import { EdgeCacheError } from './errors.js';
import { CACHE_IDENTITY, PRIVATE_VIEW, MemoryCache, type CacheStats, type MemoryCacheOptions, type ScopeOptions, type SetOptions } from './cache.js';
import { Signer, type EnvelopeScope, type SignerOptions } from './signer.js';
import { RedisRest, type Outcome, type RedisArg, type RedisRestOptions, type RedisSubscription, type RedisValue } from './redis.js';
import { BreakerCore, CoherenceCore, FenceCore, LayoutCore, parseCounter, promotionTtl } from './wasm/edgecache.js';
import { ensureWasm } from '#wasm-init';
import { wellFormed } from './text.js';
import { dropFlightsTagged, shareFlights } from './keys.js';
import { getOrSet, tagsOf, type GetOrSetOptions } from './getorset.js';
import { checkTagList } from './tags.js';

/** Turns values into envelope payloads and back. */
export interface Serializer {
  /** A string is sealed as JSON text, a `Uint8Array` as raw bytes. Throw to refuse a value. */
  serialize(value: unknown): string | Uint8Array;
  /** The inverse of `serialize`. */
  deserialize(payload: string | Uint8Array): unknown;
}

/** Options of {@link TieredCache}. */
export interface TieredCacheOptions {
  /** The Redis tier: a {@link RedisRest}, or the options to make one. */
  redis: RedisRest | RedisRestOptions;
  /** Signs what goes to Redis: a {@link Signer}, or the options to make one. */
  signer: Signer | SignerOptions;
  /**
   * Names this cache's keys in Redis (`<prefix>:v:...`): 1 to 64 characters
   * of `A-Z a-z 0-9 _ . -`. Caches with different prefixes never see each
   * other's keys; `clear()` removes exactly the keys under it.
   */
  prefix: string;
  /**
   * The L1 cache: a {@link MemoryCache}, or the options to make one. A
   * given cache may be shared (by several tiers, memoize helpers, your own
   * code): its bounds are shared, but this tier keeps its entries in a
   * namespace of its own inside it, so it never serves what anything else
   * put there, and `clear()` and `stats().l1` cover its own entries only.
   * @default new MemoryCache()
   */
  l1?: MemoryCache | MemoryCacheOptions;
  /**
   * The longest time, in ms, that L1 keeps a value (read from Redis or
   * written here) before asking Redis again: it bounds how stale another
   * isolate's write can look here. `0`: as long as the value lives.
   * @default 10000
   */
  l1Ttl?: number;
  /**
   * ms a value lives when `set` gives no `ttl`; `0` = no expiry.
   * @default 0
   */
  defaultTtl?: number;
  /**
   * When Redis fails (timeout, unreachable, 5xx, malformed answer): `true`
   * serves what L1 holds, treats a miss as a miss, and lands writes in L1
   * only, counting the error; `false` throws the error instead. Deletes and
   * counters always throw (`counter()` unless L1 holds the count), since a
   * delete that never reached Redis would let the value come back, and a
   * counter cannot be counted locally.
   * @default true
   */
  failOpen?: boolean;
  /**
   * The circuit breaker: after `threshold` consecutive failures, calls to
   * Redis stop (`L2_UNAVAILABLE`) for `cooldown` ms, then one call probes.
   * @default { threshold: 5, cooldown: 5000 }
   */
  breaker?: { threshold?: number; cooldown?: number };
  /**
   * How values become payloads. The default is JSON (`Uint8Array` and
   * `ArrayBuffer` travel as bytes): it refuses functions, symbols, BigInts,
   * `undefined` and cycles, and changes what JSON changes (a `Date` comes
   * back as its ISO string, `NaN` as `null`, `Map`/`Set` as `{}`).
   * @default JSON
   */
  serializer?: Serializer;
  /**
   * Where warnings go: a refused token or a rejected envelope once per
   * kind and cache; the breaker opening (with the error that opened it)
   * once per outage, and Redis answering again once per recovery.
   * @default console.warn
   */
  log?: (message: string) => void;
  /**
   * The clock, ms since the Unix epoch, for TTLs and the breaker. Give the
   * signer (when passed as options) and L1 the same one.
   * @default Date.now
   */
  now?: () => number;
  /**
   * Coherence across isolates, in ms: once a mutation through edgecache
   * (any `TieredCache` or Rust `EdgeCache` on the same Redis and prefix)
   * has been acknowledged, this cache does not serve the older value from
   * L1 to a read that starts more than `maxStaleness` ms later. Every
   * mutation appends to an invalidation log in Redis (in its own request);
   * an L1 hit whose lease is older than this reads the log first (one
   * small request per `maxStaleness` at most, shared by concurrent reads),
   * and any request to Redis past half the lease reads it too. `0`: every
   * L1 hit reads the log. `false`: off (L1 bounded by `l1Ttl` only, and
   * mutations are not logged). See docs/REDIS.md, "Coherence across isolates".
   * @default 1000
   */
  maxStaleness?: number | false;
  /**
   * When the log cannot be read (Redis unreachable, the breaker open) and
   * the lease has expired: `true` keeps serving L1 hits (counted in
   * `stats().coherence.staleServed`: the bound cannot hold meanwhile);
   * `false` refuses them (they go to Redis, and so miss or throw) until the
   * log can be read again.
   * @default failOpen
   */
  staleWhileUnreachable?: boolean;
  /**
   * Serve stale when the tier is down (RFC 5861 `stale-if-error`), in ms:
   * L1 keeps a second copy of each value it holds for `staleIfError` ms
   * past its L1 expiry (past `l1Ttl`, or the value's own TTL), and a read
   * that misses L1 while Redis is unreachable or the breaker is open is
   * answered from that copy (counted in `stats().l2.staleServed`) instead
   * of missing. Never once Redis answers again; never with
   * `staleWhileUnreachable: false` while coherence is on; deletes drop the
   * copy too. The copies count against L1's bounds like the entries do.
   * Reads through `get`, `getMany`, `has`, `getOrSet` and `memoize`; with
   * `failOpen: false` the L2 error is thrown as before.
   * @default 0 (off)
   */
  staleIfError?: number;
  /**
   * Push, for runtimes that live long (Node, Deno, Bun, browsers, Durable
   * Objects; not a Worker's request): hold a stream open (`subscribe` over
   * server-sent events, served by the bridge and by hosted Upstash) on
   * which every writer publishes its log entries, and drop what they name
   * from L1 at once, typically within milliseconds rather than up to
   * `maxStaleness`. The bound itself still rests on the lease (pub/sub
   * keeps nothing across a break); the stream reconnects by itself, and
   * `close()` ends it (it keeps a Node process alive until then).
   * @default false
   */
  push?: boolean;
  /**
   * Called with each failed call to Redis (timeouts, unreachable, 5xx,
   * `L2_AUTH`, `L2_REDIS`, and `L2_UNAVAILABLE` for a call the open breaker
   * refused): what `stats().l2.errors` counts, as it happens. See
   * {@link TieredHooks} for how hooks are called.
   * @default none
   */
  onL2Error?: (error: EdgeCacheError) => void;
  /**
   * Called when the circuit breaker changes state (`closed` -> `open` ->
   * `half-open` -> `closed` or `open`).
   * @default none
   */
  onBreaker?: (state: 'closed' | 'open' | 'half-open', previous: 'closed' | 'open' | 'half-open') => void;
  /**
   * Called with each value Redis held that was not served (what
   * `stats().l2.rejected` counts) and why: the code of the envelope's
   * error (`MALFORMED_ENVELOPE`, `BAD_SIGNATURE`, `UNKNOWN_KEY_ID`, ...),
   * `DESERIALIZE` (the serializer refused the payload), `NOT_AN_ENVELOPE`
   * (not a string), `NOT_AN_INTEGER` (a counter).
   * @default none
   */
  onRejected?: (key: string, reason: string) => void;
}

/**
 * How the hooks of {@link TieredCacheOptions} (`onL2Error`, `onBreaker`,
 * `onRejected`) are called: synchronously, where the event happens, for
 * the whole cache (all scopes); an exception a hook throws is reported
 * (`queueMicrotask`) and changes nothing of the call that saw the event.
 */
export type TieredHooks = Pick<TieredCacheOptions, 'onL2Error' | 'onBreaker' | 'onRejected'>;

/** L2 figures of {@link TieredCache.stats}, for the whole cache (all scopes). */
export interface L2Stats {
  /** Reads answered by Redis with a valid value. */
  hits: number;
  /** Reads Redis answered with nothing (or an expired envelope). */
  misses: number;
  /** Values that failed to open (altered, moved, forged, unknown key id): never served, not deleted. */
  rejected: number;
  /** Errors by code (`L2_TIMEOUT`, `L2_HTTP`, `L2_AUTH`, `L2_REDIS`, `L2_PROTOCOL`, `L2_UNAVAILABLE`). */
  errors: Record<string, number>;
  /** Writes that reached Redis. */
  writes: number;
  /** Round trips to Redis that answered, and their latency in ms over the last 1024. */
  latency: { count: number; p50: number; p99: number; max: number };
  /**
   * Keys that SCAN found under this cache's prefix but that no cache key
   * names (not UTF-8, or outside the key layout: written by something
   * else): skipped by `keys()`, `deletePattern()` and `clear()`, never deleted.
   */
  foreignKeys: number;
  /** Reads answered from a stale L1 copy while Redis was unreachable (`staleIfError`). */
  staleServed: number;
}

/** Coherence figures of {@link TieredCache.stats}, for the whole cache. */
export interface CoherenceStats {
  /** The bound, ms (`TieredCacheOptions.maxStaleness`). */
  maxStaleness: number;
  /** Log reads that succeeded (alone, or in a request made anyway). */
  reads: number;
  /** Log reads that failed (Redis unreachable, a malformed answer). */
  failures: number;
  /** Log entries of other writers applied. */
  entries: number;
  /** Log entries of this cache's own writes, skipped. */
  own: number;
  /** Gaps (all of L1 dropped because the log could not vouch for it), all reasons. */
  gaps: number;
  /** Gaps: the log was trimmed past this cache's position. */
  trimmed: number;
  /** Gaps: more entries came than one read fetches. */
  behind: number;
  /** Gaps: the log is gone. */
  lost: number;
  /** Gaps: Redis was flushed or restarted (the log's epoch changed). */
  epoch: number;
  /** Gaps: the last read was too long ago (the isolate slept). */
  away: number;
  /** Gaps: an entry this version cannot read. */
  unreadable: number;
  /** L1 hits served with an expired lease because the log could not be read (stale-while-unreachable). */
  staleServed: number;
  /** L1 hits refused for the same reason (`staleWhileUnreachable: false`). */
  refused: number;
  /** L1 entries dropped because another cache changed them. */
  invalidated: number;
  /** The push stream (`push: true`): its state, messages applied, and how many times it (re)connected. */
  push: { state: 'off' | 'connecting' | 'open' | 'closed'; messages: number; connects: number; malformed: number };
}

/** What {@link TieredCache.stats} returns. */
export interface TieredStats {
  /** The L1 figures of this view (as {@link MemoryCache.stats}). */
  l1: CacheStats;
  /** Redis, for the whole cache. */
  l2: L2Stats;
  /** The circuit breaker. */
  breaker: { state: 'closed' | 'open' | 'half-open'; opened: number };
  /** Coherence across isolates; `undefined` when it is off (`maxStaleness: false`). */
  coherence: CoherenceStats | undefined;
  /** Tags ({@link TieredCache.invalidateTags}), for the whole cache. */
  tags: TierTagStats;
}

/** What tags did in a {@link TieredCache} (every view). */
export interface TierTagStats {
  /** Tags invalidated by this cache (`invalidateTags`, each tag counted). */
  invalidations: number;
  /**
   * Entries read from Redis that carried a tag invalidated since they were
   * written: misses, never served (L1's own such drops are in `l1.tags`).
   */
  invalidated: number;
  /**
   * Times Redis held a tag version below one this isolate had seen (rolled
   * back behind the cache's back); the higher one was kept.
   */
  rollbacks: number;
}

const OPTIONS = new Set(['redis', 'signer', 'prefix', 'l1', 'l1Ttl', 'defaultTtl', 'failOpen', 'breaker', 'serializer', 'log', 'now', 'maxStaleness', 'staleWhileUnreachable', 'staleIfError', 'push', 'onL2Error', 'onBreaker', 'onRejected']);

/** Calls a hook; what it throws is reported apart, never to the caller. */
function fire<A extends unknown[]>(hook: ((...args: A) => void) | undefined, ...args: A): void {
  if (hook === undefined) return;
  try {
    hook(...args);
  } catch (e) {
    queueMicrotask(() => {
      throw e;
    });
  }
}
const STATES = ['closed', 'open', 'half-open'] as const;
/** L1 keeps counters apart from values: under the key prefixed with U+0000. */
const COUNTER = '\u0000';
/** What `#l2` returns when Redis failed and the cache fails open. */
const FAILED: unique symbol = Symbol('failed');
const DOWN: unique symbol = Symbol('down');
const COUNTER_CODE = 0;
const SAMPLES = 1024;

/** The lease's clock: monotonic, whole ms (never the wall clock: `now` may jump). */
const mono = (): number => Math.floor(performance.now());

/** A log read in flight for a lease, shared by the L1 hits that wait for it. */
interface LeaseFlight {
  promise: Promise<boolean>;
  started: number;
}

/** A read in flight, and its fence ticket: later reads join it while it may still promote. */
interface Flight {
  promise: Promise<unknown>;
  ticket: number;
}

/** State shared by a cache and its scope views. */
class Shared {
  readonly flights = new Map<string, Flight>();
  /**
   * The in-flight rule, by Redis key: a read that overlapped a mutation of
   * its key, or a write overtaken by a later one, puts nothing in L1.
   */
  readonly fence = new FenceCore();
  readonly errors: Record<string, number> = {};
  hits = 0;
  misses = 0;
  rejected = 0;
  writes = 0;
  foreign = 0;
  readonly samples = new Float64Array(SAMPLES);
  sampled = 0;
  readonly warned = new Set<string>();
  /** Whether the breaker opened and Redis has not answered since (logged once per outage). */
  outage = false;
  /** `staleIfError`, and the L1 namespace of the stale copies (undefined when off). */
  staleIfError = 0;
  grace: MemoryCache<unknown> | undefined = undefined;
  staleServed = 0;
  /** The lease: L1 hits before this (mono ms) need no log read. */
  freshUntil = -Infinity;
  /** From this (mono ms) on, a request to Redis made anyway reads the log too. */
  piggyFrom = -Infinity;
  leaseFlight: LeaseFlight | undefined;
  invalidated = 0;
  /** Whether the first log read was tried (alone: see `#first`). */
  firstTried = false;
  /**
   * performance.now() as the tier's own L1 last read it (its clock, see the
   * constructor), so that an L1 hit checks the lease without a second
   * clock read; `Infinity` when the L1 did not read it during the hit.
   */
  t = Infinity;
  push: { state: 'off' | 'connecting' | 'open' | 'closed'; messages: number; connects: number; malformed: number } = { state: 'off', messages: 0, connects: 0, malformed: 0 };
  sub: RedisSubscription | undefined;
  /** The event hooks (set after construction). */
  hooks: TieredHooks = {};
  /**
   * Tag versions read from Redis, by tag key: the highest seen, and whether
   * it is known to be current (a log entry of the tag makes it unknown
   * until read again). See `TieredCache.invalidateTags`.
   */
  readonly tagv = new Map<string, { v: number; known: boolean; at: number }>();
  /**
   * Raised each time this isolate learns that a tag's version rose: a read
   * or write that saw it change while it was under way keeps its value out
   * of L1 (L1's own tag stamps would date the value after the change).
   */
  tagEpoch = 0;
  /** What every tag-version key of the cache starts with: `<prefix>:g:`. */
  gmark = '';
  tagInvalidations = 0;
  tagMisses = 0;
  tagRollbacks = 0;

  constructor(
    readonly redis: RedisRest,
    readonly signer: Signer,
    readonly layout: LayoutCore,
    readonly breaker: BreakerCore,
    readonly l1Ttl: number,
    readonly defaultTtl: number,
    readonly failOpen: boolean,
    readonly serializer: Serializer,
    readonly log: (message: string) => void,
    readonly now: () => number,
    /** The tier's whole L1 namespace (every scope). */
    readonly root: MemoryCache<unknown>,
    /** Coherence, `undefined` when off. */
    readonly coh: CoherenceCore | undefined,
    readonly maxStaleness: number,
  ) {}

  warn(kind: string, message: string): void {
    if (this.warned.has(kind)) return;
    this.warned.add(kind);
    this.log(`edgecache: ${message}`);
  }

  count(code: string): void {
    this.errors[code] = (this.errors[code] ?? 0) + 1;
  }

  /** A value in Redis not served: counted, and reported to `onRejected`. */
  reject(key: string, reason: string): void {
    this.rejected++;
    fire(this.hooks.onRejected, key, reason);
  }

  /** With `onBreaker`: reports a change from state `prev` (an index of STATES); the state now. */
  moved(prev: number): number {
    const now = this.breaker.state();
    if (now !== prev) fire(this.hooks.onBreaker, STATES[now] ?? 'closed', STATES[prev] ?? 'closed');
    return now;
  }
}

// ---- serialization ----

function refuse(what: string): never {
  throw new EdgeCacheError('UNSERIALIZABLE_VALUE', `${what} cannot be stored in the Redis tier as JSON: store plain data, or pass a \`serializer\``);
}

function replacer(_key: string, v: unknown): unknown {
  switch (typeof v) {
    case 'function':
      return refuse('a function');
    case 'symbol':
      return refuse('a symbol');
    case 'bigint':
      return refuse('a BigInt');
  }
  return v;
}

/** JSON for JS values, raw bytes for `Uint8Array`/`ArrayBuffer`. */
export const jsonSerializer: Serializer = {
  serialize(value: unknown): string | Uint8Array {
    if (value instanceof Uint8Array) return value;
    if (value instanceof ArrayBuffer) return new Uint8Array(value);
    if (value === undefined) refuse('undefined');
    let text: string | undefined;
    try {
      text = JSON.stringify(value, replacer);
    } catch (e) {
      if (e instanceof EdgeCacheError) throw e;
      refuse(`this value (${e instanceof Error ? e.message : String(e)})`);
    }
    if (text === undefined) refuse(`a ${typeof value}`);
    return text;
  },
  deserialize(payload: string | Uint8Array): unknown {
    return typeof payload === 'string' ? JSON.parse(payload) : payload;
  },
};

// ---- options ----

function ms(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !(v >= 0) || v === Infinity) {
    throw new EdgeCacheError(name.endsWith('Ttl') || name === 'ttl' ? 'INVALID_TTL' : 'INVALID_OPTION', `${name} must be a finite number of milliseconds >= 0, got ${String(v)}`);
  }
  return v;
}

function checkPattern(pattern: unknown): asserts pattern is string {
  if (typeof pattern !== 'string') throw new EdgeCacheError('INVALID_OPTION', 'pattern must be a string');
  // Redis matches UTF-8 bytes, which a lone surrogate has none of: sent
  // on, it would become U+FFFD and match another key.
  if (!wellFormed(pattern)) throw new EdgeCacheError('INVALID_OPTION', 'pattern must be well-formed Unicode (no lone surrogates)');
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') throw new EdgeCacheError('INVALID_KEY', `key must be a string, got ${typeof key}`);
  if (key.charCodeAt(0) === 0) throw new EdgeCacheError('INVALID_KEY', 'keys starting with U+0000 are reserved by TieredCache (its L1 keeps counters there)');
  if (!wellFormed(key)) throw new EdgeCacheError('INVALID_KEY', 'key must be well-formed Unicode (no lone surrogates)');
}

function ttlOf(options: SetOptions | undefined, dflt: number): number {
  if (options === undefined) return dflt;
  if (options === null || typeof options !== 'object') throw new EdgeCacheError('INVALID_OPTION', 'set options are { ttl?, tags? }');
  for (const k of Object.keys(options)) if (k !== 'ttl' && k !== 'tags') throw new EdgeCacheError('INVALID_OPTION', `unknown option \`${k}\` of set; known: ttl, tags`);
  return ms(options.ttl, 'ttl', dflt);
}

/** The most tag versions an isolate remembers; past it, it forgets them all (and the L1 entries they vouched for). */
const MAX_TAG_VERSIONS = 100_000;

/** A tag version as Redis holds it: a canonical decimal integer >= 0, or absent (0); `undefined` for anything else. */
function tagVersion(raw: unknown): number | undefined {
  if (raw === null) return 0;
  if (typeof raw === 'number') return Number.isSafeInteger(raw) && raw >= 0 ? raw : undefined;
  if (typeof raw !== 'string' || !/^(0|[1-9][0-9]{0,15})$/.test(raw)) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

function part(x: unknown): string | undefined {
  return x === undefined ? undefined : String(x);
}

function coherenceStats(s: Shared): CoherenceStats {
  const n = s.coh!.stats();
  return {
    maxStaleness: s.maxStaleness,
    reads: n[0]!,
    failures: n[1]!,
    entries: n[2]!,
    own: n[3]!,
    gaps: n[4]!,
    trimmed: n[5]!,
    behind: n[6]!,
    lost: n[7]!,
    epoch: n[8]!,
    away: n[9]!,
    unreadable: n[10]!,
    staleServed: n[11]!,
    refused: n[12]!,
    invalidated: s.invalidated,
    push: { ...s.push },
  };
}

/** One entry's tags and the versions it was written under. */
type TagList = readonly (readonly [string, number])[];

/**
 * A two-tier cache: this isolate's L1 {@link MemoryCache} in front of
 * Redis over HTTP ({@link RedisRest}: the `edgecache-bridge`, or hosted
 * Upstash). Methods have `MemoryCache`'s names and return promises.
 *
 * - Reads: L1, then Redis; concurrent misses of one key share one request;
 *   a value read from Redis is verified, then kept in L1 for at most
 *   `l1Ttl` and at most its remaining TTL.
 * - Writes: Redis (`SET ... PX`), then L1.
 * - Values in Redis are signed envelopes bound to key and scope; one that
 *   fails to open is a miss, counted in `stats().l2.rejected`, never
 *   served, never deleted (during a key rotation another isolate may hold
 *   the key that opens it).
 * - Counters (`incr`/`decr`) are Redis `INCRBY`, shared by every isolate,
 *   plain integers in Redis (not signed), kept apart from values: read them
 *   with {@link TieredCache.counter}; `get` never returns one.
 *
 * @example
 * ```ts
 * const cache = new TieredCache({
 *   redis: RedisRest.fromEnv(),
 *   signer: new Signer({ keys: { k1: secret } }),   // 32 random bytes, base64url (generateSecureKey())
 *   prefix: 'app',
 * });
 * await cache.set('user:1', { name: 'Ada' }, { ttl: 60_000 });
 * await cache.get('user:1');   // { name: 'Ada' }, from L1; other isolates read it from Redis
 * ```
 */
export class TieredCache<V = unknown> {
  readonly #s: Shared;
  /** This tier's namespace in the L1 cache (PRIVATE_VIEW), or a scope of it. */
  readonly #l1: MemoryCache<unknown>;
  /** The L1 cache this tier made, which `free()` releases. */
  readonly #ownL1: MemoryCache<unknown> | undefined;
  /** This view's stale copies (`staleIfError`), `undefined` when off. */
  readonly #grace: MemoryCache<unknown> | undefined;
  readonly #scope: EnvelopeScope | undefined;
  /** What this view's value, counter and tag-version keys start with in Redis. */
  readonly #vspace: string;
  readonly #nspace: string;
  readonly #gspace: string;

  constructor(options: TieredCacheOptions);
  /** @internal a scope view */
  constructor(options: TieredCacheOptions, view: { s: Shared; l1: MemoryCache<unknown>; scope: EnvelopeScope; grace: MemoryCache<unknown> | undefined });
  constructor(options: TieredCacheOptions, view?: { s: Shared; l1: MemoryCache<unknown>; scope: EnvelopeScope; grace: MemoryCache<unknown> | undefined }) {
    ensureWasm();
    if (view !== undefined) {
      this.#s = view.s;
      this.#l1 = view.l1;
      this.#ownL1 = undefined;
      this.#scope = view.scope;
    } else {
      if (options === null || typeof options !== 'object') throw new EdgeCacheError('INVALID_OPTION', 'TieredCache needs { redis, signer, prefix }');
      for (const k of Object.keys(options)) {
        if (!OPTIONS.has(k)) throw new EdgeCacheError('INVALID_OPTION', `unknown option \`${k}\` of TieredCache; known: ${[...OPTIONS].join(', ')}`);
      }
      const o = options;
      if (o.redis === undefined) throw new EdgeCacheError('INVALID_OPTION', 'TieredCache needs `redis`: a RedisRest, or { url, token }');
      if (o.signer === undefined) throw new EdgeCacheError('INVALID_OPTION', 'TieredCache needs `signer`: values in Redis are always signed (generateSecureKey() makes a key)');
      const now = o.now ?? Date.now;
      if (typeof now !== 'function') throw new EdgeCacheError('INVALID_OPTION', '`now` must be a function returning ms since the Unix epoch');
      const l1Ttl = ms(o.l1Ttl, 'l1Ttl', 10_000);
      const defaultTtl = ms(o.defaultTtl, 'defaultTtl', 0);
      if (o.failOpen !== undefined && typeof o.failOpen !== 'boolean') throw new EdgeCacheError('INVALID_OPTION', '`failOpen` must be true or false');
      const b = o.breaker ?? {};
      if (b === null || typeof b !== 'object') throw new EdgeCacheError('INVALID_OPTION', '`breaker` is { threshold?, cooldown? }');
      for (const k of Object.keys(b)) if (k !== 'threshold' && k !== 'cooldown') throw new EdgeCacheError('INVALID_OPTION', `unknown option \`breaker.${k}\`; known: threshold, cooldown`);
      const threshold = b.threshold ?? 5;
      if (!Number.isInteger(threshold) || threshold < 1 || threshold > 1e6) throw new EdgeCacheError('INVALID_OPTION', '`breaker.threshold` must be an integer from 1 to 1000000');
      const cooldown = ms(b.cooldown, 'breaker.cooldown', 5_000);
      const ser = o.serializer ?? jsonSerializer;
      if (typeof ser?.serialize !== 'function' || typeof ser?.deserialize !== 'function') throw new EdgeCacheError('INVALID_OPTION', '`serializer` needs serialize() and deserialize()');
      const log = o.log ?? ((m: string) => console.warn(m));
      if (typeof log !== 'function') throw new EdgeCacheError('INVALID_OPTION', '`log` must be a function');
      if (typeof o.prefix !== 'string') throw new EdgeCacheError('INVALID_OPTION', '`prefix` is required: 1 to 64 characters of A-Z a-z 0-9 _ . -');
      let layout: LayoutCore;
      let breaker: BreakerCore;
      try {
        layout = new LayoutCore(o.prefix);
        breaker = new BreakerCore(threshold, cooldown);
      } catch (e) {
        throw new EdgeCacheError('INVALID_OPTION', (e as Error).message);
      }
      const maxStaleness = o.maxStaleness === false ? false : ms(o.maxStaleness, 'maxStaleness', 1_000);
      if (maxStaleness !== false && maxStaleness > 86_400_000) throw new EdgeCacheError('INVALID_OPTION', `maxStaleness must be at most 86400000 ms (a day), or false, got ${maxStaleness}`);
      const swu = o.staleWhileUnreachable ?? o.failOpen ?? true;
      if (typeof swu !== 'boolean') throw new EdgeCacheError('INVALID_OPTION', '`staleWhileUnreachable` must be true or false');
      let coh: CoherenceCore | undefined;
      try {
        coh = maxStaleness === false ? undefined : new CoherenceCore(o.prefix, Math.floor(maxStaleness), !swu);
      } catch (e) {
        throw new EdgeCacheError(((e as { code?: string }).code as never) ?? 'INVALID_OPTION', (e as Error).message);
      }
      const redis = o.redis instanceof RedisRest ? o.redis : new RedisRest(o.redis);
      const signer = o.signer instanceof Signer ? o.signer : new Signer({ now, ...o.signer });
      // The tier's own L1, unless a clock was injected, runs on the
      // monotonic clock (its TTLs are durations, so any clock measures
      // them), offset to look like Unix ms, and leaves each reading in
      // `Shared.t`: an L1 hit then checks the lease on the reading the L1
      // took anyway, rather than paying a second clock read (most of an L1
      // hit's cost where reading the clock is slow).
      let l1Now: (() => number) | undefined;
      let shared: Shared | undefined;
      if (o.now === undefined && (o.l1 === undefined || (typeof o.l1 === 'object' && o.l1 !== null && !(o.l1 instanceof MemoryCache) && o.l1.now === undefined))) {
        const offset = Date.now() - performance.now();
        l1Now = () => (shared!.t = performance.now()) + offset;
      }
      this.#ownL1 = o.l1 instanceof MemoryCache ? undefined : new MemoryCache<unknown>({ now: l1Now ?? now, ...(o.l1 ?? {}) });
      this.#l1 = (this.#ownL1 ?? (o.l1 as MemoryCache<unknown>))[PRIVATE_VIEW]();
      this.#s = shared = new Shared(redis, signer, layout, breaker, l1Ttl, defaultTtl, o.failOpen ?? true, ser, log, now, this.#l1, coh, maxStaleness === false ? 0 : Math.floor(maxStaleness));
      const sie = ms(o.staleIfError, 'staleIfError', 0);
      if (sie > 0) {
        shared.staleIfError = sie;
        // A private namespace of its own: no view of the tier reads it but this.
        shared.grace = (this.#ownL1 ?? (o.l1 as MemoryCache<unknown>))[PRIVATE_VIEW]();
      }
      for (const h of ['onL2Error', 'onBreaker', 'onRejected'] as const) {
        if (o[h] !== undefined && typeof o[h] !== 'function') throw new EdgeCacheError('INVALID_OPTION', `\`${h}\` must be a function`);
      }
      shared.hooks = { onL2Error: o.onL2Error, onBreaker: o.onBreaker, onRejected: o.onRejected };
      this.#scope = undefined;
    }
    const sc = this.#scope;
    const g = this.#s.grace;
    // A scope view's copies: the same scope of the grace namespace (scope()).
    this.#grace = view === undefined ? g : view.grace;
    this.#vspace = this.#s.layout.space(false, part(sc?.tenant), part(sc?.user));
    this.#nspace = this.#s.layout.space(true, part(sc?.tenant), part(sc?.user));
    this.#gspace = this.#s.layout.tagSpace(part(sc?.tenant), part(sc?.user));
    if (view === undefined) this.#s.gmark = this.#gspace.slice(0, this.#gspace.indexOf(':') + 3);
    // See CACHE_IDENTITY in cache.ts: views of one TieredCache and scope
    // share the in-flight computations of memoize, the decorators and
    // cachePage, even when a view is created per call. Set here rather than
    // as a computed class member, which would keep the whole tier in every
    // bundle that never uses it (esbuild cannot drop such a class).
    if (view === undefined && options.push !== undefined && typeof options.push !== 'boolean') throw new EdgeCacheError('INVALID_OPTION', '`push` must be true or false');
    if (view === undefined && options.push === true && this.#s.coh !== undefined) this.#subscribe(0);
    const identity = { root: this.#s as object, scope: this.#l1[CACHE_IDENTITY]().scope };
    (this as unknown as Record<symbol, () => typeof identity>)[CACHE_IDENTITY] = () => identity;
  }

  // ---- the L2 call, with the breaker, statistics and failOpen ----

  /**
   * One L2 call. Fails open (`FAILED`) unless `mustThrow` or `failOpen:
   * false`; with `down`, a failure because Redis is unreachable (or the
   * breaker open), rather than a command Redis refused, is `DOWN`.
   */
  #l2<T>(op: () => Promise<T>, mustThrow?: boolean): Promise<T | typeof FAILED>;
  #l2<T>(op: () => Promise<T>, mustThrow: boolean, down: boolean): Promise<T | typeof FAILED | typeof DOWN>;
  async #l2<T>(op: () => Promise<T>, mustThrow = false, down = false): Promise<T | typeof FAILED | typeof DOWN> {
    const s = this.#s;
    const h = s.hooks;
    // With onBreaker: the state before, to report each change.
    let state = h.onBreaker === undefined ? -1 : s.breaker.state();
    const allowed = s.breaker.allow(s.now());
    if (state !== -1) state = s.moved(state);
    if (!allowed) {
      s.count('L2_UNAVAILABLE');
      const e = mustThrow || !s.failOpen || h.onL2Error !== undefined
        ? new EdgeCacheError('L2_UNAVAILABLE', 'the redis tier is unavailable: the circuit breaker is open after repeated failures (it probes again after `breaker.cooldown`)')
        : undefined;
      fire(h.onL2Error, e!);
      if (mustThrow || !s.failOpen) throw e;
      return down ? DOWN : FAILED;
    }
    const t0 = performance.now();
    try {
      const r = await op();
      this.#answered();
      if (state !== -1) s.moved(state);
      s.samples[s.sampled++ % SAMPLES] = performance.now() - t0;
      return r;
    } catch (e) {
      const code = e instanceof EdgeCacheError ? e.code : 'L2_HTTP';
      s.count(code);
      fire(h.onL2Error, e instanceof EdgeCacheError ? e : new EdgeCacheError('L2_HTTP', (e as Error)?.message ?? String(e)));
      // A wrong token fails every call: say so at once, not at the breaker.
      if (code === 'L2_AUTH') s.warn('auth', (e as Error).message);
      const answered = code === 'L2_REDIS' || (e as { status?: unknown }).status === 413;
      // A failure of some masters of a Redis Cluster (the bridge says
      // `partial`): the others answer, so it neither opens the breaker for
      // every key nor closes it.
      const partial = (e as { partial?: unknown }).partial === true;
      if (answered) {
        // The tier answered: it is healthy, the command was refused (by
        // Redis, or as too large for the server's body limit).
        this.#answered();
      } else if (!partial && s.breaker.failure(s.now()) && !s.outage) {
        // Once per outage (a failed probe reopens the breaker: the same outage).
        s.outage = true;
        s.log(`edgecache: the redis tier failed repeatedly (${code}: ${(e as Error).message}); the circuit breaker is open, serving from L1 until it recovers`);
      }
      if (state !== -1) s.moved(state);
      if (mustThrow || !s.failOpen) throw e;
      return down && !answered ? DOWN : FAILED;
    }
  }

  /** Redis answered: closes the breaker, and logs the recovery once per outage. */
  #answered(): void {
    const s = this.#s;
    s.breaker.success();
    if (s.outage) {
      s.outage = false;
      s.log('edgecache: the redis tier answers again; the circuit breaker is closed');
    }
  }

  /** A read Redis could not answer: the stale copy (`staleIfError`), if the coherence rule allows it. */
  #stale(key: string): unknown {
    const s = this.#s;
    const v = this.#grace?.get(key);
    if (v === undefined) return undefined;
    if (s.coh !== undefined && !s.coh.serveUnreachable()) return undefined;
    s.staleServed++;
    return v;
  }

  // ---- coherence across isolates (src/coherence: the log and the lease) ----

  /**
   * Renews the lease by reading the log (one flight shared by the L1 hits
   * that wait, where the runtime allows): whether the read succeeded.
   */
  #renew(): Promise<boolean> {
    const s = this.#s;
    const now = mono();
    const f = s.leaseFlight;
    // A read that began less than maxStaleness ago vouches for this one.
    if (shareFlights && f !== undefined && now - f.started < s.maxStaleness) return f.promise;
    const promise = this.#readLog(now);
    if (!shareFlights) return promise;
    const flight: LeaseFlight = { promise, started: now };
    s.leaseFlight = flight;
    void promise.finally(() => {
      if (s.leaseFlight === flight) s.leaseFlight = undefined;
    });
    return promise;
  }

  /**
   * The cache's first log read goes alone, once, before its first request
   * takes a fence ticket: a first read drops all of L1 and fences every
   * key, so piggybacked on a request it would keep that request's own
   * answer out of L1. If it fails (Redis away from the start), later first
   * reads ride along with requests made anyway.
   */
  #first(): Promise<unknown> | undefined {
    const s = this.#s;
    if (s.coh === undefined || s.firstTried) return undefined;
    s.firstTried = true;
    return this.#renew();
  }

  /**
   * Holds the push stream open: applies each entry at once; once Redis
   * confirmed the subscription, reads the log (what was missed before it);
   * after a break, subscribes again, backing off (1 s doubling to 30 s).
   */
  #subscribe(failures: number): void {
    const s = this.#s;
    if (s.push.state === 'closed') return;
    s.push.state = 'connecting';
    const sub = s.redis.subscribe(s.coh!.pushChannel, (m) => this.#pushed(m.message));
    s.sub = sub;
    sub.ready.then(
      () => {
        if (s.sub !== sub) return;
        s.push.state = 'open';
        s.push.connects++;
        failures = 0;
        void this.#renew();
      },
      () => {},
    );
    sub.closed
      .catch((e: unknown) => s.warn('push', `the push stream broke (${e instanceof EdgeCacheError ? e.code : 'error'}: ${(e as Error).message}); subscribing again (the lease bounds staleness meanwhile)`))
      .then(() => {
        if (s.sub !== sub || s.push.state === 'closed') return;
        s.push.state = 'connecting';
        const wait = Math.min(30_000, 1_000 * 2 ** Math.min(failures, 5));
        setTimeout(() => this.#subscribe(failures + 1), wait);
      });
  }

  /** A pushed entry, `[writer, op, target...]`: drops what it names (only ever drops). */
  #pushed(message: string): void {
    const s = this.#s;
    let entry: unknown;
    try {
      entry = JSON.parse(message);
    } catch {
      entry = undefined;
    }
    if (!Array.isArray(entry) || entry.length < 3 || !entry.every((x) => typeof x === 'string')) {
      s.push.malformed++;
      return;
    }
    const [writer, op, ...targets] = entry as string[];
    if (writer === s.coh!.id) return;
    s.push.messages++;
    if (op === 'pat' || op === 'clear') for (const g of targets) this.#dropGlob(g);
    else for (const rk of targets) this.#dropKey(rk);
  }

  /** A log read on its own: whether it succeeded. */
  async #readLog(now: number): Promise<boolean> {
    const s = this.#s;
    const coh = s.coh!;
    const ticket = coh.beginRead(now);
    let entries: Outcome[] | typeof FAILED;
    try {
      entries = await this.#l2(() => s.redis.pipeline(JSON.parse(coh.commands(ticket)) as RedisArg[][]));
    } catch {
      entries = FAILED;
    }
    if (entries === FAILED) {
      coh.failedRead(ticket);
      return false;
    }
    return this.#finishRead(ticket, entries);
  }

  /** Applies a log read's replies: whether it succeeded. */
  #finishRead(ticket: number, entries: Outcome[]): boolean {
    const s = this.#s;
    const coh = s.coh!;
    let out: [boolean, string | null, string[], string[], string[]];
    try {
      out = coh.finishRead(ticket, entries) as typeof out;
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'L2_PROTOCOL';
      s.count(code);
      s.warn('log', `the invalidation log could not be read (${code}: ${(e as Error).message}); until it can be, expired L1 leases follow staleWhileUnreachable`);
      return false;
    }
    const [everything, gap, keys, globs, tags] = out;
    if (gap !== null) s.warn(`gap-${gap}`, `the invalidation log could not vouch for L1 (${gap}); all of L1 was dropped (counted in stats().coherence)`);
    if (everything) this.#dropAll();
    else {
      for (const rk of keys) this.#dropKey(rk);
      for (const g of globs) this.#dropGlob(g);
      // Tags invalidated elsewhere: their versions moved (read again when needed).
      for (const tk of tags ?? []) this.#tagChanged(tk);
    }
    this.#leaseChanged();
    return true;
  }

  /** The JS mirrors of the lease (so an L1 hit asks no wasm). */
  #leaseChanged(): void {
    const s = this.#s;
    const from = s.coh!.freshFrom();
    s.freshUntil = from + s.maxStaleness;
    s.piggyFrom = from + s.maxStaleness / 2;
  }

  #dropAll(): void {
    const s = this.#s;
    s.fence.invalidateAll();
    // L1 keeps no tagged entry, so no tag version is vouched for any more.
    s.tagEpoch++;
    for (const e of s.tagv.values()) e.known = false;
    s.invalidated += s.root.stats().entries;
    s.root.clear();
    s.grace?.clear();
  }

  /** The L1 view of a scope decoded from a Redis key or glob. */
  #viewOf(tenant: string | undefined, user: string | undefined): MemoryCache<unknown> {
    return this.#viewIn(this.#s.root, tenant, user);
  }

  #viewIn(root: MemoryCache<unknown>, tenant: string | undefined, user: string | undefined): MemoryCache<unknown> {
    if (tenant === undefined && user === undefined) return root;
    const sc: ScopeOptions = {};
    if (tenant !== undefined) sc.tenant = tenant;
    if (user !== undefined) sc.user = user;
    return root.scope(sc);
  }

  #dropKey(rk: string): void {
    const s = this.#s;
    if (rk.startsWith(s.gmark)) return this.#tagChanged(rk);
    s.fence.invalidate(rk);
    const p = s.layout.parse(rk) as [boolean, string | undefined, string | undefined, string] | undefined;
    if (p === undefined) return;
    if (this.#viewOf(p[1], p[2]).delete(p[0] ? COUNTER + p[3] : p[3])) s.invalidated++;
    if (s.grace !== undefined && !p[0]) this.#viewIn(s.grace, p[1], p[2]).delete(p[3]);
  }

  #dropGlob(glob: string): void {
    const s = this.#s;
    s.fence.writePatternDone(s.fence.writePattern(glob));
    const p = s.layout.parsePattern(glob) as [string | undefined, string | undefined, string] | null | undefined;
    if (p === null || p === undefined) return this.#dropAll();
    const view = this.#viewOf(p[0], p[1]);
    s.invalidated += view.deletePattern(p[2]) + view.deletePattern(COUNTER + p[2]);
    if (s.grace !== undefined) this.#viewIn(s.grace, p[0], p[1]).deletePattern(p[2]);
  }

  /**
   * Renews an expired lease for an L1 hit: whether L1 may serve it (the log
   * was read, or it could not be and `staleWhileUnreachable` says serve).
   */
  async #vouch(): Promise<boolean> {
    return (await this.#renew()) || this.#s.coh!.serveUnreachable();
  }

  /** An L1 hit whose lease has expired: renews it, then serves L1 if it still may, else reads Redis. */
  async #leased(key: string): Promise<unknown> {
    if (await this.#vouch()) {
      const hit = this.#l1.get(key);
      if (hit !== undefined) return hit;
    }
    return this.#load(key);
  }

  /** Whether an L1 hit may be served without reading the log first. */
  #fresh(): boolean {
    const s = this.#s;
    return s.coh === undefined || performance.now() < s.freshUntil;
  }

  /**
   * Sends `cmds` in one pipeline, followed by the log append of a mutation
   * (`op` over `targets`) and, past half the lease, a log read; resolves to
   * the outcomes of `cmds`. A failed command, or a failed append (other
   * caches would not learn of the mutation), throws `L2_REDIS`.
   */
  async #send(cmds: RedisArg[][], op?: string, targets?: string[]): Promise<Outcome[]> {
    const s = this.#s;
    const coh = s.coh;
    if (coh === undefined) return s.redis.pipeline(cmds);
    const all = cmds.slice();
    if (op !== undefined) for (const c of JSON.parse(coh.append(op, targets!)) as RedisArg[][]) all.push(c);
    const appended = all.length;
    const now = mono();
    const ticket = now >= s.piggyFrom ? coh.beginRead(now) : -1;
    if (ticket >= 0) for (const c of JSON.parse(coh.commands(ticket)) as RedisArg[][]) all.push(c);
    let out: Outcome[];
    try {
      out = await s.redis.pipeline(all);
    } catch (e) {
      if (ticket >= 0) coh.failedRead(ticket);
      throw e;
    }
    if (ticket >= 0) this.#finishRead(ticket, out.slice(appended));
    for (let i = cmds.length; i < appended; i++) {
      const o = out[i]!;
      if (!o.ok) throw new EdgeCacheError('L2_REDIS', `the mutation ran, but its invalidation log append failed, so other caches may serve the older value until l1Ttl: ${o.error}`);
    }
    return out.slice(0, cmds.length);
  }

  /** `#send` of one command: its value, or its error thrown as `L2_REDIS`. */
  async #sendOne(cmd: RedisArg[], op?: string, targets?: string[]): Promise<RedisValue> {
    const s = this.#s;
    if (s.coh === undefined) return s.redis.command(cmd);
    const [o] = await this.#send([cmd], op, targets);
    if (!o!.ok) throw new EdgeCacheError('L2_REDIS', `redis error: ${o!.error}`);
    return o!.value;
  }

  /** Opens what Redis holds for `key`: the value, or `undefined` (expired, or rejected and counted). */
  #open(key: string, raw: RedisValue): { value: unknown; expiresAt: number; tags: TagList | undefined } | undefined {
    const s = this.#s;
    if (typeof raw !== 'string') {
      s.reject(key, 'NOT_AN_ENVELOPE');
      s.warn('rejected', `a value in redis for key ${JSON.stringify(key)} is not a signed envelope; it was not served (counted in stats().l2.rejected)`);
      return undefined;
    }
    let opened: { payload: string | Uint8Array; expiresAt: number; tags?: [string, number][] } | undefined;
    try {
      opened = s.signer.openPayload(key, raw, this.#scope, s.layout);
      if (opened === undefined) return undefined;
      return { value: s.serializer.deserialize(opened.payload), expiresAt: opened.expiresAt, tags: opened.tags };
    } catch (e) {
      s.reject(key, e instanceof EdgeCacheError ? e.code : 'DESERIALIZE');
      s.warn('rejected', `a value in redis for key ${JSON.stringify(key)} failed to open (${e instanceof EdgeCacheError ? e.code : 'deserialize'}); it was not served (counted in stats().l2.rejected)`);
      return undefined;
    }
  }

  /** Keeps a value from L2 in L1, for no longer than the rules allow (with its tags, checked on every L1 hit). */
  #promote(l1Key: string, value: unknown, expiresAt: number, tags?: TagList): void {
    const s = this.#s;
    const ttl = promotionTtl(s.l1Ttl, expiresAt, s.now());
    if (ttl < 0) return;
    const names = tags === undefined ? undefined : tags.map((t) => t[0]);
    try {
      this.#l1.set(l1Key, value, names === undefined ? { ttl } : { ttl, tags: names });
    } catch {
      // Too large for L1: it stays in Redis only.
      this.#l1.delete(l1Key);
      this.#grace?.delete(l1Key);
      return;
    }
    const g = this.#grace;
    if (g === undefined) return;
    // The stale copy outlives the L1 entry by staleIfError (an entry kept
    // for good needs none). Counters are never kept stale.
    try {
      if (ttl === 0 || l1Key.charCodeAt(0) === COUNTER_CODE) g.delete(l1Key);
      else g.set(l1Key, value, names === undefined ? { ttl: ttl + s.staleIfError } : { ttl: ttl + s.staleIfError, tags: names });
    } catch {
      g.delete(l1Key);
    }
  }

  // ---- tags (docs/REDIS.md, "Tags") ----

  /** Scope and name of a tag-version key of this cache, `undefined` if it is not one. */
  #tagOf(tk: string): [string | undefined, string | undefined, string] | undefined {
    const colon = tk.indexOf(':');
    const p = this.#s.layout.parse(`${tk.slice(0, colon)}:v:${tk.slice(colon + 3)}`) as [boolean, string | undefined, string | undefined, string] | undefined;
    return p === undefined ? undefined : [p[1], p[2], p[3]];
  }

  /** The tag's version rose: L1 entries (and stale copies) written under the older one miss from now on. */
  #raise(tk: string): void {
    const s = this.#s;
    s.tagEpoch++;
    const t = this.#tagOf(tk);
    if (t === undefined) return;
    this.#viewOf(t[0], t[1]).invalidateTags([t[2]]);
    if (s.grace !== undefined) this.#viewIn(s.grace, t[0], t[1]).invalidateTags([t[2]]);
  }

  /** A log entry (or this cache) says the tag was invalidated: its version is unknown until read again. */
  #tagChanged(tk: string): void {
    const e = this.#s.tagv.get(tk);
    if (e !== undefined) e.known = false;
    this.#raise(tk);
  }

  /**
   * Takes a tag version Redis answered: the version to hold entries to,
   * the highest seen (a lower one is a rollback: counted, not believed),
   * or `undefined` if it is not a version at all (then nothing of the tag
   * is served).
   */
  #learn(tk: string, raw: unknown, sent: number): number | undefined {
    const s = this.#s;
    const r = tagVersion(raw);
    if (r === undefined) {
      s.count('L2_PROTOCOL');
      s.warn('tag-version', `a tag version in redis (${JSON.stringify(tk)}) is not an integer; entries with that tag are not served`);
      return undefined;
    }
    const e = s.tagv.get(tk);
    if (e === undefined) {
      if (s.tagv.size >= MAX_TAG_VERSIONS) {
        // Forgotten versions vouch for nothing: neither may L1's entries.
        s.tagv.clear();
        this.#dropAll();
      }
      s.tagv.set(tk, { v: r, known: true, at: s.tagEpoch });
      return r;
    }
    // An answer to a request sent before this isolate learned the higher
    // version is older, not a rollback.
    if (r < e.v && e.at > sent) return e.v;
    if (r < e.v) {
      s.tagRollbacks++;
      s.warn('tag-rollback', `a tag version in redis went back (${JSON.stringify(tk)}: ${r} after ${e.v}); the higher one is kept (counted in stats().tags.rollbacks)`);
    } else if (r > e.v) {
      e.v = r;
      this.#raise(tk);
      e.at = s.tagEpoch;
    }
    e.known = true;
    return e.v;
  }

  /** Current versions of tag keys, from Redis (`MGET`); thrown on failure. */
  async #fetchVersions(tks: readonly string[]): Promise<number[]> {
    const sent = this.#s.tagEpoch;
    return this.#learnAll(tks, await this.#s.redis.command(['MGET', ...tks]), sent, true) as number[];
  }

  /**
   * Takes an `MGET` answer of tag versions (`#learn` each, its request
   * sent at tag epoch `sent`): the versions to hold entries to. Throws
   * `L2_PROTOCOL` for an answer of the wrong shape, and with `strict` for
   * a version that is not one (else that version is `undefined`).
   */
  #learnAll(tks: readonly string[], raws: unknown, sent: number, strict: boolean): (number | undefined)[] {
    if (!Array.isArray(raws) || raws.length !== tks.length) throw new EdgeCacheError('L2_PROTOCOL', 'malformed answer from the redis tier: MGET of tag versions');
    return tks.map((k, i) => {
      const v = this.#learn(k, raws[i], sent);
      if (v === undefined && strict) throw new EdgeCacheError('L2_PROTOCOL', `malformed tag version in redis for ${JSON.stringify(k)}`);
      return v;
    });
  }

  /**
   * Checks entries read from Redis against their tags' versions, read
   * after them (so an invalidation acknowledged before the read began is
   * seen): which are valid, and whether no tag changed meanwhile as far as
   * this isolate learned (else none goes to L1). `undefined` if the
   * versions could not be read (then none is served).
   */
  async #verify(lists: readonly TagList[]): Promise<{ valid: boolean[]; quiet: boolean } | undefined> {
    const s = this.#s;
    const tks = [...new Set(lists.flatMap((l) => l.map((t) => this.#gspace + t[0])))];
    const e0 = s.tagEpoch;
    const raws = await this.#l2(() => s.redis.command(['MGET', ...tks]));
    const quiet = s.tagEpoch === e0;
    if (raws === FAILED) return undefined;
    let versions: (number | undefined)[];
    try {
      versions = this.#learnAll(tks, raws, e0, false);
    } catch {
      s.count('L2_PROTOCOL');
      return undefined;
    }
    const cur = new Map(tks.map((k, i) => [k, versions[i]]));
    const valid = lists.map((l) =>
      l.every((t) => {
        const c = cur.get(this.#gspace + t[0]);
        return c !== undefined && t[1] >= c;
      }),
    );
    for (const ok of valid) if (!ok) s.tagMisses++;
    return { valid, quiet };
  }

  /**
   * Invalidates every entry of this view's scope that carries one of
   * `tags`, in every isolate: one `INCR` per tag (its version) and a log
   * entry, whatever the number of entries. Once it resolves, no isolate
   * serves such an entry written before it from Redis, nor from L1 once
   * `maxStaleness` has passed; entries written after it with the tag are
   * served as usual; a tag lives in one scope (the root's tags are the
   * root's only). This isolate's L1 drops them at once, even if Redis
   * fails. Resolves to the number of tags invalidated.
   * @throws {EdgeCacheError} `INVALID_TAG` (a rejection); the L2 error if
   * Redis could not be reached, whatever `failOpen` says (the tags would
   * otherwise stay valid elsewhere).
   */
  async invalidateTags(tags: readonly string[]): Promise<number> {
    const list = checkTagList(tags);
    if (list.length === 0) return 0;
    const s = this.#s;
    const tks = list.map((t) => this.#gspace + t);
    for (const tk of tks) this.#tagChanged(tk);
    // Loads under way with one of them (getOrSet, memoize) store nothing.
    dropFlightsTagged(this, list);
    const first = this.#first();
    if (first !== undefined) await first;
    const sent = s.tagEpoch;
    const out = (await this.#l2(() => this.#send(tks.map((k) => ['INCR', k]), 'tag', tks), true)) as Outcome[];
    out.forEach((o, i) => {
      if (!o.ok) throw new EdgeCacheError('L2_REDIS', `redis error: ${o.error}`);
      if (this.#learn(tks[i]!, o.value, sent) === undefined) throw new EdgeCacheError('L2_PROTOCOL', 'malformed answer from the redis tier: INCR of a tag version');
    });
    s.tagInvalidations += list.length;
    return list.length;
  }

  // ---- reads ----

  /**
   * Cache-aside: the value of `key` (from L1, else Redis), else the
   * loader's result, stored in both tiers with `options.ttl`. As
   * `MemoryCache.getOrSet`: single-flight per key within the isolate (not
   * in Cloudflare Workers), the loader's errors passed through and never
   * cached, `undefined` stored like any value, per-call
   * `staleWhileRevalidate`. It stores the entries `memoize` stores
   * (`{ v, s, f }`), so read such keys with `getOrSet`.
   * @throws {EdgeCacheError} `INVALID_KEY`, `INVALID_TTL` / `INVALID_OPTION`
   * (a rejection: the call is asynchronous).
   */
  async getOrSet<T extends V>(key: string, loader: () => T | PromiseLike<T>, options?: GetOrSetOptions): Promise<T> {
    return getOrSet(this, 'getOrSet', key, loader, options) as Promise<T>;
  }

  /** The value of `key`: from L1, else from Redis (verified), else `undefined`. */
  async get(key: string): Promise<V | undefined> {
    if (typeof key === 'string' && key.charCodeAt(0) !== 0) {
      const s = this.#s;
      s.t = Infinity;
      const hit = this.#l1.get(key);
      if (hit !== undefined) {
        if (s.t < s.freshUntil || this.#fresh()) return hit as V;
        return this.#leased(key) as Promise<V | undefined>;
      }
    }
    checkKey(key);
    const first = this.#first();
    if (first !== undefined) await first;
    return this.#load(key) as Promise<V | undefined>;
  }

  #load(key: string): Promise<unknown> {
    const s = this.#s;
    const rk = this.#vspace + key;
    // Cloudflare Workers: a request must never wait on another request's
    // fetch (keys.ts), so reads there join no other.
    if (!shareFlights) return this.#fetch(key, rk, s.fence.read());
    const inFlight = s.flights.get(rk);
    // A flight that overlapped a write or delete of this key may answer
    // with the older value: a read that begins now must not get it.
    if (inFlight !== undefined && s.fence.mayPromote(rk, inFlight.ticket)) return inFlight.promise;
    const flight: Flight = { promise: undefined as unknown as Promise<unknown>, ticket: s.fence.read() };
    flight.promise = this.#fetch(key, rk, flight.ticket).finally(() => {
      if (s.flights.get(rk) === flight) s.flights.delete(rk);
    });
    s.flights.set(rk, flight);
    return flight.promise;
  }

  /** Reads `rk` from Redis under a fence ticket taken by the caller, which this releases. */
  async #fetch(key: string, rk: string, ticket: number): Promise<unknown> {
    try {
      return await this.#fetchWith(key, rk, ticket);
    } finally {
      this.#s.fence.readDone();
    }
  }

  async #fetchWith(key: string, rk: string, ticket: number): Promise<unknown> {
    const s = this.#s;
    const raw = await this.#l2(() => (mono() >= s.piggyFrom ? this.#sendOne(['GET', rk]) : s.redis.command(['GET', rk])), false, this.#grace !== undefined);
    if (raw === DOWN) return this.#stale(key);
    if (raw === FAILED) return undefined;
    if (raw === null) {
      s.misses++;
      return undefined;
    }
    const o = this.#open(key, raw);
    if (o === undefined) {
      s.misses++;
      return undefined;
    }
    let quiet = true;
    if (o.tags !== undefined) {
      const v = await this.#verify([o.tags]);
      if (v === undefined || !v.valid[0]) {
        s.misses++;
        return undefined;
      }
      quiet = v.quiet;
    }
    s.hits++;
    if (quiet && s.fence.mayPromote(rk, ticket)) this.#promote(key, o.value, o.expiresAt, o.tags);
    return o.value;
  }

  /** Whether `key` holds a value (`get` would return one). */
  async has(key: string): Promise<boolean> {
    checkKey(key);
    if (this.#l1.has(key) && (this.#fresh() || (await this.#vouch())) && this.#l1.has(key)) return true;
    const first = this.#first();
    if (first !== undefined) await first;
    return (await this.#load(key)) !== undefined;
  }

  /** The values of `keys`, aligned, `undefined` for misses: L1, then one `MGET` for the rest. */
  async getMany(keys: readonly string[]): Promise<(V | undefined)[]> {
    if (!Array.isArray(keys)) throw new EdgeCacheError('INVALID_KEY', 'getMany takes an array of keys');
    for (const k of keys) checkKey(k);
    let out = this.#l1.getMany(keys) as (V | undefined)[];
    if (!this.#fresh() && out.some((v) => v !== undefined)) {
      // Renew the lease first; refused (strict), L1 serves nothing.
      out = (await this.#vouch()) ? (this.#l1.getMany(keys) as (V | undefined)[]) : Array.from({ length: keys.length }, () => undefined);
    }
    const missing: number[] = [];
    for (let i = 0; i < out.length; i++) if (out[i] === undefined) missing.push(i);
    if (missing.length === 0) return out;
    const s = this.#s;
    const rks = missing.map((i) => this.#vspace + keys[i]);
    const first = this.#first();
    if (first !== undefined) await first;
    // Fenced like a `get`: a write or delete that begins meanwhile keeps
    // this (possibly older) answer out of L1.
    const ticket = s.fence.read();
    try {
      return await this.#getMissing(keys, out, missing, rks, ticket);
    } finally {
      s.fence.readDone();
    }
  }

  async #getMissing(keys: readonly string[], out: (V | undefined)[], missing: number[], rks: string[], ticket: number): Promise<(V | undefined)[]> {
    const s = this.#s;
    const raws = await this.#l2(() => (mono() >= s.piggyFrom ? this.#sendOne(['MGET', ...rks]) : s.redis.command(['MGET', ...rks])), false, this.#grace !== undefined);
    if (raws === DOWN) {
      for (const i of missing) out[i] = this.#stale(keys[i]!) as V | undefined;
      return out;
    }
    if (raws === FAILED) return out;
    if (!Array.isArray(raws) || raws.length !== rks.length) {
      s.count('L2_PROTOCOL');
      if (!s.failOpen) throw new EdgeCacheError('L2_PROTOCOL', `malformed answer from the redis tier: MGET of ${rks.length} keys answered ${Array.isArray(raws) ? raws.length : typeof raws}`);
      return out;
    }
    const opened: ({ value: unknown; expiresAt: number; tags: TagList | undefined } | undefined)[] = [];
    const tagged: number[] = [];
    for (let j = 0; j < missing.length; j++) {
      const raw = raws[j]!;
      const o = raw === null ? undefined : this.#open(keys[missing[j]!]!, raw);
      opened.push(o);
      if (o?.tags !== undefined) tagged.push(j);
    }
    // Tagged entries: their versions, all in one more request.
    let quiet = true;
    if (tagged.length > 0) {
      const v = await this.#verify(tagged.map((j) => opened[j]!.tags!));
      tagged.forEach((j, n) => {
        if (v === undefined || !v.valid[n]) opened[j] = undefined;
      });
      quiet = v?.quiet ?? false;
    }
    for (let j = 0; j < missing.length; j++) {
      const i = missing[j]!;
      const o = opened[j];
      if (o === undefined) {
        s.misses++;
        continue;
      }
      s.hits++;
      out[i] = o.value as V;
      if ((quiet || o.tags === undefined) && s.fence.mayPromote(rks[j]!, ticket)) this.#promote(keys[i]!, o.value, o.expiresAt, o.tags);
    }
    return out;
  }

  /** ms left for `key`, `Infinity` if it never expires, `undefined` if absent. */
  async ttl(key: string): Promise<number | undefined> {
    checkKey(key);
    const s = this.#s;
    const r = await this.#l2(() => s.redis.pipeline([['PTTL', this.#vspace + key], ['PTTL', this.#nspace + key]]));
    if (r === FAILED) return this.#l1.ttl(key) ?? this.#l1.ttl(COUNTER + key);
    for (const o of r) {
      if (!o.ok || typeof o.value !== 'number') continue;
      if (o.value === -1) return Infinity;
      if (o.value >= 0) return o.value;
    }
    return undefined;
  }

  /**
   * The keys of this view (values and counters) whose name matches a Redis
   * glob, found with `SCAN ... MATCH` (never `KEYS`). In no particular order.
   */
  async keys(pattern = '*'): Promise<string[]> {
    checkPattern(pattern);
    const s = this.#s;
    const match = s.layout.pattern(part(this.#scope?.tenant), part(this.#scope?.user), pattern);
    const found = new Set<string>();
    const skip = this.#vspace.length;
    const done = await this.#l2(() =>
      this.#scan(match, async (batch) => {
        for (const k of batch) found.add(k.slice(skip));
      }),
    );
    if (done === FAILED) {
      // What L1 knows: its values, and its counters (kept under U+0000).
      for (const k of this.#l1.keys(pattern)) if (k.charCodeAt(0) !== 0) found.add(k);
      for (const k of this.#l1.keys(COUNTER + pattern)) found.add(k.slice(1));
    }
    return [...found];
  }

  /**
   * SCANs `match` to the end, handing each batch of the cache's own keys
   * to `each`. A key that is not UTF-8, or not of the key layout, is
   * skipped and counted (`stats().l2.foreignKeys`): anyone who can write
   * to Redis can plant one, and it must not wedge the scan.
   */
  async #scan(match: string, each: (batch: string[]) => Promise<void>): Promise<void> {
    const s = this.#s;
    let cursor = '0';
    do {
      const r = await s.redis.command(['SCAN', cursor, 'MATCH', match, 'COUNT', 1000]);
      if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'string' || !Array.isArray(r[1])) {
        throw new EdgeCacheError('L2_PROTOCOL', 'malformed answer from the redis tier: SCAN answers [cursor, keys]');
      }
      const batch: string[] = [];
      for (const k of r[1]) {
        if (typeof k === 'string' && s.layout.owns(k)) {
          batch.push(k);
        } else {
          s.foreign++;
          s.warn('foreign', `a key under this cache's prefix in redis is ${typeof k === 'string' ? 'not of its key layout' : 'not UTF-8'}; it was skipped, not deleted (counted in stats().l2.foreignKeys)`);
        }
      }
      if (batch.length > 0) await each(batch);
      cursor = r[0];
    } while (cursor !== '0');
  }

  // ---- writes ----

  /** Serializes and seals `value` for `key`; throws before anything is written. */
  #seal(key: string, value: unknown, ttl: number, tags?: TagList): { sealed: string; local: unknown } {
    const s = this.#s;
    if (value === undefined) refuse('undefined');
    const payload = s.serializer.serialize(value);
    if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
      throw new EdgeCacheError('INVALID_OPTION', '`serializer.serialize` must return a string or a Uint8Array');
    }
    const sealed = s.signer.sealPayload(key, payload, typeof payload === 'string' ? 1 : 0, this.#scope, ttl, s.layout, tags);
    // L1 holds what every other isolate will read back, not the caller's object.
    return { sealed, local: s.serializer.deserialize(payload) };
  }

  #setArgs(key: string, sealed: string, ttl: number): RedisArg[] {
    const args: RedisArg[] = ['SET', this.#vspace + key, sealed];
    if (ttl > 0) args.push('PX', Math.ceil(ttl));
    return args;
  }

  /**
   * When a value written now expires: its TTL counts from the `set` call, as
   * the envelope's expiry does (sealed at the same moment), not from the
   * answer of Redis, which may come much later.
   */
  #expiry(ttl: number): number {
    return ttl > 0 ? this.#s.now() + ttl : 0;
  }

  /**
   * Stores `value` under `key` in Redis (signed, with `PX`), then in L1.
   * @throws {EdgeCacheError} `INVALID_KEY`, `INVALID_TTL`, `UNSERIALIZABLE_VALUE`,
   * `ENVELOPE_TOO_LARGE` before anything is written; with `failOpen: false`,
   * the L2 error (L1 then unchanged).
   */
  async set(key: string, value: V, options?: SetOptions): Promise<this> {
    checkKey(key);
    const s = this.#s;
    const ttl = ttlOf(options, s.defaultTtl);
    const tags = tagsOf(options?.tags);
    if (tags !== undefined) return this.#setTagged([{ key, value, ttl, tags }]);
    const { sealed, local } = this.#seal(key, value, ttl);
    const expiresAt = this.#expiry(ttl);
    const rk = this.#vspace + key;
    const first = this.#first();
    if (first !== undefined) await first;
    // Reads that overlap the write may have read the older value: the
    // fence keeps it out of L1. This write's own value goes to L1 unless a
    // later write or delete of the key began before it was answered.
    const ticket = s.fence.write(rk);
    let r: unknown;
    try {
      r = await this.#l2(() => this.#sendOne(this.#setArgs(key, sealed, ttl), 'set', [rk]));
    } finally {
      // Thrown (failOpen: false): L1 stays as it was.
      if (s.fence.writeDone(rk, ticket) && r !== undefined) this.#promote(key, local, expiresAt);
    }
    if (r !== FAILED) s.writes++;
    return this;
  }

  /** Stores several entries: all validated and sealed first, then one request to Redis. */
  async setMany(entries: Iterable<readonly [string, V] | readonly [string, V, SetOptions | undefined]>): Promise<this> {
    if (entries === null || typeof entries !== 'object' || !(Symbol.iterator in entries)) {
      throw new EdgeCacheError('INVALID_OPTION', 'setMany takes an iterable of [key, value, options?] tuples');
    }
    const s = this.#s;
    const items: { key: string; value: unknown; ttl: number; tags: string[] | undefined }[] = [];
    for (const e of entries) {
      if (!Array.isArray(e)) throw new EdgeCacheError('INVALID_OPTION', 'setMany takes [key, value, options?] tuples');
      const key = e[0] as string;
      checkKey(key);
      const o = e[2] as SetOptions | undefined;
      items.push({ key, value: e[1], ttl: ttlOf(o, s.defaultTtl), tags: tagsOf(o?.tags) });
    }
    if (items.some((it) => it.tags !== undefined)) return this.#setTagged(items);
    const prepared = items.map(({ key, value, ttl }) => ({ key, ttl, ...this.#seal(key, value, ttl), expiresAt: this.#expiry(ttl) }));
    if (prepared.length === 0) return this;
    const first = this.#first();
    if (first !== undefined) await first;
    // As in `set`, key by key (a key given twice: the last one wins, as in Redis).
    const tickets = prepared.map((p) => s.fence.write(this.#vspace + p.key));
    let r: unknown;
    try {
      r = await this.#l2(async () => {
        const out = await this.#send(
          prepared.map((p) => this.#setArgs(p.key, p.sealed, p.ttl)),
          'set',
          prepared.map((p) => this.#vspace + p.key),
        );
        const bad = out.find((o) => !o.ok);
        if (bad !== undefined && !bad.ok) throw new EdgeCacheError('L2_REDIS', `redis error: ${bad.error}`);
        return true;
      });
    } finally {
      prepared.forEach((p, i) => {
        // Thrown (failOpen: false): L1 stays as it was.
        if (s.fence.writeDone(this.#vspace + p.key, tickets[i]!) && r !== undefined) this.#promote(p.key, p.local, p.expiresAt);
      });
    }
    if (r !== FAILED) s.writes += prepared.length;
    return this;
  }

  /**
   * Writes entries of which some carry tags: sealed under the versions
   * their tags have (read first where this isolate does not know them),
   * and `MGET` of those versions after the `SET`s in the same pipeline; if
   * one moved meanwhile (an invalidation ran), the entries are sealed and
   * written again under it (up to twice more; after that they stay
   * invalidated: misses, never served).
   */
  async #setTagged(items: readonly { key: string; value: unknown; ttl: number; tags: string[] | undefined }[]): Promise<this> {
    const s = this.#s;
    // What can be refused is refused before any I/O; L1 holds `local`.
    // Sealed under the versions this isolate knows (0 where it knows none,
    // then sealed again once they are read): the usual case seals once.
    const version = (t: string): number => {
      const e = s.tagv.get(this.#gspace + t);
      return e?.known === true ? e.v : -1;
    };
    const seals = items.map((it) => {
      const tags = it.tags?.map((t) => [t, Math.max(0, version(t))] as const);
      const { sealed, local } = this.#seal(it.key, it.value, it.ttl, tags);
      return { local, sealed: it.tags === undefined || it.tags.every((t) => version(t) >= 0) ? sealed : undefined, under: tags?.map((t) => t[1]).join(',') };
    });
    const locals = seals.map((x) => x.local);
    const expiries = items.map((it) => this.#expiry(it.ttl));
    const tks = [...new Set(items.flatMap((it) => (it.tags ?? []).map((t) => this.#gspace + t)))];
    const first = this.#first();
    if (first !== undefined) await first;
    const rks = items.map((it) => this.#vspace + it.key);
    const tickets = rks.map((rk) => s.fence.write(rk));
    let e0 = s.tagEpoch;
    let r: unknown;
    try {
      r = await this.#l2(async () => {
        const versions = new Map<string, number>();
        const unknown: string[] = [];
        for (const k of tks) {
          const e = s.tagv.get(k);
          if (e?.known === true) versions.set(k, e.v);
          else unknown.push(k);
        }
        if (unknown.length > 0) (await this.#fetchVersions(unknown)).forEach((v, i) => versions.set(unknown[i]!, v));
        for (let attempt = 0; ; attempt++) {
          e0 = s.tagEpoch;
          const cmds = items.map((it, i) => {
            const tags = it.tags?.map((t) => [t, versions.get(this.#gspace + t)!] as const);
            const pre = seals[i]!;
            const sealed = pre.sealed !== undefined && pre.under === tags?.map((t) => t[1]).join(',') ? pre.sealed : this.#seal(it.key, it.value, it.ttl, tags).sealed;
            return this.#setArgs(it.key, sealed, it.ttl);
          });
          cmds.push(['MGET', ...tks]);
          const out = await this.#send(cmds, 'set', rks);
          const bad = out.find((o) => !o.ok);
          if (bad !== undefined && !bad.ok) throw new EdgeCacheError('L2_REDIS', `redis error: ${bad.error}`);
          const last = out[out.length - 1]!;
          const now = this.#learnAll(tks, last.ok ? last.value : undefined, e0, true) as number[];
          let moved = false;
          tks.forEach((k, i) => {
            if (now[i]! > versions.get(k)!) {
              versions.set(k, now[i]!);
              moved = true;
            }
          });
          if (!moved || attempt === 2) return true;
        }
      });
    } finally {
      // A tag that changed meanwhile (as this isolate learned) keeps them out of L1.
      const quiet = e0 === s.tagEpoch;
      items.forEach((it, i) => {
        if (!s.fence.writeDone(rks[i]!, tickets[i]!) || r === undefined) return;
        if (r === FAILED || quiet) this.#promote(it.key, locals[i], expiries[i]!, it.tags?.map((t) => [t, 0] as const));
        else {
          this.#l1.delete(it.key);
          this.#grace?.delete(it.key);
        }
      });
    }
    if (r !== FAILED) s.writes += items.length;
    return this;
  }

  /**
   * Deletes `key` (its value and its counter) from L1 and Redis. Throws the
   * L2 error if Redis could not be reached, whatever `failOpen` says: the
   * value would otherwise come back.
   */
  async delete(key: string): Promise<boolean> {
    checkKey(key);
    const n = await this.#unlink([key]);
    return n.redis > 0 || n.local;
  }

  /**
   * Deletes keys' values and counters from L1, then from Redis. Reads and
   * writes that overlap it put nothing in L1 (the fence), so no older value
   * comes back there. Always throws the L2 error.
   */
  async #unlink(keys: readonly string[]): Promise<{ redis: number; local: boolean }> {
    const s = this.#s;
    const first = this.#first();
    if (first !== undefined) await first;
    const rks: string[] = [];
    const tickets: number[] = [];
    let local = false;
    for (const k of keys) {
      for (const rk of [this.#vspace + k, this.#nspace + k]) {
        rks.push(rk);
        tickets.push(s.fence.write(rk));
      }
      local = this.#l1.delete(k) || local;
      local = this.#l1.delete(COUNTER + k) || local;
      this.#grace?.delete(k);
    }
    let n: number;
    try {
      n = (await this.#l2(async () => {
        const v = await this.#sendOne(['UNLINK', ...rks], 'del', rks);
        if (typeof v !== 'number') throw new EdgeCacheError('L2_PROTOCOL', 'malformed answer from the redis tier: UNLINK answered a result of the wrong type');
        return v;
      }, true)) as number;
    } finally {
      rks.forEach((rk, i) => s.fence.writeDone(rk, tickets[i]!));
    }
    s.writes++;
    return { redis: n, local };
  }

  /** Deletes several keys in one request; how many Redis keys were removed. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (!Array.isArray(keys)) throw new EdgeCacheError('INVALID_KEY', 'deleteMany takes an array of keys');
    for (const k of keys) checkKey(k);
    if (keys.length === 0) return 0;
    return (await this.#unlink(keys)).redis;
  }

  /**
   * Adds `by` to the counter `key` with Redis `INCRBY` (atomic across every
   * isolate; a missing counter starts at 0) and returns the new value, also
   * kept in L1. Never retried after a lost request, and never counted
   * locally: when Redis fails, it throws.
   * @throws {EdgeCacheError} `NOT_AN_INTEGER`, `OVERFLOW`, or the L2 error.
   */
  async incr(key: string, by = 1): Promise<number> {
    checkKey(key);
    if (!Number.isSafeInteger(by)) throw new EdgeCacheError('NOT_AN_INTEGER', `the step must be a safe integer, got ${String(by)}`);
    const s = this.#s;
    const rk = this.#nspace + key;
    const first = this.#first();
    if (first !== undefined) await first;
    // The count goes to L1 unless a later write of the counter (an
    // increment, a delete) began before Redis answered: that one is newer.
    const ticket = s.fence.write(rk);
    let n: number;
    let own = false;
    try {
      n = (await this.#l2(async () => {
        const v = await this.#sendOne(['INCRBY', rk, by], 'incr', [rk]);
        if (typeof v !== 'number') throw new EdgeCacheError('L2_PROTOCOL', 'malformed answer from the redis tier: INCRBY answered a result of the wrong type');
        return v;
      }, true)) as number;
    } catch (e) {
      if (e instanceof EdgeCacheError && e.code === 'L2_REDIS') {
        if (/overflow/i.test(e.message)) throw new EdgeCacheError('OVERFLOW', 'increment or decrement would overflow', { cause: e });
        if (/not an integer/i.test(e.message)) throw new EdgeCacheError('NOT_AN_INTEGER', 'the counter in redis is not an integer', { cause: e });
      }
      if (e instanceof EdgeCacheError && e.code === 'L2_PROTOCOL' && /integer JavaScript/.test(e.message)) {
        throw new EdgeCacheError('OVERFLOW', 'the counter left the safe-integer range', { cause: e });
      }
      throw e;
    } finally {
      own = s.fence.writeDone(rk, ticket);
    }
    s.writes++;
    if (own) this.#promote(COUNTER + key, n, 0);
    return n;
  }

  /** `incr(key, -by)`. */
  decr(key: string, by = 1): Promise<number> {
    if (!Number.isSafeInteger(by)) return Promise.reject(new EdgeCacheError('NOT_AN_INTEGER', `the step must be a safe integer, got ${String(by)}`));
    return this.incr(key, -by);
  }

  /**
   * The counter `key` (from L1, else Redis), or `undefined`. Counters are
   * plain integers in Redis, not signed: anyone who can write to the Redis
   * database can set one. Keep them to figures that may be wrong (rate
   * limits, views), never to decisions an attacker must not steer.
   * @throws {EdgeCacheError} the L2 error when L1 does not hold the counter
   * and Redis fails, whatever `failOpen` says (a missing count is not 0).
   */
  async counter(key: string): Promise<number | undefined> {
    checkKey(key);
    const hit = this.#l1.get(COUNTER + key);
    if (typeof hit === 'number' && (this.#fresh() || (await this.#vouch()))) {
      const again = this.#l1.get(COUNTER + key);
      if (typeof again === 'number') return again;
    }
    const s = this.#s;
    const rk = this.#nspace + key;
    const first = this.#first();
    if (first !== undefined) await first;
    // Fenced like `get`: an increment or delete that overlaps this read
    // keeps its (possibly older) count out of L1.
    const ticket = s.fence.read();
    try {
      const raw = (await this.#l2(() => s.redis.command(['GET', rk]), true)) as RedisValue;
      if (raw === null) return undefined;
      // One rule for both bindings: src/tier.rs parse_counter.
      const n = typeof raw === 'string' ? parseCounter(raw) : NaN;
      if (Number.isNaN(n)) {
        s.reject(key, 'NOT_AN_INTEGER');
        s.warn('counter', `the counter ${JSON.stringify(key)} in redis is not an integer; it was not served`);
        return undefined;
      }
      if (!Number.isFinite(n)) throw new EdgeCacheError('OVERFLOW', `the counter ${JSON.stringify(key)} in redis is past the safe-integer range of JS numbers`);
      if (s.fence.mayPromote(rk, ticket)) this.#promote(COUNTER + key, n, 0);
      return n;
    } finally {
      s.fence.readDone();
    }
  }

  /**
   * SCANs `match` and UNLINKs the cache's keys it finds, batch by batch;
   * how many keys went. What L1 held is dropped first (`dropLocal`), and
   * while this runs no key that `match` matches is promoted to L1 (the
   * fence): reads between the SCAN and the UNLINK find the values still
   * there.
   */
  async #unlinkMatching(match: string, op: 'pat' | 'clear', dropLocal: () => void): Promise<number> {
    const s = this.#s;
    const first = this.#first();
    if (first !== undefined) await first;
    const ticket = s.fence.writePattern(match);
    let gone = 0;
    try {
      dropLocal();
      await this.#l2(async () => {
        await this.#scan(match, async (batch) => {
          gone += await s.redis.unlink(...batch);
        });
        // Logged once every key is gone: a cache that reads the entry
        // and then Redis finds none of them.
        if (s.coh !== undefined) await this.#send([], op, [match]);
      }, true);
    } finally {
      s.fence.writePatternDone(ticket);
    }
    s.writes++;
    return gone;
  }

  /**
   * Deletes the keys of this view matching a Redis glob, in L1 and in
   * Redis (`SCAN MATCH` + `UNLINK` in batches, never `KEYS`). The glob
   * applies to this view's keys only. Returns how many Redis keys went.
   */
  async deletePattern(pattern: string): Promise<number> {
    checkPattern(pattern);
    const s = this.#s;
    return this.#unlinkMatching(s.layout.pattern(part(this.#scope?.tenant), part(this.#scope?.user), pattern), 'pat', () => {
      this.#l1.deletePattern(pattern);
      this.#l1.deletePattern(COUNTER + pattern);
      this.#grace?.deletePattern(pattern);
    });
  }

  /**
   * Removes this cache's keys: on the cache, every key of its layout (both
   * kinds, every scope), in Redis and L1; on a scope view, that scope's.
   * Other keys under the same prefix (`<prefix>:sessions:42`) are not
   * touched. Never `FLUSHDB`.
   */
  async clear(): Promise<void> {
    const s = this.#s;
    const sc = this.#scope;
    const match = sc === undefined ? s.layout.everything() : s.layout.pattern(part(sc.tenant), part(sc.user), '*');
    await this.#unlinkMatching(match, 'clear', () => {
      this.#l1.clear();
      this.#grace?.clear();
    });
  }

  /**
   * A view whose keys (in L1 and in Redis) live apart from the root's and
   * every other scope's, and whose envelopes are bound to its scope. Same
   * API; narrows like {@link MemoryCache.scope}.
   */
  scope(scope: ScopeOptions): TieredCache<V> {
    const l1 = this.#l1.scope(scope);
    const tenant = part(this.#scope?.tenant) ?? part(scope.tenant);
    const user = part(this.#scope?.user) ?? part(scope.user);
    const sc: EnvelopeScope = {};
    if (tenant !== undefined) sc.tenant = tenant;
    if (user !== undefined) sc.user = user;
    return new TieredCache<V>(undefined as unknown as TieredCacheOptions, { s: this.#s, l1, scope: sc, grace: this.#grace?.scope(scope) });
  }

  /** L1 figures for this view, L2 and breaker figures for the whole cache. */
  stats(): TieredStats {
    const s = this.#s;
    const n = Math.min(s.sampled, SAMPLES);
    const sorted = Array.from(s.samples.subarray(0, n)).sort((a, b) => a - b);
    const at = (q: number) => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]!);
    return {
      l1: this.#l1.stats(),
      l2: {
        hits: s.hits,
        misses: s.misses,
        rejected: s.rejected,
        errors: { ...s.errors },
        writes: s.writes,
        latency: { count: s.sampled, p50: at(0.5), p99: at(0.99), max: n === 0 ? 0 : sorted[n - 1]! },
        foreignKeys: s.foreign,
        staleServed: s.staleServed,
      },
      breaker: { state: STATES[s.breaker.state()] ?? 'closed', opened: s.breaker.timesOpened() },
      coherence: s.coh === undefined ? undefined : coherenceStats(s),
      tags: { invalidations: s.tagInvalidations, invalidated: s.tagMisses, rollbacks: s.tagRollbacks },
    };
  }

  /** The cache's clock, in ms (for `memoize` and friends). */
  now(): number {
    return this.#s.now();
  }

  /** This view's L1: its namespace in the L1 cache (see `TieredCacheOptions.l1`). */
  get l1(): MemoryCache<unknown> {
    return this.#l1;
  }

  /** The Redis client. */
  get redis(): RedisRest {
    return this.#s.redis;
  }

  /** Ends the push stream (`push: true`); the cache goes on with the lease alone. */
  close(): void {
    const s = this.#s;
    if (s.push.state !== 'off') s.push.state = 'closed';
    s.sub?.close();
    s.sub = undefined;
  }

  /** Ends the push stream and frees the L1's wasm memory if this cache made its L1. */
  free(): void {
    this.close();
    this.#ownL1?.free();
  }
}
