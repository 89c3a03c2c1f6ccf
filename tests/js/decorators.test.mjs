// Standard (stage-3) decorators on real classes: tests/ts/*.ts is compiled
// by tsc (no experimentalDecorators) into a temporary directory under
// target/ (ignored by git, and inside the package so that
// `import 'edgecache'` resolves), then imported and exercised.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import {
  MemoryCache,
  EdgeCacheError,
  cached,
  invalidates,
  invalidatesPattern,
  getDefaultCache,
  setDefaultCache,
  argsKey,
} from 'edgecache';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
let outDir;
let m;

before(() => {
  mkdirSync(path.join(root, 'target'), { recursive: true });
  outDir = mkdtempSync(path.join(root, 'target', 'ts-decorators-'));
  try {
    execFileSync(
      path.join(root, 'node_modules/.bin/tsc'),
      ['-p', path.join(root, 'tests/ts/tsconfig.json'), '--outDir', outDir],
      { cwd: root, encoding: 'utf8', stdio: 'pipe' },
    );
  } catch (e) {
    throw new Error(`tsc failed on tests/ts:\n${e.stdout}${e.stderr}`);
  }
});

before(async () => {
  m = await import(pathToFileURL(path.join(outDir, 'services.js')).href);
});

after(() => {
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

const settle = () => new Promise((r) => setImmediate(r));

describe('decorators compiled by tsc', () => {
  test('tests/ts type-checks: parameter and result types are kept (types.ts)', async () => {
    // Reaching here means tsc exited 0 on types.ts, whose @ts-expect-error
    // lines would fail the build if the types were loose.
    const { t } = await import(pathToFileURL(path.join(outDir, 'types.js')).href).catch(() => ({}));
    assert.equal(t, undefined, 'types.js declares `remote`, so it is not meant to run');
  });

  test('@cached caches an async method in this.cache under prefix + key', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    const [a, b] = await Promise.all([users.getUser(1), users.getUser(1)]);
    assert.equal(a, 'ada');
    assert.equal(b, 'ada');
    assert.equal(users.calls, 1, 'single-flight');
    assert.equal(await users.getUser(1), 'ada');
    assert.equal(users.calls, 1);
    assert.deepEqual(cache.keys(), ['user:1']);
    const left = cache.ttl('user:1');
    assert.ok(left > 59_000 && left <= 60_000, `ttl 60 s, ${left} ms left`);
  });

  test('@cached with defaults: class.method prefix and argsKey keys, sync method', () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    assert.equal(users.nameLength(2), 5);
    assert.equal(users.nameLength(2), 5);
    assert.equal(users.calls, 1);
    assert.deepEqual(cache.keys(), ['UserService.nameLength:' + argsKey([2])]);
  });

  test('@invalidates deletes its keys after the async method resolves', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    await users.getUser(1);
    users.nameLength(1);
    const pending = users.rename(1, 'lovelace');
    assert.ok(cache.has('user:1'), 'not before the method has finished');
    await pending;
    assert.equal(cache.has('user:1'), false);
    assert.deepEqual(cache.keys(), []);
    assert.equal(await users.getUser(1), 'lovelace');
    assert.equal(users.nameLength(1), 8);
  });

  test('@invalidates does nothing when the method rejects or throws', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    await users.getUser(1);
    await assert.rejects(users.rename(1, ''), /empty name/);
    assert.ok(cache.has('user:1'));
    assert.throws(() => users.renameSync(1, ''), /empty name/);
    assert.ok(cache.has('user:1'));
    assert.equal(users.renameSync(1, 'x'), 'x', 'a sync method returns its own result');
    assert.equal(cache.has('user:1'), false, 'and invalidates at once');
  });

  test('@invalidates stops an in-flight @cached computation from storing stale data', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    const read = users.getUser(2); // starts before the write
    await users.rename(2, 'hopper'); // finishes before the read stores
    assert.equal(await read, 'grace', 'the old read still answers its caller');
    assert.equal(cache.has('user:2'), false, 'but its result was not stored');
    assert.equal(await users.getUser(2), 'hopper');
  });

  test('@invalidatesPattern deletes matching keys after success only', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    await Promise.all([users.getUser(1), users.getUser(2)]);
    users.nameLength(1);
    cache.set('other', 1);
    await assert.rejects(users.failingImport(), /import failed/);
    assert.equal(cache.keys('user:*').length, 2);
    assert.equal(await users.importAll([[1, 'x']]), 1);
    assert.deepEqual(cache.keys().sort(), ['UserService.nameLength:' + argsKey([1]), 'other']);
  });

  test('@invalidatesPattern with a pattern computed from the arguments', async () => {
    const cache = new MemoryCache();
    const users = new m.UserService(cache);
    await Promise.all([users.getUser(1), users.getUser(2)]);
    users.touch(2);
    assert.deepEqual(cache.keys('user:*'), ['user:1']);
  });

  test('static methods without a cache property use the shared default cache', () => {
    const shared = new MemoryCache();
    const previous = getDefaultCache();
    setDefaultCache(shared);
    try {
      assert.equal(getDefaultCache(), shared);
      assert.equal(m.Clock.now('utc'), 'utc#1');
      assert.equal(m.Clock.now('utc'), 'utc#1');
      assert.equal(m.Clock.now('cet'), 'cet#2');
      assert.equal(shared.keys('clock:*').length, 2);
      m.Clock.reset();
      assert.equal(shared.keys().length, 0);
      assert.equal(m.Clock.now('utc'), 'utc#3');
    } finally {
      setDefaultCache(previous);
    }
    assert.throws(() => setDefaultCache({}), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION');
  });

  test('a cache option function, a key using this, and stale-while-revalidate', async () => {
    const store = new MemoryCache({ now: () => m.TenantRepo.time });
    const acme = new m.TenantRepo('acme', store);
    const globex = new m.TenantRepo('globex', store);
    m.TenantRepo.time = 0;
    assert.deepEqual(await acme.doc('a'), { id: 'a', version: 1 });
    assert.deepEqual(await globex.doc('a'), { id: 'a', version: 1 });
    assert.deepEqual(store.keys().sort(), ['doc:acme/a', 'doc:globex/a']);
    assert.equal(store.ttl('doc:acme/a'), 2000, 'ttl + staleWhileRevalidate');

    m.TenantRepo.time = 1500; // stale
    assert.deepEqual(await acme.doc('a'), { id: 'a', version: 1 }, 'stale served');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(acme.calls, 2, 'refreshed once in the background');
    assert.deepEqual(await acme.doc('a'), { id: 'a', version: 2 });

    await acme.save('a');
    assert.deepEqual(store.keys(), ['doc:globex/a'], 'only this tenant invalidated');
  });
});

