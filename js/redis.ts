// RedisRest: a small client of the Upstash REST protocol over `fetch`, for
// hosted Upstash and for our bridge (bridge/). It runs wherever `fetch`
// does: Node, Deno, Bun, browsers, Workers.
//
// Every command travels in a `POST /pipeline`: commands issued in the same
// tick share one request (auto-pipelining), which is what makes an HTTP
// tier fast, since the HTTP round trip, not Redis, is the cost. Answers
// are decoded strictly (js/rest.ts): a malformed answer is an
// `L2_PROTOCOL` error, never a wrong value.
import { EdgeCacheError } from './errors.js';
import { decodePipeline, type Outcome, type RedisValue } from './rest.js';

export type { RedisValue } from './rest.js';

/** An argument of a command: strings and numbers travel as JSON. */
export type RedisArg = string | number;

/** Options of {@link RedisRest}. */
export interface RedisRestOptions {
  /** The REST endpoint: `https://<db>.upstash.io`, or the bridge's `http://127.0.0.1:8079`. */
  url: string;
  /** The bearer token (Upstash's REST token, or the bridge's `--token`). */
  token: string;
  /**
   * Milliseconds a request may take before it fails with `L2_TIMEOUT`.
   * @default 5000
   */
  timeout?: number;
  /**
   * How many times a request that failed to reach the server (a network
   * error, never a timeout or an HTTP answer) is retried, with exponential
   * backoff from 50 ms. Only idempotent commands are retried (reads, plain
   * SET, EXPIRE...); INCRBY and the other non-idempotent ones never are.
   * @default 2
   */
  retries?: number;
  /**
   * The `fetch` to use.
   * @default globalThis.fetch
   */
  fetch?: typeof fetch;
  /**
   * Send the commands issued in the same tick as one `/pipeline` request.
   * @default true
   */
  autoPipeline?: boolean;
  /**
   * The most commands in one request; more are split.
   * @default 1000
   */
  maxPipeline?: number;
  /**
   * Keep the `upstash-sync-token` of the last answer and send it back, so
   * that a read after a write sees it even on a read replica.
   * @default true
   */
  readYourWrites?: boolean;
}

/** Options of {@link RedisRest.set}. */
export interface RedisSetOptions {
  /** Expire after this many milliseconds (`PX`). */
  px?: number;
  /** Expire after this many seconds (`EX`). */
  ex?: number;
  /** Only set a key that does not exist (`NX`). */
  nx?: boolean;
}

/** The environment `RedisRest.fromEnv` reads. */
export type RedisEnv = Record<string, unknown>;

const KNOWN = new Set(['url', 'token', 'timeout', 'retries', 'fetch', 'autoPipeline', 'maxPipeline', 'readYourWrites']);

/**
 * @internal The commands a request may be sent again with after it was
 * lost on the network, when it may or may not have run. The rule: a
 * second run gives the same reply as the first AND leaves the same state,
 * so the caller cannot tell one run from two. Reads qualify. Writes
 * qualify only if their reply does not depend on the state they change:
 * MSET, SETEX and PSETEX answer OK and write the same again (SET: see
 * `retrySafe`). Left out, because a second run answers otherwise:
 * - PERSIST: 1 when it removed the TTL, then 0;
 * - EXPIREAT, PEXPIREAT: 1 while the key exists, but a time in the past
 *   deletes the key, so the second run answers 0 (and NX, GT, LT compare
 *   with the TTL the first run set); only Redis's clock can tell a past
 *   time, so none of them is retried;
 * - counts of what changed: DEL, UNLINK, INCRBY, HSET, SADD, EXPIRE NX...
 * `tests/js/rest-hardening.test.mjs` runs each of these twice against a
 * real Redis and compares the replies and the state.
 */
export const RETRY_SAFE: ReadonlySet<string> = new Set([
  'GET', 'MGET', 'EXISTS', 'PTTL', 'TTL', 'TYPE', 'STRLEN', 'GETRANGE', 'SCAN', 'PING', 'ECHO', 'DBSIZE',
  'HGET', 'HMGET', 'HGETALL', 'HKEYS', 'HVALS', 'HLEN', 'HEXISTS', 'HSCAN', 'LRANGE', 'LLEN', 'LINDEX',
  'SMEMBERS', 'SISMEMBER', 'SCARD', 'SSCAN', 'ZRANGE', 'ZSCORE', 'ZCARD', 'ZRANK', 'ZSCAN', 'KEYS',
  'MSET', 'PSETEX', 'SETEX',
]);

/**
 * @internal Whether `args` may be sent again after a network failure
 * ({@link RETRY_SAFE}). SET qualifies with the options that only say how
 * long the value lives (EX, PX, EXAT, PXAT, KEEPTTL), not with those that
 * make its reply or its effect depend on the state (NX, XX, GET, IFEQ...).
 */
