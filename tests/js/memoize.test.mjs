// memoize(): keys, single-flight, errors, TTL, stale-while-revalidate,
// invalidate/peek, synchronous and asynchronous caches.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { memoize, argsKey, MemoryCache, EdgeCacheError } from 'edgecache';

/** A manual clock shared by a cache and memoize. */
function clock(t = 1_000_000) {
  const now = () => t;
  now.advance = (ms) => {
    t += ms;
  };
  return now;
}

/** A promise with its resolve/reject outside. */
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets queued microtasks and one macrotask run. */
const settle = () => new Promise((r) => setImmediate(r));

/**
 * An asynchronous cache over a MemoryCache, like the coming TieredCache:
 * every method returns a promise, and values go through JSON as they
 * would through Redis.
 */
class AsyncJsonCache {
  constructor(options) {
    this.inner = new MemoryCache(options);
    this.gets = 0;
  }
  async get(key) {
    this.gets++;
    await null;
    const raw = this.inner.get(key);
    return raw === undefined ? undefined : JSON.parse(raw);
  }
  async set(key, value, opts) {
    await null;
    this.inner.set(key, JSON.stringify(value), opts);
    return this;
  }
  async delete(key) {
    return this.inner.delete(key);
  }
  async deletePattern(p) {
    return this.inner.deletePattern(p);
  }
}

const isCode = (code) => (e) => e instanceof EdgeCacheError && e.code === code;

describe('memoize: basics', () => {
  test('a sync function is called once per distinct arguments', () => {
    let calls = 0;
    const add = memoize((a, b) => {
      calls++;
      return a + b;
    });
    assert.equal(add(1, 2), 3);
    assert.equal(add(1, 2), 3);
    assert.equal(add(2, 1), 3);
    assert.equal(calls, 2);
    assert.ok(add.cache instanceof MemoryCache);
    assert.equal(add.name, 'memoized');
  });

  test('an async function: hits resolve to the value and share one promise', async () => {
    let calls = 0;
    const twice = memoize(async function double(x) {
      calls++;
      return x * 2;
    });
    assert.equal(twice.name, 'memoized double');
    assert.equal(await twice(21), 42);
    const p1 = twice(21);
    const p2 = twice(21);
    assert.ok(p1 instanceof Promise);
    assert.equal(p1, p2, 'a hit returns the promise kept on the entry, not a new one');
    assert.equal(await p1, 42);
    assert.equal(calls, 1);
  });

  test('results that are undefined, null, 0 or false are cached too', () => {
    for (const value of [undefined, null, 0, false, '']) {
      let calls = 0;
      const f = memoize(() => {
        calls++;
        return value;
      });
      assert.equal(f(), value);
      assert.equal(f(), value);
      assert.equal(calls, 1, `result ${String(value)} cached`);
    }
  });

  test('`this` reaches fn and key, and is not part of the default key', () => {
    const seen = [];
    const obj = {
      base: 10,
      f: memoize(function (x) {
        seen.push(this);
        return this.base + x;
      }),
    };
    assert.equal(obj.f(1), 11);
    assert.equal(obj.f.call({ base: 100 }, 1), 11, 'same arguments, same key');
    assert.deepEqual(seen, [obj]);
    const g = memoize(
      function (x) {
        return this.base + x;
      },
      {
        key(x) {
          return `${this.base}/${x}`;
        },
      },
    );
    assert.equal(g.call({ base: 1 }, 1), 2);
    assert.equal(g.call({ base: 5 }, 1), 6, 'a key function may use this');
  });

  test('custom key and prefix; two functions share a cache without colliding', () => {
    const cache = new MemoryCache();
    const sq = memoize((x) => x * x, { cache, prefix: 'sq:', key: (x) => String(x) });
    const cube = memoize((x) => x * x * x, { cache, prefix: 'cube:', key: (x) => String(x) });
    assert.equal(sq(3), 9);
    assert.equal(cube(3), 27);
    assert.deepEqual(cache.keys().sort(), ['cube:3', 'sq:3']);
    assert.equal(sq.cache, cache);
    cache.deletePattern('sq:*');
    assert.deepEqual(cache.keys(), ['cube:3']);
  });

  test('a key function that returns a non-string is refused', () => {
    const f = memoize((x) => x, { key: (x) => x });
    assert.throws(() => f(1), isCode('INVALID_KEY'));
  });

  test('options are validated', () => {
    assert.throws(() => memoize(42), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { ttl: -1 }), isCode('INVALID_TTL'));
    assert.throws(() => memoize(() => 1, { ttl: Infinity }), isCode('INVALID_TTL'));
    assert.throws(() => memoize(() => 1, { staleWhileRevalidate: 10 }), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { ttl: 0, staleWhileRevalidate: 10 }), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { ttl: 10, staleWhileRevalidate: -1 }), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { cache: new Map() }), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { prefix: 3 }), isCode('INVALID_OPTION'));
    assert.throws(() => memoize(() => 1, { cacheErrors: 'yes' }), isCode('INVALID_OPTION'));
  });
});

