// Type-level checks: compiled with the others; an unused @ts-expect-error
// or a wrong type fails the compilation, and so the test.
import { MemoryCache, memoize, cached, type CacheLike } from 'edgecache';

const add = memoize((a: number, b: string) => `${a}${b}`);
const s: string = add(1, 'x');
// @ts-expect-error the parameter types are kept
add('x', 1);
// @ts-expect-error and the arity
add(1);
const peeked: string | undefined = add.peek(1, 'x');
const removed: boolean = add.invalidate(1, 'x');
const c: MemoryCache = add.cache;

const load = memoize(async (id: number) => ({ id }), { ttl: 1000, key: (id) => String(id) });
const p: Promise<{ id: number }> = load(1);
const v: { id: number } | undefined = load.peek(1);
// @ts-expect-error the key function gets the function's parameter types
memoize(async (id: number) => id, { key: (id: string) => id });

/** A cache whose methods return promises, as the coming TieredCache. */
declare const remote: {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, opts?: { ttl?: number }): Promise<unknown>;
  delete(key: string): Promise<boolean>;
  deletePattern(pattern: string): Promise<number>;
};
const r: CacheLike = remote;
const viaRemote = memoize((x: number) => x * 2, { cache: remote });
const rp: Promise<number> = viaRemote(1);
const rpeek: Promise<number | undefined> = viaRemote.peek(1);
const rdel: Promise<boolean> = viaRemote.invalidate(1);

class Typed {
  @cached({ ttl: 10 })
  twice(x: number): number {
    return x * 2;
  }
}
const t: number = new Typed().twice(2);

export { s, peeked, removed, c, p, v, r, rp, rpeek, rdel, t };
