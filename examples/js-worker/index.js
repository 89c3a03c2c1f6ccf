// The example JS Worker: a read-through cache in front of an origin, built
// with the npm package and fromEnv(env): L1 only by default, tiered (this
// isolate's L1 in front of Redis, values signed) once the Redis bindings
// are set. `make dev-js` serves it locally on workerd (wrangler dev).
//
//   GET  /<anything>                 the origin's answer, cached
//                                    (x-cache: MISS | HIT | STALE; x-cache-tier: l1 | l2 on hits)
//   GET  /__edgecache/stats          the cache's statistics, JSON
//   GET  /__edgecache                the same as a small HTML page
//   DELETE /__edgecache/purge?pattern=<glob>
//                                    deletes the cached paths matching the glob (L1 and L2);
//                                    needs `Authorization: Bearer <EDGECACHE_ADMIN_TOKEN>`
//   GET | PUT | DELETE /__edgecache/kv/<key>?tenant=&user=&ttl=
//                                    the cache as a JSON key-value store (root, or the scope
//                                    named), same token: the Rust example Worker's route, same
//                                    keys, scopes, values and answers (GET: the value with
//                                    x-cache-tier, or 404; PUT: a JSON body, or raw bytes sent
//                                    as application/octet-stream and served so, 204; DELETE:
//                                    {"deleted": bool}; errors {"error", "message", "outcome"};
//                                    x-edgecache-breaker when tiered), so each reads what the
//                                    other wrote; PUT takes &tags=a,b (comma separated)
//   POST /__edgecache/invalidate-tags?tags=a,b&tenant=&user=
//                                    invalidates the tags in the scope (every Worker and Node
//                                    on the same Redis), same token: {"invalidated": n}
//
// Bindings: ORIGIN_URL (default: the demo origin below, deliberately slow,
// so the Worker works offline), EDGECACHE_ADMIN_TOKEN (a secret), and
// fromEnv's: EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN,
// EDGECACHE_SIGNING_KEYS, EDGECACHE_MAX_ENTRIES, ... (README.md).
import { fromEnv } from 'edgecache';

/**
 * How long a page is fresh (var CACHE_TTL, ms), then how long it may still
 * be served, STALE, while one request refreshes it (var STALE_TTL, ms): the
 * same vars as the Rust example Worker's.
 */
const ms = (v, dflt) => (/^\d{1,9}$/.test(String(v ?? '')) ? Number(v) : dflt);
const freshMs = (env) => ms(env.CACHE_TTL, 60_000);
const staleMs = (env) => ms(env.STALE_TTL, 300_000);
/** The largest body kept (bigger ones are passed through). */
const MAX_BODY = 512 * 1024;
const ADMIN = '/__edgecache';

/** The demo origin: slow on purpose, so a HIT is visibly faster than a MISS. */
let renders = 0;
async function demoOrigin(url) {
  await new Promise((resolve) => setTimeout(resolve, 250));
  renders++;
  return Response.json(
    { path: url.pathname, query: url.search, renderedAt: new Date().toISOString(), render: renders },
    { headers: { 'cache-control': 'public, max-age=30' } },
  );
}

async function fromOrigin(env, url) {
  if (!env.ORIGIN_URL) return demoOrigin(url);
  return fetch(new URL(url.pathname + url.search, env.ORIGIN_URL), { headers: { accept: '*/*' } });
}

