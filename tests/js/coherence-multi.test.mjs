// The coherence guarantee with real processes (docs/REDIS.md, "Coherence
// across isolates"): three Node reader processes and both example Workers
// (JS and Rust, in workerd) read continuously while a writer performs
// every mutation kind on one redis-server and bridge. Every read is
// checked against the write history: a read that starts more than
// maxStaleness + SLACK after a mutation was acknowledged must not return a
// value older than that mutation's. All times are this machine's monotonic
// clock (process.hrtime, CLOCK_MONOTONIC: one clock for every process
// here); a Worker's read is timed from this process, from before its
// request was sent to after its answer came, which only widens it.
//
// Scenarios: the writer in JS (every mutation kind), the writer in the
// Rust Worker (its kv route: set and delete), a reader SIGSTOPped for 5 s
// while its keys change, and the control: readers with coherence off must
// be caught by the same checker (so the check can fail).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { TieredCache, RedisRest } from 'edgecache';
import { redisAndBridge } from './servers.mjs';
import { startExampleWorkers, ensureRustWorker } from './example-workers.mjs';
import { history as newHistory, check as checkBound, now } from '../../bench/coherence-check.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const READER = path.join(root, 'tests/js/coherence/reader.mjs');
const ADMIN = 'admin-token-for-tests';
const TOKEN = randomBytes(24).toString('base64url');
const SECRET = randomBytes(32).toString('base64url');
const M = 250; // maxStaleness, ms
/** Scheduling slack on top of the bound: rounding to whole ms, and a Worker's clock (advanced on I/O). */
const SLACK = 50;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

ensureRustWorker();
const servers = redisAndBridge({ token: TOKEN });

/** The keys every reader reads: [kind, tenant | null, key]. */
const KEYS = [
  ['v', null, 'k0'],
  ['v', null, 'k1'],
  ['v', null, 'k2'],
  ['v', 't1', 's0'],
  ['v', 't1', 's1'],
  ['n', null, 'n0'],
];
const idx = (kind, tenant, key) => KEYS.findIndex((k) => k[0] === kind && k[1] === tenant && k[2] === key);

/** The write history (bench/coherence-check.mjs): per key, its states [invoked, acked, value]. */
const history = () => newHistory(KEYS.length);

/**
 * Violations of the bound: reads that returned a state older than the
 * newest one acknowledged more than M + SLACK before the read started.
 */
const check = (h, reads, who) => checkBound(h, reads, { bound: M + SLACK, who, name: (i) => KEYS[i].join('/') });

/** The Node readers: spawned, ready, stopped by closing their stdin. */
async function spawnReaders(n, prefix, maxStaleness, push = false) {
  const env = { ...process.env, URL: servers.bridge.url, TOKEN, SECRET, PREFIX: prefix, MAX_STALENESS: String(maxStaleness), KEYS: JSON.stringify(KEYS), PUSH: push ? '1' : '0' };
  const readers = [];
  for (let r = 0; r < n; r++) {
    const proc = spawn(process.execPath, [READER], { env, stdio: ['pipe', 'pipe', 'inherit'] });
    let out = '';
    const ready = new Promise((resolve, reject) => {
      proc.stdout.on('data', (d) => {
        out += d;
        if (out.startsWith('ready\n')) resolve();
      });
      proc.once('exit', (code) => reject(new Error(`reader exited with ${code} before ready`)));
    });
    const done = new Promise((resolve, reject) =>
      proc.once('exit', (code, signal) => {
        try {
          resolve(JSON.parse(out.slice('ready\n'.length)));
        } catch {
          reject(new Error(`reader ${r} exited (${signal ?? code}) without its records; its stderr is above`));
        }
      }),
    );
    done.catch(() => {}); // awaited by run(); a reader that dies early must not throw from its exit handler
    readers.push({ proc, ready, done, stop: () => proc.stdin.end() });
  }
  await Promise.all(readers.map((r) => r.ready));
  return readers;
}

/** Both example Workers, as readers (and the Rust one as a writer), with `prefix`. */
async function startWorkers(prefix, maxStaleness) {
  const w = await startExampleWorkers(
    {
      EDGECACHE_REDIS_URL: servers.bridge.url,
      EDGECACHE_REDIS_TOKEN: TOKEN,
      EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
      EDGECACHE_PREFIX: prefix,
      EDGECACHE_L1_TTL: '600000',
      EDGECACHE_MAX_STALENESS: String(maxStaleness),
      EDGECACHE_ADMIN_TOKEN: ADMIN,
    },
    { rustName: 'Rust Worker', jsName: 'JS Worker' },
  );
  return { rust: w.rust, jsw: w.js, stop: w.stop };
}

const auth = { authorization: `Bearer ${ADMIN}` };
function kvPath(key, tenant) {
  return `/__edgecache/kv/${encodeURIComponent(key)}${tenant ? `?tenant=${encodeURIComponent(tenant)}` : ''}`;
}

