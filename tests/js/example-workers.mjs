// The two example Workers side by side, for the tests that run them on one
// Redis (workers-interop, coherence-multi): the Rust one
// (examples/rust-worker, built by scripts/rust-worker.sh if it is not) in
// Miniflare, the JS one (examples/js-worker) with wrangler's unstable_dev,
// both given the same `vars`. Each is driven the same way:
// `fetch(pathAndQuery, init)`.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { unstable_dev } from 'wrangler';

process.env.WRANGLER_SEND_METRICS = 'false';
const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
export const RUST_SCRIPT = path.join(root, 'examples/rust-worker/build/index.js');

/** Builds the Rust example if its build is missing. */
export function ensureRustWorker() {
  if (!existsSync(RUST_SCRIPT)) execFileSync(path.join(root, 'scripts/rust-worker.sh'), { stdio: 'inherit' });
}

/**
 * Both Workers with `vars` (the Rust one also gets ORIGIN_DELAY_MS 20):
 * `{ rust, js, stop() }`, each Worker `{ name, fetch(p, init) }`.
 */
export async function startExampleWorkers(vars, { rustName = 'Rust', jsName = 'JS' } = {}) {
  ensureRustWorker();
  const mf = new Miniflare({
    scriptPath: RUST_SCRIPT,
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    bindings: { ORIGIN_DELAY_MS: '20', ...vars },
    handleRuntimeStdio() {},
  });
  let js;
  try {
    js = await unstable_dev('examples/js-worker/index.js', {
      config: 'examples/js-worker/wrangler.toml',
      vars,
      ip: '127.0.0.1',
      port: 0,
      logLevel: 'error',
      experimental: { disableExperimentalWarning: true, disableDevRegistry: true },
    });
  } catch (e) {
    await mf.dispose();
    throw e;
  }
  return {
    rust: { name: rustName, fetch: (p, init) => mf.dispatchFetch(`http://localhost${p}`, init) },
    js: { name: jsName, fetch: (p, init) => js.fetch(p, init) },
    stop: async () => {
      await js.stop();
      await mf.dispose();
    },
  };
}
