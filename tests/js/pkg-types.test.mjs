// The packed package's types, checked by tsc with skipLibCheck: false (so
// every .d.ts the package ships is checked) in projects that have no DOM
// types and no @types/node (lib ES2022 only), under NodeNext and Bundler
// resolution; then with DOM + ESNext.Disposable, and with
// @cloudflare/workers-types, whose declarations ours must merge with.
// The README's, bridge/README.md's and docs/REDIS.md's TypeScript examples
// are compiled as written (with the reader's own functions declared), so is
// edgecache/hono's use with the real Hono (DOM and workers-types, which
// Hono's types need), and `fromEnv` takes a
// Worker's `Env` interface, which has no index signature.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, symlinkSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freshProject, cleanup, run, requireTools, root, tools } from '../pkg/lib.mjs';

const TSC = path.join(root, 'node_modules/typescript/bin/tsc');
const USE = `import { MemoryCache, Signer, generateSecureKey, memoize, cachePage, TieredCache, RedisRest, EdgeCacheError, fromEnv, type CacheStats, type FetchHandler } from 'edgecache';

const cache = new MemoryCache({ maxEntries: 10, defaultTtl: 1000 });
cache.set('a', { n: 1 });
const stats: CacheStats = cache.stats();
const n: number = stats.hits;
cache[Symbol.dispose]();
const signer = new Signer({ keys: { k1: generateSecureKey() } });
const sealed: string = signer.seal('k', 1);
const sq = memoize((x: number) => x * x);
const y: number = sq(2);
// @ts-expect-error the parameter types are kept
sq('x');
// @ts-expect-error under --strict an untyped parameter is an implicit any (TS7006), never a silent one
memoize(async (id) => id);
declare const handler: FetchHandler;
const cached = cachePage(handler, { cache, ttl: 1000 });
const redis = new RedisRest({ url: 'http://127.0.0.1:1', token: 't' });
const tiered = new TieredCache({ redis, signer, prefix: 'app' });
const e: unknown = new EdgeCacheError('FREED', 'x');
// A Worker's Env as \`wrangler types\` writes it, or by hand: an interface, no index signature.
interface Env {
  EDGECACHE_REDIS_URL?: string;
  EDGECACHE_REDIS_TOKEN?: string;
  EDGECACHE_SIGNING_KEYS?: string;
  ORIGIN_URL: string;
  COUNT: number;
}
declare const env: Env;
async function handle(): Promise<string> {
  const wc = fromEnv<string>(env, { prefix: 'app' });
  const page: string | undefined = await wc.get('home');
  await wc.set('home', 'x', { ttl: 1000 });
  // @ts-expect-error the values' type is kept
  await wc.set('home', 1);
  const other: unknown = await fromEnv(env).get('k');
  RedisRest.fromEnv(env);
  return page ?? String(other);
}
export { n, sealed, y, cached, tiered, e, handle };
`;

// edgecache/hono with the real Hono: the cache on the context has the type of the one given.
const HONO = `import { Hono } from 'hono';
import { MemoryCache, TieredCache } from 'edgecache';
import { pageCache, type CacheEnv, type PageCacheOptions } from 'edgecache/hono';
const app = new Hono().use(pageCache({ ttl: 1000, vary: ['accept-language'] }));
app.get('/', (c) => {
  const m: MemoryCache = c.var.cache;
  const g: MemoryCache = c.get('cache');
  // @ts-expect-error c.var.cache is a MemoryCache, not a string
  const s: string = c.var.cache;
  return c.text(String(m.stats().hits + g.stats().hits) + s);
});
declare const tiered: TieredCache;
const routes = new Hono().get('/t', pageCache({ cache: tiered }), async (c) => {
  const t: TieredCache = c.var.cache;
  return c.text(String(await t.get('k')));
});
const typed = new Hono<CacheEnv<TieredCache>>();
const o: PageCacheOptions = { ttl: 1 };
// @ts-expect-error the middleware offers no staleWhileRevalidate
const bad: PageCacheOptions = { staleWhileRevalidate: 1 };
export { app, routes, typed, o, bad };
`;

