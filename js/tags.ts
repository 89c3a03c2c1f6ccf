// Tags (issue 15): the rule of a tag string is the Rust core's
// (src/tags.rs), reached through wasm so that JS and Rust apply one rule.
// A tag is 1 to 256 bytes of UTF-8 of well-formed Unicode, without control
// characters (U+0000-U+001F, U+007F) and without a comma; an entry carries
// at most 64, deduplicated (first occurrence kept, in order).
import { EdgeCacheError, rethrow } from './errors.js';
import { checkTags as coreCheckTags } from './wasm/edgecache.js';
import { ensureWasm } from '#wasm-init';
import { wellFormed } from './text.js';

/**
 * A tag and the version it was written under (a non-negative integer up
 * to 2^53 - 1): what a tagged envelope carries, signed.
 */
export type TagVersion = readonly [tag: string, version: number];

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)}`;
  return typeof v;
}

/**
 * @internal An entry's `tags` option checked against the rule of tags and
 * deduplicated (first occurrence kept, in order). `undefined` and `[]`
 * are no tags (`[]`). Throws `EdgeCacheError` `INVALID_TAG` for a value
 * that is not an array, an element that is not a string or has a lone
 * surrogate, or a tag the core's rule refuses (empty, over 256 bytes, a
 * control character or a comma; more than 64 distinct tags).
 */
export function checkTags(tags: unknown): string[] {
  if (tags === undefined) return [];
  if (!Array.isArray(tags)) {
    throw new EdgeCacheError('INVALID_TAG', `invalid tag: tags must be an array of strings, got ${describe(tags)}`);
  }
  if (tags.length === 0) return [];
  for (let i = 0; i < tags.length; i++) {
    const t: unknown = tags[i];
    if (typeof t !== 'string') throw new EdgeCacheError('INVALID_TAG', `invalid tag: tags[${i}] must be a string, got ${describe(t)}`);
    if (!wellFormed(t)) throw new EdgeCacheError('INVALID_TAG', `invalid tag: tags[${i}] has a lone surrogate (no UTF-8 form): a tag is well-formed Unicode`);
  }
  ensureWasm();
  try {
    return coreCheckTags(tags as string[]);
  } catch (e) {
    rethrow(e);
  }
}

/**
 * @internal The tags of an `invalidateTags` call: each by the rule of a
 * tag, deduplicated in order, but any number of them (the 64 of an entry
 * bound what one entry carries, not what one call invalidates). `INVALID_TAG`
 * for a value that is not an array, or a tag that breaks the rule.
 */
export function checkTagList(tags: unknown): string[] {
  if (!Array.isArray(tags)) return checkTags(tags === undefined ? null : tags);
  if (tags.length <= 64) return checkTags(tags);
  const out = new Set<string>();
  for (let i = 0; i < tags.length; i += 64) for (const t of checkTags(tags.slice(i, i + 64))) out.add(t);
  return [...out];
}
