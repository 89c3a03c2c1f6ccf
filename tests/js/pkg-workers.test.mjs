// The packed package in a Cloudflare Worker: `wrangler deploy --dry-run`
// (the current wrangler, on Node 24) bundles a Worker that imports it, as a
// user's deploy would. Under the `workerd` condition the package's entry
// is dist/workerd.js, which imports the .wasm as a module (Workers forbid
// compiling wasm from bytes); the inline copy must not be in the upload.
// Then the bundle runs in workerd (wrangler dev's runtime) through Miniflare.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
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
    'wrangler.toml': 'name = "pkg-test"\nmain = "src/index.js"\ncompatibility_date = "2025-09-01"\n',
  });
});
after(() => cleanup(dir));

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
