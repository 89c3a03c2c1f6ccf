// Entry for Cloudflare Workers (the "workerd" export condition): wrangler
// bundles the .wasm import as a compiled WebAssembly.Module, which is
// instantiated synchronously at startup.
import wasmModule from '../wasm/edgecache_bg.wasm';
import { initSync } from '../wasm/edgecache.js';

initSync({ module: wasmModule });

export * from '../index.js';
