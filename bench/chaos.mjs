// The chaos harness of issue 11: TieredCache clients in several Node
// processes (bench/chaos-worker.mjs) and the example Rust Worker in workerd
// (examples/rust-worker, edgecache::worker; its load comes from
// bench/chaos-rust-worker.mjs) share one bridge and one Redis, one prefix
// and one set of signing keys under about 1,000 operations/s, while a
// schedule of faults runs:
//
//   clients ──> HTTP fault proxy ──> edgecache-bridge ──> TCP fault proxy ──> redis-server
//               (malformed JSON,     (kill -9, restart     (+2 s latency,      (kill -9, restart
//                truncated, 500,      on the same port)     cut mid-reply)      empty, same port;
//                401, resets)                                                   attacker redis-cli)
//
// Every operation is logged with its start and end; at the end the logs of
// every process are checked together (see `check`):
// - no value served that was not written for that key and scope, or that
//   was deleted (delete acknowledged, after the value's write was
//   acknowledged) before the read began; another process may serve it for l1Ttl longer (+ one
//   client timeout), which is the documented staleness bound of L1;
// - no value served past its TTL (counted from the set call; for the
//   Worker, from its answer, the latest it can have sealed the value);
// - no unhandled rejection or uncaught exception in any client; for the
//   Worker: no panic or exception in workerd's output, no 5xx that is not
//   its JSON error, no request dropped;
// - every counter between the increments acknowledged and those plus the
//   increments whose outcome is unknown (since Redis last came back empty);
// - L1 hits served during every fault, by the Node clients and by the Worker;
// - after every fault, a successful round trip within the breaker's
//   cool-down plus one probe (the client timeout) plus 500 ms of slack;
// - coherence (issue 18): two more processes (bench/chaos-reader.mjs) only
//   read the keys the writers mutate, each a TieredCache in strict mode
//   (`staleWhileUnreachable: false`) with the schedule's maxStaleness
//   (1000 ms in the full minute, 250 ms in the short run), its reads timed
//   on the monotonic clock (process.hrtime) and checked against the
//   writers' history (bench/coherence-check.mjs): no value older than a
//   mutation acknowledged more than maxStaleness + SLACK (50 ms) before the
//   read began, and no L1 hit served stale; the L1 hits they refused and
//   their misses are counted per fault. Writes of unknown outcome are
//   possible values that oblige no reader (see `checkCoherence`).
//
//   node bench/chaos.mjs            the full minute (make chaos)
//   node bench/chaos.mjs --short    15 s (tests/js/chaos.test.mjs runs it in make test)
//   --no-build: the Rust Worker as built (else scripts/rust-worker.sh runs
//   first); --no-rust-worker: Node clients only; --readers-coherence-off:
//   the coherence readers with maxStaleness false (the control: the bound
//   check must then fail)
import { fork, execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { TieredCache, RedisRest, Signer, generateSecureKey } from 'edgecache';
import { freePort, startRedisOn, startBridgeOn } from '../tests/js/servers.mjs';
import { startTcpFaultProxy, startHttpFaultProxy, HTTP_FAULTS } from './chaos-proxies.mjs';
import { history, check as checkBound } from './coherence-check.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
/** The example Rust Worker as worker-build builds it (scripts/rust-worker.sh). */
export const RUST_WORKER = path.join(root, 'examples/rust-worker/build/index.js');
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const SCOPES = [
  ['root', null],
  ['acme', { tenant: 'acme' }],
  ['acme/7', { tenant: 'acme', user: 7 }],
  ['globex', { tenant: 'globex' }],
  ['user 42', { user: 42 }],
];

/** Faults: [name, start s, end s, kind, arg]. Gaps leave room for recovery. */
export const FULL = {
  duration: 60,
  cooldown: 1000,
  timeout: 1000,
  maxStaleness: 1000,
  faults: [
    ['redis kill -9, restart empty', 4, 6, 'redis-kill'],
    ['bridge kill -9, restart', 10, 12, 'bridge-kill'],
    ['bridge->redis +2 s latency', 16, 20, 'latency', 2000],
    ['bridge->redis cut mid-reply', 24, 27, 'cut', 0.5],
    ['http: malformed JSON', 31, 33, 'http', 'malformed'],
    ['http: truncated bodies', 36, 38, 'http', 'truncated'],
    ['http: 500', 41, 43, 'http', '500'],
    ['http: 401', 46, 48, 'http', '401'],
    ['http: connection resets', 51, 53, 'http', 'reset'],
    ['attacker rewrites values', 56, 56.5, 'attacker'],
  ],
};

export const SHORT = {
  // 3 s after the attacker's rewrites: longer than the clients' l1Ttl (2 s),
  // so that their L1 copies lapse and the rewritten values are read from
  // Redis (and rejected) before the end; strict coherence readers, whose L1
  // outlives the run, keep their copies, since an attacker's write is not in
  // the log.
  duration: 17,
  cooldown: 500,
  timeout: 800,
  maxStaleness: 250,
  faults: [
    ['redis kill -9, restart empty', 0.8, 1.6, 'redis-kill'],
    ['bridge kill -9, restart', 3.4, 4.0, 'bridge-kill'],
    ['bridge->redis +2 s latency', 5.8, 6.8, 'latency', 2000],
    ['bridge->redis cut mid-reply', 8.6, 9.4, 'cut', 0.5],
    ['http: all five faults', 11.2, 12.4, 'http', 'mixed'],
    ['attacker rewrites values', 13.6, 14.0, 'attacker'],
  ],
};

/**
 * Builds the example Rust Worker if it is missing (or always, with
 * `rebuild`): a stale build lacks routes the Rust client needs, and its
 * probe then fails naming the fix.
 */
export function ensureRustWorker({ rebuild = false } = {}) {
  if (rebuild || !existsSync(RUST_WORKER)) execFileSync(path.join(root, 'scripts/rust-worker.sh'), { stdio: ['ignore', 'inherit', 'inherit'] });
}

/**
 * Lines of workerd's output that mean the Worker crashed: a Rust panic
 * ("Critical Error: Rust panic: panicked at ...", "Critical RuntimeError:
 * unreachable", "Reinitializing Wasm application"), an uncaught exception.
 */
const WORKERD_FAULT = /panicked|critical|RuntimeError|uncaught|unhandled|Reinitializing Wasm/i;

/**
 * The example Rust Worker in workerd (through Miniflare, as
 * tests/js/rust-worker.test.mjs runs it), with `bindings`; what workerd
 * prints is kept, and the lines that mean a crash are counted.
 */
async function startRustWorker(bindings) {
  const out = { lines: [], count: 0, faults: [] };
  const mf = new Miniflare({
    scriptPath: RUST_WORKER,
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    bindings,
    handleRuntimeStdio(stdout, stderr) {
      for (const st of [stdout, stderr]) {
        st.on('data', (d) => {
          for (const line of d.toString().split('\n').filter(Boolean)) {
            out.count++;
            if (out.lines.length < 200) out.lines.push(line);
            if (WORKERD_FAULT.test(line)) out.faults.push(line);
          }
        });
      }
    },
  });
  const url = await mf.ready;
  return { url: url.href, out, stop: () => mf.dispose() };
}

/** Slack on top of maxStaleness for the coherence readers' bound: scheduling, whole-ms clocks. */
export const SLACK = 50;

/**
 * Runs the harness; resolves to the report ({ rows, checks, ok, ... }).
 * `schedule` is FULL or SHORT (or one like them); `workers` Node client
 * processes and, with `rustWorker` (default), the Rust Worker share `rate`
 * operations/s, `rustRate` of them for the Worker. `readers` coherence
 * readers (bench/chaos-reader.mjs, strict) read `readerRate` times a second
 * between them with `readerMaxStaleness` (default: the schedule's
 * maxStaleness; `false`, coherence off, is the control the bound check
 * must catch).
 */
export async function runChaos({ schedule = FULL, workers = 2, rustWorker = true, rate = 1000, rustRate = 200, l1Ttl = 2000, readers = 2, readerRate = 300, readerMaxStaleness = schedule.maxStaleness, log = () => {} } = {}) {
  const clients = workers + (rustWorker ? 1 : 0);
  const nodeRate = rate - (rustWorker ? rustRate : 0);
  if (rustWorker) ensureRustWorker();
  const token = `chaos-${generateSecureKey().slice(0, 24)}`;
  const secret = generateSecureKey();
  const redisPort = await freePort();
  const bridgePort = await freePort();
  const cleanups = [];
  const state = { redis: undefined, bridge: undefined, redisKilledAt: 0, redisUpAt: 0 };
  const procs = [];
  try {
    state.redis = await startRedisOn(redisPort);
    const tcp = await startTcpFaultProxy(redisPort);
    cleanups.push(() => tcp.stop());
    const bridgeOpts = { redisUrl: `redis://127.0.0.1:${tcp.port}`, token };
    state.bridge = await startBridgeOn(bridgePort, bridgeOpts);
    const httpProxy = await startHttpFaultProxy(bridgePort);
    cleanups.push(() => httpProxy.stop());

    const base = {
      url: httpProxy.url,
      token,
      secret,
      // Writers: the Node clients, then the Worker; everyone reads everyone's keys.
      workers: clients,
      timeout: schedule.timeout,
      cooldown: schedule.cooldown,
      l1Ttl,
      scopes: SCOPES,
      groups: 4,
      keysPerGroup: 10,
      counters: 6,
      rate: nodeRate / workers,
      tick: 20,
      maxInFlight: 300,
    };
    let rust;
    if (rustWorker) {
      const adminToken = `admin-${generateSecureKey().slice(0, 24)}`;
      rust = await startRustWorker({
        EDGECACHE_REDIS_URL: httpProxy.url,
        EDGECACHE_REDIS_TOKEN: token,
        EDGECACHE_SIGNING_KEYS: `k1:${secret}`,
        EDGECACHE_PREFIX: 'chaos',
        EDGECACHE_MAX_ENTRIES: '2000',
        EDGECACHE_MAX_BYTES: String(8 << 20),
        EDGECACHE_L1_TTL: String(l1Ttl),
        EDGECACHE_REDIS_TIMEOUT: String(schedule.timeout),
        EDGECACHE_BREAKER_THRESHOLD: '5',
        EDGECACHE_BREAKER_COOLDOWN: String(schedule.cooldown),
        EDGECACHE_ADMIN_TOKEN: adminToken,
      });
      cleanups.push(() => rust.stop());
      rust.config = { ...base, worker: workers, rate: rustRate, workerUrl: rust.url, adminToken, requestTimeout: 15_000 };
    }
    const results = [];
    const readerResults = [];
    const ready = [];
    // The writers (worker 0..clients-1), then the coherence readers (worker clients + r).
    for (let w = 0; w < clients + readers; w++) {
      const isRust = rustWorker && w === workers;
      const isReader = w >= clients;
      const config = isRust ? rust.config : isReader ? { ...base, worker: w, rate: readerRate / readers, maxStaleness: readerMaxStaleness } : { ...base, worker: w };
      const child = fork(path.join(here, isRust ? 'chaos-rust-worker.mjs' : isReader ? 'chaos-reader.mjs' : 'chaos-worker.mjs'), [], {
        env: { ...process.env, CHAOS_CONFIG: JSON.stringify(config) },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        serialization: 'advanced',
        execArgv: [],
      });
      procs.push(child);
      ready.push(
        new Promise((resolve, reject) => {
          child.on('message', (m) => {
            if (m.type === 'ready') resolve();
            else if (m.type === 'result' && isReader) readerResults[w - clients] = m;
            else if (m.type === 'result') results[m.worker] = m;
          });
          child.once('exit', (code) => reject(new Error(`chaos ${isReader ? 'reader' : 'worker'} ${w} exited with ${code} before it was ready`)));
        }),
      );
    }
    await Promise.all(ready);
    const exited = procs.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r))));

    const t0 = Date.now() + 200;
    const endAt = t0 + schedule.duration * 1000;
    for (const c of procs) c.send({ type: 'start', endAt });
    await sleep(t0 - Date.now());
    log(
      `chaos: ${workers} Node clients${rustWorker ? ' + the Rust Worker in workerd' : ''}, ${rate} ops/s, ${readers} strict coherence readers ` +
        `(maxStaleness ${readerMaxStaleness}), ${readerRate} reads/s, ${schedule.duration} s, ${schedule.faults.length} faults`,
    );

    const rows = [];
    for (const [name, start, end, kind, arg] of schedule.faults) {
      await sleep(t0 + start * 1000 - Date.now());
      const row = { name, kind, arg, start: Date.now(), end: 0, note: '' };
      rows.push(row);
      log(`chaos: t=${((row.start - t0) / 1000).toFixed(1)} s ${name}`);
      if (kind === 'redis-kill') {
        state.redis.proc.kill('SIGKILL');
        await state.redis.stop();
        state.redisKilledAt = row.start;
        await sleep(t0 + end * 1000 - Date.now());
        state.redis = await startRedisOn(redisPort);
        state.redisUpAt = Date.now();
      } else if (kind === 'bridge-kill') {
        state.bridge.proc.kill('SIGKILL');
        await state.bridge.stop();
        await sleep(t0 + end * 1000 - Date.now());
        state.bridge = await startBridgeOn(bridgePort, { ...bridgeOpts, waitHealthy: false });
      } else if (kind === 'latency') {
        tcp.delay(arg);
        await sleep(t0 + end * 1000 - Date.now());
        tcp.pass();
      } else if (kind === 'cut') {
        tcp.cut(arg);
        await sleep(t0 + end * 1000 - Date.now());
        row.note = `${tcp.state.cuts} replies cut`;
        tcp.pass();
      } else if (kind === 'http') {
        const before = { ...httpProxy.state.injected };
        if (arg === 'mixed') {
          const slice = ((end - start) * 1000) / HTTP_FAULTS.length;
          for (const f of HTTP_FAULTS) {
            httpProxy.setMode(f, 0.7);
            await sleep(slice);
          }
        } else {
          httpProxy.setMode(arg, 0.3);
          await sleep(t0 + end * 1000 - Date.now());
        }
        httpProxy.setMode('pass');
        row.note = Object.entries(httpProxy.state.injected)
          .map(([k, n]) => [k, n - (before[k] ?? 0)])
          .filter(([, n]) => n > 0)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ');
      } else if (kind === 'attacker') {
        row.note = await attack(redisPort);
        await sleep(Math.max(0, t0 + end * 1000 - Date.now()));
      }
      row.end = Date.now();
    }
    let giveUp;
    await Promise.race([Promise.all(exited), new Promise((r) => (giveUp = setTimeout(r, endAt - Date.now() + schedule.timeout * 3 + 15_000)))]);
    clearTimeout(giveUp);
    log(`chaos: clients done ${Date.now() - endAt} ms after the end`);
    for (let w = 0; w < clients + readers; w++) {
      if ((w < clients ? results[w] : readerResults[w - clients]) === undefined) throw new Error(`chaos ${w < clients ? 'client' : 'reader'} ${w} sent no result (exit code ${procs[w].exitCode})`);
    }
    if (rust) {
      // workerd's own output: a panic or an uncaught exception is a fault of the Worker client.
      const r = results[workers];
      r.faults.uncaught += rust.out.faults.length;
      r.faults.samples.push(...rust.out.faults.slice(0, 5).map((l) => `workerd: ${l}`));
      r.workerd = { lines: rust.out.count, crashLines: rust.out.faults.length, first: [...new Set(rust.out.lines)].slice(0, 5) };
    }

    // Counters, read back through a fresh client straight at the bridge.
    const reader = new TieredCache({
      redis: new RedisRest({ url: `http://127.0.0.1:${bridgePort}`, token }),
      signer: new Signer({ keys: { k1: secret } }),
      prefix: 'chaos',
      log: () => {},
    });
    const finalCounters = {};
    for (let s = 0; s < SCOPES.length; s++) {
      const view = SCOPES[s][1] ? reader.scope(SCOPES[s][1]) : reader;
      for (let j = 0; j < base.counters; j++) finalCounters[`${s}|cnt:${j}`] = (await view.counter(`cnt:${j}`)) ?? 0;
    }
    log(`chaos: counters read ${Date.now() - endAt} ms after the end`);
    return check({ schedule, rows, results, readers: readerResults, bound: { maxStaleness: schedule.maxStaleness, slack: SLACK, readers: readerMaxStaleness }, finalCounters, state, base, t0, endAt });
  } finally {
    const stopping = Date.now();
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const f of cleanups.reverse()) await f().catch(() => {});
    await state.bridge?.stop();
    await state.redis?.stop();
    log(`chaos: servers stopped in ${Date.now() - stopping} ms`);
  }
}

