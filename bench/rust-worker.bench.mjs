// The example Rust Worker (examples/rust-worker) in workerd: the latency of
// an L1 HIT against a Worker that returns a constant response, both driven
// the same way (Miniflare's dispatchFetch over loopback, one request at a
// time, after a warm-up), and the upload size `wrangler deploy --dry-run`
// reports. Issue 10's targets: p50 <= 1.2x the constant Worker, upload
// <= 300 KiB gzipped.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { QUICK } from './lib.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const SCRIPT = path.join(root, 'examples/rust-worker/build/index.js');
// Up to date (seconds when nothing changed).
execFileSync(path.join(root, 'scripts/rust-worker.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });

const N = QUICK ? 300 : 3000;
const ROUNDS = 3;

async function measure(mf, url) {
  for (let i = 0; i < 200; i++) await (await mf.dispatchFetch(url)).arrayBuffer();
  const t = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const s = process.hrtime.bigint();
    const r = await mf.dispatchFetch(url);
    await r.arrayBuffer();
    t[i] = Number(process.hrtime.bigint() - s) / 1e6;
  }
  t.sort();
  return { p50: t[Math.floor(N / 2)], p99: t[Math.floor(N * 0.99)] };
}

const rust = new Miniflare({
  scriptPath: SCRIPT,
  modules: true,
  modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
  compatibilityDate: '2025-09-01',
  bindings: { ORIGIN_DELAY_MS: '0' },
  handleRuntimeStdio() {},
});
// The same body as the cached page, so both answer as many bytes.
const first = await rust.dispatchFetch('http://localhost/item/1');
const body = await first.text();
const constant = new Miniflare({
  modules: true,
  script: `const body = ${JSON.stringify(body)};
export default { fetch() { return new Response(body, { headers: { 'content-type': 'text/html; charset=utf-8', 'x-cache': 'HIT', 'x-cache-tier': 'l1' } }); } };`,
  compatibilityDate: '2025-09-01',
});

const rows = [];
for (let round = 0; round < ROUNDS; round++) {
  const c = await measure(constant, 'http://localhost/item/1');
  const r = await measure(rust, 'http://localhost/item/1');
  rows.push({ c, r });
}
await rust.dispose();
await constant.dispose();
const best = (f) => Math.min(...rows.map(f));
const cp50 = best((x) => x.c.p50);
const rp50 = best((x) => x.r.p50);
console.log(`L1 HIT through workerd, ${N} sequential requests, best of ${ROUNDS} rounds (ms):`);
console.log(`  constant Worker   p50 ${cp50.toFixed(3)}  p99 ${best((x) => x.c.p99).toFixed(3)}`);
console.log(`  Rust example      p50 ${rp50.toFixed(3)}  p99 ${best((x) => x.r.p99).toFixed(3)}`);
console.log(`  ratio p50 ${(rp50 / cp50).toFixed(2)}x (target <= 1.2x)`);

// The upload size, as wrangler reports it (the build is already there).
const dir = mkdtempSync(path.join(os.tmpdir(), 'rust-worker-dry-'));
try {
  writeFileSync(path.join(dir, 'wrangler.toml'), `name = "bench"\nmain = "${SCRIPT}"\ncompatibility_date = "2025-09-01"\n`);
  const out = execFileSync(path.join(root, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', path.join(dir, 'out'), '-c', path.join(dir, 'wrangler.toml')], {
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
  const m = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(out);
  console.log(`upload (wrangler deploy --dry-run): ${m ? `${m[1]}, ${m[2]} gzipped (target <= 300 KiB)` : out}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
