// Type-level checks: compiled with the others; an unused @ts-expect-error
// or a wrong type fails the compilation, and so the test.
import { MemoryCache, TieredCache, memoize, cached, type CacheLike, type GetOrSetOptions } from 'edgecache';

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
// tags: an array, or a function of the same parameters.
memoize(async (id: number) => id, { tags: ['users'] });
memoize(async (id: number) => id, { tags: (id) => [`user:${id.toFixed()}`] });
// @ts-expect-error the tags function gets the function's parameter types
memoize(async (id: number) => id, { tags: (id: string) => [id] });

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

// Under --strict an unannotated parameter of the memoized function is an
// implicit any (TS7006), as in any function: never a silent `any`.
// @ts-expect-error Parameter 'id' implicitly has an 'any' type
memoize(async (id) => id);
// A default parameter keeps its inferred type.
const scaled = memoize((x: number, by = 2) => x * by);
// @ts-expect-error by is a number
scaled(1, 'x');

class Typed {
  n = 1;
  @cached({ ttl: 10 })
  twice(x: number): number {
    return x * 2;
  }
  // An untyped key parameter is unknown, not any: a template takes it...
  @cached({ key: (x) => `t:${x}` })
  thrice(x: number): number {
    return x * 3;
  }
  // ...but using it as a number asks for its type.
  // @ts-expect-error 'x' is of type 'unknown'
  @cached({ key: (x) => x.toFixed() })
  four(x: number): number {
    return x * 4;
  }
  // Typed key parameters, also with only `This` given.
  @cached<Typed>({ key(x: number) { return `t:${this.n}:${x}`; } })
  five(x: number): number {
    return x * 5;
  }
  // @ts-expect-error the key's parameters must match the method's
  @cached({ key: (x: string) => x })
  six(x: number): number {
    return x * 6;
  }
  @cached({ tags: ['seven'] })
  seven(x: number): number {
    return x * 7;
  }
  @cached<Typed>({ tags(x: number) { return [`e:${this.n}:${x}`]; } })
  eight(x: number): number {
    return x * 8;
  }
}
const t: number = new Typed().twice(2);

// getOrSet: the loader's type gives the value's type, a promise for an async loader.
type Exact<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const mc = new MemoryCache();
const g1 = mc.getOrSet('u', () => ({ id: 1 }));
const g1ok: Exact<typeof g1, { id: number }> = true;
const g2 = mc.getOrSet('u', async () => ({ id: 1 }), { ttl: 1000, staleWhileRevalidate: 500 });
const g2ok: Exact<typeof g2, Promise<{ id: number }>> = true;
declare const tier: TieredCache;
const g3 = tier.getOrSet('n', async () => 42);
const g3ok: Exact<typeof g3, Promise<number>> = true;
const g4 = tier.scope({ tenant: 'a' }).getOrSet('n', () => [1, 2]);
const g4ok: Exact<typeof g4, Promise<number[]>> = true;
// @ts-expect-error a cache of strings takes no number
new MemoryCache<string>().getOrSet('k', () => 1);
mc.getOrSet('k', () => 1, { tags: ['a'] });
// @ts-expect-error tags are strings
mc.getOrSet('k', () => 1, { tags: [1] });
mc.set('k', 1, { ttl: 5, tags: ['a', 'b'] });
const raised: number = mc.invalidateTags(['a']);
const tagStats: { invalidations: number; invalidated: number } = mc.stats().tags;
const gso: GetOrSetOptions = { ttl: 1, tags: ['x'] };

export { g1ok, g2ok, g3ok, g4ok, gso, raised, tagStats };
export { s, peeked, removed, c, p, v, r, rp, rpeek, rdel, t };