describe('memoize: default keys', () => {
  test('plain objects are order-independent, at every depth', () => {
    let calls = 0;
    const f = memoize((o) => {
      calls++;
      return Object.keys(o).length;
    });
    f({ a: 1, b: { x: 1, y: [1, 2] } });
    f({ b: { y: [1, 2], x: 1 }, a: 1 });
    assert.equal(calls, 1);
    f({ a: 1, b: { x: 1, y: [2, 1] } });
    assert.equal(calls, 2, 'array order matters');
    assert.equal(argsKey([{ b: 1, a: 2 }]), argsKey([{ a: 2, b: 1 }]));
    assert.equal(argsKey([Object.assign(Object.create(null), { z: 1, a: 2 })]), argsKey([{ a: 2, z: 1 }]));
  });

  test('Maps and Sets are order-independent', () => {
    assert.equal(argsKey([new Map([['a', 1], ['b', 2]])]), argsKey([new Map([['b', 2], ['a', 1]])]));
    assert.equal(argsKey([new Set([1, 'x', 2])]), argsKey([new Set([2, 1, 'x'])]));
    assert.notEqual(argsKey([new Map([['a', 1]])]), argsKey([new Map([['a', 2]])]));
    assert.notEqual(argsKey([new Map([[1, 'a']])]), argsKey([new Map([['1', 'a']])]));
  });

  test('every one of these argument lists has its own key', () => {
    const d = new Date(0);
    const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
    const lists = [
      [], [undefined], [null], [undefined, undefined], [[]], [{}],
      [1], ['1'], [1n], [true], ['true'], [0], [-0], ['0'], [NaN], ['NaN'], [Infinity], [-Infinity],
      [1.5], ['1.5'], [false], [0n],
      [d], [0, 'D'], [d.getTime() + 5], [new Date(1)], [new Date(NaN)],
      [[1, 2]], [{ 0: 1, 1: 2 }], [[1], 2], [1, [2]], [[1, 2, 3]], [sparse], [[1, undefined, 3]],
      ['a', 'b'], ['ab'], ['a,b'], ['ab', ''], ['', 'ab'], ['a', 'b', ''], ['s1:a'], ['s1:as1:b'],
      [''], ['~'], ['~~'], ['~n1;'], ['n1;'], ['~s1:a'], ['~s1:as1:b'], ['~s2:~x'], ['~x'], ['~u'], ['u'], ['~N'],
      [{ a: 1 }], [{ a: '1' }], [{ a: undefined }], [{}, {}], [{ a: { b: 1 } }], [{ 'a.b': 1 }],
      [new Map()], [new Set()], [new Map([[1, 2]])], [new Set([1, 2])], [[[1, 2]]],
      [/a/g], [/a/], ['/a/g'], [new Uint8Array([1, 2])], [new Int8Array([1, 2])], [new Uint8Array([1, 2]).buffer],
      [new URL('https://example.com/a')], ['https://example.com/a'],
    ];
    const keys = new Map();
    for (const args of lists) {
      const k = argsKey(args);
      assert.equal(typeof k, 'string');
      if (keys.has(k)) assert.fail(`collision: ${JSON.stringify(keys.get(k))} and ${String(args)} both give ${k}`);
      keys.set(k, args);
    }
  });

  test('one string argument is its own key; everything else starts with ~', () => {
    assert.equal(argsKey(['alice']), 'alice');
    assert.equal(argsKey(['']), '');
    assert.equal(argsKey([]), '~');
    assert.equal(argsKey([42]), '~n42;');
    assert.equal(argsKey(['~x']), '~s2:~x', 'a string that starts with ~ is encoded');
    assert.equal(argsKey(['a', 1]), '~s1:an1;');
    const cache = new MemoryCache();
    const f = memoize((id) => id.toUpperCase(), { cache, prefix: 'user:' });
    f('ada');
    f('~tilde');
    assert.deepEqual(cache.keys().sort(), ['user:ada', 'user:~s6:~tilde']);
  });

  test('equal values give equal keys', () => {
    assert.equal(argsKey([NaN]), argsKey([Number('x')]));
    assert.equal(argsKey([new Date(5)]), argsKey([new Date(5)]));
    assert.equal(argsKey([[1, { a: [2] }]]), argsKey([[1, { a: [2] }]]));
    assert.equal(argsKey([10n ** 30n]), argsKey([BigInt('1' + '0'.repeat(30))]));
    assert.equal(argsKey([new Uint8Array([1, 2, 255])]), argsKey([Uint8Array.of(1, 2, 255)]));
    const shared = { x: 1 };
    assert.equal(argsKey([[shared, shared]]), argsKey([[{ x: 1 }, { x: 1 }]]), 'a repeated (not cyclic) object is fine');
  });

  test('values with toJSON are keyed by it and by their class', () => {
    class Money {
      constructor(n) {
        this.n = n;
      }
      toJSON() {
        return { n: this.n };
      }
    }
    class Weight extends Money {}
    assert.equal(argsKey([new Money(1)]), argsKey([new Money(1)]));
    assert.notEqual(argsKey([new Money(1)]), argsKey([new Money(2)]));
    assert.notEqual(argsKey([new Money(1)]), argsKey([new Weight(1)]));
    assert.notEqual(argsKey([new Money(1)]), argsKey([{ n: 1 }]));
  });

  test('functions, symbols, symbol keys, cycles and opaque class instances are refused', () => {
    const cyclic = { a: 1 };
    cyclic.self = cyclic;
    const cyclicArray = [];
    cyclicArray.push(cyclicArray);
    class Opaque {
      constructor() {
        this.x = 1;
      }
    }
    const cases = [
      [() => 1, /a function at argument 1/],
      [Symbol('s'), /a symbol at argument 1/],
      [{ a: { b: () => 1 } }, /a function at argument 1\.a\.b/],
      [{ [Symbol('k')]: 1 }, /symbol keys/],
      [cyclic, /a cycle at argument 1\.self/],
      [cyclicArray, /a cycle/],
      [new Opaque(), /an instance of Opaque/],
      [new Map([['f', () => 1]]), /a function/],
      [new WeakMap(), /an instance of WeakMap/],
    ];
    for (const [arg, message] of cases) {
      let calls = 0;
      const f = memoize(() => ++calls);
      assert.throws(
        () => f(1, arg),
        (e) => {
          assert.ok(e instanceof EdgeCacheError);
          assert.equal(e.code, 'UNSERIALIZABLE_ARGUMENT');
          assert.match(e.message, message);
          assert.match(e.message, /pass a `key` function/);
          return true;
        },
      );
      assert.equal(calls, 0, 'the function is not called');
    }
  });

  test('a custom key makes unserializable arguments usable', () => {
    let calls = 0;
    const apply = memoize(
      (fn, x) => {
        calls++;
        return fn(x);
      },
      { key: (fn, x) => `${fn.name}:${x}` },
    );
    function inc(x) {
      return x + 1;
    }
    assert.equal(apply(inc, 1), 2);
    assert.equal(apply(inc, 1), 2);
    assert.equal(calls, 1);
  });
});

