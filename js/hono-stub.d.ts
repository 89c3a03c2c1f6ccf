// What js/hono.ts needs of Hono's types to compile here, where Hono is not
// installed (it is an optional peer dependency). The emitted
// dist/hono.d.ts imports from 'hono', which the user's own Hono resolves;
// tests/js/pkg-types.test.mjs checks it against the real Hono.
declare module 'hono' {
  export type Env = { Bindings?: object; Variables?: object };
  export type Next = () => Promise<void>;
  export interface Context<E extends Env = any> {
    req: { raw: Request };
    get res(): Response;
    set res(r: Response | undefined);
    readonly executionCtx: { waitUntil(p: Promise<unknown>): void };
    set<K extends keyof NonNullable<E['Variables']>>(key: K, value: NonNullable<E['Variables']>[K]): void;
  }
  export type MiddlewareHandler<E extends Env = any> = (c: Context<E>, next: Next) => Promise<Response | void>;
}
