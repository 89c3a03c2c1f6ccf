// The packed package in Deno and Bun (both from their npm packages), run
// with no permission flag: the wasm is inline, so nothing is read from disk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freshProject, cleanup, run, resultOf, requireTools, smokeModule, EXPECTED, bin, tools } from '../pkg/lib.mjs';

// edgecache/hono in a real Hono app, called through app.fetch: a miss, then
// (once its body has been read and stored) a hit; the cache on the context.
const HONO = `import { Hono } from 'hono';
import { MemoryCache } from 'edgecache';
import { pageCache } from 'edgecache/hono';
const cache: MemoryCache = new MemoryCache();
let renders = 0;
const app = new Hono().use(pageCache({ cache, ttl: 60_000 }));
app.get('/page', (c) => c.text('page ' + ++renders + ' ' + String(c.var.cache === cache)));
const get = async () => {
  const r = await app.fetch(new Request('http://localhost/page'));
  const body = await r.text();
  await new Promise((ok) => setTimeout(ok, 20));
  return [body, r.headers.get('x-cache')];
};
const first = await get();
const second = await get();
console.log('RESULT ' + JSON.stringify({ first, second, keys: cache.keys('page:*').length }));
`;
const HONO_EXPECTED = { first: ['page 1 true', 'MISS'], second: ['page 1 true', 'HIT'], keys: 1 };

let dir;
let denoDir;
before(() => {
  requireTools();
  dir = freshProject({
    'smoke.js': smokeModule(),
    'main.js': "import { smoke } from './smoke.js';\nconsole.log('RESULT ' + JSON.stringify(smoke()));\n",
    'hono.ts': HONO,
    'main.ts': "import { MemoryCache } from 'edgecache';\nconst c: MemoryCache = new MemoryCache();\nc.set('k', 1);\nconsole.log('TS ' + String(c.get('k')));\n",
  });
  // Hono (an optional peer of edgecache/hono), from the test tools, as a project would have it installed.
  symlinkSync(path.join(tools, 'hono'), path.join(dir, 'node_modules/hono'));
  denoDir = mkdtempSync(path.join(os.tmpdir(), 'edgecache-deno-'));
});
after(() => {
  cleanup(dir);
  cleanup(denoDir);
});

test('Deno: deno run with no permission flags', { timeout: 120_000 }, async (t) => {
  const env = { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
  t.diagnostic((await run(bin('deno'), ['--version'], { env })).stdout.split('\n')[0]);
  const r = await run(bin('deno'), ['run', 'main.js'], { cwd: dir, env });
  assert.doesNotMatch(r.stderr, /NotCapable|Requires .* access/);
  assert.deepEqual(resultOf(r), EXPECTED);
  const ts = await run(bin('deno'), ['run', '--check', 'main.ts'], { cwd: dir, env });
  assert.match(ts.stdout, /^TS 1$/m, ts.stderr);
  assert.deepEqual(resultOf(await run(bin('deno'), ['run', '--check', 'hono.ts'], { cwd: dir, env })), HONO_EXPECTED);
});

test('Bun: bun run', { timeout: 120_000 }, async (t) => {
  t.diagnostic(`bun ${(await run(bin('bun'), ['--version'])).stdout.trim()}`);
  assert.deepEqual(resultOf(await run(bin('bun'), ['main.js'], { cwd: dir })), EXPECTED);
  const ts = await run(bin('bun'), ['main.ts'], { cwd: dir });
  assert.match(ts.stdout, /^TS 1$/m, ts.stderr);
  assert.deepEqual(resultOf(await run(bin('bun'), ['hono.ts'], { cwd: dir })), HONO_EXPECTED);
});
