// The wasm loader for Cloudflare Workers (condition workerd): wrangler
// bundles the .wasm import as a compiled WebAssembly.Module, which is
// instantiated synchronously the first time something needs it.
import { waitUntil } from 'cloudflare:workers';
import wasmModule from '../wasm/edgecache_bg.wasm';
import { initSync } from '../wasm/edgecache.js';

let ready = false;

/** Instantiates the wasm module once; later calls do nothing. */
export function ensureWasm(): void {
  if (ready) return;
  initSync({ module: wasmModule });
  ready = true;
}

/**
 * Hands background work (a stale-while-revalidate refresh, an invalidation
 * a synchronous method started) to the current request's `waitUntil`:
 * workerd cancels the I/O a request leaves pending when it ends, which
 * would drop the refresh and leave it in flight for good. Outside a
 * request (module scope), there is nothing to extend.
 */
export function keepAlive(work: Promise<unknown>): void {
  try {
    waitUntil(work);
  } catch {
    // not in a request
  }
}
