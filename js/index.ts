// The public surface of the `edgecache` package. Each entry in entry/
// initialises the wasm for its platform, then re-exports this module.
export { EdgeCacheError, type EdgeCacheErrorCode } from './errors.js';
export { MemoryCache, type MemoryCacheOptions, type SetOptions, type CacheStats, type ScopeOptions } from './cache.js';
