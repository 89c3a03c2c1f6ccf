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
import { EdgeCacheError } from './errors.js';
import { isThenable } from './keys.js';
import { isCacheLike, ownCache, isTooLarge, type CacheLike } from './memoize.js';

/** A fetch-style handler: a request (and whatever the runtime passes after it) to a response. */
export type FetchHandler<A extends unknown[] = []> = (request: Request, ...rest: A) => Response | Promise<Response>;

/** Options of {@link cachePage}. */
export interface CachePageOptions {
  /**
   * Where pages live.
   * @default a new `MemoryCache()` of this handler's own
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
   * List here every header the handler's response depends on.
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
   * Response statuses that are stored.
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
 *   values of the `vary` request headers.
 * - Not stored: responses with `Cache-Control: no-store`, `private` or
 *   `no-cache`, with `Set-Cookie`, with `Vary: *`; responses to requests
 *   with `Authorization` (unless `authorization` is in `vary`, or the
 *   response says `public` or `s-maxage`); bodies over `maxBodyBytes` or
 *   that the cache refuses as too large.
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
  const cache = options.cache ?? ownCache();
  if (!isCacheLike(cache)) {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: cache must have get, set, delete and deletePattern methods');
  }
  const ttl = positive(options.ttl, 'ttl', 'INVALID_TTL');
  const swr = positive(options.staleWhileRevalidate, 'staleWhileRevalidate', 'INVALID_OPTION') ?? 0;
  if (swr > 0 && !(ttl !== undefined && ttl > 0)) {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: staleWhileRevalidate needs a ttl > 0');
  }
  const maxBody = positive(options.maxBodyBytes, 'maxBodyBytes', 'INVALID_OPTION') ?? 8 * 1024 * 1024;
  const vary = (options.vary ?? []).map((h) => {
    if (typeof h !== 'string' || h === '') throw new EdgeCacheError('INVALID_OPTION', 'cachePage: vary lists header names');
    return h.toLowerCase();
  });
  const statuses = new Set(options.statuses ?? [200]);
  const prefix = options.prefix ?? 'page:';
  const keyFn = options.key;
  if (keyFn !== undefined && typeof keyFn !== 'function') {
    throw new EdgeCacheError('INVALID_OPTION', 'cachePage: key must be a function of the request');
  }
  const cacheNow = (cache as { now?: unknown }).now;
  const now =
    options.now ?? (typeof cacheNow === 'function' ? () => (cacheNow as () => number).call(cache) : Date.now);
  const setOptions = ttl === undefined ? undefined : { ttl: ttl + swr };
  const varyAuth = vary.includes('authorization');
  const refreshing = new Set<string>();

  const keyOf = (request: Request): string => {
    const resource = keyFn === undefined ? request.url : keyFn(request);
    if (typeof resource !== 'string') {
      throw new EdgeCacheError('INVALID_KEY', `cachePage: key must return a string, got ${typeof resource}`);
    }
    let k = `${prefix}GET ${resource}`;
    for (const h of vary) {
      const v = request.headers.get(h);
      k += v === null ? `\n${h}!` : `\n${h}:${v}`;
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
  };

  /** Whether a response to this request may be stored. */
  const storable = (request: Request, res: Response): boolean => {
    if (!statuses.has(res.status)) return false;
    const cc = cacheControl(res.headers.get('cache-control'));
    if (cc.has('no-store') || cc.has('private') || cc.has('no-cache')) return false;
    if (res.headers.has('set-cookie')) return false;
    if (res.headers.get('vary')?.trim() === '*') return false;
    if (!varyAuth && request.headers.has('authorization') && !cc.has('public') && !cc.has('s-maxage')) return false;
    return true;
  };

  /** Stores a complete body; a value the cache refuses is just not stored. */
  const write = async (k: string, res: Response, body: Uint8Array): Promise<void> => {
    const h: [string, string][] = [];
    let age = 0;
    res.headers.forEach((value, name) => {
      if (name === 'age') age = Number.parseInt(value, 10) || 0;
      else if (name !== 'x-cache') h.push([name, value]);
    });
    const d = now();
    const meta: Meta = { s: res.status, t: res.statusText, h, d, f: swr > 0 ? d + ttl! : 0, a: age };
    try {
      const w = cache.set(k, encodePage(meta, body) as never, setOptions);
      if (isThenable(w)) await w;
    } catch (e) {
      if (!isTooLarge(e)) throw e;
    }
  };

  /** The response to a miss: streamed to the client, stored in the background once complete. */
  const forward = (request: Request, k: string, res: Response, rest: unknown[]): Response => {
    if (!storable(request, res)) return marked(res, 'MISS');
    if (res.body === null) {
      background(rest, write(k, res, new Uint8Array(0)));
      return marked(res, 'MISS');
    }
    const [client, copy] = res.body.tee();
    background(
      rest,
      readUpTo(copy, maxBody).then((body) => (body === undefined ? undefined : write(k, res, body))),
    );
    return marked(res, 'MISS', client);
  };

  /** Refreshes a stale entry once, with a GET (also when a HEAD found it stale). */
  const refresh = (request: Request, k: string, rest: A): void => {
    if (refreshing.has(k)) return;
    refreshing.add(k);
    const job = (async () => {
      try {
        const get = new Request(request.url, { method: 'GET', headers: request.headers });
        const res = await handler(get, ...rest);
        if (!storable(get, res) || res.body === null) {
          await res.body?.cancel();
          if (res.body === null && storable(get, res)) await write(k, res, new Uint8Array(0));
          return;
        }
        const body = await readUpTo(res.body, maxBody);
        if (body !== undefined) await write(k, res, body);
      } finally {
        refreshing.delete(k);
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
    const k = keyOf(request);
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
    const res = await handler(request, ...rest);
    if (method === 'HEAD') return marked(res, 'MISS');
    return forward(request, k, res, rest);
  };
}