// Bodies travel as base64 in the cache: values must be JSON for the Redis tier.
function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
function fromBase64(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const SKIP_HEADERS = new Set(['set-cookie', 'content-length', 'content-encoding', 'transfer-encoding', 'connection', 'x-cache', 'x-cache-tier']);

/** Fetches from the origin and stores a cacheable answer; returns the response for the client. */
async function fill(cache, env, url, key) {
  const res = await fromOrigin(env, url);
  const cacheable = res.status === 200 && !res.headers.has('set-cookie') && !/no-store|private/.test(res.headers.get('cache-control') ?? '');
  if (!cacheable) return res;
  const bytes = new Uint8Array(await res.arrayBuffer());
  const headers = [];
  res.headers.forEach((v, k) => {
    if (!SKIP_HEADERS.has(k)) headers.push([k, v]);
  });
  if (bytes.length <= MAX_BODY) {
    const entry = { s: res.status, h: headers, b: toBase64(bytes), f: Date.now() + freshMs(env) };
    // A Redis failure never fails the request: the cache fails open (it counts the error).
    await cache.set(key, entry, { ttl: freshMs(env) + staleMs(env) }).catch(() => {});
  }
  return new Response(bytes, { status: res.status, headers });
}

function replay(entry, xCache, tier) {
  const headers = new Headers(entry.h);
  headers.set('x-cache', xCache);
  if (tier) headers.set('x-cache-tier', tier);
  return new Response(fromBase64(entry.b), { status: entry.s, headers });
}

/** Keys being refreshed in this isolate: plain data, never a promise another request awaits. */
const refreshing = new Set();

async function cached(request, env, ctx, cache) {
  const url = new URL(request.url);
  // The key is the path and query; purge globs match it (`/blog/*`).
  const key = url.pathname + url.search;
  const tier = cache.l1.has(key) ? 'l1' : 'l2';
  const entry = await cache.get(key);
  if (entry && typeof entry.b === 'string') {
    if (entry.f > Date.now()) return replay(entry, 'HIT', tier);
    if (!refreshing.has(key)) {
      refreshing.add(key);
      ctx.waitUntil(
        fill(cache, env, url, key)
          .then((r) => r.body?.cancel())
          .catch(() => {})
          .finally(() => refreshing.delete(key)),
      );
    }
    return replay(entry, 'STALE', tier);
  }
  const res = await fill(cache, env, url, key);
  const out = new Response(res.body, res);
  out.headers.set('x-cache', 'MISS');
  return out;
}

// ---- admin ----

async function sameSecret(a, b) {
  const enc = new TextEncoder();
  const [x, y] = await Promise.all([crypto.subtle.digest('SHA-256', enc.encode(a)), crypto.subtle.digest('SHA-256', enc.encode(b))]);
  const p = new Uint8Array(x);
  const q = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < p.length; i++) diff |= p[i] ^ q[i];
  return diff === 0;
}

/**
 * `null` if the request carries the admin token, else the answer to give:
 * 401 without an Authorization header, 403 with a wrong token (or when no
 * EDGECACHE_ADMIN_TOKEN is configured: then nobody may; set one with
 * `wrangler secret put EDGECACHE_ADMIN_TOKEN`).
 */
async function unauthorized(request, env) {
  const auth = request.headers.get('authorization');
  if (auth === null) {
    return Response.json({ error: 'send Authorization: Bearer <EDGECACHE_ADMIN_TOKEN>' }, { status: 401, headers: { 'www-authenticate': 'Bearer' } });
  }
  const given = /^Bearer (.+)$/.exec(auth)?.[1]?.trim() ?? '';
  if (!env.EDGECACHE_ADMIN_TOKEN || !(await sameSecret(given, env.EDGECACHE_ADMIN_TOKEN))) {
    return Response.json({ error: 'wrong token' }, { status: 403 });
  }
  return null;
}

async function purge(request, env, cache) {
  const denied = await unauthorized(request, env);
  if (denied !== null) return denied;
  const pattern = new URL(request.url).searchParams.get('pattern');
  if (!pattern) return Response.json({ error: 'give the glob to purge: ?pattern=/blog/*' }, { status: 400 });
  try {
    // The caller's glob, as given, over the cached paths (L1 and L2).
    return Response.json({ pattern, deleted: await cache.deletePattern(pattern) });
  } catch (e) {
    // Deletes never fail open: a delete Redis did not see would let the value come back.
    return Response.json({ error: `not purged: ${e.message}`, code: e.code }, { status: 503 });
  }
}

// ---- the cache as a JSON key-value store: what the Rust example's
// ---- /__edgecache/kv/ does, answer for answer, so that either Worker
// ---- (and Node's TieredCache, same prefix and keys) reads what another wrote.

const KV = `${ADMIN}/kv/`;
const plain = (text, status) => new Response(text, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });

/**
 * The key in the path, percent-decoded as the Rust example decodes it: the
 * bytes as UTF-8 (invalid sequences become U+FFFD), a malformed escape kept
 * as it is (where decodeURIComponent would throw), a leading BOM kept.
 */
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
function decodeKey(raw) {
  const b = new TextEncoder().encode(raw);
  const hex = (c) => (c >= 48 && c <= 57 ? c - 48 : c >= 65 && c <= 70 ? c - 55 : c >= 97 && c <= 102 ? c - 87 : -1);
  const out = new Uint8Array(b.length);
  let n = 0;
  for (let i = 0; i < b.length; i++) {
    if (b[i] === 37 && i + 2 < b.length && hex(b[i + 1]) >= 0 && hex(b[i + 2]) >= 0) {
      out[n++] = (hex(b[i + 1]) << 4) | hex(b[i + 2]);
      i += 2;
    } else {
      out[n++] = b[i];
    }
  }
  return utf8.decode(out.subarray(0, n));
}

