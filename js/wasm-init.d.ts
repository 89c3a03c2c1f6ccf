// '#wasm-init' is the wasm loader. scripts/dist.mjs resolves it at build
// time: dist/workerd.js (Cloudflare Workers) is bundled with
// js/wasm-init/workerd.ts; everywhere else dist/ imports
// js/wasm-init/index.ts by relative path, so no bare specifier is left.
declare module '#wasm-init' {
  /** Instantiates the wasm module if it is not yet; cheap after the first call. */
  export function ensureWasm(): void;
  /**
   * Keeps `work` alive past the response of the request that started it:
   * Cloudflare's `waitUntil` (from `cloudflare:workers`) in Workers, where
   * I/O left pending when a request ends is cancelled; nothing elsewhere.
   * `work` must not reject (callers pass it through `.catch`).
   */
  export function keepAlive(work: Promise<unknown>): void;
}
