// Writes that land after the response (tests/js/worker.test.mjs): memoize,
// @cached and cachePage over fromEnv(env), whose writes to Redis the call
// does not wait for. The test slows the way to the bridge, so each write is
// still under way when its request answers.
//   /memo/<k>    memoize (async function)
//   /sync/<k>    memoize of a synchronous function (stored with no flight)
//   /cached/<k>  a @cached method
//   /page/<k>    cachePage, its handler called without a ctx
// Each answers the value and `#<n>`, the count of computations so far in
// this isolate: a value read back from the cache keeps its number.
import { fromEnv, memoize, cached, cachePage } from 'edgecache';

let computed = 0;

class Catalog {
  constructor(cache) {
    this.cache = cache;
  }

  @cached({ cache: (self) => self.cache, prefix: 'cached:', ttl: 60_000 })
  async load(k) {
    return `cached ${k} #${++computed}`;
  }
}

const helpers = new WeakMap();
function helpersOf(cache) {
  let h = helpers.get(cache);
  if (h === undefined) {
    h = {
      memo: memoize(async (k) => `memo ${k} #${++computed}`, { cache, prefix: 'memo:', ttl: 60_000 }),
      sync: memoize((k) => `sync ${k} #${++computed}`, { cache, prefix: 'sync:', ttl: 60_000 }),
      catalog: new Catalog(cache),
      page: cachePage(async (request) => new Response(`page ${new URL(request.url).pathname} #${++computed}`), {
        cache,
        ttl: 60_000,
        key: (request) => new URL(request.url).pathname,
      }),
    };
    helpers.set(cache, h);
  }
  return h;
}

export default {
  async fetch(request, env) {
    const [, kind, k] = new URL(request.url).pathname.split('/');
    try {
      const h = helpersOf(fromEnv(env, { log: () => {} }));
      if (kind === 'memo') return new Response(await h.memo(k));
      if (kind === 'sync') return new Response(await h.sync(k));
      if (kind === 'cached') return new Response(await h.catalog.load(k));
      if (kind === 'page') return h.page(request);
      if (kind === 'stats') return Response.json(fromEnv(env, { log: () => {} }).stats());
      return new Response('no such route', { status: 404 });
    } catch (e) {
      return new Response(`${e.name}: ${e.message}`, { status: 500 });
    }
  },
};
