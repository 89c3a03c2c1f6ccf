// MemoryCache through the built package (dist/), as users import it.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCache, EdgeCacheError } from 'edgecache';

const OVERHEAD = 64;
/** A clock the test moves by hand. */
function manualClock(start = 1_000_000) {
  const clock = { t: start, now: () => clock.t, advance: (ms) => (clock.t += ms) };
  return clock;
}
function throwsCode(fn, code) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof EdgeCacheError, `expected EdgeCacheError, got ${e}`);
    assert.equal(e.name, 'EdgeCacheError');
    assert.equal(e.code, code, e.message);
    assert.ok(e.message.length > 10);
    return true;
  });
}
/** Everything observable about a cache, to check that a failed call changed nothing. */
function snapshot(c) {
  // hits and hitRate leave out: reading the values is a hit each time
  const { hits, hitRate, ...stats } = c.stats();
  const keys = c.keys().sort();
  return { keys, values: keys.map((k) => c.get(k)), stats };
}

describe('construction', () => {
  test('defaults', () => {
    const s = new MemoryCache().stats();
    assert.deepEqual(s, {
      hits: 0, misses: 0, hitRate: 0, sets: 0, deletes: 0, evictions: 0, expirations: 0,
      entries: 0, bytes: 0, maxEntries: 10_000, maxBytes: 32 * 1024 * 1024,
      tags: { invalidations: 0, invalidated: 0 },
    });
  });

  test('bad options throw INVALID_OPTION / INVALID_TTL', () => {
    for (const maxEntries of [0, -1, 1.5, NaN, "10", 2 ** 29]) {
      throwsCode(() => new MemoryCache({ maxEntries }), 'INVALID_OPTION');
    }
    for (const maxBytes of [0, -5, 2.5, NaN, '1']) throwsCode(() => new MemoryCache({ maxBytes }), 'INVALID_OPTION');
    for (const defaultTtl of [-1, NaN, Infinity, '5']) throwsCode(() => new MemoryCache({ defaultTtl }), 'INVALID_TTL');
    throwsCode(() => new MemoryCache({ maxEntry: 5 }), 'INVALID_OPTION');
    throwsCode(() => new MemoryCache({ sizeOf: 3 }), 'INVALID_OPTION');
    throwsCode(() => new MemoryCache({ now: 'later' }), 'INVALID_OPTION');
    throwsCode(() => new MemoryCache(null), 'INVALID_OPTION');
    assert.equal(new MemoryCache({ maxBytes: Infinity }).stats().maxBytes, Number.MAX_SAFE_INTEGER);
  });

  test('now() is the injected clock', () => {
    const clock = manualClock(42);
    assert.equal(new MemoryCache({ now: clock.now }).now(), 42);
    const t = Date.now();
    assert.ok(Math.abs(new MemoryCache().now() - t) < 1000);
  });
});

describe('get / set / has / delete', () => {
  test('round trip of any JS value, by reference', () => {
    const c = new MemoryCache();
    const obj = { a: [1, 2] };
    assert.equal(c.set('o', obj), c, 'set returns the cache');
    c.set('n', 0).set('s', '').set('f', false).set('null', null);
    assert.equal(c.get('o'), obj);
    assert.equal(c.get('n'), 0);
    assert.equal(c.get('s'), '');
    assert.equal(c.get('f'), false);
    assert.equal(c.get('null'), null);
    assert.equal(c.get('missing'), undefined);
    assert.equal(c.has('o'), true);
    assert.equal(c.has('missing'), false);
    c.set('o', 'replaced');
    assert.equal(c.get('o'), 'replaced');
    assert.equal(c.delete('o'), true);
    assert.equal(c.delete('o'), false);
    assert.equal(c.get('o'), undefined);
  });

  test('set(key, undefined) deletes', () => {
    const c = new MemoryCache();
    c.set('k', 1).set('k', undefined);
    assert.equal(c.has('k'), false);
    assert.equal(c.stats().entries, 0);
  });

  test('every method refuses a non-string key and changes nothing', () => {
    const c = new MemoryCache();
    c.set('a', 1);
    const before = snapshot(c);
    for (const key of [1, null, undefined, {}, Symbol('s'), ['a']]) {
      throwsCode(() => c.get(key), 'INVALID_KEY');
      throwsCode(() => c.set(key, 1), 'INVALID_KEY');
      throwsCode(() => c.has(key), 'INVALID_KEY');
      throwsCode(() => c.delete(key), 'INVALID_KEY');
      throwsCode(() => c.incr(key), 'INVALID_KEY');
      throwsCode(() => c.ttl(key), 'INVALID_KEY');
      throwsCode(() => c.getMany(['a', key]), 'INVALID_KEY');
      throwsCode(() => c.deleteMany(['a', key]), 'INVALID_KEY');
      throwsCode(() => c.setMany([['b', 2], [key, 1]]), 'INVALID_KEY');
    }
    assert.deepEqual(snapshot(c), before);
  });
});

