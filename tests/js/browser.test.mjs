// End to end in real headless Chromium: examples/browser/ loads the package
// (ESM, no bundler) from a static server on
// loopback, memoizes an expensive function, and reports hits and misses.
// The page has no import map: it imports dist/index.js by path, and the
// wasm is inline, so no .wasm is requested.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const CHROMIUM = '/usr/bin/chromium';
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.wasm': 'application/wasm',
  '.json': 'application/json',
  '.css': 'text/css',
  '.map': 'application/json',
};

let server;
let browser;
let base;
const served = [];

/** A static server for the repository root, on a free loopback port. */
function startServer() {
  return new Promise((resolve) => {
    const s = http.createServer((req, res) => {
      const url = new URL(req.url, 'http://localhost');
      let file = path.join(root, decodeURIComponent(url.pathname));
      if (!file.startsWith(root + path.sep)) {
        res.writeHead(403).end();
        return;
      }
      if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
      if (!existsSync(file)) {
        res.writeHead(404).end('not found');
        return;
      }
      served.push(url.pathname);
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'cache-control': 'no-store',
      });
      createReadStream(file).pipe(res);
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

before(async () => {
  assert.ok(existsSync(path.join(root, 'dist/index.js')), 'run `make build` first');
  server = await startServer();
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await new Promise((r) => (server ? server.close(r) : r()));
});

test('examples/browser memoizes in Chromium and reports hits, misses and results', { timeout: 60_000 }, async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()}`));

  await page.goto(`${base}/examples/browser/`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'done', null, { timeout: 30_000 });
  assert.deepEqual(problems, []);
  assert.ok(served.includes('/dist/index.js'), 'the page imported dist/index.js');
  assert.ok(!served.some((p) => p.endsWith('.wasm')), `no .wasm was fetched: ${served}`);

  const text = (id) => page.locator(`#${id}`).textContent();
  const rows = () =>
    page.$$eval('#log tbody tr', (trs) => trs.map((tr) => [Number(tr.dataset.n), Number(tr.dataset.result), tr.dataset.cache]));

  // The initial run: 200000, 300000, 200000, 300000, 200000.
  assert.deepEqual(await rows(), [
    [200000, 17984, 'miss'],
    [300000, 25997, 'miss'],
    [200000, 17984, 'hit'],
    [300000, 25997, 'hit'],
    [200000, 17984, 'hit'],
  ]);
  assert.equal(await text('hits'), '3');
  assert.equal(await text('misses'), '2');
  assert.equal(await text('entries'), '2');
  assert.equal(await text('hit-rate'), '60%', "the MemoryCache's own statistics agree");

  // Timings: a hit is far cheaper than the computation it saves.
  const times = await page.$$eval('#log tbody tr td:last-child', (tds) => tds.map((td) => parseFloat(td.textContent)));
  assert.ok(times[2] < times[0], `hit ${times[2]} ms < miss ${times[0]} ms`);

  // Single-flight inside the page: 5 concurrent calls, 1 call of the function.
  const flight = page.locator('#flight');
  assert.equal(await flight.getAttribute('data-calls'), '1');
  assert.equal(await flight.getAttribute('data-results'), '144,144,144,144,144');

  // Interactive: the form computes a new n (miss), then the same n (hit).
  await page.fill('#n', '100000');
  await page.click('#compute');
  await page.fill('#n', '100000');
  await page.click('#compute');
  await page.waitForFunction(() => document.querySelectorAll('#log tbody tr').length === 7);
  assert.deepEqual((await rows()).slice(5), [
    [100000, 9592, 'miss'],
    [100000, 9592, 'hit'],
  ]);
  assert.equal(await text('hits'), '4');
  assert.equal(await text('misses'), '3');
  assert.equal(await text('entries'), '3');

  if (process.env.EDGECACHE_SCREENSHOT) await page.screenshot({ path: process.env.EDGECACHE_SCREENSHOT, fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