/** The attacker with write access to Redis: rewrites signed values with redis-cli. */
async function attack(port) {
  const cli = (...args) => run('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).then((r) => r.stdout.trim());
  const keys = (await cli('--scan', '--pattern', 'chaos:v:*')).split('\n').filter(Boolean);
  const pick = keys.sort(() => Math.random() - 0.5).slice(0, 45);
  const done = { flipped: 0, moved: 0, replaced: 0 };
  for (let i = 0; i < pick.length; i++) {
    const key = pick[i];
    const value = await cli('--raw', 'GET', key);
    if (value === '') continue;
    if (i % 3 === 0) {
      // one character of the envelope changed
      const at = Math.floor(value.length / 2);
      const c = value[at] === 'A' ? 'B' : 'A';
      await cli('SET', key, value.slice(0, at) + c + value.slice(at + 1), 'KEEPTTL');
      done.flipped++;
    } else if (i % 3 === 1) {
      // a genuine envelope of one key (maybe another scope) copied onto another
      const other = pick[(i + 1) % pick.length];
      if (other === key) continue;
      await cli('SET', other, value, 'KEEPTTL');
      done.moved++;
    } else {
      await cli('SET', key, Math.random() < 0.5 ? '12345' : '{"k":"w0:g0:k0","v":1}', 'KEEPTTL');
      done.replaced++;
    }
  }
  return `of ${keys.length} values: ${done.flipped} altered, ${done.moved} moved, ${done.replaced} replaced`;
}

/** Checks the merged history against the pass criteria; builds the table. */
function check({ schedule, rows, results, readers, bound, finalCounters, state, base, t0, endAt }) {
  const staleAllowance = base.l1Ttl + base.timeout + 100;
  const recoveryBound = schedule.cooldown + schedule.timeout + 500;
  // After a latency fault ends, what was sent during it still comes back
  // up to its latency later, ahead of what is sent after it (one ordered
  // connection to Redis): its own recovery bound is that much longer.
  const boundOf = (row) => recoveryBound + (row.kind === 'latency' ? Number(row.arg) : 0);
  const wrong = [];
  let lateTtl = 0;

  // Writes and deletes by owner, scope and key.
  const sets = new Map(); // `${w}|${s}|${v}` -> entry (versions are unique per writer)
  const deletes = new Map(); // `${w}|${s}|${key}` -> [ts, te] of acknowledged deletes
  const patterns = []; // [w, s, prefix, ts, te]
  for (const r of results) {
    for (const e of r.log) {
      if (e[0] === 'S') sets.set(`${r.worker}|${e[1]}|${e[3]}`, e);
      else if (e[0] === 'D' && e[5] === 1) {
        const k = `${r.worker}|${e[1]}|${e[2]}`;
        if (!deletes.has(k)) deletes.set(k, []);
        deletes.get(k).push([e[3], e[4]]);
      } else if (e[0] === 'P' && e[5] === 1) patterns.push([r.worker, e[1], e[2], e[3], e[4]]);
    }
  }
  let readsChecked = 0;
  const rustW = results.find((r) => r.kind === 'rust')?.worker;
  // Values that crossed between the kinds of client, each way (the shared layout and envelopes at work).
  const cross = { nodeReadRust: 0, rustReadNode: 0 };
  // The coherence readers' values are checked like everyone's, too.
  for (const r of [...results, ...readers]) {
    for (const w of r.immediate) wrong.push({ reader: r.worker, ...w });
    for (const e of r.log) {
      if (e[0] !== 'R') continue;
      readsChecked++;
      const [, s, key, w, v, ts, te, l1hit] = e;
      const owner = Number(/^w(\d+):/.exec(key)?.[1]);
      const set = sets.get(`${w}|${s}|${v}`);
      const where = { reader: r.worker, scope: SCOPES[s][0], key, writer: w, version: v, readStart: ts - t0, l1hit: !!l1hit };
      if (owner !== w || set === undefined || set[2] !== key) {
        wrong.push({ ...where, why: 'never written for this key and scope' });
        continue;
      }
      if (r.kind === 'rust' && w !== rustW) cross.rustReadNode++;
      if (r.kind === 'node' && w === rustW) cross.nodeReadRust++;
      if (set[5] > te) {
        wrong.push({ ...where, why: 'read ended before its write began' });
        continue;
      }
      // When the set was acknowledged; a set of unknown outcome may land
      // at Redis after a later delete (its request held in a proxy or a
      // busy bridge after the client gave up), so no delete rules it out.
      const setEnd = set[6] || Infinity;
      const allowance = r.worker === w ? 0 : staleAllowance;
      const del = (deletes.get(`${w}|${s}|${key}`) ?? []).find(([dts, dte]) => dts > setEnd && dte + allowance < ts);
      const pat = patterns.find(([pw, ps, prefix, dts, dte]) => pw === w && ps === s && key.startsWith(prefix) && dts > setEnd && dte + allowance < ts);
      if (del || pat) {
        const [dts, dte] = del ?? [pat[3], pat[4]];
        wrong.push({ ...where, why: `deleted (${del ? 'delete' : 'deletePattern'} ${dts - t0}..${dte - t0} ms) before the read began`, setEnd: setEnd - t0 });
        continue;
      }
      // A TTL counts from the set call (the envelope is sealed then; the
      // Worker's log says when at the latest: its answer); 10 ms of slack for the clock read.
      const ttl = set[4];
      const ttlFrom = set[7] ?? set[5];
      if (ttl > 0 && ts >= ttlFrom + ttl + 10) wrong.push({ ...where, why: `expired (ttl ${ttl}, counted from ${ttlFrom - t0} ms) before the read began` });
      else if (ttl > 0 && ts >= ttlFrom + ttl) lateTtl++;
    }
  }

  // Counters: since Redis last came back empty, between acknowledged and acknowledged + unknown.
  const counters = [];
  const sums = {};
  for (const r of results) {
    for (const e of r.log) {
      if (e[0] !== 'I') continue;
      const [, s, key, by, ts, te, outcome] = e;
      const k = `${s}|${key}`;
      sums[k] ??= { ack: 0, unknown: 0 };
      if (outcome === 'ack' && ts >= state.redisUpAt) sums[k].ack += by;
      if ((outcome === 'ack' || outcome === 'unknown') && (te === 0 || te >= state.redisKilledAt)) {
        if (outcome === 'unknown' || ts < state.redisUpAt) sums[k].unknown += by;
      }
    }
  }
  let counterViolations = 0;
  for (const [k, final] of Object.entries(finalCounters)) {
    const { ack, unknown } = sums[k] ?? { ack: 0, unknown: 0 };
    const ok = final >= ack && final <= ack + unknown;
    if (!ok) counterViolations++;
    counters.push({ counter: k, final, acknowledged: ack, unknown, ok });
  }

  const coherence = checkCoherence({ rows, results, readers, bound, base });

  // Per fault: operations during it, errors by code (fault and recovery), L1 hits, recovery.
  const table = [];
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i];
    const windowEnd = Math.min(rows[i + 1]?.start ?? endAt, row.end + boundOf(row));
    let ops = 0;
    let l1 = 0;
    const errors = {};
    let recovery = 0;
    const rust = { ops: 0, l1: 0, recovery: 0 };
    for (const r of results) {
      const mine = { ops: 0, l1: 0 };
      for (const t of r.opStarts) if (t >= row.start && t <= row.end) mine.ops++;
      for (const e of r.log) if (e[0] === 'R' && e[7] === 1 && e[5] >= row.start && e[5] <= row.end) mine.l1++;
      ops += mine.ops;
      l1 += mine.l1;
      if (r.kind === 'rust') Object.assign(rust, mine);
      const before = [...r.snapshots].reverse().find((x) => x.t <= row.start) ?? r.snapshots[0];
      const after = r.snapshots.find((x) => x.t >= windowEnd) ?? r.snapshots.at(-1);
      for (const [code, n] of Object.entries(after.errors)) {
        const d = n - (before.errors[code] ?? 0);
        if (d > 0) errors[code] = (errors[code] ?? 0) + d;
      }
      const ok = r.okAt.find((t) => t >= row.end);
      const mineRecovery = ok === undefined ? Infinity : ok - row.end;
      recovery = Math.max(recovery, mineRecovery);
      if (r.kind === 'rust') rust.recovery = mineRecovery;
    }
    if (row.kind === 'attacker') {
      // Redis stayed up: there is nothing to recover from.
      recovery = 0;
      rust.recovery = 0;
    }
    const wrongHere = wrong.filter((w) => w.readStart !== undefined && w.readStart + t0 >= row.start && w.readStart + t0 <= windowEnd).length;
    // The strict readers: reads, refused L1 hits and misses in the fault and its recovery.
    const strict = { reads: 0, refused: 0, misses: 0 };
    for (const r of readers) {
      for (const t of r.opStarts) if (t >= row.start && t <= windowEnd) strict.reads++;
      for (const t of r.missAt) if (t >= row.start && t <= windowEnd) strict.misses++;
      const before = [...r.snapshots].reverse().find((x) => x.t <= row.start) ?? r.snapshots[0];
      const after = r.snapshots.find((x) => x.t >= windowEnd) ?? r.snapshots.at(-1);
      strict.refused += (after.coherence?.refused ?? 0) - (before.coherence?.refused ?? 0);
    }
    table.push({ fault: row.name, at: (row.start - t0) / 1000, seconds: (row.end - row.start) / 1000, ops, l1Hits: l1, errors, wrong: wrongHere, recoveryMs: recovery, recoveryBound: boundOf(row), rust: rustW === undefined ? undefined : rust, strict, note: row.note });
  }

  const unhandled = [...results, ...readers].reduce((n, r) => n + r.faults.unhandled + r.faults.uncaught, 0);
  const checks = [
    ['wrong values served', wrong.length, wrong.length === 0],
    ['unhandled rejections + uncaught exceptions', unhandled, unhandled === 0],
    ['counters out of [acknowledged, acknowledged + unknown]', counterViolations, counterViolations === 0],
    ['faults without an L1 hit served during them', table.filter((t) => t.l1Hits === 0).length, table.every((t) => t.l1Hits > 0)],
    // The Rust Worker makes about 140 ops/s: in the short run's faults (0.6
    // to 1.2 s) a fault with no L1 hit of its own is chance, not a fault of
    // the Worker's; the full minute's faults (2 s and more) must each have one.
    ...(rustW === undefined
      ? []
      : [[`faults during which the Rust Worker served no L1 hit${schedule.duration < 30 ? ' (short run: more than one)' : ''}`, table.filter((t) => t.rust.l1 === 0).length, table.filter((t) => t.rust.l1 === 0).length <= (schedule.duration < 30 ? 1 : 0)]]),
    [`faults not recovered within ${recoveryBound} ms (cool-down + probe + 500 ms; a latency fault's own latency more)`, table.filter((t) => !(t.recoveryMs <= t.recoveryBound)).length, table.every((t) => t.recoveryMs <= t.recoveryBound)],
    ...(readers.length === 0
      ? []
      : [
          [`strict readers' reads older than maxStaleness + slack (${coherence.boundMs} ms) allows`, coherence.violations.length, coherence.violations.length === 0],
          ['L1 hits the strict readers served stale (staleServed)', coherence.staleServed, coherence.staleServed === 0],
        ]),
  ];
  const totals = {
    ops: results.reduce((n, r) => n + r.issued, 0),
    skipped: results.reduce((n, r) => n + r.skipped, 0),
    reads: results.reduce((n, r) => n + r.reads, 0),
    readsChecked,
    cross,
    workerd: results.find((r) => r.workerd)?.workerd,
    misses: results.reduce((n, r) => n + r.misses, 0),
    l1Served: results.reduce((n, r) => n + r.l1Served, 0),
    lateTtl,
    seconds: (endAt - t0) / 1000,
    rejected: [...results, ...readers].reduce((n, r) => n + r.stats.l2.rejected, 0),
    l2Errors: results.reduce((acc, r) => {
      for (const [k, n] of Object.entries(r.stats.l2.errors)) acc[k] = (acc[k] ?? 0) + n;
      return acc;
    }, {}),
    opErrors: results.reduce((acc, r) => {
      for (const [k, n] of Object.entries(r.errors)) acc[k] = (acc[k] ?? 0) + n;
      return acc;
    }, {}),
  };
  // Per client: what it did and what went wrong for it.
  const perClient = [...results, ...readers].map((r) => ({
    client: r.kind === 'rust' ? `rust worker (w${r.worker}, workerd)` : r.kind === 'reader' ? `strict reader w${r.worker}` : `node w${r.worker}`,
    ops: r.issued,
    skipped: r.skipped,
    reads: r.reads,
    misses: r.misses,
    missesBreakerOpen: r.missesBreakerOpen,
    l1Served: r.l1Served,
    wrong: wrong.filter((x) => x.reader === r.worker).length,
    incr: r.log.reduce((acc, e) => {
      if (e[0] === 'I') acc[e[6]] = (acc[e[6]] ?? 0) + 1;
      return acc;
    }, {}),
    opErrors: r.errors,
    crashes: r.faults.unhandled + r.faults.uncaught,
    rejected: r.stats.l2.rejected,
    kind: r.kind,
  }));
  return {
    ok: checks.every(([, , ok]) => ok),
    table,
    perClient,
    checks,
    counters,
    wrong,
    coherence,
    totals,
    recoveryBound,
    faultSamples: results.flatMap((r) => r.faults.samples),
    warnings: [...new Set(results.flatMap((r) => r.warnings))],
  };
}