describe('LRU bounds', () => {
  test('maxEntries evicts the least recently used; get refreshes, has does not', () => {
    const c = new MemoryCache({ maxEntries: 3 });
    c.set('a', 1).set('b', 2).set('c', 3);
    c.get('a'); // a is now most recent; b is the LRU
    c.has('b'); // has() does not refresh
    c.set('d', 4);
    assert.deepEqual(c.keys().sort(), ['a', 'c', 'd']);
    c.set('c', 33); // overwrite refreshes c
    c.set('e', 5); // evicts a (LRU after c was refreshed? order: a, d, c -> a is LRU)
    assert.deepEqual(c.keys().sort(), ['c', 'd', 'e']);
    assert.equal(c.stats().evictions, 2);
    assert.equal(c.stats().entries, 3);
  });

  test('maxBytes counts key, value and the per-entry overhead, and evicts to fit', () => {
    const size = (k, v) => 2 * k.length + 2 * v.length + OVERHEAD;
    const c = new MemoryCache({ maxBytes: 3 * size('k1', 'x'.repeat(10)) });
    c.set('k1', 'x'.repeat(10)).set('k2', 'y'.repeat(10)).set('k3', 'z'.repeat(10));
    assert.equal(c.stats().bytes, 3 * size('k1', 'x'.repeat(10)));
    c.set('k4', 'w'.repeat(20)); // needs the room of k1 and k2
    assert.deepEqual(c.keys().sort(), ['k3', 'k4']);
    assert.equal(c.stats().bytes, size('k3', 'z'.repeat(10)) + size('k4', 'w'.repeat(20)));
    assert.equal(c.stats().evictions, 2);
  });

  test('an oversized value is refused with VALUE_TOO_LARGE and nothing is lost', () => {
    const c = new MemoryCache({ maxBytes: 1000 });
    c.set('keep', 'v').set('big', 'small');
    const before = snapshot(c);
    throwsCode(() => c.set('huge', 'x'.repeat(1000)), 'VALUE_TOO_LARGE');
    throwsCode(() => c.set('big', 'x'.repeat(1000)), 'VALUE_TOO_LARGE'); // overwrite too
    throwsCode(() => c.setMany([['ok', 1], ['huge', 'x'.repeat(1000)]]), 'VALUE_TOO_LARGE');
    assert.deepEqual(snapshot(c), before);
    assert.equal(c.get('big'), 'small');
  });

  test('size estimate by type, and sizeOf', () => {
    const c = new MemoryCache();
    const bytes = (v) => {
      c.clear();
      c.set('k', v);
      return c.stats().bytes - 2 - OVERHEAD;
    };
    assert.equal(bytes('abcd'), 8);
    assert.equal(bytes(12.5), 8);
    assert.equal(bytes(new Uint8Array(100)), 100);
    assert.equal(bytes(new ArrayBuffer(7)), 7);
    assert.equal(bytes({ a: 1 }), 2 * JSON.stringify({ a: 1 }).length);
    const cyclic = {};
    cyclic.self = cyclic;
    throwsCode(() => c.set('k', cyclic), 'UNMEASURABLE_VALUE');
    const sized = new MemoryCache({ sizeOf: (v) => v.n });
    sized.set('k', { n: 500 });
    assert.equal(sized.stats().bytes, 2 + 500 + OVERHEAD);
    const bad = new MemoryCache({ sizeOf: () => -1 });
    throwsCode(() => bad.set('k', 1), 'INVALID_OPTION');
    assert.equal(bad.stats().entries, 0);
  });
});