describe('memoize: single-flight', () => {
  test('100 concurrent callers that miss run fn once and all get its result', async () => {
    let calls = 0;
    const gate = deferred();
    const load = memoize(async (id) => {
      calls++;
      await gate.promise;
      return { id, at: calls };
    });
    const pending = Array.from({ length: 100 }, () => load('user-1'));
    assert.equal(calls, 1);
    gate.resolve();
    const results = await Promise.all(pending);
    assert.equal(calls, 1);
    for (const r of results) assert.equal(r, results[0], 'the very same object');
    assert.deepEqual(results[0], { id: 'user-1', at: 1 });
    await load('user-1');
    assert.equal(calls, 1);
    await load('user-2');
    assert.equal(calls, 2, 'another key is another flight');
  });

  test('100 concurrent callers share one rejection, which is not cached', async () => {
    let calls = 0;
    const gate = deferred();
    const boom = new Error('backend down');
    const load = memoize(async () => {
      calls++;
      await gate.promise;
      throw boom;
    });
    const pending = Array.from({ length: 100 }, () => load('k'));
    gate.reject(boom);
    const settled = await Promise.allSettled(pending);
    assert.equal(calls, 1);
    for (const s of settled) {
      assert.equal(s.status, 'rejected');
      assert.equal(s.reason, boom);
    }
    assert.equal(load.peek('k'), undefined);
    await assert.rejects(load('k'), boom);
    assert.equal(calls, 2, 'the rejection was not cached: fn runs again');
  });

  test('a sync function that throws is not cached', () => {
    let calls = 0;
    const f = memoize(() => {
      calls++;
      throw new TypeError('nope');
    });
    assert.throws(() => f(), TypeError);
    assert.throws(() => f(), TypeError);
    assert.equal(calls, 2);
  });
});

