// The packed package in headless Chromium: bundled by esbuild (ESM and
// iife), Vite, webpack and Rollup with zero configuration beyond an entry
// (Rollup: its usual node-resolve plugin), and with no bundler at all: a
// page that imports dist/index.js by path (no import map), from the
// project's node_modules/ as the README shows and from the package served
// under another prefix. Each page runs the same smoke program; the test
// also reports the bytes each build ships, gzipped.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { freshProject, cleanup, requireTools, smokeModule, EXPECTED, tools, serve, loadInPage, walk, CHROMIUM_ARGS } from '../pkg/lib.mjs';

const APP = "import { smoke } from './smoke.js';\nwindow.__edgecache = smoke();\n";
const PLAIN = (from) => `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>plain</title>
<script type="module">
import { MemoryCache, Signer, generateSecureKey, memoize } from '${from}';
const c = new MemoryCache({ maxEntries: 2 });
c.set('a', 1); c.set('b', 2); c.set('c', 3);
const signer = new Signer({ keys: { k1: generateSecureKey() } });
const sq = memoize((x) => x * x);
window.__edgecache = { c: c.get('c'), a: c.get('a') ?? null, keys: c.keys('*').sort(), opened: signer.open('user:1', signer.seal('user:1', { name: 'Ada' })), sq: sq(12), sealedKey: 'user:1' };
</script>`;
const page = (script, module = true) => `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>app</title><script ${module ? 'type="module" ' : ''}src="${script}"></script>`;

let dir;
let server;
let browser;
before(async () => {
  requireTools();
  dir = freshProject({
    'smoke.js': smokeModule(),
    'app.js': APP,
    'index.html': page('/app.js'),
    'plain/index.html': PLAIN('/node_modules/edgecache/dist/index.js'),
    'mounted/index.html': PLAIN('/static/vendor/edgecache/dist/index.js'),
  });
  server = await serve({ '/': dir, '/static/vendor/edgecache/': path.join(dir, 'node_modules/edgecache') });
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});
after(async () => {
  await browser?.close();
  await server?.close();
  cleanup(dir);
});

/** Gzipped bytes of the JS and wasm files a build wrote; fails if it emitted a .wasm. */
function shipped(t, outDir) {
  const files = walk(outDir).filter((f) => /\.(m?js|wasm)$/.test(f));
  assert.deepEqual(files.filter((f) => f.endsWith('.wasm')), [], 'no .wasm asset: the wasm is inline');
  const gz = files.reduce((n, f) => n + gzipSync(readFileSync(f), { level: 9 }).length, 0);
  t.diagnostic(`shipped: ${files.length} JS file(s), ${(gz / 1024).toFixed(1)} KiB gzipped (JS with the inline wasm)`);
  return gz;
}

async function check(urlPath) {
  const { result, problems } = await loadInPage(browser, server.base + urlPath);
  assert.deepEqual(problems, []);
  assert.deepEqual(result, EXPECTED);
}

for (const format of ['esm', 'iife']) {
  test(`esbuild --platform=browser --format=${format}, loaded in Chromium`, { timeout: 60_000 }, async (t) => {
    const out = path.join(dir, `out/esbuild-${format}`);
    await esbuild.build({ entryPoints: [path.join(dir, 'app.js')], bundle: true, minify: true, format, platform: 'browser', outdir: out, absWorkingDir: dir, logLevel: 'error' });
    writeFileSync(path.join(out, 'index.html'), page('app.js', format === 'esm'));
    shipped(t, out);
    await check(`/out/esbuild-${format}/`);
  });
}

test('Vite build (zero configuration), loaded in Chromium', { timeout: 120_000 }, async (t) => {
  const { build } = await import(createRequire(path.join(tools, 'x.js')).resolve('vite'));
  await build({ root: dir, base: './', logLevel: 'error', configFile: false, build: { outDir: 'out/vite', emptyOutDir: true } });
  shipped(t, path.join(dir, 'out/vite'));
  await check('/out/vite/');
});

