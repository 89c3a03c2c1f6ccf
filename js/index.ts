// The public surface of the `edgecache` package. Nothing here runs at import
// time: the wasm module, carried inline (js/wasm-init/index.ts) or, on
// Workers, imported as a .wasm module (js/wasm-init/workerd.ts), is
// instantiated when the first cache or signer is created.
export { EdgeCacheError, type EdgeCacheErrorCode } from './errors.js';
export { MemoryCache, type MemoryCacheOptions, type SetOptions, type CacheStats, type TagStats, type ScopeOptions } from './cache.js';
export { Signer, generateSecureKey, type SignerOptions, type SealOptions, type OpenOptions, type EnvelopeScope, type SignerSecret } from './signer.js';
export { type TagVersion } from './tags.js';
export { type GetOrSetOptions } from './getorset.js';
export { memoize, type Memoized, type MemoizeOptions, type Callable, type CacheLike, type IsAsyncCache, type CacheResult, type MemoizedReturn } from './memoize.js';
export { argsKey } from './keys.js';
export { cached, invalidates, invalidatesPattern, getDefaultCache, setDefaultCache, type CachedOptions, type InvalidatesOptions, type InvalidatesPatternOptions, type PatternOf, type CacheSource } from './decorators.js';
export { cachePage, type CachePageOptions, type FetchHandler } from './page.js';
export { RedisRest, type RedisRestOptions, type RedisSetOptions, type RedisArg, type RedisValue, type RedisEnv, type Outcome, type RedisMessage, type RedisSubscription, type RedisSubscribeOptions } from './redis.js';
export { TieredCache, jsonSerializer, type TieredCacheOptions, type TieredHooks, type TieredStats, type L2Stats, type CoherenceStats, type Serializer } from './tiered.js';
export { fromEnv, L1Cache, type WorkersCache, type WorkersEnv, type FromEnvOptions, type L1Stats } from './workers.js';
