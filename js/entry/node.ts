// Entry for Node, Deno and Bun: the wasm is read from disk and instantiated
// synchronously, so the API is usable as soon as the import resolves.
import { readFileSync } from 'node:fs';
import { initSync } from '../wasm/edgecache.js';

initSync({ module: readFileSync(new URL('../wasm/edgecache_bg.wasm', import.meta.url)) });

export * from '../index.js';