describe('TTL with an injected clock', () => {
  test('an entry lives for exactly its ttl', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now });
    c.set('k', 'v', { ttl: 100 });
    assert.equal(c.ttl('k'), 100);
    clock.advance(99);
    assert.equal(c.ttl('k'), 1);
    assert.equal(c.get('k'), 'v');
    clock.advance(1);
    assert.equal(c.get('k'), undefined);
    assert.equal(c.ttl('k'), undefined);
    assert.equal(c.stats().expirations, 1);
    assert.equal(c.stats().entries, 0);
  });

  test('defaultTtl, ttl: 0 for no expiry, overwrite resets the ttl', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now, defaultTtl: 50 });
    c.set('d', 1).set('forever', 2, { ttl: 0 }).set('long', 3, { ttl: 500 });
    assert.equal(c.ttl('d'), 50);
    assert.equal(c.ttl('forever'), Infinity);
    clock.advance(40);
    c.set('d', 11); // a new write gets a new ttl
    clock.advance(40);
    assert.equal(c.get('d'), 11);
    clock.advance(10);
    assert.equal(c.has('d'), false);
    assert.equal(c.get('forever'), 2);
    assert.equal(c.ttl('long'), 410);
  });

  test('bad ttls are refused with INVALID_TTL and change nothing', () => {
    const c = new MemoryCache();
    c.set('k', 'old');
    const before = snapshot(c);
    for (const ttl of [-1, NaN, Infinity, -Infinity, '100', null]) {
      throwsCode(() => c.set('k', 'new', { ttl }), 'INVALID_TTL');
      throwsCode(() => c.setMany([['x', 1], ['k', 'new', { ttl }]]), 'INVALID_TTL');
    }
    for (const options of [null, 5, 'ttl']) throwsCode(() => c.set('k', 'new', options), 'INVALID_OPTION');
    assert.deepEqual(snapshot(c), before);
  });

  test('has, delete, keys and incr treat expired entries as absent', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now });
    c.set('a', 1, { ttl: 10 }).set('b', 2, { ttl: 10 }).set('c', 3, { ttl: 10 }).set('n', 5, { ttl: 10 });
    c.set('stay', 0);
    clock.advance(10);
    assert.equal(c.has('a'), false);
    assert.equal(c.delete('b'), false);
    assert.deepEqual(c.keys(), ['stay']);
    assert.equal(c.incr('n'), 1, 'an expired counter starts again from 0');
    assert.equal(c.ttl('n'), Infinity);
    assert.equal(c.stats().deletes, 0);
    assert.equal(c.stats().expirations, 4);
  });

  test('expired entries are purged by later writes without being read', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now });
    for (let i = 0; i < 100; i++) c.set(`old:${i}`, i, { ttl: 10 });
    clock.advance(10);
    for (let i = 0; i < 30; i++) c.set(`new:${i}`, i);
    const s = c.stats();
    assert.ok(s.expirations >= 100, `purged ${s.expirations}`);
    assert.equal(s.entries, 30);
    assert.equal(s.bytes, 30 * (2 * 'new:0'.length + 8 + OVERHEAD) + 20 * 2, 'keys new:10..29 are one char longer');
  });
});

describe('batch operations', () => {
  test('getMany is aligned with its keys', () => {
    const c = new MemoryCache();
    c.set('a', 1).set('c', 3);
    assert.deepEqual(c.getMany(['a', 'b', 'c', 'a']), [1, undefined, 3, 1]);
    assert.equal(c.stats().hits, 3);
    assert.equal(c.stats().misses, 1);
  });

  test('setMany takes [k, v] and [k, v, { ttl }] tuples', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now });
    c.setMany([['a', 1], ['b', 2, { ttl: 5 }], ['c', 3, undefined]]);
    assert.deepEqual(c.getMany(['a', 'b', 'c']), [1, 2, 3]);
    assert.equal(c.ttl('b'), 5);
    throwsCode(() => c.setMany([['d', 4], ['bad']]), 'INVALID_OPTION');
    assert.equal(c.has('d'), false, 'nothing of a failed setMany is written');
  });

  test('deleteMany counts the live keys it deleted', () => {
    const c = new MemoryCache();
    c.setMany([['a', 1], ['b', 2], ['c', 3]]);
    assert.equal(c.deleteMany(['a', 'c', 'zz']), 2);
    assert.deepEqual(c.keys(), ['b']);
    assert.equal(c.stats().deletes, 2);
  });
});

describe('counters', () => {
  test('incr/decr start at 0, take a step, keep the ttl', () => {
    const clock = manualClock();
    const c = new MemoryCache({ now: clock.now });
    assert.equal(c.incr('hits'), 1);
    assert.equal(c.incr('hits', 10), 11);
    assert.equal(c.decr('hits'), 10);
    assert.equal(c.decr('new', 3), -3);
    c.set('t', 5, { ttl: 100 });
    clock.advance(30);
    assert.equal(c.incr('t'), 6);
    assert.equal(c.ttl('t'), 70, 'incr keeps the ttl, as INCRBY does');
  });

  test('errors leave the value unchanged', () => {
    const c = new MemoryCache();
    c.set('s', 'text').set('f', 1.5).set('max', Number.MAX_SAFE_INTEGER).set('min', Number.MIN_SAFE_INTEGER);
    throwsCode(() => c.incr('s'), 'NOT_AN_INTEGER');
    throwsCode(() => c.incr('f'), 'NOT_AN_INTEGER');
    throwsCode(() => c.incr('max'), 'OVERFLOW');
    throwsCode(() => c.decr('min'), 'OVERFLOW');
    for (const by of [1.5, NaN, Infinity, '1']) throwsCode(() => c.incr('n', by), 'NOT_AN_INTEGER');
    assert.deepEqual(c.getMany(['s', 'f', 'max', 'min', 'n']), ['text', 1.5, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, undefined]);
  });
});