/**
 * An error of the cache as JSON, as the Rust example answers it: its code,
 * its message and whether a write may have happened (`outcome`:
 * "not-applied", or "unknown" when the request was sent and no usable
 * answer came back). The pre-write checks only the JS side makes (a key,
 * a value it cannot store) are the caller's mistake: 400.
 */
const STATUS = {
  L2_UNAVAILABLE: 503, // the breaker refused it: nothing was sent
  L2_REDIS: 502, // Redis answered, refusing the command
  NOT_AN_INTEGER: 409,
  OVERFLOW: 409,
  INVALID_SCOPE: 400,
  INVALID_OPTION: 400,
  INVALID_TTL: 400,
  INVALID_KEY: 400,
  UNSERIALIZABLE_VALUE: 400,
  VALUE_TOO_LARGE: 400,
  ENVELOPE_TOO_LARGE: 400,
  INVALID_TAG: 400,
};
function tierError(e) {
  const code = typeof e?.code === 'string' ? e.code : 'INTERNAL';
  const status = STATUS[code] ?? (code.startsWith('L2_') ? 503 : 500);
  const outcome = STATUS[code] === undefined ? 'unknown' : 'not-applied';
  return Response.json({ error: code, message: String(e?.message ?? e), outcome }, { status });
}

/** `x-edgecache-breaker: closed | open | half-open` on an answer of a tiered cache (a 404 with `open`: Redis out of reach). */
function withBreaker(response, root) {
  const state = root.stats().breaker?.state;
  if (state !== undefined) response.headers.set('x-edgecache-breaker', state);
  return response;
}

/** The view `?tenant=&user=` name (the root if neither), or the 400 to answer. */
function viewOf(root, url) {
  const tenant = url.searchParams.get('tenant');
  const user = url.searchParams.get('user');
  if (tenant === null && user === null) return root;
  // As the Rust Scope::new: strings as given (`user=42` is the user "42", as 42 is), none empty.
  if (tenant === '' || user === '') return plain(`INVALID_SCOPE ${tenant === '' ? 'tenant' : 'user'} is empty\n`, 400);
  try {
    return root.scope({ ...(tenant === null ? {} : { tenant }), ...(user === null ? {} : { user }) });
  } catch (e) {
    return plain(`${e.message}\n`, 400);
  }
}

/** The tags of `?tags=a,b`, split on commas as the Rust example splits them (none if absent or empty). */
function tagsOf(url) {
  const t = url.searchParams.get('tags');
  return t === null || t === '' ? [] : t.split(',');
}

/** `POST /__edgecache/invalidate-tags?tags=a,b&tenant=&user=` (same token as kv): `{"invalidated": n}`. */
async function invalidateTags(request, env, root, url) {
  const denied = await unauthorized(request, env);
  if (denied !== null) return denied;
  if (request.method !== 'POST') return new Response('use POST\n', { status: 405, headers: { allow: 'POST' } });
  const tags = tagsOf(url);
  if (tags.length === 0) return plain('give ?tags=a,b (comma separated)\n', 400);
  const view = viewOf(root, url);
  if (view instanceof Response) return view;
  let answer;
  try {
    // Throws when Redis did not see it: the tags would stay valid elsewhere.
    answer = Response.json({ invalidated: await view.invalidateTags(tags) });
  } catch (e) {
    answer = tierError(e);
  }
  return withBreaker(answer, root);
}

/** `GET | PUT | DELETE /__edgecache/kv/<key>?tenant=&user=&ttl=&tags=` on the root cache (not the pages' scope). */
async function kv(request, env, root, url) {
  const denied = await unauthorized(request, env);
  if (denied !== null) return denied;
  const key = decodeKey(url.pathname.slice(KV.length));
  const view = viewOf(root, url);
  if (view instanceof Response) return view;
  let answer;
  try {
    answer = await kvOp(request, view, key, url);
  } catch (e) {
    answer = tierError(e);
  }
  return withBreaker(answer, root);
}

