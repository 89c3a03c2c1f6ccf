// cachePage(): a read-through cache in front of a fetch-style handler
// `(request, ...rest) => Response | Promise<Response>` (Workers, Deno, Bun,
// Node fetch servers).
//
// An entry is one Uint8Array, so the cache measures it exactly (byteLength)
// and a remote tier can store it as bytes:
//   "ECP1" | u32 LE length of the metadata | metadata (UTF-8 JSON) | body
// The metadata holds status, status text, headers, when it was stored and
// until when it is fresh. Each hit replays a new Response whose body is a
// copy of the stored bytes, so nothing is ever consumed twice.
import { keepAlive } from '#wasm-init';
import { EdgeCacheError } from './errors.js';
import { flightsOf, isThenable, type Flight } from './keys.js';
import { isCacheLike, ownCache, type CacheLike } from './memoize.js';
import { isTooLarge, tagsOf as checkedTags } from './getorset.js';
import { checkOptionNames } from './cache.js';

/** A fetch-style handler: a request (and whatever the runtime passes after it) to a response. */
export type FetchHandler<A extends unknown[] = []> = (request: Request, ...rest: A) => Response | Promise<Response>;

/** Options of {@link cachePage}. */
export interface CachePageOptions {
  /**
   * Where pages live.
   * @default a scope of its own in the one default `MemoryCache` shared by
   * every helper given no cache (10 000 entries, 32 MiB in all)
   */
  cache?: CacheLike;
  /**
   * Milliseconds a page stays fresh; `0` for no expiry.
   * @default the cache's `defaultTtl`
   */
  ttl?: number;
  /**
   * Request headers whose values select different entries, as in the
   * `Vary` response header (case-insensitive), e.g. `['accept-language']`.
   * A response whose own `Vary` names a header not listed here is not
   * stored (it would be served to requests with other values), nor is one
   * with `Vary: *`. Credentials (`authorization`, `proxy-authorization`,
   * `cookie`, `x-api-key`) enter the key as a SHA-256 digest, never as
   * they are.
   * @default []
   */
  vary?: readonly string[];
  /**
   * Maps a request to the part of the key that names the resource, instead
   * of its full URL (e.g. to drop tracking parameters). The prefix, the
   * method and the `vary` headers are still added.
   * @default (request) => request.url
   */
  key?: (request: Request) => string;
  /**
   * Prepended to every key: `cache.deletePattern(prefix + '*')` empties the
   * page cache.
   * @default 'page:'
   */
  prefix?: string;
  /**
   * Response statuses that are stored: integers from 100 to 599.
   * @default [200]
   */
  statuses?: readonly number[];
  /**
   * Milliseconds after `ttl` during which a stale page is served (with
   * `x-cache: STALE`) while one request refreshes it in the background.
   * Needs `ttl > 0`.
   * @default 0
   */
  staleWhileRevalidate?: number;
  /**
   * Bodies longer than this are passed through and not stored (reading
   * stops there). The cache's own `maxBytes` also applies: a page it
   * refuses (`VALUE_TOO_LARGE`) is passed through.
   * @default 8388608 (8 MiB)
   */
  maxBodyBytes?: number;
  /**
   * Keeps background work alive (storing a body read while it streams to
   * the client, a stale-while-revalidate refresh). On Workers, pass
   * `ctx.waitUntil.bind(ctx)`, or let it be found: when a handler argument
   * after the request has a `waitUntil` method, it is used.
   * @default the `waitUntil` of a handler argument, else none
   */
  waitUntil?: (promise: Promise<unknown>) => void;
  /**
   * The clock, in milliseconds, for `age` and freshness.
   * @default the cache's `now()` if it has one, else `Date.now`
   */
  now?: () => number;
  /**
   * Tags each stored page carries, or a function of the request and the
   * response returning them (it must not read the body):
   * `cache.invalidateTags(tags)` on the same cache (and scope) makes the
   * pages carrying one of them miss. Added to those of `cacheTagHeader`.
   * A page whose tags break the rule of `SetOptions.tags` (or number more
   * than 64 together) is served and not stored. A page whose handler was
   * still running, or whose body was still being read, when one of its
   * tags (any tag, while its tags are not known yet) was invalidated in
   * this isolate is not stored either.
   * @default no tags
   */
  tags?: readonly string[] | ((request: Request, response: Response) => readonly string[] | undefined);
  /**
   * Also tag each page with the tags of its response's `Cache-Tag` header
   * (`true`), or of the header named (a string): comma-separated, each
   * trimmed, empty ones dropped, as Cloudflare reads it. The header is
   * kept in the stored and replayed response.
   * @default false
   */
  cacheTagHeader?: boolean | string;
}