describe('patterns', () => {
  const keys = ['user:1:profile', 'user:2:profile', 'user:10:cart', 'hello', 'hallo', 'hxllo', 'hllo', 'a*b', 'axb', 'é'];
  const cache = () => {
    const c = new MemoryCache();
    for (const k of keys) c.set(k, k);
    return c;
  };
  const cases = {
    '*': keys,
    'user:*': ['user:1:profile', 'user:2:profile', 'user:10:cart'],
    'user:?:profile': ['user:1:profile', 'user:2:profile'],
    'user:[0-9]*:cart': ['user:10:cart'],
    'h?llo': ['hello', 'hallo', 'hxllo'],
    'h*llo': ['hello', 'hallo', 'hxllo', 'hllo'],
    'h[ae]llo': ['hello', 'hallo'],
    'h[^e]llo': ['hallo', 'hxllo'],
    'h[a-b]llo': ['hallo'],
    'a\\*b': ['a*b'],
    '?': [],
    '??': ['é'],
    'nothing*': [],
  };
  for (const [pattern, want] of Object.entries(cases)) {
    test(`keys(${JSON.stringify(pattern)})`, () => {
      assert.deepEqual(cache().keys(pattern).sort(), [...want].sort());
    });
  }

  test('deletePattern returns how many it deleted', () => {
    const c = cache();
    assert.equal(c.deletePattern('user:*'), 3);
    assert.equal(c.deletePattern('user:*'), 0);
    assert.equal(c.keys().length, keys.length - 3);
    throwsCode(() => c.keys(5), 'INVALID_OPTION');
  });
});

describe('stats', () => {
  test('counts every event', () => {
    const clock = manualClock();
    const c = new MemoryCache({ maxEntries: 2, now: clock.now });
    c.set('a', 1).set('b', 2, { ttl: 5 });
    c.get('a');
    c.get('nope');
    c.set('c', 3); // evicts b (LRU)
    c.delete('a');
    c.set('d', 4, { ttl: 5 });
    clock.advance(5);
    c.get('d'); // expired: a miss and an expiration
    const s = c.stats();
    assert.deepEqual(
      { ...s, hitRate: Math.round(s.hitRate * 1000) / 1000 },
      { hits: 1, misses: 2, hitRate: 0.333, sets: 4, deletes: 1, evictions: 1, expirations: 1, entries: 1, bytes: 2 + 8 + OVERHEAD, maxEntries: 2, maxBytes: 32 * 1024 * 1024, tags: { invalidations: 0, invalidated: 0 } },
    );
  });

  test('clear keeps the counters but drops every entry', () => {
    const c = new MemoryCache();
    c.set('a', 1).get('a');
    c.scope({ tenant: 't' }).set('a', 2);
    c.clear();
    const s = c.stats();
    assert.equal(s.entries, 0);
    assert.equal(s.bytes, 0);
    assert.equal(s.hits, 1);
    assert.equal(s.sets, 2);
    assert.equal(c.scope({ tenant: 't' }).get('a'), undefined);
  });
});