describe('memoize: cacheErrors', () => {
  test('cacheErrors: true caches a rejection and rejects again without calling fn', async () => {
    let calls = 0;
    const err = new Error('404');
    const f = memoize(
      async () => {
        calls++;
        throw err;
      },
      { cacheErrors: true },
    );
    await assert.rejects(f('x'), (e) => e === err);
    await assert.rejects(f('x'), (e) => e === err);
    await assert.rejects(f('x'), (e) => e === err);
    assert.equal(calls, 1);
    assert.equal(f.peek('x'), undefined, 'peek gives values, not errors');
    f.invalidate('x');
    await assert.rejects(f('x'));
    assert.equal(calls, 2);
  });

  test('cacheErrors: true caches a synchronous throw', () => {
    let calls = 0;
    const f = memoize(
      () => {
        calls++;
        throw new RangeError('bad');
      },
      { cacheErrors: true },
    );
    assert.throws(() => f(1), RangeError);
    assert.throws(() => f(1), RangeError);
    assert.equal(calls, 1);
  });

  test('a cacheErrors function decides per error', async () => {
    let calls = 0;
    const f = memoize(
      async (status) => {
        calls++;
        throw Object.assign(new Error(`status ${status}`), { status });
      },
      { cacheErrors: (e) => e.status === 404 },
    );
    await assert.rejects(f(404));
    await assert.rejects(f(404));
    assert.equal(calls, 1, '404 cached');
    await assert.rejects(f(500));
    await assert.rejects(f(500));
    assert.equal(calls, 3, '500 not cached');
  });

  test('cached errors expire with the ttl', async () => {
    const now = clock();
    let calls = 0;
    const f = memoize(
      async () => {
        calls++;
        throw new Error('x');
      },
      { cache: new MemoryCache({ now }), ttl: 100, cacheErrors: true },
    );
    await assert.rejects(f());
    now.advance(99);
    await assert.rejects(f());
    assert.equal(calls, 1);
    now.advance(1);
    await assert.rejects(f());
    assert.equal(calls, 2);
  });
});

