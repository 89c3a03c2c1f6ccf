// The wasm loader for browsers and bundlers (the default condition): a
// browser cannot compile a module of this size synchronously, so it is
// fetched from next to this file while the package loads (top-level await),
// and the API is synchronous from the first line that imports it.
import init from '../wasm/edgecache.js';

await init({ module_or_path: new URL('../wasm/edgecache_bg.wasm', import.meta.url) });

/** The module is ready once this file has loaded. */
export function ensureWasm(): void {}