describe('scopes', () => {
  test('root, tenant, user and tenant+user never see each other', () => {
    const c = new MemoryCache();
    const views = [c, c.scope({ tenant: 'acme' }), c.scope({ user: 'acme' }), c.scope({ tenant: 'acme', user: 'acme' })];
    views.forEach((v, i) => v.set('k', i));
    views.forEach((v, i) => {
      assert.equal(v.get('k'), i);
      assert.deepEqual(v.keys(), ['k']);
    });
    assert.equal(c.stats().entries, 4, 'root stats cover the whole cache');
    assert.equal(views[1].stats().entries, 1, 'a scope covers itself only');
  });

  test('no choice of separators makes two scopes collide', () => {
    const c = new MemoryCache();
    c.scope({ tenant: 'a:b' }).set('c', 'first');
    c.scope({ tenant: 'a' }).set('b:c', 'second');
    c.set('t3:a:b|c', 'root'); // looks like an encoded scope
    assert.equal(c.scope({ tenant: 'a:b' }).get('c'), 'first');
    assert.equal(c.scope({ tenant: 'a' }).get('b:c'), 'second');
    assert.equal(c.scope({ tenant: 'a' }).get('b'), undefined);
    assert.equal(c.scope({ tenant: 'a:b' }).get('b:c'), undefined);
    assert.deepEqual(c.keys(), ['t3:a:b|c']);
    c.scope({ tenant: 'x', user: 'y' }).set('k', 1);
    assert.equal(c.scope({ tenant: 'x' }).scope({ user: 'y' }).get('k'), 1, 'narrowing reaches the same scope');
    assert.equal(c.scope({ tenant: 'xy' }).get('k'), undefined);
    assert.equal(c.scope({ user: 'x' }).scope({ tenant: 'y' }).get('k'), undefined);
  });

  test('numbers stand for their decimal string', () => {
    const c = new MemoryCache();
    c.scope({ tenant: 7, user: 42 }).set('k', 'v');
    assert.equal(c.scope({ tenant: '7', user: '42' }).get('k'), 'v');
  });

  test('keys, deletePattern, clear and stats of a scope cover only that scope', () => {
    const c = new MemoryCache();
    const a = c.scope({ tenant: 'a' });
    const b = c.scope({ tenant: 'b' });
    for (const v of [c, a, b]) v.setMany([['user:1', 1], ['user:2', 2], ['other', 3]]);
    assert.equal(a.deletePattern('user:*'), 2);
    assert.deepEqual(a.keys(), ['other']);
    assert.deepEqual(b.keys('user:*').sort(), ['user:1', 'user:2']);
    a.get('other');
    b.get('missing');
    assert.equal(a.stats().hits, 1);
    assert.equal(a.stats().misses, 0);
    assert.equal(b.stats().misses, 1);
    b.clear();
    assert.deepEqual(b.keys(), []);
    assert.equal(b.stats().entries, 0);
    assert.deepEqual(c.keys().sort(), ['other', 'user:1', 'user:2'], 'the root is untouched');
    assert.deepEqual(a.keys(), ['other']);
    assert.equal(c.stats().entries, 4);
  });

  test('scopes share the bounds: evictions reach across and stats follow', () => {
    const c = new MemoryCache({ maxEntries: 2 });
    const t = c.scope({ tenant: 't' });
    t.set('a', 1);
    c.set('x', 1).set('y', 2); // evicts t's only entry
    assert.equal(t.get('a'), undefined);
    assert.deepEqual(t.keys(), []);
    assert.equal(t.stats().entries, 0);
    t.set('b', 2); // the scope comes back to life
    assert.equal(t.get('b'), 2);
    assert.equal(c.stats().evictions, 2);
  });

  test('invalid scopes and widening are refused with INVALID_SCOPE', () => {
    const c = new MemoryCache();
    // a lone surrogate has no UTF-8 form: 'x\uD800' and 'x\uDBFF' would name the same scope
    for (const s of [{}, { tenant: '' }, { user: NaN }, { tenant: {} }, null, 'acme', { tenant: Infinity }, { tenant: 'x\uD800' }]) {
      throwsCode(() => c.scope(s), 'INVALID_SCOPE');
    }
    const t = c.scope({ tenant: 'acme' });
    throwsCode(() => t.scope({ tenant: 'evil' }), 'INVALID_SCOPE');
    assert.equal(t.scope({ tenant: 'acme' }).stats().entries, 0);
  });
});

describe('free', () => {
  test('a freed cache throws FREED; Symbol.dispose frees', () => {
    const c = new MemoryCache();
    c.set('a', 1);
    const view = c.scope({ user: 'u' });
    view.free(); // a no-op on a view
    assert.equal(c.get('a'), 1);
    c.free();
    throwsCode(() => c.get('a'), 'FREED');
    throwsCode(() => view.set('a', 1), 'FREED');
    // what `using d = new MemoryCache()` calls at the end of its block
    const d = new MemoryCache();
    d.set('x', 1);
    assert.equal(typeof Symbol.dispose, 'symbol');
    d[Symbol.dispose]();
    throwsCode(() => d.get('x'), 'FREED');
  });
});