const OPTION_NAMES = [
  'cache', 'ttl', 'vary', 'key', 'prefix', 'statuses', 'staleWhileRevalidate', 'maxBodyBytes', 'waitUntil', 'now',
  'tags', 'cacheTagHeader',
] as const;
const DONE = Promise.resolve();

/** Request headers that carry credentials: in a key, only their digest appears. */
const CREDENTIALS = new Set(['authorization', 'proxy-authorization', 'cookie', 'x-api-key']);

/** base64url of SHA-256 over a domain tag and `value` (Web Crypto: Workers, Node, Deno, Bun, browsers). */
async function digest(value: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(`edgecache/page-credential\0${value}`)));
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The header names of a `Vary` response header, lowercased; `['*']` if it has `*` anywhere. */
function varyNames(value: string | null): string[] {
  if (value === null) return [];
  const names = value
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  return names.includes('*') ? ['*'] : names;
}

/** A delta-seconds directive value (`max-age=60`), or undefined if absent or not a number. */
function seconds(cc: Map<string, string>, name: string): number | undefined {
  const v = cc.get(name);
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** What a response allows a shared cache: whether to store it, for how long at most, and whether stale use is allowed. */
interface Allowance {
  /** ms the response may be used for, from now; undefined: the `ttl` option decides. */
  lifetime: number | undefined;
  /** Whether it may be served stale (stale-while-revalidate). */
  stale: boolean;
}

/** A page as stored. */
interface Meta {
  /** status */
  s: number;
  /** status text */
  t: string;
  /** headers, without `age`, `x-cache` */
  h: [string, string][];
  /** stored at (ms) */
  d: number;
  /** fresh until (ms), 0 without stale-while-revalidate */
  f: number;
  /** the `age` the response had when stored, seconds */
  a: number;
}

interface Page {
  meta: Meta;
  bytes: Uint8Array;
  offset: number;
}

const MAGIC = [0x45, 0x43, 0x50, 0x31]; // "ECP1"
const NULL_BODY = new Set([101, 103, 204, 205, 304]);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** Decoded metadata of the entries seen (the same Uint8Array comes back on each MemoryCache hit). */
const decoded = new WeakMap<Uint8Array, Page>();

function encodePage(meta: Meta, body: Uint8Array): Uint8Array {
  const m = encoder.encode(JSON.stringify(meta));
  const out = new Uint8Array(8 + m.length + body.length);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, m.length, true);
  out.set(m, 8);
  out.set(body, 8 + m.length);
  return out;
}

function decodePage(x: unknown): Page | undefined {
  let bytes: Uint8Array;
  if (x instanceof Uint8Array) bytes = x;
  else if (x instanceof ArrayBuffer) bytes = new Uint8Array(x);
  else return undefined;
  const known = decoded.get(bytes);
  if (known !== undefined) return known;
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) return undefined;
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(4, true);
  if (8 + len > bytes.length) return undefined;
  let meta: Meta;
  try {
    meta = JSON.parse(decoder.decode(bytes.subarray(8, 8 + len)));
  } catch {
    return undefined;
  }
  if (meta === null || typeof meta !== 'object' || typeof meta.s !== 'number' || !Array.isArray(meta.h)) return undefined;
  const page = { meta, bytes, offset: 8 + len };
  decoded.set(bytes, page);
  return page;
}

