// The `edgecache/hono` entry: Hono middleware that caches responses with
// cachePage's rules and puts the cache on the context. Hono is an optional
// peer dependency: only types are imported from it, so this file adds no
// Hono code to a bundle, and nothing here is reachable from `edgecache`
// itself (a bundle that imports only `edgecache` does not grow).
//
// It imports the package's public surface ('./index.js'); the Workers build
// (scripts/dist.mjs) points that at dist/workerd.js, so that in a Worker
// `edgecache` and `edgecache/hono` share one module (one wasm instance, one
// MemoryCache class).
import type { Context, MiddlewareHandler, Next } from 'hono';
import { cachePage, EdgeCacheError, MemoryCache, type CacheLike, type CachePageOptions } from './index.js';

/** Options of {@link pageCache}: those of `cachePage` less the ones the middleware supplies. */
export interface PageCacheOptions<C extends CacheLike = MemoryCache>
  extends Omit<CachePageOptions, 'cache' | 'staleWhileRevalidate' | 'waitUntil'> {
  /**
   * Where pages live; also what `c.var.cache` (`c.get('cache')`) is.
   * @default a new `MemoryCache` of this middleware's own
   */
  cache?: C;
}

/** The Hono environment the middleware adds: `c.var.cache` / `c.get('cache')`. */
export type CacheEnv<C extends CacheLike = MemoryCache> = { Variables: { cache: C } };

interface Call {
  c: Context;
  next: Next;
  called: boolean;
  waitUntil?: (promise: Promise<unknown>) => void;
}

/**
 * Hono middleware: responses to GET (and HEAD) requests are cached with
 * {@link cachePage}'s rules (statuses, `Cache-Control`, `Vary`, `Set-Cookie`,
 * credentials, `x-cache` and `age` on what it serves), and the cache is set
 * on the context as `cache`. On Workers, storing a page is handed to
 * `c.executionCtx.waitUntil`.
 *
 * `staleWhileRevalidate` is not offered: a background refresh would have to
 * run the route again after the response has gone, which a Hono context
 * does not allow.
 *
 * @example
 * ```ts
 * import { Hono } from 'hono';
 * import { pageCache } from 'edgecache/hono';
 * const app = new Hono().use(pageCache({ ttl: 30_000 }));
 * app.get('/user/:id', async (c) => c.json(await c.var.cache.get(c.req.param('id'))));
 * ```
 */
export function pageCache<C extends CacheLike = MemoryCache>(options: PageCacheOptions<C> = {}): MiddlewareHandler<CacheEnv<C>> {
  if (options === null || typeof options !== 'object') {
    throw new EdgeCacheError('INVALID_OPTION', 'pageCache: options must be an object');
  }
  for (const name of ['staleWhileRevalidate', 'waitUntil'] as const) {
    if ((options as Record<string, unknown>)[name] !== undefined) {
      throw new EdgeCacheError(
        'INVALID_OPTION',
        `pageCache: ${name} is not an option of the Hono middleware (${
          name === 'waitUntil' ? 'it uses c.executionCtx.waitUntil' : 'a refresh would run the route after the response has gone'
        }); use cachePage around app.fetch for it`,
      );
    }
  }
  const cache = (options.cache ?? new MemoryCache()) as C;
  const handle = cachePage<[Call]>(
    async (_request, call) => {
      call.called = true;
      await call.next();
      return call.c.res;
    },
    { ...options, cache },
  );
  return async (c, next) => {
    c.set('cache', cache);
    const call: Call = { c: c as Context, next, called: false };
    try {
      const ctx = c.executionCtx;
      call.waitUntil = (p) => ctx.waitUntil(p);
    } catch {
      // No ExecutionContext (Node, Bun, Deno): the work runs on its own.
    }
    const res = await handle(c.req.raw, call);
    if (!call.called) return res; // a hit: the route did not run
    // The route ran: its response, passed through or teed into the cache.
    c.res = undefined;
    c.res = res;
  };
}
