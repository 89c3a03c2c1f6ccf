// Tags in workerd (tests/js/worker.test.mjs), L1 only (fromEnv without
// Redis bindings: an L1Cache over a MemoryCache, kept by the isolate):
//   /memo/<k>        memoize tagged item:<k> and memo
//   /page/<k>        cachePage, tags from the response's Cache-Tag header
//                    (item:<k>, page) and the tags option (site)
//   /invalidate?tags=a,b   cache.invalidateTags
//   /stats           the L1's stats().tags
import { fromEnv, memoize, cachePage } from 'edgecache';

let computed = 0;
let helpers;
function helpersOf(env) {
  if (helpers === undefined) {
    const cache = fromEnv(env, { log: () => {} });
    helpers = {
      cache,
      memo: memoize(async (k) => `memo ${k} #${++computed}`, { cache, prefix: 'memo:', tags: (k) => [`item:${k}`, 'memo'] }),
      page: cachePage(
        async (request) => {
          const k = new URL(request.url).pathname.split('/')[2];
          return new Response(`page ${k} #${++computed}`, { headers: { 'cache-tag': `item:${k}, page` } });
        },
        { cache, cacheTagHeader: true, tags: ['site'] },
      ),
    };
  }
  return helpers;
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const [, kind, k] = url.pathname.split('/');
    const h = helpersOf(env);
    try {
      if (kind === 'memo') return new Response(await h.memo(k));
      if (kind === 'page') return await h.page(request, env, ctx);
      if (kind === 'invalidate') return Response.json(await h.cache.invalidateTags(url.searchParams.get('tags').split(',')));
      if (kind === 'stats') return Response.json(h.cache.stats().l1.tags);
      return new Response('no such route', { status: 404 });
    } catch (e) {
      return new Response(`${e.name} ${e.code}: ${e.message}`, { status: 500 });
    }
  },
};
