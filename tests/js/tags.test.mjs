// Tags in MemoryCache (issue 15): set/setMany with tags, invalidateTags per
// namespace, the lazy check on every read path, bytes and bounds, stats,
// and the tag rule (INVALID_TAG). Through the built package (dist/).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCache, EdgeCacheError } from 'edgecache';

const OVERHEAD = 64;
function manualClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t, advance: (ms) => (clock.t += ms) };
  return clock;
}
function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgeCacheError, `expected EdgeCacheError, got ${e}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}
/** Everything observable about a cache without reading it through get (no hits). */
function snapshot(c) {
  const keys = c.keys().sort();
  return { keys, stats: c.stats() };
}
/** Bytes charged for these tags: 2 per UTF-16 unit and 8 per tag. */
const tagBytes = (tags) => tags.reduce((n, t) => n + 2 * t.length + 8, 0);

describe('MemoryCache tags', () => {
  test('invalidateTags makes the entries carrying a tag miss, others are untouched', () => {
    const c = new MemoryCache();
    c.set('p7', 'product 7', { tags: ['product:7'] });
    c.set('list', 'products 7 and 8', { tags: ['product:7', 'product:8'] });
    c.set('p8', 'product 8', { tags: ['product:8'] });
    c.set('plain', 'untagged');
    assert.equal(c.invalidateTags(['product:7']), 1);
    assert.equal(c.get('p7'), undefined);
    assert.equal(c.get('list'), undefined);
    assert.equal(c.get('p8'), 'product 8');
    assert.equal(c.get('plain'), 'untagged');
    assert.equal(c.stats().entries, 2, 'the invalidated entries were dropped when read');
  });

  test('entries read (seen valid) before and between invalidations are checked again after each', () => {
    const c = new MemoryCache();
    for (let i = 0; i < 10; i++) c.set(`k${i}`, i, { tags: [`t${i}`, i % 2 ? 'odd' : 'even'] });
    const live = () => Array.from({ length: 10 }, (_, i) => c.get(`k${i}`)).filter((v) => v !== undefined);
    assert.deepEqual(live(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    c.invalidateTags(['t3']);
    assert.deepEqual(live(), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(live(), [0, 1, 2, 4, 5, 6, 7, 8, 9], 'seen valid again: still served');
    c.invalidateTags(['nobody']);
    assert.deepEqual(live(), [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    c.invalidateTags(['odd']);
    assert.equal(c.has('k1'), false);
    assert.deepEqual(c.keys().sort(), ['k0', 'k2', 'k4', 'k6', 'k8']);
    c.set('k1', 'back', { tags: ['odd'] });
    c.invalidateTags(['even']);
    assert.deepEqual(live(), ['back']);
    assert.equal(c.stats().tags.invalidated, 10);
  });

  test('an entry written after the invalidation with the same tag is served', () => {
    const c = new MemoryCache();
    c.set('k', 'old', { tags: ['t'] });
    c.invalidateTags(['t']);
    c.set('k', 'new', { tags: ['t'] });
    c.set('k2', 'also new', { tags: ['t'] });
    assert.equal(c.get('k'), 'new');
    assert.equal(c.get('k2'), 'also new');
    // And a second invalidation reaches them.
    assert.equal(c.invalidateTags(['t']), 1);
    assert.equal(c.get('k'), undefined);
    assert.equal(c.get('k2'), undefined);
  });

  test('an invalidated entry overwritten before any read is served with its new value', () => {
    const c = new MemoryCache();
    c.set('k', 'old', { tags: ['t'] });
    c.invalidateTags(['t']);
    c.set('k', 'new'); // untagged now
    c.invalidateTags(['t']);
    assert.equal(c.get('k'), 'new');
  });

  test('a tag invalidated in a scope affects that scope only, and the root only the root', () => {
    const c = new MemoryCache();
    const acme = c.scope({ tenant: 'acme' });
    const globex = c.scope({ tenant: 'globex' });
    const ada = acme.scope({ user: 'ada' });
    for (const v of [c, acme, globex, ada]) v.set('k', 'v', { tags: ['product:7'] });
    acme.invalidateTags(['product:7']);
    assert.equal(acme.get('k'), undefined);
    assert.equal(c.get('k'), 'v');
    assert.equal(globex.get('k'), 'v');
    assert.equal(ada.get('k'), 'v', 'a narrower scope is a scope of its own');
    c.invalidateTags(['product:7']);
    assert.equal(c.get('k'), undefined);
    assert.equal(globex.get('k'), 'v');
    assert.equal(ada.get('k'), 'v');
    // Another view object of the same scope shares its tags.
    c.scope({ tenant: 'globex' }).invalidateTags(['product:7']);
    assert.equal(globex.get('k'), undefined);
  });

  test('a scope that emptied and opened again starts with fresh tags; an invalidation of an empty scope does nothing later', () => {
    const c = new MemoryCache();
    const s = c.scope({ tenant: 'a' });
    assert.equal(s.invalidateTags(['t']), 1, 'a tag no entry carries is invalidated all the same');
    s.set('k', 1, { tags: ['t'] });
    assert.equal(s.get('k'), 1, 'written after the invalidation');
    s.delete('k'); // the scope empties and is closed
    s.set('k', 2, { tags: ['t'] });
    assert.equal(s.get('k'), 2);
    s.invalidateTags(['t']);
    assert.equal(s.get('k'), undefined);
  });

  test('every read path drops an invalidated entry as if expired', () => {
    const clock = manualClock();
    const make = () => {
      const c = new MemoryCache({ now: clock.now });
      c.set('a', 1, { tags: ['t'], ttl: 10_000 });
      c.set('b', 2, { tags: ['t'] });
      c.set('c', 3, { tags: ['other'] });
      c.invalidateTags(['t']);
      return c;
    };
    let c = make();
    assert.equal(c.get('a'), undefined);
    assert.equal(c.stats().misses, 1, 'a miss');
    assert.equal(c.stats().hits, 0);
    c = make();
    assert.deepEqual(c.getMany(['a', 'b', 'c']), [undefined, undefined, 3]);
    c = make();
    assert.equal(c.has('a'), false);
    assert.equal(c.has('b'), false);
    assert.equal(c.has('c'), true);
    c = make();
    assert.equal(c.ttl('a'), undefined);
    assert.equal(c.ttl('b'), undefined);
    assert.equal(c.ttl('c'), Infinity);
    c = make();
    assert.deepEqual(c.keys(), ['c']);
    assert.deepEqual(c.keys('?'), ['c']);
    assert.equal(c.stats().entries, 1, 'keys() dropped them');
    c = make();
    assert.equal(c.deletePattern('*'), 1, 'only the live entry counts as deleted');
    assert.equal(c.stats().deletes, 1);
    c = make();
    assert.equal(c.delete('a'), false, 'an invalidated entry is not live');
    assert.equal(c.stats().deletes, 0);
    c = make();
    assert.equal(c.getOrSet('a', () => 'loaded'), 'loaded', 'getOrSet loads again');
    c = make();
    assert.equal(c.incr('b'), 1, 'an invalidated counter starts again from 0');
    c = make();
    for (const read of [() => c.get('a'), () => c.has('b')]) read();
    assert.equal(c.stats().tags.invalidated, 2);
    assert.equal(c.stats().expirations, 0, 'not counted as expirations');
    assert.equal(c.stats().entries, 1);
  });

  test('incr keeps the tags (and TTL) of a live tagged counter', () => {
    const c = new MemoryCache();
    c.set('n', 1, { tags: ['t'] });
    assert.equal(c.incr('n', 2), 3);
    c.invalidateTags(['t']);
    assert.equal(c.get('n'), undefined);
    // With a custom sizeOf the counter is measured again, tags still charged.
    const d = new MemoryCache({ sizeOf: () => 8 });
    d.set('n', 1, { tags: ['abc'] });
    const before = d.stats().bytes;
    d.incr('n');
    assert.equal(d.stats().bytes, before);
    assert.equal(before, 2 + 8 + tagBytes(['abc']) + OVERHEAD);
  });

  test('untagged entries of a cache that uses tags are untouched, and setting without tags drops them', () => {
    const c = new MemoryCache();
    c.set('k', 1, { tags: ['t'] });
    c.set('k', 2); // an overwrite without tags: untagged now
    c.set('u', 3);
    c.invalidateTags(['t']);
    assert.equal(c.get('k'), 2);
    assert.equal(c.get('u'), 3);
    assert.equal(c.stats().tags.invalidated, 0);
  });

  test('stats().tags counts the tags raised and the entries they made miss, per view', () => {
    const c = new MemoryCache();
    const s = c.scope({ tenant: 'a' });
    c.set('x', 1, { tags: ['t'] });
    s.set('keep', 0); // so that the scope never empties (an emptied scope's counters start again)
    s.set('x', 1, { tags: ['t', 'u'] });
    s.set('y', 1, { tags: ['u'] });
    assert.equal(s.invalidateTags(['t', 'u', 't']), 2, 'duplicates count once');
    assert.deepEqual(s.stats().tags, { invalidations: 2, invalidated: 0 });
    s.get('x');
    s.get('y');
    s.set('z', 1);
    assert.deepEqual(s.stats().tags, { invalidations: 2, invalidated: 2 });
    c.invalidateTags(['t']);
    c.get('x');
    assert.deepEqual(c.stats().tags, { invalidations: 3, invalidated: 3 }, 'the root covers the whole cache');
    assert.equal(c.invalidateTags([]), 0);
    assert.deepEqual(c.stats().tags, { invalidations: 3, invalidated: 3 });
  });

  test('bytes: each tag is charged 2 per UTF-16 unit plus 8, and given back when the entry goes', () => {
    const c = new MemoryCache();
    c.set('k', 'v', { tags: ['product:7', 'é'] });
    assert.equal(c.stats().bytes, 2 + 2 + tagBytes(['product:7', 'é']) + OVERHEAD);
    c.set('k', 'v', { tags: ['a'] });
    assert.equal(c.stats().bytes, 2 + 2 + tagBytes(['a']) + OVERHEAD, 'an overwrite charges its own tags');
    c.set('k', 'v', { tags: ['a', 'a', 'a'] });
    assert.equal(c.stats().bytes, 2 + 2 + tagBytes(['a']) + OVERHEAD, 'duplicates are dropped before charging');
    c.invalidateTags(['a']);
    c.get('k');
    assert.equal(c.stats().bytes, 0);
    c.setMany([['m', 'v', { tags: ['xy'] }]]);
    assert.equal(c.stats().bytes, 2 + 2 + tagBytes(['xy']) + OVERHEAD);
  });

  test('bounds: the tags count toward maxBytes, a tagged entry too large is refused and changes nothing', () => {
    const entry = 4 + 2 + OVERHEAD; // key 'k1', value 'v'
    const c = new MemoryCache({ maxBytes: 2 * entry + tagBytes(['t']) });
    c.set('k1', 'v', { tags: ['t'] });
    c.set('k2', 'v');
    assert.equal(c.stats().entries, 2);
    c.set('k3', 'v', { tags: ['t'] }); // needs room: evicts the least recently used (k1)
    assert.deepEqual(c.keys().sort(), ['k2', 'k3']);
    assert.equal(c.stats().bytes, 2 * entry + tagBytes(['t']));
    const before = snapshot(c);
    throwsCode(() => c.set('k4', 'v', { tags: ['x'.repeat(200)] }), 'VALUE_TOO_LARGE');
    throwsCode(() => c.setMany([['k5', 'v'], ['k4', 'v', { tags: ['x'.repeat(200)] }]]), 'VALUE_TOO_LARGE');
    assert.deepEqual(snapshot(c), before);
    // maxEntries with tags: evicted entries give their tags back.
    const d = new MemoryCache({ maxEntries: 2 });
    for (let i = 0; i < 100; i++) d.set(`k${i}`, i, { tags: [`tag:${i}`, 'all'] });
    assert.equal(d.stats().entries, 2);
    assert.equal(d.stats().evictions, 98);
    d.invalidateTags(['all']);
    assert.deepEqual(d.keys(), []);
    assert.equal(d.stats().bytes, 0);
  });

  test('clear() drops tagged entries; a scope clear keeps other scopes and the root', () => {
    const c = new MemoryCache();
    const s = c.scope({ user: 1 });
    c.set('k', 1, { tags: ['t'] });
    s.set('k', 1, { tags: ['t'] });
    s.clear();
    assert.equal(c.get('k'), 1);
    s.set('k', 2, { tags: ['t'] });
    c.clear();
    assert.equal(c.stats().entries, 0);
    c.set('k', 3, { tags: ['t'] });
    assert.equal(c.get('k'), 3);
    c.invalidateTags(['t']);
    assert.equal(c.get('k'), undefined);
  });

  test('bad tags are refused with INVALID_TAG and change nothing', () => {
    const c = new MemoryCache();
    c.set('k', 'v', { tags: ['t'] });
    const before = snapshot(c);
    const bad = [
      'nope', // not an array
      null,
      [''],
      [1],
      [null],
      ['a,b'],
      ['tab\there'],
      ['nul\u0000'],
      ['del\u007f'],
      ['\ud800'], // lone surrogate
      ['x\udc00y'],
      ['x'.repeat(257)],
      ['é'.repeat(129)], // 258 UTF-8 bytes
      ['😀'.repeat(65)], // 260 UTF-8 bytes
      Array.from({ length: 65 }, (_, i) => `t${i}`),
    ];
    for (const tags of bad) {
      throwsCode(() => c.set('k', 'other', { tags }), 'INVALID_TAG');
      throwsCode(() => c.set('new', 'v', { tags }), 'INVALID_TAG');
      throwsCode(() => c.setMany([['a', 1], ['b', 2, { tags }]]), 'INVALID_TAG');
      // More than 64 tags is refused on an entry, not in one invalidation.
      if (!Array.isArray(tags) || tags.length <= 64) throwsCode(() => c.invalidateTags(tags), 'INVALID_TAG');
      throwsCode(() => c.getOrSet('g', () => 1, { tags }), 'INVALID_TAG');
    }
    assert.deepEqual(snapshot(c), before);
    // One call invalidates any number of tags (each by the rule, duplicates once).
    const hundred = Array.from({ length: 100 }, (_, i) => `h${i}`);
    c.set('h99', 1, { tags: ['h99'] });
    assert.equal(c.invalidateTags([...hundred, 'h0']), 100);
    assert.equal(c.get('h99'), undefined);
    throwsCode(() => c.invalidateTags([...hundred, '']), 'INVALID_TAG');
    assert.equal(c.get('k'), 'v', 'not invalidated either');
    // The limits themselves are allowed.
    c.set('ok', 1, { tags: ['x'.repeat(256), 'é'.repeat(128), '😀'.repeat(64), 'ü', ' spaced ', 'a:b|c/d'] });
    c.set('ok64', 1, { tags: Array.from({ length: 64 }, (_, i) => `t${i}`) });
    c.set('dups', 1, { tags: [...Array.from({ length: 64 }, (_, i) => `t${i}`), 't0', 't1'] });
    c.set('none', 1, { tags: [] });
    assert.deepEqual(c.keys().sort(), ['dups', 'k', 'none', 'ok', 'ok64']);
    assert.throws(() => c.set('k', 1, { tags: ['a,b'] }), /"a,b"/);
  });

  test('tags accepted before are checked again as a list: at most 64, duplicates dropped', () => {
    const c = new MemoryCache();
    const many = Array.from({ length: 65 }, (_, i) => `known${i}`);
    c.set('a', 1, { tags: many.slice(0, 64) });
    c.set('b', 1, { tags: many.slice(1, 65) });
    throwsCode(() => c.set('c', 1, { tags: many }), 'INVALID_TAG');
    c.set('d', 'v', { tags: ['known0', 'known0', 'known1'] });
    const before = c.stats().bytes;
    c.set('d', 'v', { tags: ['known0', 'known1'] });
    assert.equal(c.stats().bytes, before, 'the duplicate was dropped: same charge');
    c.set('e', 1, { tags: ['known2'] });
    throwsCode(() => c.set('e', 1, { tags: ['known2', 2] }), 'INVALID_TAG');
    assert.equal(c.get('e'), 1);
  });

  test('the message names the tag (truncated) and the rule', () => {
    const c = new MemoryCache();
    try {
      c.set('k', 1, { tags: ['y'.repeat(300)] });
      assert.fail('accepted');
    } catch (e) {
      assert.equal(e.code, 'INVALID_TAG');
      assert.match(e.message, /"y{20,}\.\.\."/, 'the tag, truncated');
      assert.match(e.message, /256 bytes/, 'the rule');
      assert.ok(e.message.length < 200);
    }
  });

  test('a getOrSet load under way when its tag is invalidated does not store its result', async () => {
    const c = new MemoryCache();
    let resolve;
    const p = c.getOrSet('k', () => new Promise((r) => (resolve = r)), { tags: ['t'] });
    c.invalidateTags(['other']);
    c.invalidateTags(['t']);
    resolve('read before the invalidation');
    assert.equal(await p, 'read before the invalidation', 'the caller still gets its result');
    assert.equal(c.has('k'), false, 'but it was not stored');
    // A load that starts afterwards stores as usual, with its tags.
    assert.equal(await c.getOrSet('k', async () => 'fresh', { tags: ['t'] }), 'fresh');
    assert.equal(await c.getOrSet('k', async () => 'again', { tags: ['t'] }), 'fresh');
    c.invalidateTags(['t']);
    assert.equal(await c.getOrSet('k', async () => 'reloaded', { tags: ['t'] }), 'reloaded');
  });

  test('an untagged load is not stopped by invalidateTags', async () => {
    const c = new MemoryCache();
    let resolve;
    const p = c.getOrSet('k', () => new Promise((r) => (resolve = r)));
    c.invalidateTags(['t']);
    resolve(1);
    await p;
    assert.equal(c.has('k'), true);
  });

  test('free() then invalidateTags throws FREED', () => {
    const c = new MemoryCache();
    c.free();
    throwsCode(() => c.invalidateTags(['t']), 'FREED');
  });

  test('many distinct tags: a namespace keeps only the tags its entries carry', () => {
    // Not observable directly: that 100k distinct tags through a 10-entry
    // cache keep working and stay invalidatable.
    const c = new MemoryCache({ maxEntries: 10 });
    for (let i = 0; i < 100_000; i++) c.set(`k${i % 20}`, i, { tags: [`t${i}`] });
    assert.equal(c.stats().entries, 10);
    assert.equal(c.get('k19'), 99_999);
    c.invalidateTags(['t99999']);
    assert.equal(c.get('k19'), undefined);
    assert.equal(c.get('k18'), 99_998);
  });
});
