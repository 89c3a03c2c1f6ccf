// What the tarball ships (`npm pack`): the licenses, a README for someone
// who installed the package whose every relative link is in the tarball,
// no declaration file that nothing references, a wasm without its name
// section, and sizes within scripts/size-budget.json. Also the inline
// wasm's decoder (dist/wasm-init/inflate.js) against Node's zlib.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateRawSync, gzipSync, constants } from 'node:zlib';
import { pack, root, cleanup } from '../pkg/lib.mjs';

const { inflateRaw } = await import(path.join(root, 'dist/wasm-init/inflate.js'));
const budget = JSON.parse(readFileSync(path.join(root, 'scripts/size-budget.json'), 'utf8'));

function unpacked() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'edgecache-tgz-'));
  execFileSync('tar', ['xzf', pack().file, '-C', dir]);
  return path.join(dir, 'package');
}

test('the tarball ships the licenses, the README, the docs it links to, and no stray file', () => {
  const files = pack().files;
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/workerd.js', 'dist/wasm/edgecache_bg.wasm']) {
    assert.ok(files.includes(f), `${f} is shipped`);
  }
  assert.deepEqual(files.filter((f) => !/^(dist\/|docs\/|LICENSE-|README\.md|CHANGELOG\.md|package\.json|bin\/edgecache\.mjs$)/.test(f)), []);
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const links = [...readme.matchAll(/\]\((?!https?:|#|mailto:)([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1].replace(/^\.\//, ''));
  assert.ok(links.length > 0);
  for (const link of links) assert.ok(files.some((f) => f === link || f.startsWith(link.replace(/\/$/, '') + '/')), `README links to ${link}, which the tarball lacks`);
  assert.match(readme, /npm install edgecache/);
});

test("the README's minimal wrangler.toml names a compatibility_date the tested workerd runs", () => {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const example = readFileSync(path.join(root, 'examples/js-worker/wrangler.toml'), 'utf8');
  const date = (text) => text.match(/^compatibility_date = "(\d{4}-\d{2}-\d{2})"$/m)?.[1];
  const toml = readme.match(/\n```toml\n(name = [\s\S]*?)```\n/)?.[1];
  assert.ok(toml && /^main = /m.test(toml), 'a wrangler.toml with name, main, compatibility_date');
  assert.ok(date(toml) <= date(example), `${date(toml)} is newer than the example Worker's ${date(example)}`);
});

test('every relative link of the shipped docs/*.md is in the tarball', () => {
  const files = pack().files;
  const docs = files.filter((f) => /^docs\/[^/]+\.md$/.test(f));
  assert.ok(docs.length >= 3, String(docs));
  for (const doc of docs) {
    const text = readFileSync(path.join(root, doc), 'utf8');
    for (const m of text.matchAll(/\]\((?!https?:|#|mailto:)([^)#\s]+)(#[^)]*)?\)/g)) {
      const target = path.posix.normalize(path.posix.join('docs', m[1]));
      assert.ok(files.includes(target), `${doc} links to ${m[1]} (${target}), which the tarball lacks`);
    }
  }
});

test("every .d.ts shipped is reached from an entry point's (package.json exports)", () => {
  const dir = unpacked();
  try {
    const shipped = pack().files.filter((f) => f.endsWith('.d.ts'));
    const seen = new Set();
    const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
    const queue = Object.values(pkg.exports).flatMap((e) => (typeof e === 'object' ? [e.types.replace(/^\.\//, '')] : []));
    assert.deepEqual(queue, ['dist/index.d.ts', 'dist/hono.d.ts']);
    while (queue.length) {
      const f = queue.pop();
      if (seen.has(f)) continue;
      seen.add(f);
      for (const m of readFileSync(path.join(dir, f), 'utf8').matchAll(/from\s+['"](\.{1,2}\/[^'"]+)\.js['"]/g)) {
        queue.push(path.posix.normalize(path.posix.join(path.posix.dirname(f), `${m[1]}.d.ts`)));
      }
    }
    assert.deepEqual(shipped.filter((f) => !seen.has(f)), []);
  } finally {
    cleanup(path.dirname(dir));
  }
});

test('package.json: ESM, exports with workerd, engines', () => {
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.engines.node, '^20.19.0 || >=22.12.0');
  assert.deepEqual(Object.keys(pkg.exports['.']), ['types', 'workerd', 'default']);
  // edgecache/hono: its Workers file imports dist/workerd.js, so one module serves both entries there.
  assert.deepEqual(pkg.exports['./hono'], { types: './dist/hono.d.ts', workerd: './dist/hono.workerd.js', default: './dist/hono.js' });
  assert.deepEqual(pkg.peerDependencies, { hono: '^4.6.0' });
  assert.deepEqual(pkg.peerDependenciesMeta, { hono: { optional: true } });
  assert.match(readFileSync(path.join(root, 'dist/hono.workerd.js'), 'utf8'), /from '\.\/workerd\.js'/);
  assert.doesNotMatch(readFileSync(path.join(root, 'dist/hono.js'), 'utf8'), /^import[^;]*from 'hono/m, 'Hono is not imported at run time');
  assert.equal(pkg.imports, undefined, 'no #imports: a plain page must resolve every specifier');
});

test('package.json names the repository, homepage and bug tracker, and the README links them', () => {
  // A user of the tarball reads of a bridge, a crate and examples "in the
  // repository": these fields, and the README, must say where that is.
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const repo = 'https://github.com/edgecache/edgecache';
  assert.deepEqual(pkg.repository, { type: 'git', url: `git+${repo}.git` });
  assert.equal(pkg.homepage, `${repo}#readme`);
  assert.deepEqual(pkg.bugs, { url: `${repo}/issues` });
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  assert.ok(readme.includes(`](${repo})`), 'the README links the repository');
  assert.ok(readme.includes(`](${repo}/issues)`), 'the README links the bug tracker');
  for (const crate of ['Cargo.toml', 'bridge/Cargo.toml']) {
    const toml = readFileSync(path.join(root, crate), 'utf8');
    assert.match(toml, new RegExp(`^repository = "${repo}"$`, 'm'), crate);
    assert.doesNotMatch(toml, /^publish = false$/m, `${crate} is publishable`);
  }
});

test('the shipped docs are for users: no repository test files, no build notes, no seed', () => {
  const files = pack().files;
  const docs = files.filter((f) => f === 'README.md' || /^docs\/[^/]+\.md$/.test(f));
  assert.ok(docs.length >= 4, String(docs));
  for (const doc of docs) {
    const text = readFileSync(path.join(root, doc), 'utf8');
    const refs = [...text.matchAll(/`((?:tests|bench)\/[^`\s]*)`/g)].map((m) => m[1]);
    assert.deepEqual(refs, [], `${doc} names repository files a user does not have (CONTRIBUTING.md lists the tests)`);
    assert.doesNotMatch(text, /Python seed/, doc);
  }
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  assert.doesNotMatch(readme, /^## .*working on edgecache/im, "the README's top is for users: working on edgecache is CONTRIBUTING.md's");
  const web = readFileSync(path.join(root, 'dist/web.d.ts'), 'utf8');
  assert.doesNotMatch(web, /scripts\/|dist\.mjs/, 'dist/web.d.ts carries no build notes');
});

test('the wasm has no name section, and its sizes are within budget', (t) => {
  const wasm = readFileSync(path.join(root, 'dist/wasm/edgecache_bg.wasm'));
  // Custom sections (id 0) and their names.
  const names = [];
  let i = 8;
  const leb = () => {
    let v = 0;
    let shift = 0;
    let b;
    do {
      b = wasm[i++];
      v |= (b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    return v >>> 0;
  };
  while (i < wasm.length) {
    const id = wasm[i++];
    const len = leb();
    const end = i + len;
    if (id === 0) {
      const n = leb();
      names.push(wasm.subarray(i, i + n).toString());
    }
    i = end;
  }
  assert.ok(!names.includes('name'), `custom sections: ${names}`);
  const wasmGz = gzipSync(wasm, { level: 9 }).length;
  const inlineGz = gzipSync(readFileSync(path.join(root, 'dist/wasm/edgecache_bg.inline.js')), { level: 9 }).length;
  t.diagnostic(`wasm ${wasm.length} bytes, ${wasmGz} gzipped (budget ${budget.wasm}); inline ${inlineGz} gzipped (budget ${budget.inlineWasm})`);
  assert.ok(wasmGz <= budget.wasm, `wasm ${wasmGz} > ${budget.wasm}`);
  assert.ok(inlineGz <= budget.inlineWasm, `inline ${inlineGz} > ${budget.inlineWasm}`);
});

test('inflateRaw decodes what zlib deflates, at every level and strategy', () => {
  const wasm = readFileSync(path.join(root, 'dist/wasm/edgecache_bg.wasm'));
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const inputs = [
    wasm,
    new Uint8Array(0),
    new Uint8Array([42]),
    Uint8Array.from({ length: 70_000 }, rnd),
    Uint8Array.from({ length: 50_000 }, (_, k) => (k % 7 === 0 ? rnd() : 97 + (k % 3))),
    new Uint8Array(300_000),
  ];
  for (const input of inputs) {
    for (const level of [0, 1, 6, 9]) {
      for (const strategy of [constants.Z_DEFAULT_STRATEGY, constants.Z_FIXED, constants.Z_HUFFMAN_ONLY, constants.Z_RLE]) {
        const out = inflateRaw(deflateRawSync(input, { level, strategy }), input.length);
        assert.ok(Buffer.from(out).equals(Buffer.from(input)), `level ${level} strategy ${strategy} length ${input.length}`);
      }
    }
  }
});

test('inflateRaw refuses corrupt or truncated input instead of reading out of range', () => {
  const data = Uint8Array.from({ length: 20_000 }, (_, k) => (k * 31) % 251);
  const deflated = deflateRawSync(data, { level: 9 });
  assert.throws(() => inflateRaw(deflated.subarray(0, deflated.length >> 1), data.length), /corrupt inline wasm/);
  assert.throws(() => inflateRaw(deflated, data.length + 1), /corrupt inline wasm/);
  assert.throws(() => inflateRaw(deflated, data.length - 1), /corrupt inline wasm/);
  assert.throws(() => inflateRaw(new Uint8Array([0xff, 0xff, 0xff]), 10), /corrupt inline wasm/);
  let seed = 1;
  for (let k = 0; k < 200; k++) {
    const bad = Uint8Array.from(deflated);
    seed = (seed * 1103515245 + 12345) >>> 0;
    bad[seed % bad.length] ^= 1 << (seed >>> 29);
    try {
      const out = inflateRaw(bad, data.length);
      assert.equal(out.length, data.length);
    } catch (e) {
      assert.match(e.message, /corrupt inline wasm/);
    }
  }
});