describe('memoize: ttl and stale-while-revalidate', () => {
  test('a result expires after ttl (cache clock)', () => {
    const now = clock();
    let calls = 0;
    const f = memoize(() => ++calls, { cache: new MemoryCache({ now }), ttl: 1000 });
    assert.equal(f('a'), 1);
    now.advance(999);
    assert.equal(f('a'), 1);
    now.advance(1);
    assert.equal(f('a'), 2);
    assert.equal(f.cache.ttl('a'), 1000, 'one string argument is its own key');
  });

  test('no ttl uses the cache default', () => {
    const now = clock();
    let calls = 0;
    const f = memoize(() => ++calls, { cache: new MemoryCache({ now, defaultTtl: 50 }) });
    f();
    now.advance(49);
    assert.equal(f(), 1);
    now.advance(1);
    assert.equal(f(), 2);
  });

  test('async: stale served inside the window, refreshed once in the background', async () => {
    const now = clock();
    const cache = new MemoryCache({ now });
    let version = 0;
    let calls = 0;
    let gate = null;
    const load = memoize(
      async (id) => {
        calls++;
        if (gate) await gate.promise;
        return `${id}@v${++version}`;
      },
      { cache, ttl: 1000, staleWhileRevalidate: 500, now },
    );
    assert.equal(await load('a'), 'a@v1');
    assert.equal(cache.ttl('a'), 1500, 'stored for ttl + staleWhileRevalidate');
    now.advance(999);
    assert.equal(await load('a'), 'a@v1');
    assert.equal(calls, 1, 'fresh: no refresh');

    now.advance(1); // t = 1000: stale
    gate = deferred();
    const stale = await Promise.all(Array.from({ length: 10 }, () => load('a')));
    assert.deepEqual(new Set(stale), new Set(['a@v1']), 'stale value served at once');
    await settle();
    assert.equal(calls, 2, 'ten stale hits, one refresh');
    assert.equal(await load('a'), 'a@v1', 'still stale while the refresh runs');
    assert.equal(calls, 2);
    gate.resolve();
    await settle();
    assert.equal(await load('a'), 'a@v2', 'refreshed');
    assert.equal(cache.ttl('a'), 1500, 'the refresh restarts ttl + window');
    assert.equal(calls, 2);

    gate = null;
    now.advance(1500); // past ttl + window: a plain miss
    assert.equal(await load('a'), 'a@v3');
    assert.equal(calls, 3);
  });

  test('a failed refresh keeps the stale value and is retried by the next stale hit', async () => {
    const now = clock();
    let fail = false;
    let calls = 0;
    const load = memoize(
      async () => {
        calls++;
        if (fail) throw new Error('down');
        return calls;
      },
      { cache: new MemoryCache({ now }), ttl: 100, staleWhileRevalidate: 1000, now },
    );
    assert.equal(await load(), 1);
    now.advance(200);
    fail = true;
    assert.equal(await load(), 1);
    await settle();
    assert.equal(calls, 2);
    assert.equal(await load(), 1, 'stale kept after the failed refresh');
    await settle();
    assert.equal(calls, 3, 'tried again');
    fail = false;
    assert.equal(await load(), 1);
    await settle();
    assert.equal(await load(), 4);
  });

  test('sync function: stale value returned synchronously, refresh in a microtask', async () => {
    const now = clock();
    let calls = 0;
    const f = memoize(() => ++calls, {
      cache: new MemoryCache({ now }),
      ttl: 10,
      staleWhileRevalidate: 10,
      now,
    });
    assert.equal(f(), 1);
    now.advance(15);
    assert.equal(f(), 1);
    assert.equal(f(), 1);
    assert.equal(calls, 1, 'not refreshed inline');
    await settle();
    assert.equal(calls, 2);
    assert.equal(f(), 2);
    now.advance(25);
    assert.equal(f(), 3, 'expired: recomputed synchronously');
  });

  test("without a now option, memoize reads the cache's now() if it has one", async () => {
    const t = clock();
    const cache = new AsyncJsonCache({ now: t });
    cache.now = t;
    let calls = 0;
    const f = memoize(async () => ++calls, { cache, ttl: 100, staleWhileRevalidate: 100 });
    assert.equal(await f(), 1);
    t.advance(150);
    assert.equal(await f(), 1, 'stale by the cache clock (Date.now would say fresh)');
    await settle();
    await settle();
    assert.equal(await f(), 2);
  });
});

describe('memoize: invalidate and peek', () => {
  test('invalidate deletes the entry; the next call recomputes', async () => {
    let calls = 0;
    const f = memoize(async (a, b) => {
      calls++;
      return a + b;
    });
    await f(1, 2);
    assert.equal(f.invalidate(1, 2), true);
    assert.equal(f.invalidate(1, 2), false);
    assert.equal(f.peek(1, 2), undefined);
    assert.equal(await f(1, 2), 3);
    assert.equal(calls, 2);
  });

  test('invalidate during a computation: its result is not stored', async () => {
    let calls = 0;
    const gate = deferred();
    const f = memoize(async () => {
      calls++;
      await gate.promise;
      return `v${calls}`;
    });
    const first = f();
    f.invalidate();
    gate.resolve();
    assert.equal(await first, 'v1', 'the caller still gets its result');
    assert.equal(f.peek(), undefined, 'but it was not stored');
    assert.equal(await f(), 'v2');
  });

  test('peek reads without calling fn or refreshing', async () => {
    const now = clock();
    let calls = 0;
    const f = memoize(async (x) => ++calls + x, {
      cache: new MemoryCache({ now }),
      ttl: 10,
      staleWhileRevalidate: 100,
      now,
    });
    assert.equal(f.peek(1), undefined);
    assert.equal(calls, 0);
    await f(1);
    assert.equal(f.peek(1), 2, 'the awaited value, not a promise');
    now.advance(50);
    assert.equal(f.peek(1), 2, 'stale values are peeked');
    await settle();
    assert.equal(calls, 1, 'peek does not refresh');
  });
});