describe('decorators compiled by tsc: tags (issue 15)', () => {
  test('@cached({ tags }) with an array and with a function of the arguments and this', async () => {
    const cache = new MemoryCache();
    const a = new m.TaggedCatalog(cache, 'site:a');
    const b = new m.TaggedCatalog(cache.scope({ tenant: 'b' }), 'site:b');
    assert.equal(a.all(), 1);
    assert.equal(a.all(), 1);
    cache.invalidateTags(['catalog']);
    assert.equal(a.all(), 2);
    const p7 = await a.product(7);
    assert.equal(await a.product(7), p7);
    const b7 = await b.product(7);
    cache.invalidateTags(['product:8']);
    assert.equal(await a.product(7), p7);
    cache.invalidateTags(['product:7']);
    assert.notEqual(await a.product(7), p7);
    assert.equal(await b.product(7), b7, 'the root invalidation does not reach a scope');
    b.cache.invalidateTags(['site:b']);
    assert.notEqual(await b.product(7), b7);
  });
});

describe('decorators called directly', () => {
  test('legacy (experimentalDecorators) calls are refused with a clear error', () => {
    const legacy = (deco) => deco(function () {}, 'name', {});
    for (const deco of [cached(), invalidates({ keys: () => [] }), invalidatesPattern('*')]) {
      assert.throws(
        () => legacy(deco),
        (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION' && /experimentalDecorators/.test(e.message),
      );
    }
  });

  test('options are validated when the decorator is created', () => {
    const code = (c) => (e) => e instanceof EdgeCacheError && e.code === c;
    assert.throws(() => cached({ ttl: -5 }), code('INVALID_TTL'));
    assert.throws(() => cached({ staleWhileRevalidate: 5 }), code('INVALID_OPTION'));
    assert.throws(() => cached({ key: 'id' }), code('INVALID_OPTION'));
    assert.throws(() => cached({ cache: new Map() }), code('INVALID_OPTION'));
    assert.throws(() => invalidates({}), code('INVALID_OPTION'));
    assert.throws(() => invalidatesPattern(42), code('INVALID_OPTION'));
  });

  test('hand-applied with a context object, as a compiler would', async () => {
    const cache = new MemoryCache();
    const ctx = (name) => ({ kind: 'method', name, static: false, private: false, addInitializer() {} });
    let calls = 0;
    const get = cached({ cache, prefix: 'p:' })(async function (x) {
      calls++;
      return x + 1;
    }, ctx('get'));
    const put = invalidates({ cache, keys: (x) => ['p:' + argsKey([x])] })(async function () {}, ctx('put'));
    assert.equal(await get.call({}, 1), 2);
    assert.equal(await get.call({}, 1), 2);
    assert.equal(calls, 1);
    await put.call({}, 1);
    await settle();
    assert.equal(await get.call({}, 1), 2);
    assert.equal(calls, 2);
  });

  test('@cached tags: hand-applied, a bad tags function throws INVALID_TAG before the method runs', async () => {
    const cache = new MemoryCache();
    const ctx = (name) => ({ kind: 'method', name, static: false, private: false, addInitializer() {} });
    let calls = 0;
    const get = cached({ cache, prefix: 'p:', tags: (x) => (x === 0 ? ['bad,tag'] : [`x:${x}`]) })(function (x) {
      calls++;
      return x + 1;
    }, ctx('get'));
    assert.throws(() => get.call({}, 0), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TAG');
    assert.equal(calls, 0);
    assert.equal(get.call({}, 1), 2);
    assert.equal(get.call({}, 1), 2);
    assert.equal(calls, 1);
    cache.invalidateTags(['x:1']);
    assert.equal(get.call({}, 1), 2);
    assert.equal(calls, 2);
    assert.throws(() => cached({ tags: [''] }), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TAG');
    assert.throws(() => cached({ tags: 'x' }), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TAG');
  });

  test('@invalidates awaits an asynchronous cache before resolving', async () => {
    const inner = new MemoryCache();
    const log = [];
    const remote = {
      get: async (k) => inner.get(k),
      set: async (k, v, o) => inner.set(k, v, o),
      delete: async (k) => {
        await new Promise((r) => setTimeout(r, 5));
        log.push(`delete ${k}`);
        return inner.delete(k);
      },
      deletePattern: async (p) => inner.deletePattern(p),
    };
    const ctx = { kind: 'method', name: 'save', static: false, private: false, addInitializer() {} };
    const save = invalidates({ cache: remote, keys: (id) => [`a:${id}`, `b:${id}`] })(async (id) => id, ctx);
    inner.set('a:1', 1);
    assert.equal(await save(1), 1);
    log.push('resolved');
    assert.deepEqual(log, ['delete a:1', 'delete b:1', 'resolved']);
    assert.equal(inner.has('a:1'), false);
  });
});

// ---- issue 8 ----

describe('issue 8: decorators', () => {
  test('@cached() with defaults keeps classes apart: Users.get(1) is not Invoices.get(1)', () => {
    const previous = getDefaultCache();
    setDefaultCache(new MemoryCache());
    try {
      const users = new m.Users();
      const invoices = new m.Invoices();
      assert.equal(users.get(1), 'user 1');
      assert.equal(invoices.get(1), 'invoice 1');
      assert.equal(users.get(1), 'user 1');
      assert.deepEqual(getDefaultCache().keys().sort(), ['Invoices.get:~n1;', 'Users.get:~n1;']);
    } finally {
      setDefaultCache(previous);
    }
  });

  test('a fresh scope view per call still shares one flight per tenant, and never across tenants', async () => {
    const shared = new MemoryCache();
    const db = new Map([['acme/a', 'A1'], ['globex/a', 'G1']]);
    let open;
    const gate = () => new Promise((r) => (open = r));
    const acme = new m.ScopedRepo(shared, 'acme', db, () => Promise.resolve());
    const slow = new m.ScopedRepo(shared, 'acme', db, gate);
    const globex = new m.ScopedRepo(shared, 'globex', db, () => Promise.resolve());
    const three = [slow.get('a'), slow.get('a'), slow.get('a')];
    assert.equal(slow.loads, 1, 'three concurrent calls, one load');
    assert.equal(await globex.get('a'), 'G1', 'another tenant is never joined to acme\'s flight');
    assert.equal(globex.loads, 1);
    open();
    assert.deepEqual(await Promise.all(three), ['A1', 'A1', 'A1']);
    assert.equal(await acme.get('a'), 'A1');
    assert.equal(acme.loads, 0, 'stored in the tenant scope, served to another view');
  });

  test('@invalidates through a fresh view stops a read under way from writing back stale data', async () => {
    const shared = new MemoryCache();
    const db = new Map([['acme/a', 'old']]);
    let open;
    const slow = new m.ScopedRepo(shared, 'acme', db, () => new Promise((r) => (open = r)));
    const read = slow.get('a'); // reads 'old', then waits
    await slow.put('a', 'new'); // invalidates while the read is under way
    open();
    assert.equal(await read, 'old', 'the read still answers its caller');
    assert.equal(shared.scope({ tenant: 'acme' }).has('doc:a'), false, 'but its stale value was not stored');
    const fresh = new m.ScopedRepo(shared, 'acme', db, () => Promise.resolve());
    assert.equal(await fresh.get('a'), 'new');
  });

  test('unknown decorator options are refused', () => {
    const code = (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION';
    assert.throws(() => cached({ tll: 5 }), code);
    assert.throws(() => invalidates({ keys: () => [], cach: {} }), code);
    assert.throws(() => invalidatesPattern('*', { cahce: {} }), code);
  });
});
