// The packed package in a Cloudflare Worker: `wrangler deploy --dry-run`
// (the current wrangler, on Node 24) bundles a Worker that imports it, as a
// user's deploy would. Under the `workerd` condition the package's entry
// is dist/workerd.js, which imports the .wasm as a module (Workers forbid
// compiling wasm from bytes); the inline copy must not be in the upload.
// Then the bundle runs in workerd (wrangler dev's runtime) through Miniflare.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { freshProject, cleanup, run, resultOf, requireTools, root, tools, NODE24 } from '../pkg/lib.mjs';

const WORKER = `import { MemoryCache, cachePage, Signer, generateSecureKey } from 'edgecache';
const cache = new MemoryCache({ maxEntries: 100 });
let signer; // random numbers only inside a handler on Workers
let renders = 0;
const handler = cachePage(async (request) => new Response('page ' + ++renders), { cache, ttl: 60_000 });
export default {
  async fetch(request) {
    if (new URL(request.url).pathname === '/signed') {
      signer ??= new Signer({ keys: { k1: generateSecureKey() } });
      return Response.json(signer.open('k', signer.seal('k', { ok: true })));
    }
    return handler(request);
  },
};
`;

const SERVE = `const { Miniflare } = await import(process.env.MINIFLARE);
const mf = new Miniflare({ modules: true, scriptPath: 'out/index.js', compatibilityDate: '2025-09-01',
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }] });
const get = async (p) => { const r = await mf.dispatchFetch('http://localhost' + p); return [await r.text(), r.headers.get('x-cache')]; };
const first = await get('/item');
const second = await get('/item');
const signed = await (await mf.dispatchFetch('http://localhost/signed')).json();
await mf.dispose();
console.log('RESULT ' + JSON.stringify({ first, second, signed }));
`;

// edgecache/hono in a Worker: Hono routes behind pageCache; storing goes
// through c.executionCtx.waitUntil. Its own bundle, and one importing only
// MemoryCache, which must carry no Hono and no middleware.
const HONO_WORKER = `import { Hono } from 'hono';
import { MemoryCache } from 'edgecache';
import { pageCache } from 'edgecache/hono';
const cache = new MemoryCache({ maxEntries: 100 });
let renders = 0;
const app = new Hono().use(pageCache({ cache, ttl: 60_000 }));
app.get('/item', (c) => c.text('item ' + ++renders));
app.get('/same', (c) => c.json({ same: c.var.cache === cache, memory: c.var.cache instanceof MemoryCache }));
export default app;
`;
const HONO_PLAIN = `import { Hono } from 'hono';
const app = new Hono();
app.get('/item', (c) => c.text('item'));
export default app;
`;
const MEMORY_ONLY = `import { MemoryCache } from 'edgecache';
const cache = new MemoryCache();
export default { async fetch() { cache.set('k', 1); return new Response(String(cache.get('k'))); } };
`;
const HONO_SERVE = `const { Miniflare } = await import(process.env.MINIFLARE);
const mf = new Miniflare({ modules: true, scriptPath: 'out-hono/hono.js', compatibilityDate: '2025-09-01',
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'] }] });
const get = async (p) => { const r = await mf.dispatchFetch('http://localhost' + p); return [await r.text(), r.headers.get('x-cache')]; };
const first = await get('/item');
const second = await get('/item');
const same = JSON.parse((await get('/same'))[0]);
await mf.dispose();
console.log('RESULT ' + JSON.stringify({ first, second, same }));
`;

// The Workers of the README's size table (Size), by the row's first cell.
const SIZED = {
  '`MemoryCache`, `cachePage`, `Signer`': WORKER,
  '`fromEnv`': `import { fromEnv } from 'edgecache';
export default { async fetch(request, env) { const c = fromEnv(env); let v = await c.get('k'); if (v === undefined) await c.set('k', (v = 'x')); return new Response(v); } };
`,
  '`fromEnv`, `cachePage`, `memoize`': `import { fromEnv, cachePage, memoize } from 'edgecache';
const load = memoize(async (id) => 'item ' + id, { ttl: 1000 });
export default { async fetch(request, env) { const cache = fromEnv(env); return cachePage(async () => new Response(await load(1)), { cache, ttl: 60_000 })(request); } };
`,
};

let dir;
let budget;
before(() => {
  requireTools();
  budget = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../scripts/size-budget.json'), 'utf8'));
  dir = freshProject({
    'src/index.js': WORKER,
    ...Object.fromEntries(Object.values(SIZED).map((text, i) => [`src/sized${i}.js`, text])),
    'serve.mjs': SERVE,
    'src/hono.js': HONO_WORKER,
    'src/memory.js': MEMORY_ONLY,
    'src/hono-plain.js': HONO_PLAIN,
    'serve-hono.mjs': HONO_SERVE,
    'wrangler.toml': 'name = "pkg-test"\nmain = "src/index.js"\ncompatibility_date = "2025-09-01"\n',
  });
  // Hono (an optional peer of edgecache/hono), from the test tools, as a project would have it installed.
  symlinkSync(path.join(tools, 'hono'), path.join(dir, 'node_modules/hono'));
});
after(() => cleanup(dir));