describe('model-based: random operations against a reference', () => {
  // The reference: one Map per scope (insertion order = recency), and a
  // global recency list to find the LRU entry across scopes.
  function reference(maxEntries) {
    const order = new Map(); // "scope\0key" -> [scope, key, value], oldest first
    const id = (s, k) => `${s}\0${k}`;
    return {
      get(s, k) {
        const e = order.get(id(s, k));
        if (!e) return undefined;
        order.delete(id(s, k));
        order.set(id(s, k), e);
        return e[2];
      },
      set(s, k, v) {
        order.delete(id(s, k));
        if (order.size >= maxEntries) order.delete(order.keys().next().value);
        order.set(id(s, k), [s, k, v]);
      },
      delete(s, k) {
        return order.delete(id(s, k));
      },
      keys(s) {
        return [...order.values()].filter((e) => e[0] === s).map((e) => e[1]).sort();
      },
      clear(s) {
        for (const [i, e] of order) if (s === null || e[0] === s) order.delete(i);
      },
      get size() {
        return order.size;
      },
    };
  }

  test('1000 random sequences', () => {
    let seed = 12345;
    const rand = (n) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let run = 0; run < 1000; run++) {
      const max = 1 + rand(6);
      const cache = new MemoryCache({ maxEntries: max });
      const views = [cache, cache.scope({ tenant: 't' }), cache.scope({ tenant: 't', user: 'u' })];
      const ref = reference(max);
      for (let step = 0; step < 60; step++) {
        const s = rand(3);
        const v = views[s];
        const k = 'abcd'[rand(4)];
        const where = `run ${run} step ${step} scope ${s} key ${k}`;
        switch (rand(6)) {
          case 0:
          case 1:
            v.set(k, step);
            ref.set(s, k, step);
            break;
          case 2:
            assert.equal(v.get(k), ref.get(s, k), where);
            break;
          case 3:
            assert.equal(v.delete(k), ref.delete(s, k), where);
            break;
          case 4:
            if (rand(10) === 0) {
              v.clear();
              ref.clear(s === 0 ? null : s);
            } else {
              assert.equal(v.incr(k + 'n'), (ref.get(s, k + 'n') ?? 0) + 1, where);
              ref.set(s, k + 'n', (ref.get(s, k + 'n') ?? 0) + 1);
            }
            break;
          default:
            assert.deepEqual(v.keys().sort(), ref.keys(s), where);
        }
        assert.equal(cache.stats().entries, ref.size, where);
      }
      for (let s = 0; s < 3; s++) assert.deepEqual(views[s].keys().sort(), ref.keys(s));
      cache.free();
    }
  });
});

// ---- issue 8: hardening ----

describe('issue 8: free() is final and idempotent', () => {
  test('every call after free() throws FREED, on the cache and its views', () => {
    const c = new MemoryCache();
    c.set('a', 1);
    const view = c.scope({ tenant: 't' });
    view.set('k', 1);
    c.free();
    const calls = {
      get: (x) => x.get('zzz'), set: (x) => x.set('zzz', 1), has: (x) => x.has('a'), delete: (x) => x.delete('a'),
      ttl: (x) => x.ttl('a'), keys: (x) => x.keys(), deletePattern: (x) => x.deletePattern('*'),
      getMany: (x) => x.getMany([]), setMany: (x) => x.setMany([]), deleteMany: (x) => x.deleteMany([]),
      incr: (x) => x.incr('n'), decr: (x) => x.decr('n'), stats: (x) => x.stats(), clear: (x) => x.clear(),
      scope: (x) => x.scope({ user: 'u' }), now: (x) => x.now(), setUndefined: (x) => x.set('a', undefined),
    };
    for (const [name, call] of Object.entries(calls)) {
      for (const [which, x] of [['cache', c], ['view', view]]) {
        assert.throws(() => call(x), (e) => e instanceof EdgeCacheError && e.code === 'FREED', `${which}.${name}`);
      }
    }
  });

  test('free() may be called twice, like Signer.free()', () => {
    const c = new MemoryCache();
    c.free();
    c.free();
    c[Symbol.dispose]();
    throwsCode(() => c.get('a'), 'FREED');
  });
});

describe('issue 8: options and inputs are validated, never coerced or ignored', () => {
  test('unknown write options are refused', () => {
    const c = new MemoryCache();
    throwsCode(() => c.set('k', 1, { tll: 10 }), 'INVALID_OPTION');
    throwsCode(() => c.set('k', undefined, { tll: 10 }), 'INVALID_OPTION');
    throwsCode(() => c.setMany([['k', 1, { tll: 10 }]]), 'INVALID_OPTION');
    throwsCode(() => c.scope({ tenant: 'a', usr: 'b' }), 'INVALID_SCOPE');
    assert.equal(c.has('k'), false);
  });

  test('setMany(null) and other non-iterables are an EdgeCacheError', () => {
    const c = new MemoryCache();
    for (const x of [null, undefined, 5, {}, 'ab']) throwsCode(() => c.setMany(x), 'INVALID_OPTION');
  });

  test('setMany checks the engine\'s own per-entry limit first: all or nothing', () => {
    const c = new MemoryCache({ maxBytes: Infinity, sizeOf: (v) => v });
    throwsCode(() => c.setMany([['small', 10], ['huge', 2 ** 32]]), 'VALUE_TOO_LARGE');
    assert.equal(c.has('small'), false, 'nothing was stored');
    throwsCode(() => c.set('huge', 2 ** 32), 'VALUE_TOO_LARGE');
    assert.deepEqual(c.keys(), []);
  });
});

