// A `.wasm` import, as wrangler (and other Workers bundlers) provide it.
declare module '*.wasm' {
  const module: WebAssembly.Module;
  export default module;
}
