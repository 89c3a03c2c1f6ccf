// The platform types that edgecache's declarations mention, so that a
// project type-checks them with `skipLibCheck: false` whatever its `lib`
// and `types`: lib "DOM", @types/node, @cloudflare/workers-types, Deno's or
// Bun's types, or none of them (`lib: ["ES2022"]`). `Request` is the
// project's own Request type where it has one, and a small stand-in where
// it has none.
type Platform = typeof globalThis;

/** What edgecache reads of a request where the project has no Request type. */
interface StandInRequest {
  readonly url: string;
  readonly method: string;
}
/** What edgecache reads of a response where the project has no Response type. */
interface StandInResponse {
  readonly status: number;
}

/** The project's `Request` (DOM, Node, Workers, Deno, Bun), else a stand-in. */
export type Request = Platform extends { Request: { prototype: infer R } } ? R : StandInRequest;
/** The project's `Response`, else a stand-in. */
export type Response = Platform extends { Response: { prototype: infer R } } ? R : StandInResponse;
/** The project's `fetch`, else a stand-in. */
export declare const fetch: Platform extends { fetch: infer F } ? F : (input: string, init?: object) => Promise<Response>;

declare global {
  // `[Symbol.dispose]()` (MemoryCache, Signer). The same declaration as
  // lib "ESNext.Disposable" and @types/node make; it merges with theirs.
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}
