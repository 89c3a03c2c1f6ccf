// A coherence reader of the chaos harness (bench/chaos.mjs): a TieredCache
// of its own, in its own process, that only reads the keys the chaos
// writers mutate (group g0 of every writer, in every scope: hot keys, read
// again and again), through the same HTTP fault proxy, in strict mode
// (`staleWhileUnreachable: false`) with `maxStaleness` from the harness
// (`false`: coherence off, the control). Its L1 keeps a copy for 30 s: only
// coherence (or the value's own TTL) takes it out. Every read is timed on
// the monotonic clock (process.hrtime) and logged like the clients' reads
// (bench/chaos-client.mjs), so the parent checks them against the write
// history with the bound maxStaleness + slack (bench/coherence-check.mjs).
import { TieredCache, RedisRest, Signer, EdgeCacheError } from 'edgecache';
import { chaosClient } from './chaos-client.mjs';

const cfg = JSON.parse(process.env.CHAOS_CONFIG);
const c = chaosClient(cfg, 'reader');
const { SCOPES, rnd, mono } = c;
const hotKey = () => `w${rnd(cfg.workers)}:g0:k${rnd(cfg.keysPerGroup)}`;

const warnings = [];
const cache = new TieredCache({
  redis: new RedisRest({ url: cfg.url, token: cfg.token, timeout: cfg.timeout }),
  signer: new Signer({ keys: { k1: cfg.secret } }),
  prefix: 'chaos',
  l1: { maxEntries: 2_000, maxBytes: 8 << 20 },
  l1Ttl: 30_000,
  breaker: { threshold: 5, cooldown: cfg.cooldown },
  maxStaleness: cfg.maxStaleness,
  staleWhileUnreachable: false,
  log: (m) => warnings.push(m),
});
const views = SCOPES.map(([, sc]) => (sc ? cache.scope(sc) : cache));

function failed(e) {
  const code = e instanceof EdgeCacheError ? e.code : `non-EdgeCacheError ${e?.name}`;
  c.errors[code] = (c.errors[code] ?? 0) + 1;
  if (!(e instanceof EdgeCacheError)) c.sample(`op threw ${e?.stack ?? e}`);
}

async function op() {
  const sIdx = rnd(SCOPES.length);
  const view = views[sIdx];
  const ts = Date.now();
  c.opStarts.push(ts);
  if (Math.random() < 0.8) {
    const key = hotKey();
    const l1hit = view.l1.has(key);
    const m0 = mono();
    const x = await view.get(key);
    c.verify(sIdx, key, x, ts, Date.now(), l1hit, m0, mono());
  } else {
    const keys = Array.from({ length: 3 }, hotKey);
    const hits = keys.map((k) => view.l1.has(k));
    const m0 = mono();
    const xs = await view.getMany(keys);
    const [te, m1] = [Date.now(), mono()];
    for (let i = 0; i < keys.length; i++) c.verify(sIdx, keys[i], xs[i], ts, te, hits[i], m0, m1);
  }
}

/** Stats every 200 ms: errors by code and the coherence counters, per fault window. */
function snapshot() {
  const st = cache.stats();
  c.snapshots.push({ t: Date.now(), errors: st.l2.errors, breaker: st.breaker.state, rejected: st.l2.rejected, l1hits: st.l1.hits, coherence: st.coherence });
}

process.on('message', (m) => {
  if (m.type === 'start') {
    c.drive(op, m.endAt, {
      snapshot,
      onOpError: failed,
      drainMs: cfg.timeout * 3 + 1_000,
      extra: () => ({ warnings, stats: cache.stats() }),
    });
  }
});
process.send({ type: 'ready' });