/** A Worker reading the value keys in turn until `until()`; its records. */
async function workerReads(w, until) {
  const reads = [];
  const valueKeys = KEYS.map((k, i) => [k, i]).filter(([k]) => k[0] === 'v');
  for (let n = 0; !until(); n++) {
    const [[, tenant, key], i] = valueKeys[n % valueKeys.length];
    const t0 = now();
    const r = await w.fetch(kvPath(key, tenant), { headers: auth });
    const text = await r.text();
    const t1 = now();
    assert.ok(r.status === 200 || r.status === 404, `${w.name} GET ${key}: ${r.status} ${text}`);
    reads.push([t0, t1, i, r.status === 200 ? JSON.parse(text) : null]);
  }
  return reads;
}

let prefixes = 0;

/**
 * One run: the readers start (their L1 warm), `write(h)` mutates while
 * they read, then every read is checked. Returns the violations.
 */
async function run({ maxStaleness, write, workers = true, during, push = false }) {
  const prefix = `multi${++prefixes}`;
  const writer = new TieredCache({
    redis: new RedisRest({ url: servers.bridge.url, token: TOKEN }),
    signer: { keys: { k1: SECRET } },
    prefix,
    log: () => {},
  });
  const h = history();
  for (const [i, [kind, tenant, key]] of KEYS.entries()) {
    const view = tenant === null ? writer : writer.scope({ tenant });
    if (kind === 'n') h.initial(i, await view.incr(key, 1));
    else {
      await view.set(key, `${key}@0`);
      h.initial(i, `${key}@0`);
    }
  }
  const readers = await spawnReaders(3, prefix, maxStaleness, push);
  const ws = workers ? await startWorkers(prefix, maxStaleness) : undefined;
  let writing = true;
  try {
    const wreads = ws ? [workerReads(ws.jsw, () => !writing), workerReads(ws.rust, () => !writing)] : [];
    // Warm the Workers' L1 too before the first mutation.
    await sleep(300);
    await Promise.all([write({ writer, h, ws, readers }), during?.(readers)]);
    // Reads keep going past the last mutation's bound.
    await sleep(M + SLACK + 200);
    writing = false;
    for (const r of readers) r.stop();
    const results = await Promise.all(readers.map((r) => r.done));
    const wr = await Promise.all(wreads);
    const bad = [];
    results.forEach((r, n) => bad.push(...check(h.h, r.records, `reader ${n}`)));
    if (ws) {
      bad.push(...check(h.h, wr[0], ws.jsw.name));
      bad.push(...check(h.h, wr[1], ws.rust.name));
    }
    const reads = results.reduce((n, r) => n + r.records.length, 0) + wr.reduce((n, r) => n + r.length, 0);
    return { bad, reads, results, wreads: wr, writes: h.h.reduce((n, s) => n + s.length - 1, 0) };
  } finally {
    writing = false;
    for (const r of readers) r.proc.kill('SIGKILL');
    await ws?.stop();
  }
}

/** The JS writer: every mutation kind, a random one every 20-60 ms, for `ms`. */
async function jsWrites({ writer, h }, ms = 3_000) {
  const t1 = writer.scope({ tenant: 't1' });
  const v = (k) => (i) => `${k}@${i}`;
  let seq = 0;
  const I = (kind, tenant, key) => idx(kind, tenant, key);
  const kinds = [
    async () => {
      const k = `k${seq % 3}`, val = v(k)(++seq), t0 = now();
      await writer.set(k, val);
      h.record(t0, [I('v', null, k)], [val]);
    },
    async () => {
      const a = `k${seq % 3}`, b = `k${(seq + 1) % 3}`, s = ++seq, t0 = now();
      await writer.setMany([[a, v(a)(s)], [b, v(b)(s)]]);
      h.record(t0, [I('v', null, a), I('v', null, b)], [v(a)(s), v(b)(s)]);
    },
    async () => {
      const k = `k${seq++ % 3}`, t0 = now();
      await writer.delete(k);
      h.record(t0, [I('v', null, k)], [null]);
    },
    async () => {
      seq++;
      const t0 = now();
      await writer.deleteMany(['k0', 's0']);
      h.record(t0, [I('v', null, 'k0')], [null]);
    },
    async () => {
      seq++;
      const t0 = now();
      await writer.deletePattern('k*');
      h.record(t0, [0, 1, 2], [null, null, null]);
    },
    async () => {
      const k = `s${seq % 2}`, val = v(k)(++seq), t0 = now();
      await t1.set(k, val);
      h.record(t0, [I('v', 't1', k)], [val]);
    },
    async () => {
      seq++;
      const t0 = now();
      await t1.clear();
      h.record(t0, [I('v', 't1', 's0'), I('v', 't1', 's1')], [null, null]);
    },
    async () => {
      seq++;
      const t0 = now();
      const n = await writer.incr('n0', 3);
      h.record(t0, [I('n', null, 'n0')], [n]);
    },
    async () => {
      seq++;
      const t0 = now();
      const n = await writer.decr('n0', 1);
      h.record(t0, [I('n', null, 'n0')], [n]);
    },
    async () => {
      seq++;
      const t0 = now();
      await writer.clear();
      h.record(t0, KEYS.map((_, i) => i), KEYS.map(() => null));
    },
  ];
  const end = now() + ms;
  // Every kind once, then at random.
  for (const k of kinds) await k(), await sleep(20 + Math.random() * 40);
  while (now() < end) {
    await kinds[Math.floor(Math.random() * kinds.length)]();
    await sleep(20 + Math.random() * 40);
  }
}

