// The wasm loader for Node, Deno and Bun (package.json "imports", condition
// node/deno/bun): the module is read from disk and instantiated
// synchronously, the first time something needs it.
import { readFileSync } from 'node:fs';
import { initSync } from '../wasm/edgecache.js';

let ready = false;

/** Instantiates the wasm module once; later calls do nothing. */
export function ensureWasm(): void {
  if (ready) return;
  initSync({ module: readFileSync(new URL('../wasm/edgecache_bg.wasm', import.meta.url)) });
  ready = true;
}
