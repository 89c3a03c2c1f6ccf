// Classes decorated with edgecache's standard decorators, compiled by tsc
// (no experimentalDecorators) and exercised by tests/js/decorators.test.mjs.
import {
  MemoryCache,
  argsKey,
  cached,
  invalidates,
  invalidatesPattern,
  type CacheLike,
} from 'edgecache';

const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 1));

/** Finds its cache at `this.cache`. */
export class UserService {
  calls = 0;
  readonly db = new Map<number, string>([
    [1, 'ada'],
    [2, 'grace'],
  ]);

  constructor(readonly cache: MemoryCache) {}

  @cached({ prefix: 'user:', key: (id: number) => String(id), ttl: 60_000 })
  async getUser(id: number): Promise<string | undefined> {
    this.calls++;
    await tick();
    return this.db.get(id);
  }

  /** Default key (argsKey) and default prefix (the class and method names). */
  @cached()
  nameLength(id: number): number {
    this.calls++;
    return this.db.get(id)?.length ?? -1;
  }

  @invalidates({ keys: (id: number) => [`user:${id}`, `UserService.nameLength:${argsKey([id])}`] })
  async rename(id: number, name: string): Promise<void> {
    await tick();
    if (name === '') throw new Error('empty name');
    this.db.set(id, name);
  }

  @invalidates({ keys: (id: number) => [`user:${id}`] })
  renameSync(id: number, name: string): string {
    if (name === '') throw new Error('empty name');
    this.db.set(id, name);
    return name;
  }

  @invalidatesPattern('user:*')
  async importAll(rows: [number, string][]): Promise<number> {
    await tick();
    for (const [id, name] of rows) this.db.set(id, name);
    return rows.length;
  }

  @invalidatesPattern((id: number) => `user:${id}`)
  touch(id: number): void {
    void id;
  }

  @invalidatesPattern('user:*')
  async failingImport(): Promise<void> {
    await tick();
    throw new Error('import failed');
  }
}

/** No `cache` property: uses the shared default cache. */
export class Clock {
  static calls = 0;
  @cached({ prefix: 'clock:' })
  static now(zone: string): string {
    Clock.calls++;
    return `${zone}#${Clock.calls}`;
  }

  @invalidatesPattern('clock:*')
  static reset(): void {}
}

/** An explicit cache option (a function of the instance) and a key using `this`. */
export class TenantRepo {
  calls = 0;
  constructor(
    readonly tenant: string,
    readonly store: CacheLike,
  ) {}

  @cached<TenantRepo, [string]>({
    cache: (self) => self.store,
    prefix: 'doc:',
    key(id) {
      return `${this.tenant}/${id}`;
    },
    ttl: 1000,
    staleWhileRevalidate: 1000,
    now: () => TenantRepo.time,
  })
  async doc(id: string): Promise<{ id: string; version: number }> {
    this.calls++;
    await tick();
    return { id, version: this.calls };
  }

  @invalidates<TenantRepo, [string]>({
    cache: (self) => self.store,
    keys(id) {
      return [`doc:${this.tenant}/${id}`];
    },
  })
  async save(id: string): Promise<string> {
    await tick();
    return id;
  }

  static time = 0;
}

// ---- issue 8 ----

/** Two classes with a method of the same name and default options. */
export class Users {
  @cached()
  get(id: number): string {
    return `user ${id}`;
  }
}
export class Invoices {
  @cached()
  get(id: number): string {
    return `invoice ${id}`;
  }
}

/** A fresh scope view of one shared cache per call, the tenant's. */
export class ScopedRepo {
  loads = 0;
  constructor(
    readonly shared: MemoryCache,
    readonly tenant: string,
    readonly db: Map<string, string>,
    readonly gate: () => Promise<void>,
  ) {}

  @cached<ScopedRepo, [string]>({
    cache: (self) => self.shared.scope({ tenant: self.tenant }),
    prefix: 'doc:',
    key: (id) => id,
  })
  async get(id: string): Promise<string | undefined> {
    this.loads++;
    const v = this.db.get(`${this.tenant}/${id}`);
    await this.gate();
    return v;
  }

  @invalidates<ScopedRepo, [string, string]>({
    cache: (self) => self.shared.scope({ tenant: self.tenant }),
    keys: (id) => [`doc:${id}`],
  })
  async put(id: string, value: string): Promise<void> {
    this.db.set(`${this.tenant}/${id}`, value);
  }
}

/** Tags (issue 15): results tagged by an array and by a function of the arguments and `this`. */
export class TaggedCatalog {
  calls = 0;
  constructor(
    readonly cache: MemoryCache,
    readonly site: string,
  ) {}

  @cached({ prefix: 'all:', tags: ['catalog'] })
  all(): number {
    return ++this.calls;
  }

  @cached<TaggedCatalog>({ prefix: 'product:', key: (id: number) => String(id), tags(id: number) { return [`product:${id}`, this.site]; } })
  async product(id: number): Promise<string> {
    this.calls++;
    await tick();
    return `product ${id} #${this.calls}`;
  }
}