/**
 * The coherence bound (bench/coherence-check.mjs) over the strict readers'
 * reads: the write history of every writer on the monotonic clock, states
 * per scope and key. A set is a state with its version; a delete, and a
 * deletePattern for every key it matches, an absent one. Acknowledged
 * writes oblige; a write of unknown outcome (a Node set that Redis may not
 * have taken, as failOpen lets it resolve; every set of the Rust Worker,
 * whose PUT fails open; a delete that failed) is a state the reads may
 * return, which may have taken effect until its end plus 1 s, or, near the
 * +2 s link, until that fault's end plus its delay plus 1 s (a command
 * waiting in the slow link reaches Redis after its client gave up). Misses
 * are not checked (TTLs, eviction, Redis restarted empty, a refused lease:
 * none is an older value served from L1).
 */
function checkCoherence({ rows, results, readers, bound, base }) {
  // The bound is the schedule's, whatever the readers run with (the control: coherence off).
  const boundMs = bound.maxStaleness + bound.slack;
  const ids = new Map(); // `${scope}|${key}` -> index
  const names = [];
  const id = (s, key) => {
    const k = `${s}|${key}`;
    if (!ids.has(k)) {
      ids.set(k, names.length);
      names.push(`${SCOPES[s][0]}/${key}`);
    }
    return ids.get(k);
  };
  const writes = [];
  let rustSets = 0;
  for (const r of results) {
    for (const [op, s, target, v, m0, m1, acked, te] of r.writes) {
      if (r.kind === 'rust' && op === 'S') rustSets++;
      const which = op === 'P' ? Array.from({ length: base.keysPerGroup }, (_, k) => id(s, `${target}k${k}`)) : [id(s, target)];
      writes.push({ which, value: op === 'S' ? v : null, m0, m1, acked, te });
    }
  }
  const late = (te) => {
    let extra = 0;
    for (const row of rows) if (row.kind === 'latency' && row.start <= te) extra = Math.max(extra, row.end + row.arg - te);
    return extra + 1000;
  };
  const reads = [];
  let fromL1 = 0;
  for (const r of readers) {
    for (const e of r.log) {
      if (e[0] !== 'R') continue;
      const [, s, key, , v, , , l1hit, m0, m1] = e;
      reads.push([m0, m1, id(s, key), v]);
      if (l1hit) fromL1++;
    }
  }
  const h = history(names.length);
  let acked = 0;
  for (const w of writes) {
    if (w.acked) {
      acked++;
      h.record(w.m0, w.which, w.which.map(() => w.value), w.m1);
    } else h.unknown(w.m0, w.which, w.which.map(() => w.value), w.m1 === 0 ? Infinity : w.m1 + late(w.te)); // m1 0: still under way at the end
  }
  const violations = checkBound(h.h, reads, { bound: boundMs, who: 'strict readers', name: (i) => names[i] });
  const sum = (f) => readers.reduce((n, r) => n + (r.stats.coherence?.[f] ?? 0), 0);
  return {
    maxStaleness: bound.maxStaleness,
    readersMaxStaleness: bound.readers,
    slack: bound.slack,
    boundMs,
    readers: readers.length,
    reads: reads.length,
    fromL1,
    writes: writes.length,
    acked,
    unknown: writes.length - acked,
    rustSets,
    violations,
    misses: readers.reduce((n, r) => n + r.misses, 0),
    refused: sum('refused'),
    staleServed: sum('staleServed'),
    gaps: sum('gaps'),
    epochGaps: sum('epoch'),
    logReads: sum('reads'),
    logFailures: sum('failures'),
    invalidated: sum('invalidated'),
  };
}

