// The Rust client of the chaos harness (bench/chaos.mjs): load on the
// example Rust Worker (examples/rust-worker, edgecache::worker) running in
// workerd, which the harness starts with its Redis URL pointing at the same
// HTTP fault proxy, prefix and signing keys as the Node clients
// (bench/chaos-worker.mjs). This process sends it HTTP requests on the
// Worker's admin routes at a fixed rate, over the root and the scopes:
//
//   GET    /__edgecache/kv/<key>     a value (x-cache-tier: l1 | l2) or 404
//   PUT    /__edgecache/kv/<key>?ttl= a value with a short TTL (204)
//   DELETE /__edgecache/kv/<key>     {"deleted"}, or an error as JSON
//   POST   /__edgecache/incr/<key>?by=  {"value"}, or an error as JSON whose
//                                    `outcome` says "not-applied" or "unknown"
//   DELETE /__edgecache/purge?pattern=  deletePattern of its own keys
//
// and logs every operation in the Node clients' format, so the parent
// checks one merged history: values the Worker reads are verified like
// everyone's, its increments count in the counter bounds, its L2 errors
// (from /__edgecache/stats) in the table. A 5xx that is not the Worker's
// JSON error (a panic, an exception), or a request workerd drops, counts
// as an uncaught fault of this client.
import { TTLS, makeValue } from './chaos-values.mjs';
import { chaosClient } from './chaos-client.mjs';

const cfg = JSON.parse(process.env.CHAOS_CONFIG);
const BASE = cfg.workerUrl.replace(/\/$/, '');
const AUTH = { authorization: `Bearer ${cfg.adminToken}` };
const c = chaosClient(cfg, 'rust');
// errors: by code, the Worker's JSON `error`, else `HTTP <status>`; okAt:
// an L2 hit, an acknowledged write. Sets in the log carry an 8th field:
// when the TTL starts at the latest (the Worker seals the value when the
// request reaches it, at most when its answer comes back).
// Writes for the coherence bound (c.writes): a PUT fails open (204 whether
// or not Redis took the value), so the Worker's sets are of unknown
// outcome; its deletes and purges answer 200 only once Redis ran them and
// their log append.
const { W, SCOPES, faults, sample, rnd, anyKey, ownKey, log, errors, okAt, mono } = c;
const scopeQuery = SCOPES.map(([, sc]) => {
  const q = new URLSearchParams();
  if (sc?.tenant !== undefined) q.set('tenant', String(sc.tenant));
  if (sc?.user !== undefined) q.set('user', String(sc.user));
  return q;
});
let version = 0;
let missesBreakerOpen = 0;

