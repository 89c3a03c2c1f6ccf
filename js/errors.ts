/**
 * The one error class of edgecache. Branch on {@link EdgeCacheError.code},
 * never on the message.
 *
 * @example
 * ```ts
 * try { cache.set('k', hugeValue) } catch (e) {
 *   if (e instanceof EdgeCacheError && e.code === 'VALUE_TOO_LARGE') { ... }
 * }
 * ```
 */
export class EdgeCacheError extends Error {
  /** A stable, machine-readable code, such as `'INVALID_KEY'`. */
  readonly code: EdgeCacheErrorCode;

  constructor(code: EdgeCacheErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EdgeCacheError';
    this.code = code;
  }
}

/** Every code an {@link EdgeCacheError} can carry. */
export type EdgeCacheErrorCode =
  /** A key is not a string. */
  | 'INVALID_KEY'
  /** A TTL is negative, NaN or infinite. */
  | 'INVALID_TTL'
  /** A constructor or method option is out of range. */
  | 'INVALID_OPTION'
  /** A value (with its key and the per-entry overhead) is larger than `maxBytes`. */
  | 'VALUE_TOO_LARGE'
  /** The default size estimate could not measure a value: pass `sizeOf`. */
  | 'UNMEASURABLE_VALUE'
  /** `incr`/`decr` on a value that is not an integer. */
  | 'NOT_AN_INTEGER'
  /** `incr`/`decr` would leave the safe-integer range. */
  | 'OVERFLOW'
  /** A scope without a tenant or user, with an empty one, or one that widens a view. */
  | 'INVALID_SCOPE'
  /** The cache was used after `free()`. */
  | 'FREED'
  /** An envelope's tag does not match its key, scope or contents. */
  | 'BAD_SIGNATURE'
  /** An envelope was signed with a key id the signer does not know. */
  | 'UNKNOWN_KEY_ID'
  /** An envelope is not well formed (truncated, bad base64, wrong version...). */
  | 'MALFORMED_ENVELOPE'
  /** An envelope of format version 1, which does not bind the cache's prefix: refused unless the Signer has `acceptV1`. */
  | 'OUTDATED_ENVELOPE'
  /** A signing key is shorter than 32 bytes, or one byte repeated. */
  | 'WEAK_KEY'
  /** An envelope (or a payload to seal) is larger than the signer's limit. */
  | 'ENVELOPE_TOO_LARGE'
  /** The platform gave no secure random numbers (`crypto.getRandomValues`). */
  | 'RANDOM_UNAVAILABLE'
  /** A tag that is not a string of 1 to 256 UTF-8 bytes of well-formed Unicode without control characters or commas, more than 64 tags on one entry, or a `tags` option that is not an array. */
  | 'INVALID_TAG'
  /** The wasm memory cannot grow any further (an allocation for a cache failed). */
  | 'OUT_OF_MEMORY'
  /** `memoize`/`@cached` cannot derive a key from an argument (a function, a symbol, a cycle...): pass `key`. */
  | 'UNSERIALIZABLE_ARGUMENT'
  /** A value the Redis tier cannot serialize (a function, a symbol, a BigInt, `undefined`, a cycle): see `serializer`. */
  | 'UNSERIALIZABLE_VALUE'
  /** The Redis tier did not answer within `timeout`. */
  | 'L2_TIMEOUT'
  /** The Redis tier could not be reached, or answered with an unexpected HTTP status (`status` on the error; `partial: true` when the bridge says only some masters of a Redis Cluster failed). */
  | 'L2_HTTP'
  /** The Redis tier refused the token (missing, wrong, or not allowed to run the command). */
  | 'L2_AUTH'
  /** Redis answered with an error (`ERR ...`, `WRONGTYPE ...`). */
  | 'L2_REDIS'
  /** The Redis tier's answer is not what the protocol allows (not JSON, wrong shape or length, bad base64...). */
  | 'L2_PROTOCOL'
  /** The circuit breaker is open: Redis failed repeatedly and is not called until the cool-down ends. */
  | 'L2_UNAVAILABLE';

/**
 * Re-throws an error raised by the wasm core (a JS `Error` with a `code`
 * property) as an {@link EdgeCacheError}; anything else unchanged.
 * @internal
 */
export function rethrow(e: unknown): never {
  const code = e instanceof Error ? (e as Error & { code?: unknown }).code : undefined;
  if (typeof code === 'string') throw new EdgeCacheError(code as EdgeCacheErrorCode, (e as Error).message);
  throw e;
}