/** The report as text: the table, then the checks. */
export function formatReport(rep) {
  const lines = [];
  const errs = (e) =>
    Object.entries(e)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k.replace(/^L2_/, '')} ${n}`)
      .join(', ') || '-';
  const ms = (n) => (Number.isFinite(n) ? String(n) : 'never');
  const withRust = rep.table.some((t) => t.rust);
  // The Rust Worker's share in its own columns: ops, L1 hits, recovery.
  const withReaders = rep.coherence.readers > 0;
  // The strict readers' reads, refused L1 hits and misses in the fault and its recovery.
  const head = ['fault', 'at s', 'len s', 'ops', 'L1 hits', 'wrong', 'recovery ms', ...(withRust ? ['rust ops', 'rust L1', 'rust rec ms'] : []), ...(withReaders ? ['strict reads', 'refused', 'missed'] : []), 'errors by code (fault + recovery)'];
  const body = rep.table.map((t) => [
    t.fault, t.at.toFixed(1), t.seconds.toFixed(1), String(t.ops), String(t.l1Hits), String(t.wrong), ms(t.recoveryMs),
    ...(withRust ? [String(t.rust.ops), String(t.rust.l1), ms(t.rust.recovery)] : []),
    ...(withReaders ? [String(t.strict.reads), String(t.strict.refused), String(t.strict.misses)] : []),
    errs(t.errors),
  ]);
  const table = (head, body, left) => {
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
    const fmt = (cells) => '| ' + cells.map((c, i) => (left.includes(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ') + ' |';
    lines.push(fmt(head), '|' + widths.map((w, i) => (left.includes(i) ? '-'.repeat(w + 1) + '-' : '-'.repeat(w + 1) + ':')).join('|') + '|');
    for (const b of body) lines.push(fmt(b));
    lines.push('');
  };
  table(head, body, [0, head.length - 1]);
  if (withReaders) lines.push("strict reads, refused, missed: the strict coherence readers' reads that began in the fault or its recovery, the L1 hits they refused (the lease expired, the log unreadable), their misses", '');
  const counts = (o) =>
    Object.entries(o)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || '-';
  table(
    ['client', 'ops', 'reads', 'misses (breaker open)', 'L1 served', 'rejected', 'wrong', 'crashes', 'incr outcomes', 'operations that failed, by code'],
    rep.perClient.map((c) => [
      c.client, String(c.ops), String(c.reads), `${c.misses}${c.missesBreakerOpen === undefined ? '' : ` (${c.missesBreakerOpen})`}`, String(c.l1Served),
      String(c.rejected), String(c.wrong), String(c.crashes), counts(c.incr), errs(c.opErrors),
    ]),
    [0, 8, 9],
  );
  for (const t of rep.table) if (t.note) lines.push(`  ${t.fault}: ${t.note}`);
  const T = rep.totals;
  const C = rep.coherence;
  lines.push(
    '',
    `totals: ${T.ops} ops in ${T.seconds} s (${Math.round(T.ops / T.seconds)}/s; ${T.skipped} skipped at the in-flight cap), ` +
      `${T.reads} reads (${T.readsChecked} values checked against the history, ${T.misses} misses, ${T.l1Served} from L1), ` +
      `${T.rejected} envelopes rejected`,
    ...(T.workerd ? [`workerd printed ${T.workerd.lines} lines, ${T.workerd.crashLines} of them a crash; first ones: ${JSON.stringify(T.workerd.first)}`] : []),
    `values that crossed kinds of client: ${T.cross.nodeReadRust} written by the Rust Worker read by Node, ${T.cross.rustReadNode} written by Node read by the Rust Worker`,
    `L2 errors by code: ${errs(T.l2Errors)}`,
    `operations that threw, by code: ${errs(T.opErrors)}`,
    `values served less than 10 ms past their TTL (clock slack): ${T.lateTtl}`,
    `counters: ${rep.counters.filter((c) => c.ok).length}/${rep.counters.length} in bounds; ` +
      rep.counters.slice(0, 3).map((c) => `${c.counter} = ${c.final} in [${c.acknowledged}, ${c.acknowledged + c.unknown}]`).join('; '),
    ...(withReaders
      ? [
          `coherence: maxStaleness ${C.maxStaleness} ms + slack ${C.slack} ms = bound ${C.boundMs} ms; ${C.readers} strict readers (staleWhileUnreachable: false` +
            `${C.readersMaxStaleness === C.maxStaleness ? '' : `, maxStaleness ${C.readersMaxStaleness}: the control`}): ` +
            `${C.reads} reads bound-checked (${C.fromL1} from L1) against ${C.writes} writes (${C.acked} acknowledged, ${C.unknown} of unknown outcome, ${C.rustSets} of them the Rust Worker's sets): ${C.violations.length} violations`,
          `coherence: ${C.refused} L1 hits refused while the log could not be read, ${C.misses} misses, ${C.staleServed} served stale; ` +
            `${C.logReads} log reads (${C.logFailures} failed), ${C.gaps} gaps (${C.epochGaps} epoch), ${C.invalidated} L1 entries invalidated`,
        ]
      : []),
    '',
  );
  for (const [what, n, ok] of rep.checks) lines.push(`${ok ? 'PASS' : 'FAIL'}  ${what}: ${n}`);
  for (const w of rep.wrong.slice(0, 10)) lines.push(`  wrong: ${JSON.stringify(w)}`);
  for (const v of rep.coherence.violations.slice(0, 10)) lines.push(`  past the bound: ${JSON.stringify(v)}`);
  for (const c of rep.counters.filter((x) => !x.ok).slice(0, 10)) lines.push(`  counter: ${JSON.stringify(c)}`);
  for (const s of rep.faultSamples.slice(0, 5)) lines.push(`  client fault: ${s}`);
  lines.push(rep.ok ? 'chaos: PASS' : 'chaos: FAIL');
  return lines.join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const short = process.argv.includes('--short');
  // The example Rust Worker is built first (quick when up to date): make chaos runs what lib.rs says.
  if (!process.argv.includes('--no-rust-worker')) ensureRustWorker({ rebuild: !process.argv.includes('--no-build') });
  const schedule = short ? SHORT : FULL;
  const readerMaxStaleness = process.argv.includes('--readers-coherence-off') ? false : schedule.maxStaleness;
  const rep = await runChaos({ schedule, rustWorker: !process.argv.includes('--no-rust-worker'), readerMaxStaleness, log: (m) => console.error(m) });
  console.log(formatReport(rep));
  process.exitCode = rep.ok ? 0 : 1;
}
