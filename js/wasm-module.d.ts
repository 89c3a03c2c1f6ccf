// A `.wasm` import, as wrangler (and other Workers bundlers) provide it.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}

// The Workers runtime's module (js/wasm-init/workerd.ts): `waitUntil`
// extends the current request's lifetime to a promise's.
declare module 'cloudflare:workers' {
  export function waitUntil(promise: Promise<unknown>): void;
}
