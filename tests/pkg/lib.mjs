// Shared by tests/js/pkg-*.test.mjs: each test file packs the package
// (`npm pack`, as publishing would), installs the tarball into a fresh
// temporary project outside the repository, and runs it with the tools of
// tests/pkg/tools (installed once into target/pkg-tools by scripts/setup.sh).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, existsSync, readdirSync, statSync, createReadStream, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
export const tools = path.join(root, 'target/pkg-tools/node_modules');
export const bin = (name) => path.join(tools, '.bin', name);
export const NODE22 = path.join(tools, 'node22/bin/node');
export const NODE24 = path.join(tools, 'node24/bin/node');
/** The machine's own Node (Debian's, or whatever /usr/bin/node is), not the one setup may add. */
export const SYSTEM_NODE = process.env.EDGECACHE_SYSTEM_NODE ?? (existsSync('/usr/bin/node') ? '/usr/bin/node' : 'node');
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

/** What every smoke program computes; the same in every environment. */
export const EXPECTED = { c: 3, a: null, keys: ['b', 'c'], opened: { name: 'Ada' }, sq: 144, sealedKey: 'user:1' };

/** The smoke program, as ESM source that imports the package by `specifier`. */
export function smokeModule(specifier = 'edgecache') {
  return `import { MemoryCache, Signer, generateSecureKey, memoize } from '${specifier}';
export function smoke() {
  const c = new MemoryCache({ maxEntries: 2 });
  c.set('a', 1); c.set('b', 2); c.set('c', 3);
  const signer = new Signer({ keys: { k1: generateSecureKey() } });
  const sealed = signer.seal('user:1', { name: 'Ada' });
  const sq = memoize((x) => x * x);
  return { c: c.get('c'), a: c.get('a') ?? null, keys: c.keys('*').sort(), opened: signer.open('user:1', sealed), sq: sq(12), sealedKey: 'user:1' };
}
`;
}

export function requireTools() {
  if (!existsSync(path.join(tools, '.package-lock.json'))) {
    throw new Error('target/pkg-tools is missing: run `make setup` (it installs tests/pkg/tools)');
  }
}

let tarball;
/** `npm pack` of the repository (after `make build`), once per process. */
export function pack() {
  if (tarball) return tarball;
  if (!existsSync(path.join(root, 'dist/index.js'))) throw new Error('run `make build` first');
  const dest = path.join(root, 'target/pkg');
  mkdirSync(dest, { recursive: true });
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dest], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  const info = JSON.parse(out)[0];
  tarball = { file: path.join(dest, info.filename), files: info.files.map((f) => f.path), size: info.size };
  return tarball;
}

/**
 * A fresh project in the system temp directory with the packed package
 * installed (`npm install <tarball>`), plus `files` written into it.
 */
export function freshProject(files = {}, pkg = {}) {
  const { file } = pack();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgecache-pkg-'));
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', ...pkg }, null, 2));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline', file], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

export function cleanup(dir) {
  if (dir && !process.env.EDGECACHE_KEEP) rmSync(dir, { recursive: true, force: true });
}

/** Runs a command; resolves with { code, stdout, stderr } (never rejects on a non-zero exit). */
export function run(cmd, args, { cwd, env, timeout = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The last line of `stdout` that starts with RESULT, parsed. */
export function resultOf({ code, stdout, stderr }) {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`no RESULT (exit ${code})\nstdout: ${stdout}\nstderr: ${stderr}`);
  return JSON.parse(line.slice('RESULT '.length));
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.css': 'text/css' };

/**
 * A static server on loopback. `mounts` maps a URL prefix to a directory;
 * every request path is recorded in `served`.
 */
export async function serve(mounts) {
  const served = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://localhost');
    const pathname = decodeURIComponent(url.pathname);
    const prefix = Object.keys(mounts).filter((p) => pathname.startsWith(p)).sort((a, b) => b.length - a.length)[0];
    if (prefix === undefined) return res.writeHead(404).end();
    const base = mounts[prefix];
    let file = path.join(base, pathname.slice(prefix.length));
    if (!file.startsWith(base)) return res.writeHead(403).end();
    if (existsSync(file) && statSync(file).isDirectory()) file = path.join(file, 'index.html');
    served.push(pathname);
    if (!existsSync(file)) return res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { base: `http://127.0.0.1:${server.address().port}`, served, close: () => new Promise((r) => server.close(r)) };
}

/**
 * Opens `url` in `browser`, waits for `window.__edgecache` (set by the
 * page's smoke run) and returns it with every page error, failed request
 * and console error seen.
 */
export async function loadInPage(browser, url) {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
  page.on('requestfailed', (r) => problems.push(`failed: ${r.url()}`));
  page.on('response', (r) => r.status() >= 400 && problems.push(`${r.status()}: ${r.url()}`));
  await page.goto(url);
  let result;
  try {
    await page.waitForFunction(() => window.__edgecache !== undefined, null, { timeout: 20_000 });
    result = await page.evaluate(() => window.__edgecache);
  } catch (e) {
    problems.push(`no result: ${e.message}`);
  }
  await page.close();
  return { result, problems };
}

/** Every file under `dir`, recursively. */
export function walk(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}
