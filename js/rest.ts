// The Upstash REST protocol's answers, decoded strictly: the same rules as
// the Rust core's src/rest.rs (which the Rust Workers binding uses), and
// both are checked against one corpus, tests/fixtures/rest.json.
//
// Why this half lives in TypeScript: the answer arrives as a JS string, and
// the engine's native JSON.parse turns it into JS values faster than a
// round trip through wasm could (copy the text in, build every result as a
// JS value from wasm), and a JSON parser in the package's wasm would cost
// about as much gzipped as the whole L1 engine. The request side is
// JSON.stringify of each command (`encodeCommand`, which measures it for
// RedisRest's request bounds); the Redis key layout, the breaker and the
// envelope do live in wasm.
import { EdgeCacheError } from './errors.js';

/** A decoded Redis reply. Strings that are not UTF-8 arrive as bytes. */
export type RedisValue = null | number | string | Uint8Array | RedisValue[];

/** One command's outcome in a pipeline: a reply or a Redis error message. */
export type Outcome = { ok: true; value: RedisValue } | { ok: false; error: string };

/** Redis nests arrays only a few levels (SCAN answers 2); a hostile server gets no further. */
const MAX_DEPTH = 32;

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$/;
const ASCII = /^[\x00-\x7f]*$/;
// ignoreBOM: a string that begins with U+FEFF keeps it. The default would
// drop it, so that GET returned another string and SCAN another key's name.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function protocol(why: string): EdgeCacheError {
  return new EdgeCacheError('L2_PROTOCOL', `malformed answer from the redis tier: ${why}`);
}

/** @internal A command as it travels in a request body: its JSON and that JSON's size in UTF-8 bytes. */
export interface Encoded {
  readonly json: string;
  readonly bytes: number;
}

/**
 * @internal Encodes a checked command (its strings well-formed: a lone
 * surrogate has no UTF-8 form). JSON.stringify leaves non-ASCII text as it
 * is, so the size counts UTF-8 bytes, not UTF-16 units.
 */
export function encodeCommand(args: readonly (string | number)[]): Encoded {
  const json = JSON.stringify(args);
  return { json, bytes: ASCII.test(json) ? json.length : utf8Length(json) };
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A pair (JSON.stringify escapes a lone surrogate): 4 bytes for both units.
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** @internal An error for a non-2xx answer (its body parsed, or undefined). */
export function statusError(status: number, body: unknown): EdgeCacheError {
  const msg =
    body !== null && typeof body === 'object' && typeof (body as { error?: unknown }).error === 'string'
      ? (body as { error: string }).error
      : undefined;
  // 401: the token. 403: this command (the bridge's deny list, a
  // read-only token), which a new token would not fix.
  if (status === 401 || status === 403) {
    return new EdgeCacheError(
      'L2_AUTH',
      status === 401
        ? `redis tier refused the token (HTTP 401${msg ? `: ${msg}` : ''}); check the url and token (EDGECACHE_REDIS_TOKEN, or the \`token\` option)`
        : `redis tier refused the command (HTTP 403${msg ? `: ${msg}` : ''})`,
    );
  }
  if (status === 400 && msg !== undefined) return new EdgeCacheError('L2_REDIS', `redis error: ${msg}`);
  const e = new EdgeCacheError('L2_HTTP', `redis tier answered HTTP ${status}${msg ? `: ${msg}` : ''}`);
  (e as EdgeCacheError & { status?: number }).status = status;
  // The bridge on a Redis Cluster: this failure is some masters' only, the
  // others answer (`partial` on the error; the tier's breaker skips it).
  if (body !== null && typeof body === 'object' && (body as { partial?: unknown }).partial === true) {
    (e as EdgeCacheError & { partial?: boolean }).partial = true;
  }
  return e;
}

/** Strict standard base64 with padding → its bytes as a string: text if UTF-8, else bytes. */
function fromBase64(s: string): string | Uint8Array {
  if (!B64.test(s)) throw protocol('a result string is not valid base64');
  const bin = atob(s);
  if (ASCII.test(bin)) return bin;
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  try {
    return utf8.decode(bytes);
  } catch {
    return bytes;
  }
}

function reply(v: unknown, base64: boolean, depth: number): RedisValue {
  if (v === null) return null;
  switch (typeof v) {
    case 'number':
      if (!Number.isSafeInteger(v)) {
        throw protocol(`${v} is not an integer JavaScript can represent exactly`);
      }
      return v;
    case 'string':
      return base64 && v !== 'OK' ? fromBase64(v) : v;
    case 'object':
      if (Array.isArray(v)) {
        if (depth >= MAX_DEPTH) throw protocol('arrays nested too deep');
        const out: RedisValue[] = new Array(v.length);
        for (let i = 0; i < v.length; i++) out[i] = reply(v[i], base64, depth + 1);
        return out;
      }
  }
  throw protocol('a result must be null, an integer, a string or an array');
}

/** `{"result": r}` or `{"error": "e"}`, and nothing else. */
function outcome(v: unknown, base64: boolean): Outcome {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw protocol('expected an object with `result` or `error`');
  let n = 0;
  for (const _ in v) n++;
  if (n !== 1) throw protocol('expected exactly one of `result` and `error`');
  const o = v as { result?: unknown; error?: unknown };
  if ('result' in o) return { ok: true, value: reply(o.result, base64, 0) };
  if (!('error' in o)) throw protocol('expected `result` or `error`');
  if (typeof o.error !== 'string') throw protocol('`error` must be a string');
  return { ok: false, error: o.error };
}

function parse(status: number, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    if (status >= 200 && status < 300) throw protocol('the answer is not JSON');
    throw statusError(status, undefined);
  }
}

/**
 * @internal Decodes the answer to `POST /pipeline` of `expected` commands:
 * one outcome per command, in order; a whole-request failure throws.
 */
export function decodePipeline(status: number, text: string, expected: number, base64: boolean): Outcome[] {
  const v = parse(status, text);
  if (status < 200 || status >= 300) throw statusError(status, v);
  if (!Array.isArray(v)) throw protocol('a pipeline answer must be a JSON array');
  if (v.length !== expected) throw protocol(`a pipeline of ${expected} commands was answered with ${v.length} results`);
  const out: Outcome[] = new Array(expected);
  for (let i = 0; i < expected; i++) out[i] = outcome(v[i], base64);
  return out;
}

/** @internal Decodes the answer to `POST /` (or `/multi-exec`): the reply, or a thrown error. */
export function decodeCommand(status: number, text: string, base64: boolean): RedisValue {
  const v = parse(status, text);
  if (status < 200 || status >= 300) throw statusError(status, v);
  const o = outcome(v, base64);
  if (!o.ok) throw new EdgeCacheError('L2_REDIS', `redis error: ${o.error}`);
  return o.value;
}
