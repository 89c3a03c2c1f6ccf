// The packed package in Node: the machine's own Node, Node 22 and Node 24,
// as ESM and through require() (require(esm), Node ^20.19 || >=22.12, the
// range package.json "engines" admits); then esbuild bundles for Node (ESM
// and CommonJS), which must work with no plugin and no copied file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { freshProject, cleanup, run, resultOf, requireTools, smokeModule, EXPECTED, NODE22, NODE24, SYSTEM_NODE } from '../pkg/lib.mjs';

let dir;
before(() => {
  requireTools();
  dir = freshProject({
    'smoke.js': smokeModule(),
    'main.js': "import { smoke } from './smoke.js';\nconsole.log('RESULT ' + JSON.stringify(smoke()));\n",
    'main.cjs':
      "const { MemoryCache, Signer, generateSecureKey, memoize } = require('edgecache');\n" +
      "const c = new MemoryCache({ maxEntries: 2 }); c.set('a', 1); c.set('b', 2); c.set('c', 3);\n" +
      "const signer = new Signer({ keys: { k1: generateSecureKey() } });\n" +
      "const sq = memoize((x) => x * x);\n" +
      "console.log('RESULT ' + JSON.stringify({ c: c.get('c'), a: c.get('a') ?? null, keys: c.keys('*').sort(), opened: signer.open('user:1', signer.seal('user:1', { name: 'Ada' })), sq: sq(12), sealedKey: 'user:1' }));\n",
  });
});
after(() => cleanup(dir));

const nodes = [
  ['the machine', SYSTEM_NODE],
  ['22', NODE22],
  ['24', NODE24],
];
for (const [name, node] of nodes) {
  test(`Node ${name}: import and require`, { timeout: 60_000 }, async (t) => {
    const version = execFileSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
    const [major, minor] = version.split('.').map(Number);
    if (major < 20 || (major === 20 && minor < 19) || (major === 22 && minor < 12) || major === 21) {
      t.skip(`Node ${version} is outside engines (^20.19.0 || >=22.12.0)`);
      return;
    }
    t.diagnostic(`node ${version}`);
    assert.deepEqual(resultOf(await run(node, ['main.js'], { cwd: dir })), EXPECTED);
    const cjs = await run(node, ['main.cjs'], { cwd: dir });
    assert.deepEqual(resultOf(cjs), EXPECTED);
  });
}

for (const format of ['esm', 'cjs']) {
  test(`esbuild --platform=node --format=${format}: the bundle runs alone`, { timeout: 60_000 }, async () => {
    // Written to a directory with no node_modules above it: nothing may be left to read beside the bundle.
    const outDir = mkdtempSync(path.join(os.tmpdir(), 'edgecache-bundle-'));
    const out = path.join(outDir, `bundle.${format === 'esm' ? 'mjs' : 'cjs'}`);
    await esbuild.build({ entryPoints: [path.join(dir, 'main.js')], bundle: true, platform: 'node', format, outfile: out, absWorkingDir: dir, logLevel: 'error' });
    try {
      assert.deepEqual(resultOf(await run(NODE22, [out], { cwd: outDir })), EXPECTED);
    } finally {
      cleanup(outDir);
    }
  });
}
