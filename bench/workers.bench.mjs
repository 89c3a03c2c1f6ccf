// Both example Workers in workerd: the latency of an L1 HIT of the Rust one
// (examples/rust-worker, worker-build's output) and of the JS one
// (examples/js-worker, the npm package, bundled by wrangler as it deploys
// it), each against the same Worker returning a constant response of the
// same body, all driven the same way (Miniflare's dispatchFetch over
// loopback, one request at a time, after a warm-up, taking turns),
// and the upload size `wrangler deploy --dry-run` reports for each.
// Issue 19's targets (issue 10's were 1.2x and 300 KiB): p50 <= 1.1x the
// constant Worker for both examples; upload <= 200 KiB gzipped.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { QUICK } from './lib.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const RUST_SCRIPT = path.join(root, 'examples/rust-worker/build/index.js');
const WRANGLER = path.join(root, 'node_modules/.bin/wrangler');
// Up to date (seconds when nothing changed).
execFileSync(path.join(root, 'scripts/rust-worker.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });

const N = QUICK ? 300 : 3000;
const ROUNDS = 3;
const tmp = mkdtempSync(path.join(os.tmpdir(), 'workers-bench-'));

/** `wrangler deploy --dry-run` of a config into `outdir`: the gzipped upload size wrangler prints. */
function dryRun(config, outdir) {
  const out = execFileSync(WRANGLER, ['deploy', '--dry-run', '--outdir', outdir, '-c', config], {
    encoding: 'utf8',
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
  const m = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(out);
  return m ? `${m[1]}, ${m[2]} gzipped` : out;
}

/**
 * The latencies of `targets` ({ mf, url } each), sampled in turn: request i
 * of every target is sent before request i + 1 of any (in an order that
 * rotates), so that a slower moment of the machine (2 cores, shared) falls
 * on all of them alike rather than on whichever ran then.
 */
async function measure(targets) {
  for (const { mf, url } of targets) for (let i = 0; i < 200; i++) await (await mf.dispatchFetch(url)).arrayBuffer();
  const t = targets.map(() => new Float64Array(N));
  for (let i = 0; i < N; i++) {
    for (let k = 0; k < targets.length; k++) {
      const j = (i + k) % targets.length;
      const { mf, url } = targets[j];
      const s = process.hrtime.bigint();
      const r = await mf.dispatchFetch(url);
      await r.arrayBuffer();
      t[j][i] = Number(process.hrtime.bigint() - s) / 1e6;
    }
  }
  return t.map((x) => {
    x.sort();
    return { p50: x[Math.floor(N / 2)], p99: x[Math.floor(N * 0.99)] };
  });
}

let rust;
let js;
let constant;
const sizes = {};
try {
  // The Rust Worker as built; its upload as wrangler would send it.
  const rustConfig = path.join(tmp, 'rust.toml');
  writeFileSync(rustConfig, `name = "bench-rust"\nmain = "${RUST_SCRIPT}"\ncompatibility_date = "2025-09-01"\n`);
  sizes.rust = dryRun(rustConfig, path.join(tmp, 'rust-out'));
  // The JS Worker as wrangler bundles it for upload (the `workerd` condition:
  // the package's wasm as a module of its own), run from that bundle.
  const jsOut = path.join(tmp, 'js-out');
  sizes.js = dryRun(path.join(root, 'examples/js-worker/wrangler.toml'), jsOut);
  if (!readdirSync(jsOut).some((f) => f.endsWith('.wasm'))) throw new Error(`no .wasm module in wrangler's bundle: ${readdirSync(jsOut)}`);

  const workerOptions = (scriptPath) => ({
    scriptPath,
    // Module names relative to the script's folder (the JS bundle is in a temporary one).
    modulesRoot: path.dirname(scriptPath),
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    handleRuntimeStdio() {},
  });
  rust = new Miniflare({ ...workerOptions(RUST_SCRIPT), bindings: { ORIGIN_DELAY_MS: '0', CACHE_TTL: '3600000' } });
  js = new Miniflare({ ...workerOptions(path.join(jsOut, 'index.js')), bindings: { CACHE_TTL: '3600000', STALE_TTL: '0' } });

  // The first request of each is its MISS; the rest are L1 HITs. The
  // constant Worker answers each one's body at its path, so that each
  // pair answers as many bytes.
  const first = async (mf, url) => {
    const r = await mf.dispatchFetch(url);
    if (r.headers.get('x-cache') !== 'MISS') throw new Error(`${url}: expected the first answer to be a MISS, got ${r.headers.get('x-cache')}`);
    const body = await r.text();
    const hit = await mf.dispatchFetch(url);
    await hit.arrayBuffer();
    if (hit.headers.get('x-cache') !== 'HIT' || hit.headers.get('x-cache-tier') !== 'l1') throw new Error(`${url}: the second answer is not an L1 HIT`);
    return { body, type: r.headers.get('content-type') };
  };
  const pages = { '/rust/item/1': await first(rust, 'http://localhost/rust/item/1'), '/js/item/1': await first(js, 'http://localhost/js/item/1') };
  constant = new Miniflare({
    modules: true,
    script: `const pages = ${JSON.stringify(pages)};
export default { fetch(request) {
  const p = pages[new URL(request.url).pathname];
  return new Response(p.body, { headers: { 'content-type': p.type, 'x-cache': 'HIT', 'x-cache-tier': 'l1' } });
} };`,
    compatibilityDate: '2025-09-01',
  });

  const rows = [];
  for (let round = 0; round < ROUNDS; round++) {
    const [cr, r, cj, j] = await measure([
      { mf: constant, url: 'http://localhost/rust/item/1' },
      { mf: rust, url: 'http://localhost/rust/item/1' },
      { mf: constant, url: 'http://localhost/js/item/1' },
      { mf: js, url: 'http://localhost/js/item/1' },
    ]);
    rows.push({ cr, r, cj, j });
  }
  const best = (f) => Math.min(...rows.map(f));
  const line = (name, k) => `  ${name.padEnd(36)} p50 ${best((x) => x[k].p50).toFixed(3)}  p99 ${best((x) => x[k].p99).toFixed(3)}`;
  const ratio = (k, c) => (best((x) => x[k].p50) / best((x) => x[c].p50)).toFixed(2);
  console.log(`L1 HIT through workerd, ${N} sequential requests, best of ${ROUNDS} rounds (ms):`);
  console.log(line(`constant Worker (${pages['/rust/item/1'].body.length} B body)`, 'cr'));
  console.log(line('Rust example', 'r'));
  console.log(line(`constant Worker (${pages['/js/item/1'].body.length} B body)`, 'cj'));
  console.log(line('JS example', 'j'));
  console.log(`  ratio p50: Rust ${ratio('r', 'cr')}x, JS ${ratio('j', 'cj')}x (target <= 1.1x)`);
  console.log(`upload (wrangler deploy --dry-run): Rust ${sizes.rust} (target <= 200 KiB); JS ${sizes.js}`);
} finally {
  await rust?.dispose();
  await js?.dispose();
  await constant?.dispose();
  rmSync(tmp, { recursive: true, force: true });
}
