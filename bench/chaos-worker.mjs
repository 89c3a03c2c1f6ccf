// One client process of the chaos harness (bench/chaos.mjs): a TieredCache
// against the shared bridge (through the harness's HTTP fault proxy),
// running a mix of operations at a fixed rate until told the end time, and
// logging every operation with its start and end (Date.now(), shared by
// every process on the machine) so the parent can check the history.
//
// Keys: worker w writes and deletes only its own keys (`w<w>:g<g>:k<i>`),
// in every scope; every worker reads everyone's. Counters (`cnt:<j>`) are
// shared: every worker increments them. Values verify themselves: each
// names its key, scope, writer and version, with a checksum over them.
import { AsyncLocalStorage } from 'node:async_hooks';
import { TieredCache, RedisRest, Signer, EdgeCacheError } from 'edgecache';
import { TTLS, makeValue } from './chaos-values.mjs';
import { chaosClient } from './chaos-client.mjs';

const cfg = JSON.parse(process.env.CHAOS_CONFIG);
const c = chaosClient(cfg, 'node');
const { W, SCOPES, rnd, anyKey, ownKey, log, okAt, mono } = c;

/**
 * The `set` under way in this async context: with failOpen (the default)
 * `set` resolves whether or not Redis took the value, so the fetch below
 * says whether it did, for the coherence check.
 */
const setting = new AsyncLocalStorage();

/**
 * Successful round trips (200 with a JSON array) and their end times: for
 * recovery times. A request with an XADD (a mutation and its log append)
 * answered 200 with a result for every command marks the `set` in whose
 * context it went acknowledged.
 */
const tracingFetch = async (url, init) => {
  const res = await fetch(url, init);
  const text = await res.text();
  if (res.status === 200) {
    try {
      const out = JSON.parse(text);
      if (Array.isArray(out)) {
        okAt.push(Date.now());
        const w = setting.getStore();
        if (w !== undefined && typeof init?.body === 'string') {
          const cmds = JSON.parse(init.body);
          const isMutation = cmds.some((cmd) => String(cmd[0]).toUpperCase() === 'XADD');
          if (isMutation && out.length === cmds.length && out.every((o) => o !== null && typeof o === 'object' && 'result' in o)) w.acked = true;
        }
      }
    } catch {
      // malformed: not a success
    }
  }
  return new Response(text, { status: res.status, headers: res.headers });
};

const warnings = [];
const cache = new TieredCache({
  redis: new RedisRest({ url: cfg.url, token: cfg.token, timeout: cfg.timeout, fetch: tracingFetch }),
  signer: new Signer({ keys: { k1: cfg.secret } }),
  prefix: 'chaos',
  l1: { maxEntries: 2_000, maxBytes: 8 << 20 },
  l1Ttl: cfg.l1Ttl,
  breaker: { threshold: 5, cooldown: cfg.cooldown },
  log: (m) => warnings.push(m),
});

const views = SCOPES.map(([, sc]) => (sc ? cache.scope(sc) : cache));
let version = 0;

function failed(e) {
  const code = e instanceof EdgeCacheError ? e.code : `non-EdgeCacheError ${e?.name}`;
  c.errors[code] = (c.errors[code] ?? 0) + 1;
  if (!(e instanceof EdgeCacheError)) c.sample(`op threw ${e?.stack ?? e}`);
  return code;
}

async function op() {
  const sIdx = rnd(SCOPES.length);
  const view = views[sIdx];
  const r = Math.random();
  const ts = Date.now();
  c.opStarts.push(ts);
  if (r < 0.4) {
    // get: mostly values, sometimes a counter's name (get never returns a counter)
    const key = Math.random() < 0.05 ? `cnt:${rnd(cfg.counters)}` : anyKey();
    const l1hit = view.l1.has(key);
    const m0 = mono();
    const x = await view.get(key);
    c.verify(sIdx, key, x, ts, Date.now(), l1hit, m0, mono());
  } else if (r < 0.5) {
    const keys = Array.from({ length: 5 }, anyKey);
    const hits = keys.map((k) => view.l1.has(k));
    const m0 = mono();
    const xs = await view.getMany(keys);
    const [te, m1] = [Date.now(), mono()];
    for (let i = 0; i < keys.length; i++) c.verify(sIdx, keys[i], xs[i], ts, te, hits[i], m0, m1);
  } else if (r < 0.8) {
    const key = ownKey();
    const v = makeValue({ key, scopeName: SCOPES[sIdx][0], w: W, version: ++version, ttl: TTLS[rnd(TTLS.length)], t0: ts, padLength: rnd(600) });
    const entry = ['S', sIdx, key, v.v, v.ttl, ts, 0];
    log.push(entry);
    const w = c.write('S', sIdx, key, v.v);
    const trace = { acked: false };
    try {
      await setting.run(trace, () => view.set(key, v, v.ttl > 0 ? { ttl: v.ttl } : undefined));
    } catch (e) {
      failed(e);
      trace.acked = false;
    }
    // Acknowledged: Redis ran it by now. Otherwise its request may still
    // be on its way (held in a proxy or a busy bridge after the client gave
    // up) and land after a later delete: no delete rules its value out.
    entry[6] = trace.acked ? Date.now() : 0;
    w.done(trace.acked);
  } else if (r < 0.9) {
    const key = `cnt:${rnd(cfg.counters)}`;
    const by = 1 + rnd(3);
    const entry = ['I', sIdx, key, by, ts, 0, 'unknown'];
    log.push(entry);
    try {
      await view.incr(key, by);
      entry[6] = 'ack';
    } catch (e) {
      // The breaker refused it: never sent. Anything else: it may have run.
      entry[6] = failed(e) === 'L2_UNAVAILABLE' ? 'unsent' : 'unknown';
    }
    entry[5] = Date.now();
  } else if (r < 0.97) {
    const key = ownKey();
    const entry = ['D', sIdx, key, ts, 0, 0];
    log.push(entry);
    const w = c.write('D', sIdx, key);
    try {
      await view.delete(key);
      entry[5] = 1;
    } catch (e) {
      failed(e);
    }
    entry[4] = Date.now();
    w.done(entry[5] === 1);
  } else {
    const prefix = `w${W}:g${rnd(cfg.groups)}:`;
    const entry = ['P', sIdx, prefix, ts, 0, 0];
    log.push(entry);
    const w = c.write('P', sIdx, prefix);
    try {
      await view.deletePattern(`${prefix}*`);
      entry[5] = 1;
    } catch (e) {
      failed(e);
    }
    entry[4] = Date.now();
    w.done(entry[5] === 1);
  }
}

/** Stats every 200 ms, for errors by code per fault window. */
function snapshot() {
  const st = cache.stats();
  c.snapshots.push({ t: Date.now(), errors: st.l2.errors, breaker: st.breaker.state, rejected: st.l2.rejected, l1hits: st.l1.hits });
}

function run(endAt) {
  return c.drive(op, endAt, {
    snapshot,
    // Errors TieredCache throws by contract are caught in op(); anything here is a harness bug.
    onOpError: failed,
    // Operations in flight end within the client timeout (bounded).
    drainMs: cfg.timeout * 3 + 1_000,
    extra: () => ({ warnings, stats: cache.stats() }),
  });
}

process.on('message', (m) => {
  if (m.type === 'start') run(m.endAt);
});
process.send({ type: 'ready' });
