// Signer benchmark: seal + open of JSON values, edgecache (HMAC-SHA256 in
// wasm) against crypto.subtle (awaited per operation, as a Worker would)
// and node:crypto createHmac, all in this one process.
//
// Every contender does the same work per round trip: JSON.stringify, the
// envelope of docs/ENVELOPE.md (header, MAC input with scope and key),
// HMAC-SHA256, base64url encode; then base64url decode, header checks, the
// tag check, UTF-8 decode and JSON.parse. The peers' envelopes are
// byte-identical to ours (checked below), so nobody skips a step.
//
//   node --expose-gc bench/signer.bench.mjs        (make bench)
//   BENCH_MS=300 node --expose-gc bench/signer.bench.mjs   (quicker)
import { createHmac, timingSafeEqual, webcrypto } from 'node:crypto';
import { Signer } from 'edgecache';

const SECRET = 'AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
const SECRET_BYTES = Buffer.from(SECRET, 'base64url');
const KEY_ID = 'k1';
const ROUND_MS = Number(process.env.BENCH_MS ?? 1000);
const ROUNDS = 5;
const LABEL = Buffer.from('edgecache/envelope\0');

/** A JSON value whose JSON text is exactly `size` bytes. */
function value(size) {
  const base = { id: 12345, name: 'Ada Lovelace', tags: ['a', 'b'], pad: '' };
  const v = { ...base, pad: 'x'.repeat(size - JSON.stringify(base).length) };
  if (JSON.stringify(v).length !== size) throw new Error('bad payload size');
  return v;
}

// ---- the peers: the same envelope, with node:crypto or crypto.subtle ----

function u64(n) {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function scopeEnc(scope) {
  const t = scope.tenant === undefined ? undefined : String(scope.tenant);
  const u = scope.user === undefined ? undefined : String(scope.user);
  const tag = t !== undefined && u !== undefined ? 'b' : t !== undefined ? 't' : 'u';
  return tag + [t, u].filter((p) => p !== undefined).map((p) => `${Buffer.byteLength(p)}:${p}`).join('') + '|';
}

/** The default context field (a Signer on its own, namespace ""): marker 0, u64(0). */
const DEFAULT_CONTEXT = Buffer.alloc(9);

/** The bytes after the body in the MAC input: context field, scope field, key. */
function context(key, scope) {
  const k = Buffer.from(key);
  if (scope === undefined) return Buffer.concat([DEFAULT_CONTEXT, Buffer.from([0]), u64(k.length), k]);
  const e = Buffer.from(scopeEnc(scope));
  return Buffer.concat([DEFAULT_CONTEXT, Buffer.from([1]), u64(e.length), e, u64(k.length), k]);
}

function body(json, expiresAt) {
  const payload = Buffer.from(json);
  const b = Buffer.allocUnsafe(15 + KEY_ID.length + payload.length);
  b[0] = 2;
  b[1] = KEY_ID.length;
  b.write(KEY_ID, 2, 'latin1');
  let o = 2 + KEY_ID.length;
  b.writeBigUInt64BE(BigInt(expiresAt), o);
  b[o + 8] = 1;
  b.writeUInt32BE(payload.length, o + 9);
  payload.copy(b, o + 13);
  return b;
}

/** Checks the header as our reader does; returns [payload start, tag start, expiresAt]. */
function header(raw) {
  if (raw.length < 47 || raw[0] !== 2) throw new Error('malformed');
  const k = raw[1];
  if (raw.toString('latin1', 2, 2 + k) !== KEY_ID) throw new Error('unknown key id');
  const expiresAt = Number(raw.readBigUInt64BE(2 + k));
  if (raw[10 + k] !== 1) throw new Error('malformed');
  const n = raw.readUInt32BE(11 + k);
  const start = 15 + k;
  if (raw.length !== start + n + 32) throw new Error('malformed');
  return [start, start + n, expiresAt];
}

const nodeCrypto = {
  seal(key, v, { scope, ttl = 0 } = {}, now = Date.now()) {
    const b = body(JSON.stringify(v), ttl ? Math.ceil(now + ttl) : 0);
    const tag = createHmac('sha256', SECRET_BYTES).update(LABEL).update(b).update(context(key, scope)).digest();
    return Buffer.concat([b, tag]).toString('base64url');
  },
  open(key, sealed, { scope } = {}, now = Date.now()) {
    const raw = Buffer.from(sealed, 'base64url');
    const [start, end, expiresAt] = header(raw);
    const tag = createHmac('sha256', SECRET_BYTES).update(LABEL).update(raw.subarray(0, end)).update(context(key, scope)).digest();
    if (!timingSafeEqual(tag, raw.subarray(end))) throw new Error('bad signature');
    if (expiresAt !== 0 && now >= expiresAt) return undefined;
    return JSON.parse(raw.toString('utf8', start, end));
  },
};

const subtleKey = await webcrypto.subtle.importKey('raw', SECRET_BYTES, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
const subtle = {
  async seal(key, v, { scope, ttl = 0 } = {}, now = Date.now()) {
    const b = body(JSON.stringify(v), ttl ? Math.ceil(now + ttl) : 0);
    const tag = await webcrypto.subtle.sign('HMAC', subtleKey, Buffer.concat([LABEL, b, context(key, scope)]));
    return Buffer.concat([b, Buffer.from(tag)]).toString('base64url');
  },
  async open(key, sealed, { scope } = {}, now = Date.now()) {
    const raw = Buffer.from(sealed, 'base64url');
    const [start, end, expiresAt] = header(raw);
    const ok = await webcrypto.subtle.verify('HMAC', subtleKey, raw.subarray(end), Buffer.concat([LABEL, raw.subarray(0, end), context(key, scope)]));
    if (!ok) throw new Error('bad signature');
    if (expiresAt !== 0 && now >= expiresAt) return undefined;
    return JSON.parse(raw.toString('utf8', start, end));
  },
};

const ours = new Signer({ keys: { [KEY_ID]: SECRET } });

// ---- measurement ----
// Contenders run interleaved, round by round, so that load from elsewhere
// on the machine hits them alike; each figure is the median over rounds,
// and each ratio the median of the per-round ratios.

function gc() {
  globalThis.gc?.();
}

/** ns per call of `fn` (sync or async) over one round of about ROUND_MS. */
async function round(fn, async) {
  gc();
  const batch = async ? 32 : 256;
  let n = 0;
  const t0 = process.hrtime.bigint();
  let t;
  do {
    if (async) for (let i = 0; i < batch; i++) await fn(i);
    else for (let i = 0; i < batch; i++) fn(i);
    n += batch;
    t = process.hrtime.bigint();
  } while (Number(t - t0) < ROUND_MS * 1e6);
  return Number(t - t0) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** contenders: [name, fn, async?][]; returns { name: { ns, ratio } } with ratio = ns / ns of the first. */
async function compare(contenders) {
  for (const [, fn, async] of contenders) for (let i = 0; i < 1000; i++) async ? await fn(i) : fn(i); // warm up
  const times = contenders.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, [, fn, async]] of contenders.entries()) times[i].push(await round(fn, async));
  }
  return Object.fromEntries(contenders.map(([name], i) => [name, {
    ns: median(times[i]),
    ratio: median(times[i].map((t, r) => t / times[0][r])),
  }]));
}

