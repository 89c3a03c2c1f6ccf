// Run by scripts/build.sh after tsc has compiled js/ into dist/. Turns the
// per-file output into what the npm package ships:
// 1. dist/workerd.js: the whole package bundled for Cloudflare Workers
//    (package.json "exports", condition workerd), with the Workers loader
//    (js/wasm-init/workerd.ts) that imports the .wasm; and
//    dist/hono.workerd.js, the `edgecache/hono` entry importing it;
// 2. everywhere else, `#wasm-init` becomes the relative path of the inline
//    loader (js/wasm-init/index.ts), so that dist/index.js has no bare
//    specifier and loads as it is in a page with no bundler or import map;
// 3. the declarations: dist/web.d.ts is added (js/web.d.ts: the platform
//    types, Request, Response, fetch; each declaration file that names
//    them gets `import type { Request, Response, fetch } from './web.js'`,
//    so that there `Request` is the project's own type where it has one and
//    a stand-in where it has none; declaring `interface Request {}`
//    globally instead would clash with @cloudflare/workers-types, whose
//    Request is generic), and the
//    .d.ts and .js files that nothing reachable from the entry points uses
//    are removed;
// 4. prints the gzipped sizes and checks them against scripts/size-budget.json.
import { readFileSync, writeFileSync, readdirSync, rmSync, copyFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const dist = path.join(root, 'dist');
const walk = (dir) =>
  readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });

// 1. The Workers bundle, built while the loaders are still behind #wasm-init.
const WASM = path.join(dist, 'wasm/edgecache_bg.wasm');
await esbuild.build({
  entryPoints: [path.join(dist, 'index.js')],
  outfile: path.join(dist, 'workerd.js'),
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  logLevel: 'warning',
  banner: { js: '// edgecache for Cloudflare Workers (the package\'s "workerd" condition): dist/index.js\n// bundled with the loader that imports the .wasm, as Workers require.' },
  plugins: [
    {
      name: 'edgecache-workerd',
      setup(build) {
        build.onResolve({ filter: /^#wasm-init$/ }, () => ({ path: path.join(dist, 'wasm-init/workerd.js') }));
        build.onResolve({ filter: /\.wasm$/ }, () => ({ path: './wasm/edgecache_bg.wasm', external: true }));
        // The runtime's own module (waitUntil): resolved by workerd.
        build.onResolve({ filter: /^cloudflare:/ }, (a) => ({ path: a.path, external: true }));
      },
    },
  ],
});

// 1b. edgecache/hono for Workers: dist/hono.js with the package's surface
// taken from the Workers bundle, so that `edgecache` and `edgecache/hono`
// are one module there (package.json "exports", "./hono", condition workerd).
{
  const hono = readFileSync(path.join(dist, 'hono.js'), 'utf8');
  if (!hono.includes("from './index.js'")) throw new Error('dist/hono.js no longer imports ./index.js: update scripts/dist.mjs');
  writeFileSync(path.join(dist, 'hono.workerd.js'), hono.replaceAll("from './index.js'", "from './workerd.js'"));
}

// 2. #wasm-init -> the inline loader, by relative path.
for (const file of walk(dist).filter((f) => f.endsWith('.js') && f !== path.join(dist, 'workerd.js'))) {
  const text = readFileSync(file, 'utf8');
  if (!text.includes("'#wasm-init'")) continue;
  let rel = path.relative(path.dirname(file), path.join(dist, 'wasm-init/index.js')).split(path.sep).join('/');
  if (!rel.startsWith('.')) rel = `./${rel}`;
  writeFileSync(file, text.replaceAll("from '#wasm-init'", `from '${rel}'`));
}

// 3. Declarations: web.d.ts, then keep only what the entry points reach.
copyFileSync(path.join(root, 'js/web.d.ts'), path.join(dist, 'web.d.ts'));
for (const file of walk(dist).filter((f) => f.endsWith('.d.ts') && !f.endsWith('web.d.ts'))) {
  const text = readFileSync(file, 'utf8');
  if (!/\b(Request|Response|fetch)\b[^'"]|Symbol\.dispose/.test(text.replace(/\/\*[^]*?\*\/|\/\/.*$/gm, ''))) continue;
  let rel = path.relative(path.dirname(file), path.join(dist, 'web.js')).split(path.sep).join('/');
  if (!rel.startsWith('.')) rel = `./${rel}`;
  writeFileSync(file, `import type { Request, Response, fetch } from '${rel}';\n${text}`);
}
/** Files reachable from `entries` through relative import/export specifiers. */
function reachable(entries, toFile) {
  const seen = new Set();
  const queue = [...entries];
  while (queue.length) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const target = toFile(path.resolve(path.dirname(file), m[1]));
      if (target) queue.push(target);
    }
  }
  return seen;
}
const dtsOf = (p) => {
  const d = p.replace(/\.js$/, '.d.ts');
  try { statSync(d); return d; } catch { return undefined; }
};
const jsOf = (p) => (p.endsWith('.js') ? p : undefined);
const keep = new Set([
  ...reachable([path.join(dist, 'index.d.ts'), path.join(dist, 'hono.d.ts')], dtsOf),
  ...reachable(['index.js', 'workerd.js', 'hono.js', 'hono.workerd.js'].map((f) => path.join(dist, f)), jsOf),
  WASM,
]);
for (const file of walk(dist)) if (!keep.has(file)) rmSync(file);

// 4. Sizes.
const gz = (bytes) => gzipSync(bytes, { level: 9 }).length;
const browser = await esbuild.build({
  entryPoints: [path.join(dist, 'index.js')],
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  logLevel: 'warning',
});
const inline = readFileSync(path.join(dist, 'wasm/edgecache_bg.inline.js'));
const sizes = {
  wasm: gz(readFileSync(WASM)),
  inlineWasm: gz(inline),
  browserBundle: gz(browser.outputFiles[0].contents),
};
const budget = JSON.parse(readFileSync(path.join(root, 'scripts/size-budget.json'), 'utf8'));
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(
  `build: wasm ${readFileSync(WASM).length} bytes, ${kib(sizes.wasm)} gzipped (budget ${kib(budget.wasm)}); ` +
    `inline ${kib(sizes.inlineWasm)} gzipped (budget ${kib(budget.inlineWasm)}); ` +
    `whole package minified for a browser ${kib(sizes.browserBundle)} gzipped (budget ${kib(budget.browserBundle)})`,
);
for (const [k, v] of Object.entries(sizes)) {
  if (v > budget[k]) console.log(`build: WARNING ${k} is ${v} bytes gzipped, over its budget of ${budget[k]} (scripts/size-budget.json)`);
}
