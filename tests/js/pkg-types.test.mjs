// The packed package's types, checked by tsc with skipLibCheck: false (so
// every .d.ts the package ships is checked) in projects that have no DOM
// types and no @types/node (lib ES2022 only), under NodeNext and Bundler
// resolution; then with DOM + ESNext.Disposable, and with
// @cloudflare/workers-types, whose declarations ours must merge with.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, symlinkSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { freshProject, cleanup, run, requireTools, root, tools } from '../pkg/lib.mjs';

const TSC = path.join(root, 'node_modules/typescript/bin/tsc');
const USE = `import { MemoryCache, Signer, generateSecureKey, memoize, cachePage, TieredCache, RedisRest, EdgeCacheError, type CacheStats, type FetchHandler } from 'edgecache';

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
declare const handler: FetchHandler;
const cached = cachePage(handler, { cache, ttl: 1000 });
const redis = new RedisRest({ url: 'http://127.0.0.1:1', token: 't' });
const tiered = new TieredCache({ redis, signer, prefix: 'app' });
const e: unknown = new EdgeCacheError('FREED', 'x');
export { n, sealed, y, cached, tiered, e };
`;

const configs = {
  'NodeNext, lib ES2022, no @types': { module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: [] },
  'Bundler, lib ES2022, no @types': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022'], types: [] },
  'Bundler, lib ES2022 + DOM + ESNext.Disposable': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022', 'DOM', 'ESNext.Disposable'], types: [] },
  'Bundler, @cloudflare/workers-types': { module: 'ESNext', moduleResolution: 'Bundler', lib: ['ES2022'], types: ['@cloudflare/workers-types'] },
};

let dir;
before(() => {
  requireTools();
  dir = freshProject({ 'use.ts': USE });
  // workers-types from the test tools, as a project would have it installed.
  mkdirSync(path.join(dir, 'node_modules/@cloudflare'), { recursive: true });
  symlinkSync(path.join(tools, '@cloudflare/workers-types'), path.join(dir, 'node_modules/@cloudflare/workers-types'));
});
after(() => cleanup(dir));

for (const [name, options] of Object.entries(configs)) {
  test(`tsc, skipLibCheck: false, strict: ${name}`, { timeout: 120_000 }, async () => {
    const file = `tsconfig.${name.replace(/\W+/g, '-')}.json`;
    writeFileSync(
      path.join(dir, file),
      JSON.stringify({ compilerOptions: { target: 'ES2022', strict: true, skipLibCheck: false, noEmit: true, ...options }, files: ['use.ts'] }),
    );
    const r = await run(process.execPath, [TSC, '-p', file], { cwd: dir });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  });
}