/** The directives of a Cache-Control header, lowercased (`{ 'max-age': '60', private: '' }`). */
function cacheControl(value: string | null): Map<string, string> {
  const out = new Map<string, string>();
  if (value === null) return out;
  for (const part of value.split(',')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (name !== '') out.set(name, eq === -1 ? '' : part.slice(eq + 1).trim().replace(/^"|"$/g, ''));
  }
  return out;
}

/** A response with `x-cache` (and the other headers given) added; the body is handed over, not read. */
function marked(res: Response, xCache: string, body: ReadableStream<Uint8Array> | null = res.body): Response {
  try {
    const headers = new Headers(res.headers);
    headers.set('x-cache', xCache);
    return new Response(body, { status: res.status, statusText: res.statusText, headers });
  } catch {
    // A status the constructor refuses (an opaque or 101 response): as is.
    return res;
  }
}

/** Reads a stream to the end, or gives up (and cancels) past `limit` bytes. */
async function readUpTo(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array | undefined> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const chunk = value instanceof Uint8Array ? value : new Uint8Array(value as ArrayBufferLike);
      total += chunk.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        return undefined;
      }
      chunks.push(chunk);
    }
  } catch {
    return undefined; // the body failed: the client sees the error, nothing is stored
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

function fn(x: unknown, name: string): void {
  if (x !== undefined && typeof x !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', `cachePage: ${name} must be a function, got ${x === null ? 'null' : typeof x}`);
  }
}

function positive(x: unknown, name: string, code: 'INVALID_TTL' | 'INVALID_OPTION'): number | undefined {
  if (x === undefined) return undefined;
  if (typeof x !== 'number' || !(x >= 0) || x === Infinity) {
    throw new EdgeCacheError(code, `cachePage: ${name} must be a finite number >= 0, got ${String(x)}`);
  }
  return x;
}

/**
 * Caches the responses of a fetch-style handler.
 *
 * - Only GET responses with a listed status (200) are stored; a HEAD
 *   request is served from the stored GET (headers, no body), and a HEAD
 *   miss is passed through without being stored. Other methods pass through
 *   untouched.
 * - The key is the prefix, `GET`, the URL (or `key(request)`) and the
 *   values of the `vary` request headers (credentials as a SHA-256 digest).
 * - Not stored: responses with `Cache-Control: no-store`, `private` or
 *   `no-cache`, with `Set-Cookie`, with a `Vary` that has `*` or names a
 *   header missing from the `vary` option; bodies over `maxBodyBytes` or
 *   that the cache refuses as too large.
 * - Requests with `Authorization` (unless `authorization` is in `vary`,
 *   which keys entries by credential) follow RFC 9111 §3.5: stored only if
 *   the response says `public`, `must-revalidate` or `s-maxage`, for no
 *   longer than its `s-maxage` (else `max-age`) allows, never served stale;
 *   `s-maxage=0` is not stored.
 * - `s-maxage` (else `max-age`) also caps the `ttl` of any response that
 *   says `must-revalidate` or `proxy-revalidate`, which are never served
 *   stale.
 * - A request with `Cache-Control: no-cache` (or `Pragma: no-cache`) skips
 *   the lookup and refreshes the entry; with `no-store` it neither reads
 *   nor writes.
 * - Responses carry `x-cache: HIT`, `MISS` or `STALE`; hits carry `age`
 *   (seconds since stored).
 * - A body is streamed to the client as it arrives and stored once
 *   complete (a tee), so a stored page becomes a hit a moment after its
 *   miss has been read; that storing is handed to `waitUntil`.
 *
 * @example
 * ```ts
 * export default { fetch: cachePage(app.fetch, { ttl: 30_000, vary: ['accept-language'] }) };
 * ```
 */
export function cachePage<A extends unknown[] = []>(
  handler: FetchHandler<A>,
  options: CachePageOptions = {},
): (request: Request, ...rest: A) => Promise<Response> {
  if (typeof handler !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', `cachePage takes a handler function, got ${typeof handler}`);
  }
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: options must be an object');
  }
  checkOptionNames(options, OPTION_NAMES, 'cachePage');
  const cache = options.cache ?? ownCache('page');
  if (!isCacheLike(cache)) {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: cache must have get, set, delete and deletePattern methods');
  }
  const ttl = positive(options.ttl, 'ttl', 'INVALID_TTL');
  const swr = positive(options.staleWhileRevalidate, 'staleWhileRevalidate', 'INVALID_OPTION') ?? 0;
  if (swr > 0 && !(ttl !== undefined && ttl > 0)) {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: staleWhileRevalidate needs a ttl > 0');
  }
  const maxBody = positive(options.maxBodyBytes, 'maxBodyBytes', 'INVALID_OPTION') ?? 8 * 1024 * 1024;
  if (options.vary !== undefined && !Array.isArray(options.vary)) {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: vary is an array of header names');
  }
  const vary = (options.vary ?? []).map((h) => {
    if (typeof h !== 'string' || h === '') throw new EdgeCacheError('INVALID_OPTION', 'cachePage: vary lists header names');
    return h.toLowerCase();
  });
  if (options.statuses !== undefined && !Array.isArray(options.statuses)) {
    throw new EdgeCacheError('INVALID_OPTION', `cachePage: statuses is an array of status codes, e.g. [200, 404], got ${typeof options.statuses}`);
  }
  const statuses = new Set(options.statuses ?? [200]);
  for (const st of statuses) {
    if (!Number.isInteger(st) || st < 100 || st > 599) {
      throw new EdgeCacheError('INVALID_OPTION', `cachePage: statuses are integers from 100 to 599, got ${String(st)}`);
    }
  }
  const prefix = options.prefix ?? 'page:';
  if (typeof prefix !== 'string') {
    throw new EdgeCacheError('INVALID_OPTION', `cachePage: prefix must be a string, got ${typeof prefix}`);
  }
  const keyFn = options.key;
  fn(keyFn, 'key');
  fn(options.now, 'now');
  fn(options.waitUntil, 'waitUntil');
  const cacheNow = (cache as { now?: unknown }).now;
  const now =
    options.now ?? (typeof cacheNow === 'function' ? () => (cacheNow as () => number).call(cache) : Date.now);
  const varyAuth = vary.includes('authorization');
  const varySet = new Set(vary);
  const refreshing = new Set<string>();
  const tagOpt = options.tags;
  const staticTags = typeof tagOpt === 'function' ? undefined : checkedTags(tagOpt);
  const tagHeader = options.cacheTagHeader === true ? 'cache-tag' : options.cacheTagHeader || undefined;
  if (tagHeader !== undefined && typeof tagHeader !== 'string') {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: cacheTagHeader is a boolean or a header name');
  }
  const tagging = tagOpt !== undefined || tagHeader !== undefined;
  const flights = flightsOf(cache);

  /** The checked tags of a response to store; throws INVALID_TAG. */
  const tagsOf = (request: Request, res: Response): readonly string[] | undefined => {
    let list: readonly string[] = staticTags ?? (typeof tagOpt === 'function' ? (tagOpt(request, res) ?? []) : []);
    const h = tagHeader === undefined ? null : res.headers.get(tagHeader);
    if (h !== null) {
      if (!Array.isArray(list)) return checkedTags(list);
      list = [...list, ...h.split(',').map((t) => t.trim()).filter((t) => t !== '')];
    }
    return checkedTags(list);
  };
  /**
   * With tags, a page load is registered as a flight under its key, so
   * that invalidateTags (any tag until the page's tags are known) stops it
   * from storing what it read before the invalidation (keys.ts).
   */
  const track = (k: string): Flight | undefined => {
    if (!tagging) return undefined;
    const f: Flight = { promise: DONE, sync: true, tags: staticTags ?? true };
    flights.set(k, f);
    return f;
  };
  const untrack = (k: string, f: Flight | undefined): void => {
    if (f !== undefined && flights.get(k) === f) flights.delete(k);
  };

  const keyOf = async (request: Request): Promise<string> => {
    const resource = keyFn === undefined ? request.url : keyFn(request);
    if (typeof resource !== 'string') {
      throw new EdgeCacheError('INVALID_KEY', `cachePage: key must return a string, got ${typeof resource}`);
    }
    let k = `${prefix}GET ${resource}`;
    for (const h of vary) {
      const v = request.headers.get(h);
      if (v === null) k += `\n${h}!`;
      else if (CREDENTIALS.has(h)) k += `\n${h}#${await digest(v)}`;
      else k += `\n${h}:${v}`;
    }
    return k;
  };

  const background = (rest: unknown[], job: Promise<unknown>): void => {
    const safe = job.catch(() => {});
    if (options.waitUntil !== undefined) {
      options.waitUntil(safe);
      return;
    }
    for (const arg of rest) {
      const w = (arg as { waitUntil?: unknown } | null)?.waitUntil;
      if (typeof w === 'function') {
        w.call(arg, safe);
        return;
      }
    }
    // In Workers, the current request's waitUntil all the same.
    keepAlive(safe);
  };

  /**
   * What a shared cache may do with a response to this request: `null` if
   * it may not store it at all.
   */
  const storable = (request: Request, res: Response): Allowance | null => {
    if (!statuses.has(res.status)) return null;
    const cc = cacheControl(res.headers.get('cache-control'));
    if (cc.has('no-store') || cc.has('private') || cc.has('no-cache')) return null;
    if (res.headers.has('set-cookie')) return null;
    // The response depends on these request headers: reusable only if each is in the key.
    for (const name of varyNames(res.headers.get('vary'))) if (!varySet.has(name)) return null;
    const maxAge = seconds(cc, 's-maxage') ?? seconds(cc, 'max-age');
    const revalidate = cc.has('must-revalidate') || cc.has('proxy-revalidate') || cc.has('s-maxage');
    const authorized = !varyAuth && request.headers.has('authorization');
    if (authorized) {
      // RFC 9111 §3.5: only these directives let a shared cache reuse a response to an authorized request.
      if (!cc.has('public') && !cc.has('must-revalidate') && !cc.has('s-maxage')) return null;
    }
    if (!authorized && !revalidate) return { lifetime: undefined, stale: true };
    if (maxAge === undefined) {
      // s-maxage present but unreadable: do not guess.
      if (cc.has('s-maxage')) return null;
      return { lifetime: undefined, stale: false };
    }
    const age = Number.parseInt(res.headers.get('age') ?? '0', 10) || 0;
    const lifetime = (maxAge - age) * 1000;
    // Already stale (s-maxage=0, max-age=0): it must be revalidated before each use, which this cache cannot do.
    if (lifetime <= 0) return null;
    return { lifetime, stale: false };
  };

  /** Stores a complete body; a value the cache refuses is just not stored. */
  const write = async (
    k: string,
    res: Response,
    body: Uint8Array,
    allowed: Allowance,
    tags?: readonly string[],
    f?: Flight,
  ): Promise<void> => {
    if (f !== undefined && flights.get(k) !== f) return;
    const h: [string, string][] = [];
    let age = 0;
    res.headers.forEach((value, name) => {
      if (name === 'age') age = Number.parseInt(value, 10) || 0;
      else if (name !== 'x-cache') h.push([name, value]);
    });
    const d = now();
    // Never longer than the response allows; 0 (no expiry) counts as longer than anything.
    let fresh = ttl;
    const life = allowed.lifetime;
    if (life !== undefined && (fresh === undefined || fresh === 0 || life < fresh)) fresh = life;
    const stale = allowed.stale ? swr : 0;
    const meta: Meta = { s: res.status, t: res.statusText, h, d, f: stale > 0 ? d + fresh! : 0, a: age };
    // No `tags` key without tags: a cache that knows no tags (an older TieredCache) refuses one.
    const setOptions = fresh === undefined ? (tags === undefined ? undefined : { tags }) : tags === undefined ? { ttl: fresh + stale } : { ttl: fresh + stale, tags };
    try {
      const w = cache.set(k, encodePage(meta, body) as never, setOptions);
      if (isThenable(w)) await w;
    } catch (e) {
      if (!isTooLarge(e)) throw e;
    } finally {
      untrack(k, f);
    }
  };

  /** The checked tags of a response, `null` if they break the rule (the page is then not stored). */
  const tagsFor = (request: Request, res: Response, k: string, f: Flight | undefined): readonly string[] | undefined | null => {
    if (!tagging) return undefined;
    try {
      const tags = tagsOf(request, res);
      if (f !== undefined && flights.get(k) === f) f.tags = tags;
      return tags;
    } catch {
      untrack(k, f);
      return null;
    }
  };

  /** The response to a miss: streamed to the client, stored in the background once complete. */
  const forward = (request: Request, k: string, res: Response, rest: unknown[], f: Flight | undefined): Response => {
    const allowed = storable(request, res);
    const tags = allowed === null ? null : tagsFor(request, res, k, f);
    if (allowed === null || tags === null) {
      untrack(k, f);
      return marked(res, 'MISS');
    }
    if (res.body === null) {
      background(rest, write(k, res, new Uint8Array(0), allowed, tags, f));
      return marked(res, 'MISS');
    }
    const [client, copy] = res.body.tee();
    background(
      rest,
      readUpTo(copy, maxBody).then((body) => (body === undefined ? untrack(k, f) : write(k, res, body, allowed, tags, f))),
    );
    return marked(res, 'MISS', client);
  };

  /** Refreshes a stale entry once, with a GET (also when a HEAD found it stale). */
  const refresh = (request: Request, k: string, rest: A): void => {
    if (refreshing.has(k)) return;
    refreshing.add(k);
    const f = track(k);
    const job = (async () => {
      try {
        const get = new Request(request.url, { method: 'GET', headers: request.headers });
        const res = await handler(get, ...rest);
        const allowed = storable(get, res);
        const tags = allowed === null ? null : tagsFor(get, res, k, f);
        if (allowed === null || tags === null || res.body === null) {
          await res.body?.cancel();
          if (res.body === null && allowed !== null && tags !== null) await write(k, res, new Uint8Array(0), allowed, tags, f);
          return;
        }
        const body = await readUpTo(res.body, maxBody);
        if (body !== undefined) await write(k, res, body, allowed, tags, f);
      } finally {
        refreshing.delete(k);
        untrack(k, f);
      }
    })();
    background(rest, job);
  };

  const replay = (page: Page, head: boolean, xCache: string, at: number): Response => {
    const { meta, bytes, offset } = page;
    const headers = new Headers(meta.h);
    headers.set('x-cache', xCache);
    headers.set('age', String(meta.a + Math.max(0, Math.floor((at - meta.d) / 1000))));
    // The Response constructor copies a BufferSource body: each hit gets its own bytes.
    const body = head || NULL_BODY.has(meta.s) ? null : (bytes.subarray(offset) as Uint8Array<ArrayBuffer>);
    return new Response(body, { status: meta.s, statusText: meta.t, headers });
  };

  return async function cachedHandler(request: Request, ...rest: A): Promise<Response> {
    const method = request.method;
    if (method !== 'GET' && method !== 'HEAD') return handler(request, ...rest);
    const cc = cacheControl(request.headers.get('cache-control'));
    if (cc.has('no-store')) return marked(await handler(request, ...rest), 'MISS');
    const k = await keyOf(request);
    const noCache = cc.has('no-cache') || (cc.size === 0 && request.headers.get('pragma')?.includes('no-cache') === true);
    if (!noCache) {
      let e = cache.get(k);
      if (isThenable(e)) e = await e;
      const page = decodePage(e);
      if (page !== undefined) {
        const at = now();
        const stale = page.meta.f !== 0 && page.meta.f <= at;
        if (stale) refresh(request, k, rest);
        return replay(page, method === 'HEAD', stale ? 'STALE' : 'HIT', at);
      }
    }
    if (method === 'HEAD') return marked(await handler(request, ...rest), 'MISS');
    const f = track(k);
    let res: Response;
    try {
      res = await handler(request, ...rest);
    } catch (e) {
      untrack(k, f);
      throw e;
    }
    return forward(request, k, res, rest, f);
  };
}
