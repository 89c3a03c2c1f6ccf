// What the chaos harness's two kinds of client share (bench/chaos-worker.mjs,
// a Node TieredCache, and bench/chaos-rust-worker.mjs, the example Rust
// Worker in workerd): faults trapped in the process, the key space, the
// log of operations and the check of every value read, the load loop at a
// fixed rate, and the result sent to the parent (bench/chaos.mjs).
//
// Keys: worker w writes and deletes only its own keys (`w<w>:g<g>:k<i>`),
// in every scope; every worker reads everyone's. Counters (`cnt:<j>`) are
// shared. The log: reads [R, scope, key, w, v, ts, te, l1hit] (misses are
// counted only); sets [S, scope, key, v, ttl, ts, te(, ttlFrom)]; deletes
// [D, scope, key, ts, te, ok]; pattern deletes [P, scope, prefix, ts, te,
// ok]; incr [I, scope, key, by, ts, te, outcome]. Times are Date.now().
// Reads also carry their monotonic start and end ([R, ..., l1hit, m0, m1]),
// and the mutations of values go to a second log on the monotonic clock,
// for the coherence bound (bench/coherence-check.mjs): `writes`, each
// [op ('S' | 'D' | 'P'), scope, key | prefix, version | null, m0, m1,
// acked, te] (acked: Redis ran it and its log append; false: the outcome
// is unknown or it was never sent; te: its end on Date.now(), for the
// faults it overlapped).
import { whyWrong } from './chaos-values.mjs';
import { now as mono } from './coherence-check.mjs';

/** The shared state and helpers of one client process of kind `kind` ('node' | 'rust'). */
export function chaosClient(cfg, kind) {
  const W = cfg.worker;
  const SCOPES = cfg.scopes; // [name, scopeOptions|null]
  const faults = { unhandled: 0, uncaught: 0, samples: [] };
  const sample = (s) => {
    if (faults.samples.length < 5) faults.samples.push(s);
  };
  process.on('unhandledRejection', (e) => {
    faults.unhandled++;
    sample(`unhandledRejection: ${e?.stack ?? e}`);
  });
  process.on('uncaughtException', (e) => {
    faults.uncaught++;
    sample(`uncaughtException: ${e?.stack ?? e}`);
  });

  const rnd = (n) => Math.floor(Math.random() * n);
  const keyOf = (w, g, i) => `w${w}:g${g}:k${i}`;
  const c = {
    W,
    SCOPES,
    faults,
    sample,
    rnd,
    anyKey: () => keyOf(rnd(cfg.workers), rnd(cfg.groups), rnd(cfg.keysPerGroup)),
    ownKey: () => keyOf(W, rnd(cfg.groups), rnd(cfg.keysPerGroup)),
    log: [],
    writes: [],
    mono,
    /** A mutation begins (see `writes`): call `done(acked)` when it ends. */
    write(op, scopeIdx, target, version = null) {
      const w = [op, scopeIdx, target, version, mono(), 0, false, 0];
      c.writes.push(w);
      return {
        done(acked) {
          w[5] = mono();
          w[6] = acked;
          w[7] = Date.now();
        },
      };
    },
    immediate: [], // wrong values found at once: corrupt, another key or scope, not an object
    errors: {}, // failed operations by code
    opStarts: [],
    okAt: [], // answers that prove a Redis round trip, for recovery times
    snapshots: [], // the cache's stats every 200 ms, for errors by code per fault window
    issued: 0,
    skipped: 0,
    inFlight: 0,
    reads: 0,
    misses: 0,
    missAt: [], // when each miss began (Date.now())
    l1Served: 0,

    /**
     * Checks a value read for `key` in scope `scopeIdx` (undefined: a miss)
     * and logs it; m0, m1: the read's start and end on the monotonic clock.
     */
    verify(scopeIdx, key, x, ts, te, l1hit, m0, m1) {
      c.reads++;
      if (x === undefined) {
        c.misses++;
        c.missAt.push(ts);
        return;
      }
      const why = whyWrong(x, key, SCOPES[scopeIdx][0]);
      if (why !== undefined) {
        c.immediate.push({ scope: SCOPES[scopeIdx][0], key, why, value: JSON.stringify(x).slice(0, 200), ts, te });
        return;
      }
      if (l1hit) c.l1Served++;
      c.log.push(['R', scopeIdx, key, x.w, x.v, ts, te, l1hit ? 1 : 0, m0, m1]);
    },

    /**
     * Runs `op` cfg.rate times a second (at most cfg.maxInFlight at once)
     * until `endAt`, with `snapshot` every 200 ms; drains for up to
     * `drainMs`, then sends the result (`extra` added) and exits.
     */
    async drive(op, endAt, { snapshot, onOpError, drainMs, extra }) {
      const perTick = Math.max(1, Math.round((cfg.rate * cfg.tick) / 1000));
      const timer = setInterval(snapshot, 200);
      await snapshot();
      while (Date.now() < endAt) {
        const tickStart = Date.now();
        for (let i = 0; i < perTick; i++) {
          if (c.inFlight >= cfg.maxInFlight) {
            c.skipped++;
            continue;
          }
          c.inFlight++;
          c.issued++;
          op()
            .catch(onOpError)
            .finally(() => c.inFlight--);
        }
        const wait = cfg.tick - (Date.now() - tickStart);
        await new Promise((r) => setTimeout(r, Math.max(1, wait)));
      }
      const drainUntil = Date.now() + drainMs;
      while (c.inFlight > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
      clearInterval(timer);
      await snapshot();
      const { log, writes, opStarts, immediate, errors, okAt, snapshots, issued, skipped, reads, misses, missAt, l1Served } = c;
      process.send(
        {
          type: 'result',
          worker: W,
          kind,
          log,
          writes,
          opStarts,
          immediate,
          errors,
          faults,
          okAt,
          snapshots,
          issued,
          skipped,
          leftInFlight: c.inFlight,
          reads,
          misses,
          missAt,
          l1Served,
          ...(await extra()),
        },
        () => process.exit(0),
      );
    },
  };
  return c;
}
