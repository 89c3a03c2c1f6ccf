// The cross-request rule in workerd (tests/js/js-worker.test.mjs): a request
// must never wait on another request's I/O. Two concurrent requests for the
// same missing key must both succeed.
//   /response/<k>  memoize of a function that returns the origin's Response
//                  (an I/O object), read through clone(), in a cache that cannot keep it: only
//                  single-flight could hand one request's Response to another
//   /memo/<k>      memoize over fromEnv(env) (TieredCache with Redis bindings)
//   /get/<k>       fromEnv(env).get, then set on a miss
//   /swr/<k>       memoize with staleWhileRevalidate: a stale hit answers at
//                  once and refreshes in the background, through the origin
//                  (I/O that must outlive the request that started it)
import { MemoryCache, memoize, fromEnv } from 'edgecache';

const nothingKept = new MemoryCache({ maxBytes: 1024, sizeOf: () => 1 << 20 });
const fetchOrigin = memoize((k, env) => fetch(`${env.ORIGIN}/${k}`), { cache: nothingKept, key: (k) => k });

const memos = new WeakMap();
function memoOf(cache, env) {
  let m = memos.get(cache);
  if (m === undefined) {
    m = memoize(async (k) => (await fetch(`${env.ORIGIN}/${k}`)).text(), { cache, prefix: 'memo:', ttl: 60_000 });
    memos.set(cache, m);
  }
  return m;
}

let refreshed = 0;
let swr;
function swrOf(env) {
  swr ??= memoize(
    async (k) => `${await (await fetch(`${env.ORIGIN}/${k}`)).text()} #${++refreshed}`,
    { cache: new MemoryCache(), ttl: 1_000, staleWhileRevalidate: 60_000 },
  );
  return swr;
}

export default {
  async fetch(request, env) {
    const [, kind, k] = new URL(request.url).pathname.split('/');
    try {
      if (kind === 'response') return new Response(await (await fetchOrigin(k, env)).clone().text());
      if (kind === 'swr') return new Response(await swrOf(env)(k));
      if (kind === 'memo') return new Response(await memoOf(fromEnv(env), env)(k));
      if (kind === 'get') {
        const cache = fromEnv(env);
        let v = await cache.get(`get:${k}`);
        if (v === undefined) {
          v = await (await fetch(`${env.ORIGIN}/${k}`)).text();
          await cache.set(`get:${k}`, v);
        }
        return new Response(v);
      }
      return new Response('no such route', { status: 404 });
    } catch (e) {
      return new Response(`${e.name}: ${e.message}`, { status: 500 });
    }
  },
};
