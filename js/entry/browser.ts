// Entry for browsers and bundlers: the wasm is fetched next to this file
// (top-level await), so the API is usable as soon as the import resolves.
import init from '../wasm/edgecache.js';

await init({ module_or_path: new URL('../wasm/edgecache_bg.wasm', import.meta.url) });

export * from '../index.js';
