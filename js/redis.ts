// RedisRest: a small client of the Upstash REST protocol over `fetch`, for
// hosted Upstash and for our bridge (bridge/). It runs wherever `fetch`
// does: Node, Deno, Bun, browsers, Workers.
//
// Every command travels in a `POST /pipeline`: commands issued in the same
// tick share one request (auto-pipelining), which is what makes an HTTP
// tier fast, since the HTTP round trip, not Redis, is the cost. Answers
// are decoded strictly (js/rest.ts): a malformed answer is an
// `L2_PROTOCOL` error, never a wrong value.
//
// Sharing a request must not make callers share a fate. Each command is
// checked before it is queued (a lone surrogate, which has no UTF-8 form,
// never leaves); requests are bounded by count and by bytes, so that no
// server refuses a body for being the sum of several callers' commands;
// each caller gets its own command's outcome; and a request refused as a
// whole (400, 403, 413: the server ran none of it) is split and sent again
// until the refusal reaches only the caller whose command caused it.
import { EdgeCacheError } from './errors.js';
import { decodePipeline, encodeCommand, type Encoded, type Outcome, type RedisValue } from './rest.js';
import { wellFormed } from './text.js';

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
   * The most commands in one request; more are split (keep it at or under
   * the bridge's `--max-pipeline`, 10000 by default).
   * @default 1000
   */
  maxPipeline?: number;
  /**
   * The most bytes of commands (the JSON body) in one request; more are
   * split. A single command larger than this travels alone, and only the
   * server decides whether it fits (a 413 then fails that command only).
   * Keep it under the server's limit: the bridge's `--max-body` (10 MiB by
   * default), Upstash's max request size (10 MB).
   * @default 1048576 (1 MiB)
   */
  maxRequestBytes?: number;
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

const KNOWN = new Set(['url', 'token', 'timeout', 'retries', 'fetch', 'autoPipeline', 'maxPipeline', 'maxRequestBytes', 'readYourWrites']);

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

/** A checked command, encoded for a request body. */
interface Cmd {
  readonly args: RedisArg[];
  /** Its JSON and that JSON's UTF-8 size, once {@link encoded} needed them. */
  json?: string;
  bytes?: number;
}

/** An auto-pipelined command and its caller. */
interface Pending extends Cmd {
  readonly resolve: (v: RedisValue) => void;
  readonly reject: (e: unknown) => void;
  /** A `pipeline()` call's commands, queued together: never cut apart. */
  readonly group?: Group;
  /** Its place in the group. */
  readonly at?: number;
}

/** The outcomes of a `pipeline()` call that joined the queue. */
interface Group {
  readonly outs: Outcome[];
  left: number;
  settled: boolean;
  readonly resolve: (o: Outcome[]) => void;
  readonly reject: (e: unknown) => void;
}

/** Settles a queued command with its outcome: its caller's, or its group's part. */
function settle(p: Pending, o: Outcome): void {
  const g = p.group;
  if (g === undefined) {
    if (o.ok) p.resolve(o.value);
    else p.reject(redisError(o.error));
    return;
  }
  g.outs[p.at!] = o;
  if (--g.left === 0 && !g.settled) {
    g.settled = true;
    g.resolve(g.outs);
  }
}

/** Fails a queued command's caller (its whole group, once). */
function fail(p: Pending, e: unknown): void {
  const g = p.group;
  if (g === undefined) return p.reject(e);
  if (g.settled) return;
  g.settled = true;
  g.reject(e);
}

/** Whether `batch[i]` begins a caller's part (not the middle of a group). */
function startsPart(batch: readonly Pending[], i: number): boolean {
  return i === 0 || batch[i]!.group === undefined || batch[i]!.group !== batch[i - 1]!.group;
}

/**
 * Statuses of a request refused as a whole before any of it ran: a command
 * denied (403), a body the server could not take (400: not JSON it
 * accepts, more commands than its limit; 413: too many bytes).
 */
const REFUSED_WHOLE = new Set([400, 403, 413]);

function checkArgs(args: unknown): asserts args is RedisArg[] {
  if (!Array.isArray(args) || args.length === 0) {
    throw new EdgeCacheError('INVALID_OPTION', 'a command is a non-empty array, such as ["GET", "key"]');
  }
  for (let i = 0; i < args.length; i++) {
    const a: unknown = args[i];
    if (typeof a === 'string') {
      if (wellFormed(a)) continue;
      const name = i > 0 && typeof args[0] === 'string' && wellFormed(args[0]) ? ` of ${args[0].slice(0, 32)}` : '';
      throw new EdgeCacheError('INVALID_OPTION', `command argument ${i}${name} is not well-formed Unicode: it holds a lone surrogate, which has no UTF-8 form (the command was not sent)`);
    }
    if (typeof a === 'number' && Number.isFinite(a)) continue;
    throw new EdgeCacheError('INVALID_OPTION', `command arguments are strings or finite numbers, got ${typeof a === 'number' ? a : typeof a}`);
  }
}

/** Checks a command (throws before anything is queued). */
function prepare(args: unknown): Cmd {
  checkArgs(args);
  return { args };
}

/** `c` with its JSON and UTF-8 size, encoded once (only to split exactly). */
function encoded(c: Cmd): Encoded {
  if (c.json === undefined) {
    const e = encodeCommand(c.args);
    c.json = e.json;
    c.bytes = e.bytes;
  }
  return c as Cmd & Encoded;
}

/**
 * An upper bound of the UTF-8 size of {@link body}, without encoding: a
 * string's UTF-16 unit takes at most 6 bytes of JSON (`\u001f`), a finite
 * number at most 24 characters. Most batches are far under
 * `maxRequestBytes` by this bound, and go out with one `JSON.stringify`.
 */
function boundBytes(cmds: readonly Cmd[]): number {
  let n = 2;
  for (const c of cmds) {
    n += 3;
    for (const a of c.args) n += typeof a === 'string' ? 6 * a.length + 3 : 25;
  }
  return n;
}

function prepareAll(commands: unknown, method: string): Cmd[] {
  if (!Array.isArray(commands)) throw new EdgeCacheError('INVALID_OPTION', `${method} takes an array of commands`);
  return commands.map(prepare);
}

/** `[c1,c2,...]`: the body of a `/pipeline` or `/multi-exec` request. */
function body(cmds: readonly Cmd[]): string {
  return JSON.stringify(cmds.map((c) => c.args));
}

/** The exact UTF-8 size of {@link body}: the commands, their commas and the brackets. */
function bodyBytes(cmds: readonly Cmd[]): number {
  let n = 1 + cmds.length;
  for (const c of cmds) n += encoded(c).bytes;
  return n;
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
  readonly #maxBytes: number;
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
    this.#maxBytes = positive(options.maxRequestBytes, 'maxRequestBytes', 1 << 20);
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

  /**
   * Sends any command; resolves to its decoded reply.
   * @throws {EdgeCacheError} `INVALID_OPTION` for an argument that is not a
   * string or a finite number, or a string with a lone surrogate (never sent).
   */
  command(args: RedisArg[]): Promise<RedisValue> {
    try {
      checkArgs(args);
    } catch (e) {
      return Promise.reject(e);
    }
    if (!this.#auto) return this.#exchange([{ args }]).then((r) => unwrap(r[0]!));
    return new Promise((resolve, reject) => {
      this.#queue.push({ args, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#flush());
      }
    });
  }

  /**
   * Sends several commands, in order, and resolves to one outcome per
   * command: `{ ok: true, value }` or `{ ok: false, error }` for a command
   * Redis refused. They travel in one request, or, past `maxPipeline`
   * commands or `maxRequestBytes`, in several sent one after the other (each
   * once the one before has answered), so they still run in order. A
   * failure of a whole request rejects (the requests before it have run).
   */
  async pipeline(commands: RedisArg[][]): Promise<Outcome[]> {
    const cmds = prepareAll(commands, 'pipeline');
    // Within one request's bounds, it joins the queue (autoPipeline) as a
    // group that is never cut apart: concurrent pipelines (each mutation of
    // the Redis tier with its log append is one) share requests as single
    // commands do, and still run in order.
    if (this.#auto && cmds.length > 0 && cmds.length <= this.#max) {
      let bytes = 1;
      for (const c of cmds) bytes += encoded(c).bytes + 1;
      if (bytes <= this.#maxBytes) {
        return new Promise((resolve, reject) => {
          const group: Group = { outs: new Array<Outcome>(cmds.length), left: cmds.length, settled: false, resolve, reject };
          cmds.forEach((c, at) => this.#queue.push({ ...c, resolve: () => {}, reject: () => {}, group, at }));
          if (!this.#scheduled) {
            this.#scheduled = true;
            queueMicrotask(() => this.#flush());
          }
        });
      }
    }
    const out: Outcome[] = [];
    for (const part of this.#split(cmds)) {
      for (const o of await this.#exchange(part)) out.push(o);
    }
    return out;
  }

  /**
   * Runs the commands as one transaction (`MULTI`/`EXEC`): all or none.
   * Resolves to one outcome per command. A transaction is one request
   * whatever its size (it cannot be split); a server may refuse it as too
   * large (413) or as too many commands (400).
   */
  async multi(commands: RedisArg[][]): Promise<Outcome[]> {
    const cmds = prepareAll(commands, 'multi');
    if (cmds.length === 0) return [];
    const { status, text } = await this.#request('/multi-exec', body(cmds));
    return decodePipeline(status, text, cmds.length, true);
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

  // ---- subscriptions (server-sent events) ----

  /**
   * `SUBSCRIBE` over server-sent events (`POST /subscribe/<channel>`, as
   * the bridge and Upstash serve it): `onMessage` gets each message
   * published on `channels` until the subscription is closed (`close()`,
   * or `signal`) or the stream ends. Needs a `fetch` that streams bodies
   * (Node, browsers, Deno, Bun; a Worker only while a request lasts).
   *
   * ```ts
   * const sub = redis.subscribe('invalidations', (m) => drop(m.message));
   * await sub.ready;        // Redis confirmed: later messages arrive
   * sub.close();
   * ```
   *
   * @throws {EdgeCacheError} `INVALID_OPTION` for no channel, a name that
   * is not a string or holds a lone surrogate, or no `onMessage`.
   */
  subscribe(channels: string | readonly string[], onMessage: (m: RedisMessage) => void, options?: RedisSubscribeOptions): RedisSubscription {
    return this.#stream(false, channels, onMessage, options);
  }

  /** `PSUBSCRIBE`, as {@link RedisRest.subscribe}: each message says the `pattern` it matched. */
  psubscribe(patterns: string | readonly string[], onMessage: (m: RedisMessage) => void, options?: RedisSubscribeOptions): RedisSubscription {
    return this.#stream(true, patterns, onMessage, options);
  }

  #stream(patterns: boolean, names: string | readonly string[], onMessage: (m: RedisMessage) => void, options?: RedisSubscribeOptions): RedisSubscription {
    const kind = patterns ? 'psubscribe' : 'subscribe';
    const list: string[] = typeof names === 'string' ? [names] : Array.isArray(names) ? [...(names as string[])] : [];
    if (list.length === 0 || !list.every((n) => typeof n === 'string' && wellFormed(n))) {
      throw new EdgeCacheError('INVALID_OPTION', `${kind} takes a name or a non-empty array of names (strings without lone surrogates)`);
    }
    if (typeof onMessage !== 'function') throw new EdgeCacheError('INVALID_OPTION', `${kind} needs an onMessage function`);
    const ctl = new AbortController();
    let closing = false;
    const close = (): void => {
      closing = true;
      ctl.abort();
    };
    const signal = options?.signal;
    if (signal?.aborted) close();
    else signal?.addEventListener('abort', close, { once: true });
    let confirm!: () => void;
    let refuse!: (e: unknown) => void;
    const ready = new Promise<void>((res, rej) => {
      confirm = res;
      refuse = rej;
    });
    // Longest first: a name that is a prefix of another (with a comma
    // after it) must not take the other's messages.
    const byLength = [...list].sort((a, b) => b.length - a.length);
    let confirmed = 0;
    const dispatch = (payload: string): void => {
      const comma = payload.indexOf(',');
      const type = payload.slice(0, comma);
      const rest = payload.slice(comma + 1);
      if (type === kind) {
        if (++confirmed === list.length) confirm();
        return;
      }
      if (type !== (patterns ? 'pmessage' : 'message')) return; // (p)unsubscribe: the server is ending the stream
      // The first name is ours (a known name, which may hold commas);
      // a pattern's channel is cut at its first comma, as Upstash's client does.
      const name = byLength.find((n) => rest.startsWith(`${n},`)) ?? rest.slice(0, Math.max(0, rest.indexOf(',')));
      const after = rest.slice(name.length + 1);
      if (!patterns) return onMessage({ channel: name, message: after });
      const c = after.indexOf(',');
      onMessage({ pattern: name, channel: after.slice(0, c), message: after.slice(c + 1) });
    };
    const run = async (): Promise<void> => {
      const path = `/${kind}/${list.map(encodeURIComponent).join('/')}`;
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ctl.abort();
      }, this.#timeout);
      let res: Response;
      try {
        res = await this.#fetch(this.#url + path, { method: 'POST', headers: { authorization: this.#auth, accept: 'text/event-stream' }, body: '[]', signal: ctl.signal });
      } catch (e) {
        if (closing) return;
        throw timedOut ? timeoutError(this.#timeout) : networkError(e);
      } finally {
        clearTimeout(timer);
      }
      if (!res.ok || !res.body) throw await streamRefused(res, kind);
      if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        throw new EdgeCacheError('L2_PROTOCOL', `malformed answer from the redis tier: ${kind} did not answer with text/event-stream`);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      let data: string[] | null = null;
      try {
        for (;;) {
          let chunk: ReadableStreamReadResult<Uint8Array>;
          try {
            chunk = await reader.read();
          } catch (e) {
            if (closing) return;
            throw networkError(e);
          }
          if (chunk.done) return;
          buf += decoder.decode(chunk.value, { stream: true });
          // Lines end at CRLF, CR or LF (a CR last may be half a CRLF).
          for (let i = buf.search(/[\r\n]/); i >= 0 && !(buf[i] === '\r' && i === buf.length - 1); i = buf.search(/[\r\n]/)) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + (buf[i] === '\r' && buf[i + 1] === '\n' ? 2 : 1));
            if (line === '') {
              if (data !== null) dispatch(data.join('\n'));
              data = null;
            } else if (line.startsWith('data:')) {
              const v = line.slice(5);
              (data ??= []).push(v.startsWith(' ') ? v.slice(1) : v);
            } // comments (`: ping`) and other fields: nothing to do
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    };
    const closed = run().finally(() => {
      signal?.removeEventListener('abort', close);
      ctl.abort();
    });
    closed.then(() => refuse(new EdgeCacheError('L2_HTTP', `the ${kind} stream ended before the redis tier confirmed it`)), refuse);
    // Settled whether or not anyone waits for them: never an unhandled rejection.
    ready.catch(() => {});
    closed.catch(() => {});
    return { ready, closed, close };
  }

  // ---- transport ----

  /**
   * Cuts `cmds` into runs that fit one request: at most `maxPipeline`
   * commands and `maxRequestBytes` bytes; a command larger than that on its
   * own is a run of its own. Order is kept.
   */
  #split<T extends Cmd & { group?: Group }>(cmds: readonly T[]): T[][] {
    if (cmds.length <= this.#max && boundBytes(cmds) <= this.#maxBytes) return [cmds as T[]];
    const out: T[][] = [];
    let run: T[] = [];
    let bytes = 1;
    // Where the group of the last command in `run` begins (a group is cut
    // before, never inside: it fits one request on its own, see pipeline()).
    let start = 0;
    for (const c of cmds) {
      const size = encoded(c).bytes;
      const inGroup = run.length > 0 && c.group !== undefined && c.group === run[run.length - 1]!.group;
      if (!inGroup) start = run.length;
      if (run.length > 0 && (run.length >= this.#max || bytes + 1 + size > this.#maxBytes)) {
        const moved = inGroup ? run.splice(start) : [];
        if (run.length > 0) out.push(run);
        run = moved;
        bytes = 1;
        for (const m of moved) bytes += encoded(m).bytes + 1;
        start = 0;
      }
      run.push(c);
      bytes += size + 1;
    }
    if (run.length > 0) out.push(run);
    return out;
  }

  /** Sends what the queue holds, in requests within the bounds (`#split`), at once. */
  #flush(): void {
    this.#scheduled = false;
    const queue = this.#queue;
    this.#queue = [];
    for (const batch of this.#split(queue)) this.#deliver(batch);
  }

  /**
   * Sends one request of queued commands, each its own caller's, and
   * settles each caller with its own command's outcome.
   *
   * A request refused as a whole (400, 403, 413) was not run, and says
   * nothing about which command caused it: an older bridge answers a
   * pipeline with one denied command 403, and any server refuses a body
   * over its limit. It is cut in two halves, each sent again, down to
   * single commands, so that the refusal reaches only the callers whose
   * commands cause it and every other caller gets its answer: one refused
   * command among n costs about 2·log2(n) more requests (all of them
   * refused, 2n − 1), on this error path only. Upstash's own client fails
   * every caller of the request instead. A server that answers a denied
   * command in its own entry (`NOPERM ...`) needs no split: `redisError`
   * makes that entry `L2_AUTH` for its caller alone.
   */
  #deliver(batch: Pending[]): void {
    this.#post(batch).then(
      ({ status, text }) => {
        if (batch.length > 1 && REFUSED_WHOLE.has(status)) {
          // Halves cut between callers' parts (a pipeline's group stays whole).
          let half = -1;
          for (let d = 0; d <= batch.length >> 1 && half < 0; d++) {
            for (const i of [(batch.length >> 1) - d, (batch.length >> 1) + d]) {
              if (half < 0 && i > 0 && i < batch.length && startsPart(batch, i)) half = i;
            }
          }
          if (half > 0) {
            this.#deliver(batch.slice(0, half));
            this.#deliver(batch.slice(half));
            return;
          }
        }
        let outcomes: Outcome[];
        try {
          outcomes = this.#decode(status, text, batch);
        } catch (e) {
          for (const p of batch) fail(p, e);
          return;
        }
        for (let j = 0; j < batch.length; j++) settle(batch[j]!, outcomes[j]!);
      },
      (e) => {
        for (const p of batch) fail(p, e);
      },
    );
  }

  /** One `/pipeline` request of `cmds`: an outcome per command; a whole-request failure throws. */
  async #exchange(cmds: readonly Cmd[]): Promise<Outcome[]> {
    const { status, text } = await this.#post(cmds);
    return this.#decode(status, text, cmds);
  }

  #decode(status: number, text: string, cmds: readonly Cmd[]): Outcome[] {
    if (status === 413) throw tooLarge(text, bodyBytes(cmds), this.#maxBytes);
    return decodePipeline(status, text, cmds.length, true);
  }

  /**
   * One `POST /pipeline`, sent again after a network failure when every
   * command in it may run twice ({@link retrySafe}).
   */
  async #post(cmds: readonly Cmd[]): Promise<{ status: number; text: string }> {
    const retry = this.#retries > 0 && cmds.every((c) => retrySafe(c.args));
    const text = body(cmds);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#request('/pipeline', text);
      } catch (e) {
        const network = e instanceof EdgeCacheError && e.code === 'L2_HTTP' && (e as { status?: number }).status === 0;
        if (!network || !retry || attempt >= this.#retries) throw e;
        await sleep(50 * 2 ** attempt);
      }
    }
  }

  /** A POST of `body` (JSON), asking for base64 results so that any bytes survive. */
  async #request(path: string, body: string): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { authorization: this.#auth, 'content-type': 'application/json', 'upstash-encoding': 'base64' };
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
        res = await this.#fetch(this.#url + path, { method: 'POST', headers, body, signal: ctl.signal });
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

/**
 * The error of one command Redis refused. `NOPERM` (an ACL, the bridge's
 * deny list, a read-only token) is `L2_AUTH`, as a 403 for the whole
 * request is: the same refusal, whether the server answers it per command
 * or for the request.
 */
function redisError(msg: string): EdgeCacheError {
  if (msg.startsWith('NOPERM')) return new EdgeCacheError('L2_AUTH', `redis tier refused the command: ${msg}`);
  return new EdgeCacheError('L2_REDIS', `redis error: ${msg}`);
}

/** A 413: the server's body limit, under the request's size. */
function tooLarge(text: string, bytes: number, max: number): EdgeCacheError {
  let msg: unknown;
  try {
    msg = (JSON.parse(text) as { error?: unknown } | null)?.error;
  } catch {
    // not JSON: no message
  }
  const e = new EdgeCacheError(
    'L2_HTTP',
    `redis tier refused a request of ${bytes} bytes as too large (HTTP 413${typeof msg === 'string' ? `: ${msg}` : ''}); requests are split at \`maxRequestBytes\` (${max}) and a larger command goes alone: keep the option under the server's limit, or store less under one command`,
  );
  (e as EdgeCacheError & { status?: number }).status = 413;
  return e;
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

// ---- subscriptions (server-sent events) ----

/** A message of a {@link RedisRest.subscribe} or {@link RedisRest.psubscribe} stream. */
export interface RedisMessage {
  /** The channel it was published on. */
  channel: string;
  /** The message as published (text; each line break arrives as `\n`). */
  message: string;
  /** The pattern it matched (`psubscribe` only). */
  pattern?: string;
}

/** Options of {@link RedisRest.subscribe}. */
export interface RedisSubscribeOptions {
  /** An `AbortSignal`: aborting it closes the subscription, as `close()` does. */
  signal?: AbortSignalLike;
}

/** What {@link RedisSubscribeOptions.signal} reads of an `AbortSignal` (named so, the declarations need no DOM types). */
export interface AbortSignalLike {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** An open subscription ({@link RedisRest.subscribe}). */
export interface RedisSubscription {
  /** Resolves once the server confirmed every name; rejects as `closed` does if it never does. */
  readonly ready: Promise<void>;
  /**
   * Resolves when the subscription is over: `close()`, the signal, or the
   * stream's end (the server shutting down). Rejects with an
   * `EdgeCacheError` when it could not open (`L2_AUTH`, `L2_TIMEOUT`,
   * `L2_HTTP` with `status`: 503 past the bridge's `--max-streams`) or
   * broke (`L2_HTTP`), or with what `onMessage` threw. Pub/sub keeps
   * nothing: after a break, subscribe again and read what was missed
   * elsewhere.
   */
  readonly closed: Promise<void>;
  /** Ends the subscription; the server closes its Redis connection. */
  close(): void;
}

/** The error of a subscription the server did not open. */
async function streamRefused(res: Response, kind: string): Promise<EdgeCacheError> {
  let msg = '';
  try {
    const j = JSON.parse(await res.text()) as { error?: unknown } | null;
    if (typeof j?.error === 'string') msg = j.error;
  } catch {
    // not JSON: no message
  }
  const why = `redis tier refused ${kind} (HTTP ${res.status}${msg ? `: ${msg}` : ''})`;
  if (res.status === 401 || res.status === 403) return new EdgeCacheError('L2_AUTH', why);
  if (res.status === 400 && msg) return redisError(msg);
  const e = new EdgeCacheError('L2_HTTP', why);
  (e as EdgeCacheError & { status?: number }).status = res.status;
  return e;
}

export type { Outcome };