/** One request to the Worker: { status, headers, text }, or an exception if workerd dropped it. */
async function call(method, path, params, body) {
  const url = `${BASE}${path}${params && [...params].length ? `?${params}` : ''}`;
  const res = await fetch(url, {
    method,
    headers: body === undefined ? AUTH : { ...AUTH, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(cfg.requestTimeout),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** The code of a failed answer (and its outcome for writes); a 5xx that is not the Worker's JSON is a fault. */
function failed(what, r) {
  let body;
  try {
    body = JSON.parse(r.text);
  } catch {
    // not JSON
  }
  const code = typeof body?.error === 'string' ? body.error : `HTTP ${r.status}`;
  errors[code] = (errors[code] ?? 0) + 1;
  if (r.status >= 500 && typeof body?.error !== 'string') {
    faults.uncaught++;
    sample(`${what}: ${r.status} ${r.text.slice(0, 300)}`);
  }
  return { code, outcome: body?.outcome === 'not-applied' ? 'unsent' : 'unknown' };
}

function dropped(what, e) {
  // workerd dropped or never answered a request: the Worker's host failed.
  const code = e?.name === 'TimeoutError' ? 'WORKER_TIMEOUT' : 'WORKER_UNREACHABLE';
  errors[code] = (errors[code] ?? 0) + 1;
  faults.uncaught++;
  sample(`${what}: ${e?.stack ?? e}`);
}

async function op() {
  const sIdx = rnd(SCOPES.length);
  const q = new URLSearchParams(scopeQuery[sIdx]);
  const r = Math.random();
  const ts = Date.now();
  c.opStarts.push(ts);
  if (r < 0.5) {
    // get: its own keys (which its L1 holds) and everyone's, sometimes a counter's name (never a value)
    const p = Math.random();
    const key = p < 0.05 ? `cnt:${rnd(cfg.counters)}` : p < 0.5 ? ownKey() : anyKey();
    let res;
    const m0 = mono();
    try {
      res = await call('GET', `/__edgecache/kv/${encodeURIComponent(key)}`, q);
    } catch (e) {
      return dropped('get', e);
    }
    const [te, m1] = [Date.now(), mono()];
    if (res.status === 200) {
      const tier = res.headers.get('x-cache-tier');
      if (tier === 'l2') okAt.push(te);
      let x;
      try {
        x = JSON.parse(res.text);
      } catch {
        x = `unparsable: ${res.text.slice(0, 100)}`;
      }
      c.verify(sIdx, key, x, ts, te, tier === 'l1', m0, m1);
    } else if (res.status === 404) {
      if (res.headers.get('x-edgecache-breaker') !== 'closed') missesBreakerOpen++;
      c.verify(sIdx, key, undefined, ts, te, false, m0, m1);
    } else failed('get', res);
  } else if (r < 0.8) {
    const key = ownKey();
    const v = makeValue({ key, scopeName: SCOPES[sIdx][0], w: W, version: ++version, ttl: TTLS[rnd(TTLS.length)], t0: ts, padLength: rnd(600) });
    const entry = ['S', sIdx, key, v.v, v.ttl, ts, 0, Infinity];
    log.push(entry);
    const w = c.write('S', sIdx, key, v.v);
    if (v.ttl > 0) q.set('ttl', String(v.ttl));
    try {
      const res = await call('PUT', `/__edgecache/kv/${encodeURIComponent(key)}`, q, JSON.stringify(v));
      if (res.status !== 204) failed('set', res);
    } catch (e) {
      dropped('set', e);
    }
    // A PUT fails open (204 with Redis down): whether Redis ran the SET is
    // unknown, so, like a Node set of unknown outcome, it may land after a
    // later delete and no delete rules its value out (entry[6] stays 0).
    entry[7] = Date.now();
    w.done(false);
  } else if (r < 0.9) {
    const key = `cnt:${rnd(cfg.counters)}`;
    const by = 1 + rnd(3);
    const entry = ['I', sIdx, key, by, ts, 0, 'unknown'];
    log.push(entry);
    q.set('by', String(by));
    try {
      const res = await call('POST', `/__edgecache/incr/${encodeURIComponent(key)}`, q);
      let value;
      try {
        value = JSON.parse(res.text).value;
      } catch {
        // not JSON: not an acknowledgement
      }
      if (res.status === 200 && Number.isSafeInteger(value)) {
        entry[6] = 'ack';
        okAt.push(Date.now());
      } else entry[6] = failed('incr', res).outcome;
    } catch (e) {
      dropped('incr', e);
    }
    entry[5] = Date.now();
  } else if (r < 0.97) {
    const key = ownKey();
    const entry = ['D', sIdx, key, ts, 0, 0];
    log.push(entry);
    const w = c.write('D', sIdx, key);
    try {
      const res = await call('DELETE', `/__edgecache/kv/${encodeURIComponent(key)}`, q);
      if (res.status === 200) {
        entry[5] = 1;
        okAt.push(Date.now());
      } else failed('delete', res);
    } catch (e) {
      dropped('delete', e);
    }
    entry[4] = Date.now();
    w.done(entry[5] === 1);
  } else {
    const prefix = `w${W}:g${rnd(cfg.groups)}:`;
    const entry = ['P', sIdx, prefix, ts, 0, 0];
    log.push(entry);
    const w = c.write('P', sIdx, prefix);
    q.set('pattern', `${prefix}*`);
    try {
      const res = await call('DELETE', '/__edgecache/purge', q);
      if (res.status === 200) {
        entry[5] = 1;
        okAt.push(Date.now());
      } else failed('deletePattern', res);
    } catch (e) {
      dropped('deletePattern', e);
    }
    entry[4] = Date.now();
    w.done(entry[5] === 1);
  }
}

async function stats() {
  const r = await fetch(`${BASE}/__edgecache/stats`, { signal: AbortSignal.timeout(5_000) });
  return r.json();
}

/** The Worker's L2 errors every 200 ms, for errors by code per fault window. */
async function snapshot() {
  try {
    const st = await stats();
    c.snapshots.push({ t: Date.now(), errors: st.l2.errors, breaker: st.breaker.state, rejected: st.l2.rejected, l1hits: st.l1.hits });
  } catch (e) {
    sample(`stats: ${e}`);
  }
}

function run(endAt) {
  return c.drive(op, endAt, {
    snapshot,
    onOpError: (e) => {
      // Every answer is classified in op(); anything here is a harness bug.
      faults.uncaught++;
      sample(`op threw ${e?.stack ?? e}`);
    },
    drainMs: cfg.requestTimeout + 1_000,
    extra: async () => ({ missesBreakerOpen, warnings: [], stats: await stats() }),
  });
}

/**
 * Before the load: the Worker is tiered over the harness's Redis and has
 * the routes this client needs (a stale build of the example has no incr).
 */
async function probe() {
  const st = await stats();
  if (st.tiered !== true) throw new Error(`the Rust Worker is not tiered: ${JSON.stringify(st)}`);
  const r = await call('POST', `/__edgecache/incr/${encodeURIComponent('probe:rust-worker')}`, new URLSearchParams({ by: '1' }));
  if (r.status !== 200) {
    throw new Error(`POST /__edgecache/incr answered ${r.status} ${r.text.trim()}: rebuild the example Rust Worker (scripts/rust-worker.sh)`);
  }
}

process.on('message', (m) => {
  if (m.type === 'start') run(m.endAt);
});
probe().then(
  () => process.send({ type: 'ready' }),
  (e) => {
    console.error(`chaos rust worker client: ${e.message}`);
    process.exit(1);
  },
);