describe('issue 8: sizes see what values keep alive', () => {
  test('Maps and Sets are measured by their entries', () => {
    const c = new MemoryCache();
    const big = 'x'.repeat(10_000);
    c.set('m', new Map([['k', big]]));
    c.set('s', new Set([big]));
    c.set('nested', { inner: new Map([[1, big]]) });
    // each entry is charged at least the 20 000 bytes of its string
    assert.ok(c.stats().bytes > 3 * 20_000, `bytes ${c.stats().bytes}`);
  });

  test('a typed-array view is charged the whole buffer it keeps alive, nested ones too', () => {
    const c = new MemoryCache();
    const buffer = new ArrayBuffer(100_000);
    c.set('view', new Uint8Array(buffer, 0, 10));
    assert.ok(c.stats().bytes >= 100_000);
    c.clear();
    c.set('dv', { page: new DataView(buffer, 0, 4) });
    assert.ok(c.stats().bytes >= 100_000, 'a DataView inside an object is not "{}"');
  });
});

describe('issue 8: patterns match keys with lone surrogates exactly', () => {
  test('deletePattern(\'id:\\uD800\') deletes that key only', () => {
    const c = new MemoryCache();
    for (const k of ['id:\uD800', 'id:\uDFFF', 'id:\uFFFD', 'id:\uD800\uDC00']) c.set(k, 1);
    assert.deepEqual(c.keys('id:\uD800'), ['id:\uD800']);
    assert.equal(c.deletePattern('id:\uD800'), 1);
    assert.deepEqual(c.keys().sort(), ['id:\uD800\uDC00', 'id:\uDFFF', 'id:\uFFFD'].sort());
    assert.deepEqual(c.keys('id:?').sort(), [], '? is one byte; a lone surrogate is three, as in WTF-8');
    assert.deepEqual(c.keys('id:*').length, 3);
    assert.deepEqual(c.keys('id:\uFFFD'), ['id:\uFFFD']);
  });
});

describe('issue 8: counters and clocks as documented', () => {
  test('incr on a value that is not a safe integer is NOT_AN_INTEGER', () => {
    const c = new MemoryCache();
    c.set('big', 2 ** 60);
    throwsCode(() => c.incr('big'), 'NOT_AN_INTEGER');
    c.set('edge', Number.MAX_SAFE_INTEGER);
    throwsCode(() => c.incr('edge'), 'OVERFLOW');
  });

  test('incr measures the new value again with a custom sizeOf', () => {
    const c = new MemoryCache({ maxBytes: 1000, sizeOf: (v) => (typeof v === 'number' ? Math.abs(v) : 8) });
    c.incr('n', 10);
    assert.equal(c.stats().bytes, 2 + 10 + OVERHEAD);
    c.incr('n', 90);
    assert.equal(c.stats().bytes, 2 + 100 + OVERHEAD);
    throwsCode(() => c.incr('n', 900), 'VALUE_TOO_LARGE');
    assert.equal(c.get('n'), 100, 'unchanged');
  });

  test('an expiry that lands on time 0 still expires (0 is "never")', () => {
    const clock = manualClock(-1000);
    const c = new MemoryCache({ now: clock.now });
    c.set('k', 1, { ttl: 1000 });
    assert.equal(c.get('k'), 1);
    clock.advance(1000);
    assert.equal(c.get('k'), undefined);
  });

  test('a clock that gives no finite time is refused, not read as "never expires"', () => {
    for (const t of [NaN, Infinity, undefined, '5']) {
      const c = new MemoryCache({ now: () => t });
      throwsCode(() => c.set('k', 1, { ttl: 10 }), 'INVALID_OPTION');
      assert.equal(c.has('k'), false);
    }
  });
});

