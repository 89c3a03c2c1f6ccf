// The wasm loader everywhere but Cloudflare Workers: browsers (with or
// without a bundler), Node, Deno and Bun. The compiled module travels
// inside this package's JavaScript, deflated and base64-encoded
// (../wasm/edgecache_bg.inline.js, written by scripts/inline-wasm.mjs), and
// is instantiated synchronously the first time something needs it.
//
// Chosen by measurement (scripts/build.sh prints the figures; the README's
// "Size" section has them) over the alternatives:
// - fetching a `.wasm` next to the module needed every bundler to emit it
//   (esbuild does not), a top-level await (no iife, no require), and a read
//   permission or a file path in Deno and in Node bundles;
// - plain base64 costs about 35% more gzipped than the .wasm; base64 of the
//   deflated bytes costs about 1% more, plus this decoder (inflate.ts);
// - synchronous compilation is allowed on a browser's main thread up to
//   8 MB in Chromium 156 (tests/js/pkg-browser.test.mjs checks it), and
//   without a limit in Firefox and Safari.
// Workers forbid compiling wasm from bytes, so the `workerd` condition gets
// dist/workerd.js, whose loader (./workerd.ts) imports the `.wasm` instead.
import { initSync } from '../wasm/edgecache.js';
import { deflated, size } from '../wasm/edgecache_bg.inline.js';
import { inflateRaw } from './inflate.js';

let ready = false;

/** Decodes base64 with `atob`, which every target runtime has. */
function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

type Zlib = { inflateRawSync(data: Uint8Array): Uint8Array };

/**
 * The wasm bytes. Where the runtime has Node's zlib (Node >= 20.16, Deno,
 * Bun) it inflates natively (about 2 ms); elsewhere inflate.ts does (about
 * 10 ms cold). `getBuiltinModule` is no import, so bundlers see nothing.
 */
function wasmBytes(): Uint8Array {
  const compressed = fromBase64(deflated);
  const host = globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } };
  let zlib: Zlib | undefined;
  try {
    zlib = host.process?.getBuiltinModule?.('node:zlib') as Zlib | undefined;
  } catch {
    zlib = undefined;
  }
  if (zlib?.inflateRawSync) {
    const bytes = zlib.inflateRawSync(compressed);
    if (bytes.length === size) return bytes;
  }
  return inflateRaw(compressed, size);
}

/** Instantiates the wasm module once; later calls do nothing. */
export function ensureWasm(): void {
  if (ready) return;
  initSync({ module: wasmBytes() });
  ready = true;
}

/** Background work needs no help outside Workers (see ./workerd.ts). */
export function keepAlive(_work: Promise<unknown>): void {}
