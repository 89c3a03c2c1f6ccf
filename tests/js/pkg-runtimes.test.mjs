// The packed package in Deno and Bun (both from their npm packages), run
// with no permission flag: the wasm is inline, so nothing is read from disk.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freshProject, cleanup, run, resultOf, requireTools, smokeModule, EXPECTED, bin } from '../pkg/lib.mjs';

let dir;
let denoDir;
before(() => {
  requireTools();
  dir = freshProject({
    'smoke.js': smokeModule(),
    'main.js': "import { smoke } from './smoke.js';\nconsole.log('RESULT ' + JSON.stringify(smoke()));\n",
    'main.ts': "import { MemoryCache } from 'edgecache';\nconst c: MemoryCache = new MemoryCache();\nc.set('k', 1);\nconsole.log('TS ' + String(c.get('k')));\n",
  });
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
});

test('Bun: bun run', { timeout: 120_000 }, async (t) => {
  t.diagnostic(`bun ${(await run(bin('bun'), ['--version'])).stdout.trim()}`);
  assert.deepEqual(resultOf(await run(bin('bun'), ['main.js'], { cwd: dir })), EXPECTED);
  const ts = await run(bin('bun'), ['main.ts'], { cwd: dir });
  assert.match(ts.stdout, /^TS 1$/m, ts.stderr);
});
