// The cross-request rule in workerd (tests/js/js-worker.test.mjs): a request
// must never wait on another request's I/O. Two concurrent requests for the
// same missing key must both succeed.
//   /response/<k>  memoize of a function that returns the origin's Response
//                  (an I/O object), read through clone(), in a cache that cannot keep it: only
//                  single-flight could hand one request's Response to another
//   /memo/<k>      memoize over fromEnv(env) (TieredCache with Redis bindings)
//   /get/<k>       fromEnv(env).get, then set on a miss
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

export default {
  async fetch(request, env) {
    const [, kind, k] = new URL(request.url).pathname.split('/');
    try {
      if (kind === 'response') return new Response(await (await fetchOrigin(k, env)).clone().text());
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