export function retrySafe(args: readonly RedisArg[]): boolean {
  const name = String(args[0]).toUpperCase();
  if (RETRY_SAFE.has(name)) return true;
  if (name !== 'SET') return false;
  for (let i = 3; i < args.length; i++) {
    const a = String(args[i]).toUpperCase();
    if (a === 'EX' || a === 'PX' || a === 'EXAT' || a === 'PXAT') i++;
    else if (a !== 'KEEPTTL') return false;
  }
  return true;
}

interface Pending {
  args: RedisArg[];
  resolve: (v: RedisValue) => void;
  reject: (e: unknown) => void;
}

function checkArgs(args: unknown): asserts args is RedisArg[] {
  if (!Array.isArray(args) || args.length === 0) {
    throw new EdgeCacheError('INVALID_OPTION', 'a command is a non-empty array, such as ["GET", "key"]');
  }
  for (const a of args) {
    if (typeof a === 'string') continue;
    if (typeof a === 'number' && Number.isFinite(a)) continue;
    throw new EdgeCacheError('INVALID_OPTION', `command arguments are strings or finite numbers, got ${typeof a === 'number' ? a : typeof a}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A client of the Upstash REST protocol: hosted Upstash, or the
 * self-hostable `edgecache-bridge` in front of any Redis.
 *
 * @example
 * ```ts
 * const redis = new RedisRest({ url: 'http://127.0.0.1:8079', token: process.env.EDGECACHE_REDIS_TOKEN! });
 * await redis.set('greeting', 'hello', { px: 60_000 });
 * await redis.get('greeting');                 // 'hello'
 * await redis.command(['HSET', 'h', 'f', 1]);   // any command
 * ```
 */
export class RedisRest {
  readonly #url: string;
  readonly #auth: string;
  readonly #timeout: number;
  readonly #retries: number;
  readonly #fetch: typeof fetch;
  readonly #auto: boolean;
  readonly #max: number;
  readonly #ryw: boolean;
  #syncToken: string | undefined;
  #queue: Pending[] = [];
  #scheduled = false;

  constructor(options: RedisRestOptions) {
    if (options === null || typeof options !== 'object') {
      throw new EdgeCacheError('INVALID_OPTION', 'RedisRest needs { url, token }');
    }
    for (const k of Object.keys(options)) {
      if (!KNOWN.has(k)) throw new EdgeCacheError('INVALID_OPTION', `unknown option \`${k}\` of RedisRest`);
    }
    const { url, token } = options;
    if (typeof url !== 'string' || !/^https?:\/\/[^/]/.test(url)) {
      throw new EdgeCacheError('INVALID_OPTION', `invalid option \`url\`: an http(s) URL such as https://<db>.upstash.io, got ${JSON.stringify(url)}`);
    }
    if (typeof token !== 'string' || token === '') {
      throw new EdgeCacheError('INVALID_OPTION', 'invalid option `token`: the REST token, a non-empty string');
    }
    this.#url = url.replace(/\/+$/, '');
    this.#auth = `Bearer ${token}`;
    this.#timeout = positive(options.timeout, 'timeout', 5000);
    this.#retries = count(options.retries, 'retries', 2);
    this.#max = positive(options.maxPipeline, 'maxPipeline', 1000);
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (typeof f !== 'function') throw new EdgeCacheError('INVALID_OPTION', 'no fetch on this platform: pass `fetch`');
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#auto = bool(options.autoPipeline, 'autoPipeline', true);
    this.#ryw = bool(options.readYourWrites, 'readYourWrites', true);
  }

  /**
   * A client from the environment: `EDGECACHE_REDIS_URL` and
   * `EDGECACHE_REDIS_TOKEN`, or else `UPSTASH_REDIS_REST_URL` and
   * `UPSTASH_REDIS_REST_TOKEN`. `env` defaults to `process.env` where there
   * is one (in a Worker, pass the `env` of the fetch handler).
   *
   * @throws {EdgeCacheError} `INVALID_OPTION`, naming the variable to set.
   */
  static fromEnv(env?: object, options?: Omit<RedisRestOptions, 'url' | 'token'>): RedisRest {
    const e = (env ?? (globalThis as { process?: { env?: RedisEnv } }).process?.env ?? {}) as RedisEnv;
    const pick = (a: string, b: string) => (typeof e[a] === 'string' && e[a] !== '' ? (e[a] as string) : typeof e[b] === 'string' && e[b] !== '' ? (e[b] as string) : undefined);
    const url = pick('EDGECACHE_REDIS_URL', 'UPSTASH_REDIS_REST_URL');
    const token = pick('EDGECACHE_REDIS_TOKEN', 'UPSTASH_REDIS_REST_TOKEN');
    if (url === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', 'EDGECACHE_REDIS_URL is not set (nor UPSTASH_REDIS_REST_URL): set it to the bridge or Upstash REST URL (an environment variable; in a Worker, [vars] in wrangler.toml)');
    }
    if (token === undefined) {
      throw new EdgeCacheError('INVALID_OPTION', 'EDGECACHE_REDIS_TOKEN is not set (nor UPSTASH_REDIS_REST_TOKEN): set it (an environment variable; in a Worker, a secret: `wrangler secret put EDGECACHE_REDIS_TOKEN`)');
    }
    return new RedisRest({ ...options, url, token });
  }

  /** Sends any command; resolves to its decoded reply. */
  command(args: RedisArg[]): Promise<RedisValue> {
    try {
      checkArgs(args);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.#auto) return this.#send([args]).then((r) => unwrap(r[0]!));
    return new Promise((resolve, reject) => {
      this.#queue.push({ args, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * Sends several commands in one request, in order, and resolves to one
   * outcome per command: `{ ok: true, value }` or `{ ok: false, error }`
   * for a command Redis refused. A failure of the whole request rejects.
   */
  pipeline(commands: RedisArg[][]): Promise<Outcome[]> {
    try {
      if (!Array.isArray(commands)) throw new EdgeCacheError('INVALID_OPTION', 'pipeline takes an array of commands');
      for (const c of commands) checkArgs(c);
    } catch (e) {
      return Promise.reject(e);
    }
    if (commands.length === 0) return Promise.resolve([]);
    return this.#send(commands);
  }

  /**
   * Runs the commands as one transaction (`MULTI`/`EXEC`): all or none.
   * Resolves to one outcome per command.
   */
  async multi(commands: RedisArg[][]): Promise<Outcome[]> {
    if (!Array.isArray(commands)) throw new EdgeCacheError('INVALID_OPTION', 'multi takes an array of commands');
    for (const c of commands) checkArgs(c);
    if (commands.length === 0) return [];
    // Base64, as every pipeline asks: the answer is decoded as base64.
    const { status, text } = await this.#request('/multi-exec', commands, true);
    return decodePipeline(status, text, commands.length, true);
  }

  // ---- typed helpers ----

  /** `GET`: the string, or `null`. */
  async get(key: string): Promise<string | null> {
    return str(await this.command(['GET', key]), 'GET');
  }

  /** `MGET`: one string or `null` per key. */
  async mget(keys: readonly string[]): Promise<(string | null)[]> {
    if (keys.length === 0) return [];
    const r = await this.command(['MGET', ...keys]);
    if (!Array.isArray(r) || r.length !== keys.length) throw badType('MGET');
    return r.map((v) => str(v, 'MGET'));
  }

  /** `SET` with optional `PX`/`EX`/`NX`: true if set (false when `nx` found the key). */
  async set(key: string, value: string, options?: RedisSetOptions): Promise<boolean> {
    const args: RedisArg[] = ['SET', key, value];
    if (options?.px !== undefined) args.push('PX', options.px);
    if (options?.ex !== undefined) args.push('EX', options.ex);
    if (options?.nx) args.push('NX');
    const r = await this.command(args);
    if (r === 'OK') return true;
    if (r === null) return false;
    throw badType('SET');
  }

  /** `DEL`: how many keys were removed. */
  async del(...keys: string[]): Promise<number> {
    return keys.length === 0 ? 0 : int(await this.command(['DEL', ...keys]), 'DEL');
  }

  /** `UNLINK` (a `DEL` that frees memory in the background): how many keys were removed. */
  async unlink(...keys: string[]): Promise<number> {
    return keys.length === 0 ? 0 : int(await this.command(['UNLINK', ...keys]), 'UNLINK');
  }

  /** `INCRBY`: the new value. Never retried. */
  async incrby(key: string, by: number): Promise<number> {
    return int(await this.command(['INCRBY', key, by]), 'INCRBY');
  }

  /** `PTTL`: ms left, `-1` without expiry, `-2` if absent. */
  async pttl(key: string): Promise<number> {
    return int(await this.command(['PTTL', key]), 'PTTL');
  }

  /** `SCAN cursor [MATCH pattern] [COUNT count]`: the next cursor and a batch of keys. */
  async scan(cursor: string, options?: { match?: string; count?: number }): Promise<[string, string[]]> {
    const args: RedisArg[] = ['SCAN', cursor];
    if (options?.match !== undefined) args.push('MATCH', options.match);
    if (options?.count !== undefined) args.push('COUNT', options.count);
    const r = await this.command(args);
    if (!Array.isArray(r) || r.length !== 2 || typeof r[0] !== 'string' || !Array.isArray(r[1])) throw badType('SCAN');
    const keys = r[1].map((k) => {
      if (typeof k !== 'string') throw badType('SCAN');
      return k;
    });
    return [r[0], keys];
  }

  /** `PING`. */
  async ping(): Promise<string> {
    const r = await this.command(['PING']);
    if (typeof r !== 'string') throw badType('PING');
    return r;
  }

  // ---- transport ----

  /** Sends what the queue holds, in requests of at most `maxPipeline` commands. */
  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (let i = 0; i < queue.length; i += this.#max) {
      const batch = queue.slice(i, i + this.#max);
      this.#send(batch.map((p) => p.args)).then(
        (outcomes) => {
          for (let j = 0; j < batch.length; j++) {
            const o = outcomes[j]!;
            if (o.ok) batch[j]!.resolve(o.value);
            else batch[j]!.reject(redisError(o.error));
          }
        },
        (e) => {
          for (const p of batch) p.reject(e);
        },
      );
    }
  }

  /**
   * One `/pipeline` request, retried after network failures when every
   * command in it may run twice ({@link retrySafe}).
   */
  async #send(commands: RedisArg[][]): Promise<Outcome[]> {
    const retry = this.#retries > 0 && commands.every(retrySafe);
    for (let attempt = 0; ; attempt++) {
      try {
        const { status, text } = await this.#request('/pipeline', commands, true);
        return decodePipeline(status, text, commands.length, true);
      } catch (e) {
        const network = e instanceof EdgeCacheError && e.code === 'L2_HTTP' && (e as { status?: number }).status === 0;
        if (!network || !retry || attempt >= this.#retries) throw e;
        await sleep(50 * 2 ** attempt);
      }
    }
  }

  async #request(path: string, body: unknown, base64: boolean): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { authorization: this.#auth, 'content-type': 'application/json' };
    if (base64) headers['upstash-encoding'] = 'base64';
    if (this.#ryw && this.#syncToken !== undefined) headers['upstash-sync-token'] = this.#syncToken;
    const ctl = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      ctl.abort();
    }, this.#timeout);
    try {
      let res: Response;
      try {
        res = await this.#fetch(this.#url + path, { method: 'POST', headers, body: JSON.stringify(body), signal: ctl.signal });
      } catch (e) {
        throw timedOut ? timeoutError(this.#timeout) : networkError(e);
      }
      let text: string;
      try {
        text = await res.text();
      } catch (e) {
        throw timedOut ? timeoutError(this.#timeout) : networkError(e);
      }
      if (this.#ryw) {
        const t = res.headers.get('upstash-sync-token');
        if (t) this.#syncToken = t;
      }
      return { status: res.status, text };
    } finally {
      clearTimeout(timer);
    }
  }
}

function timeoutError(ms: number): EdgeCacheError {
  return new EdgeCacheError('L2_TIMEOUT', `redis tier did not answer within ${ms} ms (option \`timeout\`)`);
}

function networkError(cause: unknown): EdgeCacheError {
  const e = new EdgeCacheError('L2_HTTP', `redis tier could not be reached: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  (e as EdgeCacheError & { status?: number }).status = 0;
  return e;
}

function redisError(msg: string): EdgeCacheError {
  return new EdgeCacheError('L2_REDIS', `redis error: ${msg}`);
}

function unwrap(o: Outcome): RedisValue {
  if (o.ok) return o.value;
  throw redisError(o.error);
}

function badType(cmd: string): EdgeCacheError {
  return new EdgeCacheError('L2_PROTOCOL', `malformed answer from the redis tier: ${cmd} answered a result of the wrong type`);
}

function str(v: RedisValue, cmd: string): string | null {
  if (v === null || typeof v === 'string') return v;
  if (v instanceof Uint8Array) throw new EdgeCacheError('L2_PROTOCOL', `${cmd} found a value that is not UTF-8 text: read its bytes with command(['${cmd}', ...]), which returns a Uint8Array`);
  throw badType(cmd);
}

function int(v: RedisValue, cmd: string): number {
  if (typeof v === 'number') return v;
  throw badType(cmd);
}

function positive(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new EdgeCacheError('INVALID_OPTION', `invalid option \`${name}\`: an integer >= 1, got ${String(v)}`);
  }
  return v;
}

function count(v: unknown, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 10) {
    throw new EdgeCacheError('INVALID_OPTION', `invalid option \`${name}\`: an integer from 0 to 10, got ${String(v)}`);
  }
  return v;
}

function bool(v: unknown, name: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw new EdgeCacheError('INVALID_OPTION', `invalid option \`${name}\`: true or false`);
  return v;
}

export type { Outcome };