/** The first ```ts block after `heading` in a markdown file of the repository. */
function example(file, heading) {
  const md = readFileSync(path.join(root, file), 'utf8');
  const at = md.indexOf(heading);
  assert.ok(at >= 0, `${file}: no heading ${heading}`);
  const m = md.slice(at).match(/\n```ts\n([\s\S]*?)\n```\n/);
  assert.ok(m, `${file}: no ts block after ${heading}`);
  return m[1] + '\n';
}

// What the examples leave to the reader.
const NODE = 'declare const process: { env: Record<string, string | undefined> };\n';
const EXAMPLES = {
  'readme-worker.ts': () => example('README.md', '### Cloudflare Workers: `fromEnv(env)`') + 'declare function render(): Promise<string>;\n',
  'redis-worker.ts': () => example('docs/REDIS.md', '## In a Cloudflare Worker') + 'interface Env { EDGECACHE_REDIS_URL?: string; EDGECACHE_REDIS_TOKEN?: string; EDGECACHE_SIGNING_KEYS?: string }\n',
  'readme-node.ts': () => example('README.md', '### Two tiers: `TieredCache` over Redis') + NODE,
  'readme-example.ts': () => example('README.md', '## Example') + 'declare const token: string;\ndeclare const db: { find(id: string): Promise<{ name: string }> };\nexport {};\n',
  'bridge-readme.ts': () => example('bridge/README.md', 'Then, from any JS runtime:') + NODE,
  'readme-hono.ts': () => example('README.md', '### Hono: `edgecache/hono`') + 'declare const db: { find(id: string): Promise<{ name: string }> };\n',
  'hono.ts': () => HONO,
};

const configs = {
  'NodeNext, lib ES2022, no @types': { module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: [] },
  'Bundler, lib ES2022, no @types': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022'], types: [] },
  'Bundler, lib ES2022 + DOM + ESNext.Disposable': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM', 'ESNext.Disposable'], types: [] },
  'Bundler, @cloudflare/workers-types': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022'], types: ['@cloudflare/workers-types'] },
};
/** The examples each configuration compiles besides use.ts: the Workers ones need ExportedHandler. */
// bridge/README.md's example also imports @upstash/redis, whose types need fetch's (DOM or workers-types).
const examplesOf = (name) =>
  name.includes('workers-types')
    ? ['readme-worker.ts', 'redis-worker.ts', 'readme-node.ts', 'readme-example.ts', 'bridge-readme.ts', 'readme-hono.ts', 'hono.ts']
    : name.includes('DOM')
      ? ['readme-node.ts', 'readme-example.ts', 'bridge-readme.ts', 'readme-hono.ts', 'hono.ts']
      : ['readme-node.ts', 'readme-example.ts'];

let dir;
before(() => {
  requireTools();
  dir = freshProject({ 'use.ts': USE, ...Object.fromEntries(Object.entries(EXAMPLES).map(([f, text]) => [f, text()])) });
  // workers-types from the test tools, as a project would have it installed.
  mkdirSync(path.join(dir, 'node_modules/@cloudflare'), { recursive: true });
  symlinkSync(path.join(tools, '@cloudflare/workers-types'), path.join(dir, 'node_modules/@cloudflare/workers-types'));
  // bridge/README.md's example uses the official client too, as its reader has it installed.
  mkdirSync(path.join(dir, 'node_modules/@upstash'), { recursive: true });
  symlinkSync(path.join(root, 'node_modules/@upstash/redis'), path.join(dir, 'node_modules/@upstash/redis'));
  // Hono (an optional peer of edgecache/hono), from the test tools.
  symlinkSync(path.join(tools, 'hono'), path.join(dir, 'node_modules/hono'));
});
after(() => cleanup(dir));

for (const [name, options] of Object.entries(configs)) {
  test(`tsc, skipLibCheck: false, strict: ${name}`, { timeout: 120_000 }, async () => {
    const file = `tsconfig.${name.replace(/\W+/g, '-')}.json`;
    writeFileSync(
      path.join(dir, file),
      JSON.stringify({ compilerOptions: { target: 'ES2022', strict: true, skipLibCheck: false, noEmit: true, ...options }, files: ['use.ts', ...examplesOf(name)] }),
    );
    const r = await run(process.execPath, [TSC, '-p', file], { cwd: dir });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
}