const WRANGLER_ENV = () => ({ WRANGLER_SEND_METRICS: 'false', CI: '1', XDG_CONFIG_HOME: path.join(dir, '.config'), NO_COLOR: '1' });
/** wrangler deploy --dry-run of one entry: its gzipped KiB and the bundle's text. */
async function bundle(entry, out) {
  const wrangler = path.join(tools, 'wrangler/bin/wrangler.js');
  const r = await run(NODE24, [wrangler, 'deploy', '--dry-run', '--outdir', out, '--name', out, '--compatibility-date', '2025-09-01', entry], { cwd: dir, env: WRANGLER_ENV() });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const gzip = Number(r.stdout.match(/Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/)?.[1]);
  const js = readdirSync(path.join(dir, out)).filter((f) => f.endsWith('.js'));
  return { gzip, js: js.map((f) => readFileSync(path.join(dir, out, f), 'utf8')).join('\n'), files: readdirSync(path.join(dir, out)) };
}

test('edgecache/hono in a Worker: one module with edgecache, within the budget, serving hits in workerd; a MemoryCache-only Worker carries none of it', { timeout: 240_000 }, async (t) => {
  const hono = await bundle('src/hono.js', 'out-hono');
  const plain = await bundle('src/hono-plain.js', 'out-hono-plain');
  t.diagnostic(`Hono Worker with pageCache: ${hono.gzip} KiB gzipped; the same Hono without edgecache ${plain.gzip} KiB`);
  assert.equal(hono.files.filter((f) => f.endsWith('.wasm')).length, 1, 'one .wasm module');
  assert.ok(!hono.js.includes('deflated'), 'the inline wasm is not in the Worker: edgecache/hono took dist/workerd.js');
  // What edgecache adds to a Hono app is within the Worker budget (Hono's own bytes are the app's).
  const added = hono.gzip - plain.gzip;
  assert.ok(added * 1024 <= budget.worker, `edgecache adds ${added.toFixed(2)} KiB gzipped to a Hono Worker, budget ${budget.worker / 1024} KiB`);
  const served = await run(NODE24, ['serve-hono.mjs'], { cwd: dir, env: { MINIFLARE: createRequire(path.join(root, 'x.js')).resolve('miniflare') } });
  assert.deepEqual(resultOf(served), { first: ['item 1', 'MISS'], second: ['item 1', 'HIT'], same: { same: true, memory: true } });

  const memory = await bundle('src/memory.js', 'out-memory');
  t.diagnostic(`MemoryCache-only Worker: ${memory.gzip} KiB gzipped`);
  assert.doesNotMatch(memory.js, /pageCache|hono/i, 'no middleware and no Hono in a Worker that does not import edgecache/hono');
  assert.ok(memory.gzip < hono.gzip);
});

test('wrangler deploy --dry-run bundles the Worker with the .wasm module; then it serves in workerd', { timeout: 180_000 }, async (t) => {
  const wrangler = path.join(tools, 'wrangler/bin/wrangler.js');
  const r = await run(NODE24, [wrangler, 'deploy', '--dry-run', '--outdir', 'out'], {
    cwd: dir,
    env: { WRANGLER_SEND_METRICS: 'false', CI: '1', XDG_CONFIG_HOME: path.join(dir, '.config'), NO_COLOR: '1' },
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const upload = r.stdout.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  assert.ok(upload, r.stdout);
  t.diagnostic(`wrangler: Total Upload ${upload[1]} KiB / gzip ${upload[2]} KiB`);
  const out = readdirSync(path.join(dir, 'out'));
  const wasm = out.filter((f) => f.endsWith('.wasm'));
  assert.equal(wasm.length, 1, `one .wasm module in ${out}`);
  const js = readFileSync(path.join(dir, 'out/index.js'), 'utf8');
  assert.ok(!js.includes('deflated'), 'the inline wasm is not in the Worker');
  assert.ok(Number(upload[2]) * 1024 <= budget.worker, `gzip ${upload[2]} KiB, budget ${budget.worker / 1024} KiB (scripts/size-budget.json)`);

  // Run the bundle wrangler made in workerd, through Miniflare (the repository's, whose options the test knows).
  const served = await run(NODE24, ['serve.mjs'], { cwd: dir, env: { MINIFLARE: createRequire(path.join(root, 'x.js')).resolve('miniflare') } });
  assert.deepEqual(resultOf(served), { first: ['page 1', 'MISS'], second: ['page 1', 'HIT'], signed: { ok: true } });
});

test("the README's Worker sizes hold, with and without --minify", { timeout: 240_000 }, async (t) => {
  const wrangler = path.join(tools, 'wrangler/bin/wrangler.js');
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| (`[^|]+`) \| ([\d.]+) KiB \| ([\d.]+) KiB \|$/gm)];
  assert.deepEqual(rows.map((r) => r[1]), Object.keys(SIZED), 'the README has one row per Worker measured here');
  for (const [i, [, label, stated, statedMin]] of rows.entries()) {
    for (const [flags, want] of [[[], stated], [['--minify'], statedMin]]) {
      const r = await run(NODE24, [wrangler, 'deploy', '--dry-run', '--outdir', `out-sized${i}${flags.length}`, '--name', 'sized', '--compatibility-date', '2025-09-01', ...flags, `src/sized${i}.js`], {
        cwd: dir,
        env: { WRANGLER_SEND_METRICS: 'false', CI: '1', XDG_CONFIG_HOME: path.join(dir, '.config'), NO_COLOR: '1' },
      });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const gzip = Number(r.stdout.match(/Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/)?.[1]);
      t.diagnostic(`${label} ${flags.join(' ') || '(default)'}: ${gzip} KiB gzipped, README ${want} KiB`);
      // "About": within 3 KiB either way, or the README is due an update.
      assert.ok(Math.abs(gzip - Number(want)) <= 3, `${label} ${flags.join(' ')}: ${gzip} KiB gzipped, the README says ${want} KiB`);
    }
  }
});
