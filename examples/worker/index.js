// The example Worker: an L1 cache in front of a slow origin, one cache per
// isolate. `make dev` serves it locally on workerd (wrangler dev).
//
//   GET /item/<id>      the item, from the cache when it can (x-cache: HIT|MISS)
//   GET /stats          the cache's statistics
//   DELETE /item/<id>   invalidates that item, and only that one
import { MemoryCache, cachePage } from 'edgecache';

// Module scope: lives as long as the isolate, shared by its requests.
const cache = new MemoryCache({ maxEntries: 10_000, maxBytes: 8 << 20, defaultTtl: 60_000 });

/** Stands in for a slow origin or database. */
async function origin(id) {
  await new Promise((resolve) => setTimeout(resolve, 25));
  return { id, name: `item ${id}`, renderedAt: new Date().toISOString() };
}

const pages = cache.scope({ tenant: 'pages' });
// Pages are keyed by their path alone (the query string does not change an
// item), so that DELETE can name the exact key of a page.
const pageKey = (pathname) => `page:GET ${pathname}`;
const items = cachePage(
  async (request) => {
    const id = new URL(request.url).pathname.split('/')[2];
    return Response.json(await origin(id));
  },
  { cache: pages, ttl: 30_000, key: (request) => new URL(request.url).pathname },
);

export default {
  async fetch(request, env, ctx) {
    const { pathname } = new URL(request.url);
    if (pathname === '/stats') return Response.json(cache.stats());
    if (pathname.startsWith('/item/')) {
      if (request.method === 'DELETE') {
        // The exact key, never a glob built from the path: /item/4 must not
        // also delete /item/42, and /item/* must not delete everything.
        const gone = pages.delete(pageKey(pathname)) ? 1 : 0;
        return Response.json({ deleted: gone });
      }
      return items(request, ctx);
    }
    return new Response('try /item/42 or /stats\n', { status: 404 });
  },
};