const fmt = (ns) => `${ns.toFixed(0).padStart(7)} ns/op  ${(1e9 / ns).toFixed(0).padStart(8)} ops/s`;
function report(results) {
  for (const [name, { ns, ratio }] of Object.entries(results)) {
    const vs = name.startsWith('edgecache') ? '' : `  edgecache: ${ratio.toFixed(2)}x its throughput`;
    console.log(`  ${name.padEnd(36)} ${fmt(ns)}${vs}`);
  }
}

console.log(`# Signer: seal + open of one JSON value per op; median of ${ROUNDS} interleaved rounds of ${ROUND_MS} ms; node ${process.version}`);
const summary = [];
for (const [size, scope] of [[256, undefined], [4096, undefined], [256, { tenant: 'acme', user: 42 }]]) {
  const v = value(size);
  const opts = scope ? { scope } : {};
  const key = 'user:12345';
  // Same envelope from all three: the peers do exactly our work.
  const now = Date.now();
  const a = ours.seal(key, v, opts);
  if (a !== nodeCrypto.seal(key, v, opts, now) || a !== (await subtle.seal(key, v, opts, now))) throw new Error('peer envelopes differ from ours');
  if (JSON.stringify(nodeCrypto.open(key, a, opts)) !== JSON.stringify(v) || JSON.stringify(await subtle.open(key, a, opts)) !== JSON.stringify(v)) throw new Error('peer open failed');

  console.log(`\n## ${size} B JSON payload, ${scope ? 'scoped (tenant + user)' : 'root keyspace'}`);
  const r = await compare([
    ['edgecache Signer (wasm)', () => ours.open(key, ours.seal(key, v, opts), opts)],
    ['node:crypto createHmac', () => nodeCrypto.open(key, nodeCrypto.seal(key, v, opts), opts)],
    ['crypto.subtle sign/verify (awaited)', async () => subtle.open(key, await subtle.seal(key, v, opts), opts), true],
  ]);
  report(r);
  // Where the time goes.
  const sealed = ours.seal(key, v, opts);
  report(await compare([
    ['edgecache seal only', () => ours.seal(key, v, opts)],
    ['node:crypto seal only', () => nodeCrypto.seal(key, v, opts)],
  ]));
  report(await compare([
    ['edgecache open only', () => ours.open(key, sealed, opts)],
    ['node:crypto open only', () => nodeCrypto.open(key, sealed, opts)],
  ]));
  summary.push({ size, scoped: !!scope, vsNode: r['node:crypto createHmac'].ratio, vsSubtle: r['crypto.subtle sign/verify (awaited)'].ratio });
}

console.log('\n## edgecache throughput / peer throughput (targets: >= 10x crypto.subtle; >= 1.0x node:crypto at 256 B)');
for (const s of summary) {
  console.log(`  ${String(s.size).padStart(4)} B ${s.scoped ? 'scoped' : 'root  '}  vs node:crypto ${s.vsNode.toFixed(2)}x   vs crypto.subtle ${s.vsSubtle.toFixed(2)}x`);
}
ours.free();