async function kvOp(request, view, key, url) {
  switch (request.method) {
    case 'GET': {
      // Whether L1 holds it, asked just before the (synchronous) L1 read of get().
      const tier = view.l1.has(key) ? 'l1' : 'l2';
      const value = await view.get(key);
      if (value === undefined) return plain('not found\n', 404);
      // Raw bytes (stored from a Uint8Array, here or by the Rust side's set_bytes): served as they are.
      if (value instanceof Uint8Array) return new Response(value, { headers: { 'content-type': 'application/octet-stream', 'x-cache-tier': tier } });
      return Response.json(value, { headers: { 'x-cache-tier': tier } });
    }
    case 'PUT': {
      let value;
      if ((request.headers.get('content-type') ?? '').startsWith('application/octet-stream')) {
        value = new Uint8Array(await request.arrayBuffer());
      } else {
        try {
          value = JSON.parse(await request.text());
        } catch {
          return plain('the body must be JSON (or application/octet-stream)\n', 400);
        }
      }
      // ms; absent or not a whole number: 0, no expiry (as the Rust route: not EDGECACHE_DEFAULT_TTL).
      // Fails open: with Redis down the value lands in L1 alone.
      const t = url.searchParams.get('ttl');
      const ttl = t !== null && /^\+?\d{1,20}$/.test(t) ? Number(t) : 0;
      const tags = tagsOf(url);
      await view.set(key, value, tags.length === 0 ? { ttl } : { ttl, tags });
      return new Response(null, { status: 204 });
    }
    case 'DELETE':
      // Throws when Redis did not see it: the value would come back.
      return Response.json({ deleted: await view.delete(key) });
    default:
      return plain('method not allowed\n', 405);
  }
}

function statsOf(cache, env) {
  const s = cache.stats();
  return { tiered: s.l2 !== null, origin: env.ORIGIN_URL || 'demo', ...s };
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(stats) {
  const { l1, l2, breaker } = stats;
  const rows = [
    ['hit rate (L1)', `${(l1.hitRate * 100).toFixed(1)} % (${l1.hits} hits, ${l1.misses} misses)`],
    ['entries', `${l1.entries} of ${l1.maxEntries}`],
    ['bytes', `${l1.bytes} of ${l1.maxBytes}`],
    ['L2 (Redis)', l2 === null ? 'off: L1 only (set EDGECACHE_REDIS_URL, EDGECACHE_REDIS_TOKEN, EDGECACHE_SIGNING_KEYS)' : `${l2.hits} hits, ${l2.misses} misses, ${l2.rejected} rejected, ${l2.writes} writes, errors ${JSON.stringify(l2.errors)}, p50 ${l2.latency.p50.toFixed(1)} ms`],
    ['breaker', breaker === null ? '-' : `${breaker.state} (opened ${breaker.opened} times)`],
    ['origin', stats.origin],
  ];
  const body = rows.map(([k, v]) => `<tr><th>${escape(k)}</th><td>${escape(v)}</td></tr>`).join('');
  return new Response(
    `<!doctype html><meta charset="utf-8"><title>edgecache</title><h1>edgecache</h1><table>${body}</table><p><a href="${ADMIN}/stats">JSON</a></p>`,
    { headers: { 'content-type': 'text/html; charset=utf-8' } },
  );
}

const pages = new WeakMap();

export default {
  async fetch(request, env, ctx) {
    // One cache per isolate: fromEnv returns the same instance on every request.
    // Pages live in a scope of their own, so a purge glob reaches pages only;
    // the view is made once per cache, not per request.
    const root = fromEnv(env);
    let cache = pages.get(root);
    if (cache === undefined) pages.set(root, (cache = root.scope({ tenant: 'pages' })));
    const { pathname } = new URL(request.url);
    if (pathname === `${ADMIN}/stats`) return Response.json(statsOf(root, env));
    if (pathname === ADMIN) return page(statsOf(root, env));
    if (pathname === `${ADMIN}/purge`) {
      if (request.method !== 'DELETE') return new Response('use DELETE\n', { status: 405, headers: { allow: 'DELETE' } });
      return purge(request, env, cache);
    }
    if (pathname.startsWith(KV)) return kv(request, env, root, new URL(request.url));
    if (pathname === `${ADMIN}/invalidate-tags`) return invalidateTags(request, env, root, new URL(request.url));
    if (request.method !== 'GET') return fromOrigin(env, new URL(request.url));
    return cached(request, env, ctx, cache);
  },
};