describe('memoize: cache interplay', () => {
  test('a result the cache refuses as too large is returned, not stored', () => {
    const cache = new MemoryCache({ maxBytes: 1024 });
    let calls = 0;
    const f = memoize((n) => {
      calls++;
      return 'x'.repeat(n);
    }, { cache });
    assert.equal(f(2000).length, 2000);
    assert.equal(f(2000).length, 2000);
    assert.equal(calls, 2);
    f(10);
    f(10);
    assert.equal(calls, 3);
  });

  test("memoize's own cache takes values JSON cannot measure", () => {
    let calls = 0;
    const f = memoize(() => {
      calls++;
      const o = { big: 10n };
      o.self = o;
      return o;
    });
    const a = f();
    assert.equal(f(), a);
    assert.equal(calls, 1);
  });

  test('an asynchronous JSON-backed cache: hits, single-flight, invalidate', async () => {
    const cache = new AsyncJsonCache();
    let calls = 0;
    const gate = deferred();
    const f = memoize(
      async (id) => {
        calls++;
        await gate.promise;
        return { id, n: calls };
      },
      { cache, prefix: 'u:', ttl: 60_000 },
    );
    const pending = Array.from({ length: 20 }, () => f(7));
    await settle();
    gate.resolve();
    const results = await Promise.all(pending);
    assert.equal(calls, 1);
    assert.deepEqual(results[19], { id: 7, n: 1 });
    await settle();
    assert.deepEqual(JSON.parse(cache.inner.get('u:~n7;')), { v: { id: 7, n: 1 }, s: 1, f: 0 });
    assert.deepEqual(await f(7), { id: 7, n: 1 }, 'decoded from its JSON form');
    assert.equal(calls, 1);
    assert.deepEqual(await f.peek(7), { id: 7, n: 1 });
    assert.equal(await f.invalidate(7), true);
    await f(7);
    assert.equal(calls, 2);
  });

  test('a sync function over an async cache returns promises', async () => {
    const cache = new AsyncJsonCache();
    let calls = 0;
    const f = memoize((x) => {
      calls++;
      return x + 1;
    }, { cache });
    const r = f(1);
    assert.ok(r instanceof Promise);
    assert.equal(await r, 2);
    await settle();
    assert.equal(await f(1), 2);
    assert.equal(calls, 1);
  });

  test('a write that fails after the call has answered is ignored, never an unhandled rejection', async () => {
    // The call does not wait for an asynchronous write; a failed one (say
    // Redis down, failOpen: false) just leaves the result unstored. A sync
    // function's result, a sync throw with cacheErrors, an async result.
    class FailingWrites extends AsyncJsonCache {
      async set() {
        await null;
        throw new EdgeCacheError('L2_UNAVAILABLE', 'the write failed');
      }
    }
    const unhandled = [];
    const onUnhandled = (e) => unhandled.push(e);
    process.on('unhandledRejection', onUnhandled);
    try {
      const cache = new FailingWrites();
      const sync = memoize((x) => x + 1, { cache, prefix: 's:' });
      const throws = memoize(() => {
        throw new Error('no');
      }, { cache, prefix: 't:', cacheErrors: true });
      const async = memoize(async (x) => x * 2, { cache, prefix: 'a:' });
      assert.equal(await sync(1), 2);
      await assert.rejects(throws(1), /no/);
      assert.equal(await async(2), 4);
      await settle();
      await settle();
      assert.deepEqual(unhandled, []);
      assert.equal(await async(2), 4, 'computed again, nothing stuck in flight');
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('an entry written by someone else under the key is a miss, then overwritten', () => {
    const cache = new MemoryCache();
    const f = memoize((x) => x * 10, { cache, prefix: 'm:', key: String });
    cache.set('m:1', 'not a memo entry');
    assert.equal(f(1), 10);
    assert.equal(f.peek(1), 10);
  });
});

// ---- issue 8: hardening ----

describe('issue 8: memoize', () => {
  test('a cacheErrors predicate that throws means "do not cache", and never wedges the key', async () => {
    let calls = 0;
    const f = memoize(
      async (x) => {
        calls++;
        if (calls === 1) throw new Error('boom');
        return x;
      },
      {
        cacheErrors: () => {
          throw new Error('predicate bug');
        },
      },
    );
    await assert.rejects(f('a'), /boom/);
    assert.equal(await f('a'), 'a', 'fn is called again');
    assert.equal(calls, 2);
    // and for a synchronous function
    let n = 0;
    const g = memoize(() => {
      if (++n === 1) throw new Error('sync boom');
      return n;
    }, { cacheErrors: () => { throw new Error('predicate bug'); } });
    assert.throws(() => g('k'), /sync boom/);
    assert.equal(g('k'), 2);
  });

  test('unknown options are refused', () => {
    for (const options of [{ tll: 5 }, { ttl: 5, prefx: 'a:' }, { staleWhileRevalidat: 1 }]) {
      assert.throws(() => memoize(() => 1, options), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION');
    }
  });

  test('an argument nested 100 000 deep is UNSERIALIZABLE_ARGUMENT, not a RangeError', () => {
    const f = memoize((x) => 1);
    let deep = [];
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.throws(() => f(deep, 1), (e) => e instanceof EdgeCacheError && e.code === 'UNSERIALIZABLE_ARGUMENT');
    let obj = {};
    for (let i = 0; i < 100_000; i++) obj = { a: obj };
    assert.throws(() => argsKey([obj]), (e) => e instanceof EdgeCacheError && e.code === 'UNSERIALIZABLE_ARGUMENT');
    let ok = [];
    for (let i = 0; i < 200; i++) ok = [ok];
    assert.equal(f(ok, 1), 1, '200 levels are fine');
  });

  test('100 000 helpers without a cache share one default cache: the memory they leave is bounded', async () => {
    const v8 = await import('node:v8');
    const vm = await import('node:vm');
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    const { signerMemory } = await import('../../dist/wasm/edgecache.js');
    memoize((x) => x)('warm up');
    gc();
    const wasm0 = signerMemory().buffer.byteLength;
    const heap0 = process.memoryUsage().heapUsed;
    // One helper per "request", each used once, then dropped.
    for (let i = 0; i < 100_000; i++) {
      const f = memoize((x) => ({ x, i }));
      assert.equal(f(`req-${i}`).i, i);
    }
    gc();
    gc();
    const wasm = signerMemory().buffer.byteLength - wasm0;
    const heap = process.memoryUsage().heapUsed - heap0;
    // Bounded by the default cache (10 000 entries), whatever the number of helpers.
    assert.ok(wasm <= 4 << 20, `wasm memory grew by ${wasm} bytes`);
    assert.ok(heap <= 32 << 20, `heap grew by ${heap} bytes`);
    const view = memoize((x) => x).cache;
    assert.throws(() => view.scope({ tenant: 'other' }), (e) => e.code === 'INVALID_SCOPE', 'a helper cannot reach another\'s scope');
  });
});

describe('memoize: tags (issue 15)', () => {
  test('a tags array: fn.cache.invalidateTags makes every result carrying it miss', () => {
    let calls = 0;
    const f = memoize((x) => `${x}#${++calls}`, { tags: ['users'] });
    assert.equal(f('a'), 'a#1');
    assert.equal(f('b'), 'b#2');
    assert.equal(f('a'), 'a#1');
    assert.equal(f.cache.invalidateTags(['other']), 1);
    assert.equal(f('a'), 'a#1');
    f.cache.invalidateTags(['users']);
    assert.equal(f('a'), 'a#3');
    assert.equal(f('b'), 'b#4');
    assert.equal(f('a'), 'a#3', 'stored again after the invalidation');
  });

  test('tags as a function of the arguments (and this), called on a miss before fn', () => {
    const order = [];
    const cache = new MemoryCache();
    const f = memoize(
      function (id, kind) {
        order.push(`fn ${id}`);
        return `${kind} ${id}`;
      },
      {
        cache,
        tags(id, kind) {
          order.push(`tags ${id}`);
          return [`${kind}:${id}`, `${this.site}`];
        },
      },
    );
    const self = { site: 'site:1', f };
    assert.equal(self.f(7, 'product'), 'product 7');
    assert.equal(self.f(8, 'product'), 'product 8');
    assert.deepEqual(order, ['tags 7', 'fn 7', 'tags 8', 'fn 8']);
    self.f(7, 'product');
    assert.equal(order.length, 4, 'a hit calls neither');
    cache.invalidateTags(['product:7']);
    self.f(7, 'product');
    self.f(8, 'product');
    assert.deepEqual(order.slice(4), ['tags 7', 'fn 7']);
    cache.invalidateTags(['site:1']);
    self.f(8, 'product');
    assert.deepEqual(order.slice(6), ['tags 8', 'fn 8']);
  });

  test('a tags function that returns bad tags throws INVALID_TAG from the call, fn not called; a bad array is refused up front', () => {
    let calls = 0;
    const f = memoize((x) => ++calls, { tags: (x) => (x === 'bad' ? ['a,b'] : x === 'notarray' ? 'a' : [x]) });
    assert.throws(() => f('bad'), isCode('INVALID_TAG'));
    assert.throws(() => f('notarray'), isCode('INVALID_TAG'));
    assert.equal(calls, 0);
    assert.equal(f('ok'), 1);
    assert.throws(() => memoize(() => 1, { tags: [''] }), isCode('INVALID_TAG'));
    assert.throws(() => memoize(() => 1, { tags: 'users' }), isCode('INVALID_TAG'));
    assert.throws(() => memoize(() => 1, { tag: ['users'] }), isCode('INVALID_OPTION'));
  });

  test('an async computation under way when its tag is invalidated does not store its result', async () => {
    const d = deferred();
    let calls = 0;
    const f = memoize(async (x) => (++calls === 1 ? d.promise : `fresh ${x}`), { tags: (x) => [`t:${x}`] });
    const p = f('a');
    f.cache.invalidateTags(['t:b']);
    await settle();
    f.cache.invalidateTags(['t:a']);
    d.resolve('read before');
    assert.equal(await p, 'read before');
    assert.equal(await f('a'), 'fresh a');
    assert.equal(await f('a'), 'fresh a');
    assert.equal(calls, 2);
  });

  test('stale-while-revalidate: a refresh keeps the tags; an invalidated stale value is not served', async () => {
    const now = clock();
    const cache = new MemoryCache({ now });
    let calls = 0;
    const f = memoize(async (x) => `${x}#${++calls}`, { cache, ttl: 1000, staleWhileRevalidate: 10_000, tags: ['t'] });
    assert.equal(await f('a'), 'a#1');
    now.advance(2000);
    assert.equal(await f('a'), 'a#1', 'stale');
    await settle();
    assert.equal(await f('a'), 'a#2', 'refreshed');
    cache.invalidateTags(['t']);
    assert.equal(await f('a'), 'a#3', 'the refreshed result carried the tag');
    now.advance(2000);
    cache.invalidateTags(['t']);
    assert.equal(await f('a'), 'a#4', 'a stale but invalidated value is a miss, not served stale');
  });

  test('tags reach an asynchronous cache as set(key, value, { ttl, tags })', async () => {
    const cache = new AsyncJsonCache();
    cache.invalidateTags = async (t) => cache.inner.invalidateTags(t);
    const seen = [];
    const set = cache.set.bind(cache);
    cache.set = (k, v, o) => (seen.push(o), set(k, v, o));
    let calls = 0;
    const f = memoize(async (x) => ++calls, { cache, ttl: 5000, tags: (x) => [`x:${x}`] });
    assert.equal(await f(1), 1);
    await settle();
    assert.deepEqual(seen, [{ ttl: 5000, tags: ['x:1'] }]);
    assert.equal(await f(1), 1);
    await cache.invalidateTags(['x:1']);
    assert.equal(await f(1), 2);
  });

  test('without tags the set options are unchanged (no tags key)', () => {
    const seen = [];
    const inner = new MemoryCache();
    const cache = { get: (k) => inner.get(k), set: (k, v, o) => (seen.push(o), inner.set(k, v, o)), delete: (k) => inner.delete(k), deletePattern: (p) => inner.deletePattern(p) };
    memoize((x) => x, { cache })(1);
    memoize((x) => x, { cache, ttl: 5, prefix: 'b' })(1);
    assert.deepEqual(seen, [undefined, { ttl: 5 }]);
  });
});
