// edgecache/hono: the middleware in a real Hono app (from npm, installed
// with the package test tools into target/pkg-tools), served by Node through
// @hono/node-server and fetched over loopback. The packed package in
// workerd, Bun and Deno: tests/js/pkg-workers.test.mjs and
// pkg-runtimes.test.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { MemoryCache, EdgeCacheError } from 'edgecache';
import { pageCache } from 'edgecache/hono';
import { tools, requireTools } from '../pkg/lib.mjs';

requireTools();
const { Hono } = await import(pathToFileURL(path.join(tools, 'hono/dist/index.js')).href);
const { serve } = await import(pathToFileURL(path.join(tools, '@hono/node-server/dist/index.mjs')).href);

const cache = new MemoryCache();
const renders = {};
const render = (name) => (renders[name] = (renders[name] ?? 0) + 1);
let server;
let base;

before(async () => {
  const app = new Hono();
  app.use(pageCache({ cache, ttl: 60_000, vary: ['accept-language'] }));
  app.get('/page', (c) => c.text(`page ${render('page')}`));
  app.post('/page', (c) => c.text(`posted ${render('post')}`));
  app.get('/private', (c) => c.text(`private ${render('private')}`, 200, { 'cache-control': 'private' }));
  app.get('/cookie', (c) => c.text(`cookie ${render('cookie')}`, 200, { 'set-cookie': 'a=1' }));
  app.get('/vary-ua', (c) => c.text(`ua ${render('ua')}`, 200, { vary: 'user-agent' }));
  app.get('/lang', (c) => c.text(`${c.req.header('accept-language')} ${render('lang')}`, 200, { vary: 'accept-language' }));
  app.get('/auth', (c) => c.text(`auth ${render('auth')}`));
  app.get('/missing', (c) => c.text(`missing ${render('missing')}`, 404));
  app.get('/var', (c) => c.json({ same: c.var.cache === cache && c.get('cache') === cache }));
  // A middleware on one route only, with a cache of its own.
  app.get('/own', pageCache({ prefix: 'own:' }), (c) => c.json({ own: c.var.cache instanceof MemoryCache && c.var.cache !== cache, n: render('own') }));
  await new Promise((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info) => {
      base = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
});
after(() => new Promise((resolve) => server.close(resolve)));

/** A request; its body read, and the store that runs after it awaited (keys appear in `cache`). */
async function get(p, init = {}) {
  const res = await fetch(base + p, init);
  const body = await res.text();
  // A miss is stored once its body has been read: a moment later.
  if (res.headers.get('x-cache') === 'MISS') await new Promise((r) => setTimeout(r, 20));
  return { status: res.status, body, xCache: res.headers.get('x-cache'), age: res.headers.get('age') };
}

test('a GET is stored once and then served from the cache, with x-cache and age', async () => {
  assert.deepEqual(await get('/page'), { status: 200, body: 'page 1', xCache: 'MISS', age: null });
  assert.deepEqual(await get('/page'), { status: 200, body: 'page 1', xCache: 'HIT', age: '0' });
  assert.equal(renders.page, 1);
  assert.deepEqual(cache.keys('page:*'), [`page:GET ${base}/page\naccept-language:*`], "Node's fetch sends accept-language: *");
  // HEAD is served from the stored GET, without a body.
  const head = await fetch(`${base}/page`, { method: 'HEAD' });
  assert.equal(head.headers.get('x-cache'), 'HIT');
  assert.equal(await head.text(), '');
  // Other methods pass through.
  assert.equal((await get('/page', { method: 'POST' })).body, 'posted 1');
  assert.equal((await get('/page', { method: 'POST' })).body, 'posted 2');
  assert.equal(renders.page, 1);
});

test("cachePage's rules: Cache-Control private, Set-Cookie, a Vary not in the key, statuses", async () => {
  for (const [p, name] of [['/private', 'private'], ['/cookie', 'cookie'], ['/vary-ua', 'ua'], ['/missing', 'missing']]) {
    assert.equal((await get(p)).xCache, 'MISS');
    assert.equal((await get(p)).xCache, 'MISS', p);
    assert.equal(renders[name], 2, p);
  }
  assert.deepEqual(cache.keys('page:*').filter((k) => !k.includes('/page') && !k.includes('/var')), []);
});

test('vary: one entry per accept-language value', async () => {
  assert.equal((await get('/lang', { headers: { 'accept-language': 'fr' } })).body, 'fr 1');
  assert.equal((await get('/lang', { headers: { 'accept-language': 'de' } })).body, 'de 2');
  const fr = await get('/lang', { headers: { 'accept-language': 'fr' } });
  assert.deepEqual([fr.body, fr.xCache], ['fr 1', 'HIT']);
});

test('a request with Authorization is not stored (RFC 9111 §3.5)', async () => {
  const auth = { headers: { authorization: 'Bearer secret' } };
  assert.equal((await get('/auth', auth)).body, 'auth 1');
  assert.equal((await get('/auth', auth)).body, 'auth 2');
  assert.ok(!cache.keys('*').some((k) => k.includes('secret')));
});

test('the cache is on the context, typed as the one given (c.var.cache, c.get)', async () => {
  assert.deepEqual(JSON.parse((await get('/var')).body), { same: true });
  const own = JSON.parse((await get('/own')).body);
  assert.deepEqual(own, { own: true, n: 1 });
  assert.deepEqual(JSON.parse((await get('/own')).body), own, 'a hit of its own cache');
});

test('options the middleware supplies itself are refused with a typed error', () => {
  for (const o of [{ staleWhileRevalidate: 1000, ttl: 1000 }, { waitUntil: () => {} }]) {
    assert.throws(() => pageCache(o), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_OPTION');
  }
  assert.throws(() => pageCache({ ttl: -1 }), (e) => e instanceof EdgeCacheError && e.code === 'INVALID_TTL');
});