describe('issue 8: wasm memory is taken on demand, and running out is an EdgeCacheError', () => {
  test('an empty cache reserves (almost) nothing', async () => {
    const { signerMemory } = await import('../../dist/wasm/edgecache.js');
    new MemoryCache().free(); // the wasm is instantiated
    const before = signerMemory().buffer.byteLength;
    const caches = Array.from({ length: 1000 }, () => new MemoryCache());
    const grown = signerMemory().buffer.byteLength - before;
    // 120 KB each were reserved up front before: 117 MiB for these
    assert.ok(grown <= 1 << 20, `1000 empty caches grew wasm memory by ${grown} bytes`);
    for (const c of caches) c.free();
  });

  test('out of wasm memory: OUT_OF_MEMORY, never a trap; the cache stays usable', async () => {
    const { execFileSync } = await import('node:child_process');
    // In a child process: the memory grown here is never given back.
    const script = `
      import { MemoryCache } from 'edgecache';
      import { signerMemory } from './dist/wasm/edgecache.js';
      new MemoryCache().free();
      const mem = signerMemory();
      mem.grow(65536 - mem.buffer.byteLength / 65536 - 1); // all but 64 KiB of the 4 GiB
      const out = {};
      const c = new MemoryCache({ maxEntries: 2 ** 29 - 1, maxBytes: Infinity });
      let i = 0;
      try { for (; i < 1e7; i++) c.set('k' + i, i); } catch (e) { out.set = [e.name, e.code]; }
      out.usable = [c.get('k0'), c.get('k' + (i - 1)), c.stats().entries === i];
      try { for (let j = 0; j < 1e6; j++) new MemoryCache(); } catch (e) { out.create = [e.name, e.code]; }
      console.log(JSON.stringify(out));`;
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
    });
    const out = JSON.parse(stdout);
    assert.deepEqual(out.set, ['EdgeCacheError', 'OUT_OF_MEMORY']);
    assert.equal(out.usable[0], 0);
    assert.equal(out.usable[2], true);
    assert.deepEqual(out.create, ['EdgeCacheError', 'OUT_OF_MEMORY']);
  });
});

// ---- issue 19: lookups batched in wasm memory, removals read in place ----

describe('issue 19: batched lookups and in-place removals are exact', () => {
  // The reference: a Map in recency order (oldest first) bounded by entries
  // and by the bytes MemoryCache charges (2 per UTF-16 unit of key and
  // value, plus 64).
  function reference(maxEntries, maxBytes) {
    const order = new Map();
    let bytes = 0;
    const charge = (k, v) => 2 * k.length + 2 * v.length + 64;
    return {
      get(k) {
        const v = order.get(k);
        if (v === undefined) return undefined;
        order.delete(k);
        order.set(k, v);
        return v;
      },
      set(k, v) {
        if (order.has(k)) {
          bytes -= charge(k, order.get(k));
          order.delete(k);
        }
        while (order.size >= maxEntries || (order.size > 0 && bytes + charge(k, v) > maxBytes)) {
          const [oldest, ov] = order.entries().next().value;
          bytes -= charge(oldest, ov);
          order.delete(oldest);
        }
        order.set(k, v);
        bytes += charge(k, v);
      },
      get bytes() {
        return bytes;
      },
      get size() {
        return order.size;
      },
    };
  }

  test('recency, evictions and hit/miss counts match a reference over thousands of gets, across wasm memory growth', () => {
    let seed = 99;
    const rand = (n) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const maxEntries = 200;
    const maxBytes = 40_000;
    const cache = new MemoryCache({ maxEntries, maxBytes });
    const ref = reference(maxEntries, maxBytes);
    const others = [];
    let hits = 0;
    let misses = 0;
    for (let step = 0; step < 20_000; step++) {
      const k = `k${rand(400)}`;
      if (rand(3) === 0) {
        // mixed sizes: a large value evicts several entries at once
        const v = 'x'.repeat(rand(10) === 0 ? 2000 + rand(8000) : 1 + rand(200));
        cache.set(k, v);
        ref.set(k, v);
      } else {
        const want = ref.get(k);
        assert.equal(cache.get(k), want, `step ${step} get ${k}`);
        if (want === undefined) misses++;
        else hits++;
      }
      if (step % 5000 === 4999) {
        // grow the wasm memory (which detaches every view of it) while lookups are pending
        const big = new MemoryCache({ maxEntries: 100_000, maxBytes: Infinity });
        for (let i = 0; i < 50_000; i++) big.set(`b${i}`, i);
        others.push(big);
      }
    }
    const s = cache.stats();
    assert.equal(s.hits, hits);
    assert.equal(s.misses, misses);
    assert.equal(s.entries, ref.size);
    assert.equal(s.bytes, ref.bytes);
    for (const o of others) o.free();
    cache.free();
  });

  test('scope views batch their misses too, and a freed cache refuses a hit through a view', () => {
    const c = new MemoryCache();
    const view = c.scope({ tenant: 't' });
    const empty = c.scope({ tenant: 'nobody' });
    view.set('k', 1);
    for (let i = 0; i < 300; i++) {
      assert.equal(view.get('k'), 1);
      assert.equal(view.get('absent'), undefined);
      assert.equal(empty.get('k'), undefined);
    }
    assert.deepEqual([view.stats().hits, view.stats().misses], [300, 300]);
    assert.deepEqual([c.stats().hits, c.stats().misses], [300, 600]);
    c.free();
    assert.throws(() => view.get('k'), (e) => e instanceof EdgeCacheError && e.code === 'FREED');
  });
});
