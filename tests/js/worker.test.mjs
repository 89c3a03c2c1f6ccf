// The example Worker (examples/worker/index.js, wrangler.toml) in a real
// workerd, bundled by wrangler exactly as `make dev` serves it: this checks
// that the package loads its wasm under the `workerd` condition.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { unstable_dev } from 'wrangler';

process.env.WRANGLER_SEND_METRICS = 'false';
let worker;

before(async () => {
  worker = await unstable_dev('examples/worker/index.js', {
    config: 'wrangler.toml',
    ip: '127.0.0.1',
    port: 0,
    logLevel: 'warn',
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
  });
});

after(async () => {
  await worker?.stop();
});

test('items are served from the L1 cache after the first request', async () => {
  const miss = await worker.fetch('/item/7');
  assert.equal(miss.status, 200);
  assert.equal(miss.headers.get('x-cache'), 'MISS');
  const first = await miss.json();
  assert.equal(first.name, 'item 7');

  const hit = await worker.fetch('/item/7');
  assert.equal(hit.headers.get('x-cache'), 'HIT');
  assert.ok(Number(hit.headers.get('age')) >= 0);
  assert.deepEqual(await hit.json(), first, 'the same rendering, replayed');

  const stats = await (await worker.fetch('/stats')).json();
  assert.equal(stats.hits, 1);
  assert.equal(stats.misses, 1);
  assert.equal(stats.entries, 1);
  assert.ok(stats.bytes > first.name.length);
});

test('DELETE invalidates, and the next request misses again', async () => {
  await worker.fetch('/item/8');
  const del = await worker.fetch('/item/8', { method: 'DELETE' });
  assert.deepEqual(await del.json(), { deleted: 1 });
  const again = await worker.fetch('/item/8');
  assert.equal(again.headers.get('x-cache'), 'MISS');
  assert.equal((await worker.fetch('/nowhere')).status, 404);
});

// ---- issue 8 ----

test('DELETE deletes the exact item: not its prefix, never a glob', async () => {
  for (const id of ['4', '42', '400']) await worker.fetch(`/item/${id}`);
  assert.deepEqual(await (await worker.fetch('/item/4', { method: 'DELETE' })).json(), { deleted: 1 });
  assert.equal((await worker.fetch('/item/42')).headers.get('x-cache'), 'HIT');
  assert.equal((await worker.fetch('/item/400')).headers.get('x-cache'), 'HIT');
  assert.deepEqual(await (await worker.fetch('/item/*', { method: 'DELETE' })).json(), { deleted: 0 });
  assert.deepEqual(await (await worker.fetch('/item/4*', { method: 'DELETE' })).json(), { deleted: 0 });
  assert.equal((await worker.fetch('/item/42')).headers.get('x-cache'), 'HIT');
  assert.equal((await worker.fetch('/item/4')).headers.get('x-cache'), 'MISS');
});

test('generateSecureKey() at module scope in workerd says why it fails and what to do', async () => {
  const w = await unstable_dev('tests/js/workers/random-at-module-scope.js', {
    compatibilityDate: '2024-09-23',
    ip: '127.0.0.1',
    port: 0,
    logLevel: 'warn',
    experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
  });
  try {
    const { atModuleScope, inRequest } = await (await w.fetch('/')).json();
    assert.equal(inRequest, 43, 'inside a request it works');
    assert.equal(atModuleScope.code, 'RANDOM_UNAVAILABLE', JSON.stringify(atModuleScope));
    assert.equal(atModuleScope.name, 'EdgeCacheError');
    assert.match(atModuleScope.message, /only while handling a request/);
    assert.doesNotMatch(atModuleScope.message, /has no crypto/);
  } finally {
    await w.stop();
  }
});