/** The Rust Worker as the writer: set and delete through its kv route, at the root and in tenant t1. */
async function rustWrites({ ws, h }, ms = 3_000) {
  const end = now() + ms;
  let seq = 0;
  while (now() < end) {
    const [, tenant, key] = KEYS[seq % 5];
    const i = seq % 5;
    const del = ++seq % 4 === 0;
    const t0 = now();
    if (del) {
      const r = await ws.rust.fetch(kvPath(key, tenant), { method: 'DELETE', headers: auth });
      assert.equal(r.status, 200, await r.text());
      h.record(t0, [i], [null]);
    } else {
      const val = `${key}@rust${seq}`;
      const r = await ws.rust.fetch(kvPath(key, tenant), { method: 'PUT', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(val) });
      assert.equal(r.status, 204, await r.text());
      h.record(t0, [i], [val]);
    }
    await sleep(20 + Math.random() * 40);
  }
}

function summary(r) {
  const errors = {};
  for (const x of r.results) for (const [code, n] of Object.entries(x.errors)) errors[code] = (errors[code] ?? 0) + n;
  const failed = Object.keys(errors).length ? `, reads that threw: ${JSON.stringify(errors)}` : '';
  return `${r.reads} reads, ${r.writes} writes${failed}, ${r.bad.length} violations${r.bad.length ? `: ${JSON.stringify(r.bad.slice(0, 3))}` : ''}`;
}

describe('coherence across processes and runtimes', () => {
  test('a JS writer, every mutation kind: 3 Node readers and both Workers stay within maxStaleness', async (t) => {
    const r = await run({ maxStaleness: M, write: (c) => jsWrites(c) });
    t.diagnostic(summary(r));
    assert.equal(r.bad.length, 0, summary(r));
    assert.ok(r.writes >= 30 && r.reads >= 1_000, summary(r));
    // The readers did learn from the log (not from misses).
    for (const x of r.results) assert.ok(x.stats.entries > 0 && x.stats.invalidated > 0, JSON.stringify(x.stats));
  });

  test('the Rust Worker as the writer', async (t) => {
    const r = await run({ maxStaleness: M, write: (c) => rustWrites(c) });
    t.diagnostic(summary(r));
    assert.equal(r.bad.length, 0, summary(r));
    assert.ok(r.writes >= 20, summary(r));
  });

  test('a reader SIGSTOPped for 5 s while its keys change serves no older value once resumed', async (t) => {
    const r = await run({
      maxStaleness: M,
      workers: false,
      write: (c) => jsWrites(c, 6_500),
      during: async (readers) => {
        await sleep(500);
        readers[0].proc.kill('SIGSTOP');
        await sleep(5_000);
        readers[0].proc.kill('SIGCONT');
      },
    });
    t.diagnostic(summary(r));
    assert.equal(r.bad.length, 0, summary(r));
    const stopped = r.results[0].records;
    // It read both before and after the pause.
    const gap = stopped.reduce((g, x, i) => (i > 0 ? Math.max(g, x[1] - stopped[i - 1][1]) : g), 0);
    assert.ok(gap >= 4_900, `the pause shows in its reads (${gap} ms)`);
  });

  test('push mode: the same readers holding a stream open (and both Workers on the lease)', async (t) => {
    const r = await run({ maxStaleness: M, push: true, write: (c) => jsWrites(c) });
    t.diagnostic(summary(r));
    assert.equal(r.bad.length, 0, summary(r));
    for (const x of r.results) assert.ok(x.stats.push.connects >= 1 && x.stats.push.messages > 0, JSON.stringify(x.stats.push));
  });

  test('the control: with coherence off in the readers, the same check finds stale reads', async (t) => {
    const r = await run({ maxStaleness: 'off', workers: false, write: (c) => jsWrites(c, 1_500) });
    t.diagnostic(summary(r).slice(0, 200));
    assert.ok(r.bad.length > 0, `the checker must catch L1 served past the bound: ${summary(r)}`);
  });
});