test('webpack (mode production, an entry and nothing else), loaded in Chromium', { timeout: 120_000 }, async (t) => {
  const webpack = createRequire(path.join(tools, 'x.js'))('webpack');
  const out = path.join(dir, 'out/webpack');
  const stats = await new Promise((resolve, reject) =>
    webpack({ mode: 'production', context: dir, entry: './app.js', output: { path: out, filename: 'main.js' } }, (err, s) => (err ? reject(err) : resolve(s))),
  );
  assert.ok(!stats.hasErrors(), stats.toString('errors-only'));
  writeFileSync(path.join(out, 'index.html'), page('main.js', false));
  shipped(t, out);
  await check('/out/webpack/');
});

test('Rollup with @rollup/plugin-node-resolve (not minified), loaded in Chromium', { timeout: 120_000 }, async (t) => {
  const req = createRequire(path.join(tools, 'x.js'));
  const { rollup } = await import(req.resolve('rollup'));
  const { nodeResolve } = await import(req.resolve('@rollup/plugin-node-resolve'));
  const bundle = await rollup({ input: path.join(dir, 'app.js'), plugins: [nodeResolve({ browser: true })], logLevel: 'silent' });
  const out = path.join(dir, 'out/rollup');
  await bundle.write({ dir: out, format: 'esm' });
  writeFileSync(path.join(out, 'index.html'), page('app.js'));
  shipped(t, out);
  await check('/out/rollup/');
});

test('a plain page, no bundler, no import map: import from /node_modules/edgecache/dist/index.js', { timeout: 60_000 }, async (t) => {
  const before = server.served.length;
  await check('/plain/');
  const fetched = server.served.slice(before);
  assert.ok(!fetched.some((p) => p.endsWith('.wasm')), `no .wasm fetched: ${fetched}`);
  const bytes = fetched
    .filter((p) => p.endsWith('.js'))
    .reduce((n, p) => n + gzipSync(readFileSync(path.join(dir, p))).length, 0);
  t.diagnostic(`fetched ${fetched.length} files, ${(bytes / 1024).toFixed(1)} KiB gzipped`);
});

test("docs/MEMOIZE.md's Browser example, as the tarball ships it, in a plain page", { timeout: 60_000 }, async () => {
  const md = readFileSync(path.join(dir, 'node_modules/edgecache/docs/MEMOIZE.md'), 'utf8');
  const html = md.slice(md.indexOf('\n## Browser')).match(/\n```html\n([\s\S]*?)\n```\n/)?.[1];
  assert.ok(html, 'a ```html block in the Browser section');
  // Module scripts run in order: the second one reports once the example has run.
  writeFileSync(path.join(dir, 'memoize-doc.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">\n${html}\n<script type="module">window.__edgecache = true;</script>`);
  const p = await browser.newPage();
  const logs = [];
  const problems = [];
  p.on('console', (m) => (m.type() === 'error' ? problems.push(m.text()) : logs.push(m.text())));
  p.on('pageerror', (e) => problems.push(e.message));
  await p.goto(`${server.base}/memoize-doc.html`);
  await p.waitForFunction(() => window.__edgecache === true, null, { timeout: 20_000 });
  await p.close();
  assert.deepEqual(problems, []);
  assert.equal(logs.length, 2, String(logs));
  assert.equal(logs[0], logs[1], 'the second call is the cached result');
  assert.ok(Number(logs[0]) > 1000, logs[0]);
});

test('the package served under another prefix (/static/vendor/edgecache/), imported by path', { timeout: 60_000 }, async () => {
  await check('/mounted/');
});

test('Chromium compiles the wasm synchronously on the main thread (limit 8 MB, ours ~130 KB)', { timeout: 60_000 }, async () => {
  const p = await browser.newPage();
  await p.goto(`${server.base}/plain/`);
  const wasm = readFileSync(path.join(dir, 'node_modules/edgecache/dist/wasm/edgecache_bg.wasm'));
  const ok = await p.evaluate((bytes) => {
    try {
      return WebAssembly.Module.exports(new WebAssembly.Module(new Uint8Array(bytes))).length > 0;
    } catch (e) {
      return String(e);
    }
  }, [...wasm]);
  assert.equal(ok, true);
  await p.close();
});
