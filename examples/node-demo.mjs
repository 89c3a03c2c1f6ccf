// `make demo`: a small tour of the L1 cache in Node (`make dev` serves the
// example Worker instead).
import { MemoryCache, memoize, EdgeCacheError } from 'edgecache';

const cache = new MemoryCache({ maxEntries: 1000, maxBytes: 1 << 20, defaultTtl: 60_000 });

cache.set('user:1:profile', { name: 'Ada' });
cache.set('user:2:profile', { name: 'Grace' }, { ttl: 5_000 });
cache.incr('visits');
cache.incr('visits', 41);
console.log('get          ', cache.get('user:1:profile'));
console.log('keys user:*  ', cache.keys('user:*'));
console.log('visits       ', cache.get('visits'));
console.log('ttl ms left  ', cache.ttl('user:2:profile'));

const acme = cache.scope({ tenant: 'acme' });
acme.set('user:1:profile', { name: 'Ada at Acme' });
console.log('scoped get   ', acme.get('user:1:profile'), '(root still has', cache.get('user:1:profile'), ')');

try {
  cache.set('huge', 'x'.repeat(1 << 20));
} catch (e) {
  if (!(e instanceof EdgeCacheError)) throw e;
  console.log('refused      ', e.code, '-', e.message);
}

let calls = 0;
const slowSquare = memoize(async (n) => {
  calls++;
  await new Promise((r) => setTimeout(r, 50));
  return n * n;
}, { cache, prefix: 'square:', ttl: 10_000 });
const t0 = performance.now();
const results = await Promise.all([slowSquare(12), slowSquare(12), slowSquare(12)]);
const t1 = performance.now();
await slowSquare(12);
const t2 = performance.now();
console.log('memoize      ', results, `fn ran ${calls}x; miss ${(t1 - t0).toFixed(1)} ms, hit ${((t2 - t1) * 1000).toFixed(0)} µs`);
console.log('stats        ', cache.stats());
cache.free();
