// `npx edgecache keygen` from the packed package, as a new user runs it in
// a fresh project: its output is a value EDGECACHE_SIGNING_KEYS takes, a
// TieredCache built by fromEnv from it works against the real bridge and
// redis-server, and `--rotate` keeps the old keys verifying.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freshProject, cleanup, run, resultOf, pack } from '../pkg/lib.mjs';
import { redisAndBridge } from './servers.mjs';

const TOKEN = 'pkg-cli-token-0123456789abcdef';
const servers = redisAndBridge({ token: TOKEN });
let dir;
before(() => {
  dir = freshProject({
    // Writes (or reads) one value through fromEnv with the keys in the environment.
    'use.mjs':
      "import { fromEnv } from 'edgecache';\n" +
      "const [mode, key] = process.argv.slice(2);\n" +
      "if (mode === 'set') await fromEnv(process.env, { prefix: 'cli' }).set(key, { by: 'keygen' });\n" +
      "// Another configuration is another cache with its own L1: what it reads comes from Redis.\n" +
      "const reader = fromEnv({ ...process.env, EDGECACHE_MAX_ENTRIES: '7' }, { prefix: 'cli' });\n" +
      "console.log('RESULT ' + JSON.stringify({ value: (await reader.get(key)) ?? null, l2: reader.stats().l2 !== null }));\n",
  });
});
after(() => cleanup(dir));

const KEY = /^k1:[A-Za-z0-9_-]{43}$/;
const npx = (args, env = {}) => run('npx', ['--offline', 'edgecache', ...args], { cwd: dir, env });

test('the CLI ships as the bin `edgecache`, outside dist/ (in no runtime bundle)', () => {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'node_modules/edgecache/package.json'), 'utf8'));
  assert.deepEqual(pkg.bin, { edgecache: 'bin/edgecache.mjs' });
  assert.ok(pack().files.includes('bin/edgecache.mjs'));
  for (const entry of Object.values(pkg.exports['.'])) assert.ok(entry.startsWith('./dist/'), entry);
});

test('npx edgecache keygen prints kid:key, which fromEnv takes as EDGECACHE_SIGNING_KEYS against the real bridge', async () => {
  const r = await npx(['keygen']);
  assert.equal(r.code, 0, r.stderr);
  const keys = r.stdout.trim();
  assert.match(keys, KEY);
  const again = (await npx(['keygen'])).stdout.trim();
  assert.notEqual(again, keys, 'a fresh random key each time');
  const env = { EDGECACHE_REDIS_URL: servers.bridge.url, EDGECACHE_REDIS_TOKEN: TOKEN, EDGECACHE_SIGNING_KEYS: keys };
  // Set through one cache; read by a second one (its own L1: the value comes from Redis, opened with the key).
  assert.deepEqual(resultOf(await run('node', ['use.mjs', 'set', 'a'], { cwd: dir, env })), { value: { by: 'keygen' }, l2: true });
});

test('npx edgecache keygen --rotate: a new key signs first, the old one still verifies', async () => {
  const old = (await npx(['keygen'])).stdout.trim();
  const env = { EDGECACHE_REDIS_URL: servers.bridge.url, EDGECACHE_REDIS_TOKEN: TOKEN };
  assert.deepEqual(resultOf(await run('node', ['use.mjs', 'set', 'rotated'], { cwd: dir, env: { ...env, EDGECACHE_SIGNING_KEYS: old } })).value, { by: 'keygen' });
  const r = await npx(['keygen', '--rotate', old]);
  assert.equal(r.code, 0, r.stderr);
  const rotated = r.stdout.trim();
  assert.match(rotated, /^k2:[A-Za-z0-9_-]{43},k1:/);
  assert.ok(rotated.endsWith(`,${old}`));
  // Written with k1 before the rotation, read with k2,k1 after.
  assert.deepEqual(resultOf(await run('node', ['use.mjs', 'get', 'rotated'], { cwd: dir, env: { ...env, EDGECACHE_SIGNING_KEYS: rotated } })).value, { by: 'keygen' });
  assert.match((await npx(['keygen', '--id', 'live'])).stdout.trim(), /^live:[A-Za-z0-9_-]{43}$/);
});

test('npx edgecache: bad input is refused with a reason and exit 2; --help prints the usage', async () => {
  for (const [args, why] of [
    [['keygen', '--id', 'a,b'], /cannot hold ':' or ','/],
    [['keygen', '--rotate', 'k1:short'], /weak signing key/],
    [['keygen', '--rotate', 'nokey'], /--rotate takes the EDGECACHE_SIGNING_KEYS value/],
    [['keygen', '--bogus'], /unknown argument "--bogus"/],
    [['keygen', '--rotate', 'k1:' + 'A'.repeat(43), '--id', 'k1'], /already in the keys/],
    [['frobnicate'], /unknown command "frobnicate"/],
  ]) {
    const r = await npx(args);
    assert.equal(r.code, 2, `${args}: ${r.stdout}`);
    assert.match(r.stderr, why);
    assert.equal(r.stdout, '');
  }
  const help = await npx(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /npx edgecache keygen/);
});
