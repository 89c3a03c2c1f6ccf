// `npx edgecache-bridge` as a new user gets it: the launcher package and
// this platform's binary package, built by scripts/npm-bridge.mjs from the
// bridge binary this test run built (EDGECACHE_BRIDGE_BIN), packed, and
// installed from the tarballs alone (`npm install --offline`, no registry)
// into a fresh folder outside the repository; then `npx edgecache-bridge`
// serves a real redis-server.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { root, cleanup, run } from '../pkg/lib.mjs';
import { BRIDGE_BIN, freePort, startRedis } from './servers.mjs';

const platform = `${process.platform}-${process.arch}`;
const TOKEN = 'npx-bridge-token-0123456789abcdef';
let built;
let redis;
const dirs = [];

before(async () => {
  const out = mkdtempSync(path.join(os.tmpdir(), 'edgecache-npm-bridge-'));
  dirs.push(out);
  built = JSON.parse(execFileSync('node', [path.join(root, 'scripts/npm-bridge.mjs'), '--out', out, `${platform}=${BRIDGE_BIN}`], { encoding: 'utf8' }));
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  for (const d of dirs) cleanup(d);
});

/** A fresh project outside the repository with `tarballs` installed offline. */
function project(tarballs) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgecache-npx-'));
  dirs.push(dir);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', ...tarballs], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  return dir;
}

test('the packages: names, version, os/cpu, the launcher names exactly the platform packages built', () => {
  const version = readFileSync(path.join(root, 'bridge/Cargo.toml'), 'utf8').match(/^version = "([^"]+)"$/m)[1];
  assert.equal(built.version, version);
  const manifest = (tgz) => JSON.parse(execFileSync('tar', ['xzOf', tgz, 'package/package.json'], { encoding: 'utf8' }));
  const files = (tgz) => execFileSync('tar', ['tzf', tgz], { encoding: 'utf8' }).trim().split('\n').sort();
  const launcher = manifest(built.launcher);
  assert.equal(launcher.name, 'edgecache-bridge');
  assert.equal(launcher.version, version);
  assert.deepEqual(launcher.bin, { 'edgecache-bridge': 'bin/edgecache-bridge.js' });
  assert.deepEqual(launcher.optionalDependencies, { [`@edgecache/bridge-${platform}`]: version });
  assert.deepEqual(files(built.launcher), ['package/LICENSE-APACHE', 'package/LICENSE-MIT', 'package/README.md', 'package/bin/edgecache-bridge.js', 'package/package.json']);
  const native = manifest(built.platforms[platform]);
  assert.equal(native.name, `@edgecache/bridge-${platform}`);
  assert.deepEqual([native.os, native.cpu], [[process.platform], [process.arch]]);
  assert.ok(files(built.platforms[platform]).includes('package/bin/edgecache-bridge'));
});

test('npx edgecache-bridge, installed from the two tarballs offline, serves a real redis-server and stops when npx gets SIGTERM', async () => {
  const dir = project([built.launcher, built.platforms[platform]]);
  const version = await run('npx', ['--offline', 'edgecache-bridge', '--version'], { cwd: dir });
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stdout.trim(), `edgecache-bridge ${built.version}`);

  const port = await freePort();
  const proc = spawn('npx', ['--offline', 'edgecache-bridge', '--redis-url', redis.url, '--listen', `127.0.0.1:${port}`], {
    cwd: dir,
    env: { ...process.env, EDGECACHE_BRIDGE_TOKEN: TOKEN, RUST_LOG: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  try {
    const line = await new Promise((resolve, reject) => {
      readline.createInterface({ input: proc.stdout }).once('line', resolve);
      proc.once('exit', (code) => reject(new Error(`npx edgecache-bridge exited with ${code}`)));
    });
    assert.equal(line, `listening on http://127.0.0.1:${port}`);
    const call = async (command) => {
      const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(command) });
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await call(['SET', 'npx:k', 'from npx']), { status: 200, body: { result: 'OK' } });
    assert.deepEqual(await call(['GET', 'npx:k']), { status: 200, body: { result: 'from npx' } });
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    assert.equal(health.status, 200);
  } finally {
    proc.kill('SIGTERM');
  }
  // npm exits on SIGTERM without passing it on to the launcher (run through
  // `sh -c`); the launcher sees it is orphaned and stops the bridge, which
  // shuts down gracefully: nothing is left listening.
  assert.deepEqual(await exited, { code: null, signal: 'SIGTERM' });
  await stopsListening(port);
});

async function stopsListening(port) {
  const deadline = Date.now() + 5_000;
  while (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)) {
    assert.ok(Date.now() < deadline, `the bridge on port ${port} outlived its launcher`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the launcher itself passes SIGTERM on: the bridge exits 0, and so does the launcher', async () => {
  const dir = project([built.launcher, built.platforms[platform]]);
  const port = await freePort();
  // As a process manager would run it: node_modules/.bin/edgecache-bridge.
  const proc = spawn(path.join(dir, 'node_modules/.bin/edgecache-bridge'), ['--redis-url', redis.url, '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, EDGECACHE_BRIDGE_TOKEN: TOKEN, RUST_LOG: 'error' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const line = await new Promise((resolve) => readline.createInterface({ input: proc.stdout }).once('line', resolve));
  assert.equal(line, `listening on http://127.0.0.1:${port}`);
  proc.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
  await stopsListening(port);
});

test('without the platform package, the launcher says why and what to do (exit 1)', async () => {
  const dir = project([built.launcher]);
  const r = await run('npx', ['--offline', 'edgecache-bridge', '--version'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`no binary for ${platform}: the optional dependency @edgecache/bridge-${platform} is not installed`));
  assert.match(r.stderr, /cargo install edgecache-bridge/);
  assert.match(r.stderr, /EDGECACHE_BRIDGE_BINARY/);
});
