// '#wasm-init' is resolved by package.json "imports" to the loader of the
// platform (js/wasm-init/*.ts): node, workerd, or browser.
declare module '#wasm-init' {
  /** Instantiates the wasm module if it is not yet; cheap after the first call. */
  export function ensureWasm(): void;
}
