// The wasm loader for Cloudflare Workers (condition workerd): wrangler
// bundles the .wasm import as a compiled WebAssembly.Module, which is
// instantiated synchronously the first time something needs it.
import wasmModule from '../wasm/edgecache_bg.wasm';
import { initSync } from '../wasm/edgecache.js';

let ready = false;

/** Instantiates the wasm module once; later calls do nothing. */
export function ensureWasm(): void {
  if (ready) return;
  initSync({ module: wasmModule });
  ready = true;
}
