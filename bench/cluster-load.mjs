// A bounded load on the bridge in front of a Redis Cluster while a fault
// runs (issue 16), every read checked against the write history. Shared by
// tests/js/cluster-failover.test.mjs (short runs, in make test) and
// bench/cluster-chaos.mjs (longer runs, make cluster-chaos).
//
// Two kinds of clients, in this process:
// - `RedisRest` (retries 0, so that each failure the bridge answers is
//   seen): `keys` keys, each written by one worker only, one operation in
//   flight at a time, half SETs of a fresh value and half GETs. Reads are
//   checked with bound 0 (bench/coherence-check.mjs): a read that starts
//   after a write was acknowledged must return it or a later write; a
//   write that failed is of unknown outcome (a value a read may return,
//   that obliges none).
// - `TieredCache` (failOpen false, strict coherence: maxStaleness
//   `maxStaleness`, staleWhileUnreachable false): `tiers` caches on one
//   prefix, each writing its own keys and reading every key of the prefix,
//   checked with bound maxStaleness + 50 ms.
//
// Every operation is logged [t0, t1, ok, key index, error code]; errors
// are then grouped by the master that owned the key's slot before the
// fault (`groupOf`), so that a fault on one master shows what it cost the
// others.
import { TieredCache, RedisRest, generateSecureKey } from 'edgecache';
import { history, check, now } from './coherence-check.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const SLACK = 50;

// ---- Redis Cluster's key slot: CRC16 (XMODEM) of the key or its {hash tag}, mod 16384.
const CRC = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
  CRC[i] = c & 0xffff;
}
/** The cluster slot of `key` (as CLUSTER KEYSLOT). */
export function keySlot(key) {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const b of bytes) crc = ((crc << 8) & 0xffff) ^ CRC[((crc >> 8) ^ b) & 0xff];
  return crc % 16384;
}

/** Slot -> port of its master, from startCluster's topology(). */
export async function slotOwners(cluster) {
  const owners = new Array(16384);
  for (const n of await cluster.topology()) {
    if (n.role !== 'master' || n.flags.includes('fail')) continue;
    for (const [a, b] of n.slots) for (let s = a; s <= b; s++) owners[s] = n.port;
  }
  return owners;
}

/**
 * `n` key names under `base` whose slots fall in `wanted(slot)` (found by
 * trying suffixes), for a load with enough keys in the slots a fault hits.
 */
export function keysIn(base, n, wanted) {
  const out = [];
  for (let i = 0; out.length < n; i++) {
    const k = `${base}${i}`;
    if (wanted(keySlot(k))) out.push(k);
    if (i > 10_000_000) throw new Error('no such keys');
  }
  return out;
}

/**
 * Runs the load against `url` for `warm` ms, then `fault()` (which resolves
 * to marks: { at, done, ... } in now() ms), then `settle` ms more; resolves
 * to the log and the checks. `keys`: the RedisRest keys' names; `tierKeys`:
 * the tier's (`[]` for none).
 */
export async function underLoad({ url, token, keys, tierKeys = [], tiers = 2, workers = 8, rate = 400, warm = 1000, settle = 2000, timeout = 1000, maxStaleness = 500, prefix = `cl${Math.random().toString(36).slice(2, 8)}`, fault }) {
  const secret = generateSecureKey();
  const h = history(keys.length);
  const th = history(tierKeys.length);
  const ops = []; // [t0, t1, ok, kind ('r'|'t'), key index, code, write?, message]
  const reads = [];
  const tierReads = [];
  let stop = false;
  let seq = 0;
  const perWorker = rate / workers; // ops/s per worker
  const pace = async (started) => {
    const wait = 1000 / perWorker - (now() - started);
    if (wait > 0) await sleep(wait);
  };
  const code = (e) => e?.code ?? e?.name ?? 'Error';

  // Every key starts with a value, written before the load.
  const setup = new RedisRest({ url, token, retries: 0, timeout: 5000 });
  const t00 = now();
  await Promise.all(keys.map((k, i) => setup.set(k, `${i}:init`)));
  keys.forEach((_, i) => h.initial(i, `${i}:init`));
  const rawWorker = async (w) => {
    const r = new RedisRest({ url, token, retries: 0, timeout });
    const mine = keys.map((_, i) => i).filter((i) => i % workers === w);
    while (!stop) {
      const i = mine[Math.floor(Math.random() * mine.length)];
      const t0 = now();
      if (Math.random() < 0.5) {
        const v = `${i}:${++seq}`;
        try {
          await r.set(keys[i], v);
          const t1 = now();
          h.record(t0, [i], [v], t1);
          ops.push([t0, t1, true, 'r', i, undefined, true]);
        } catch (e) {
          h.unknown(t0, [i], [v]);
          ops.push([t0, now(), false, 'r', i, code(e), true, e?.message]);
        }
      } else {
        try {
          const v = await r.get(keys[i]);
          const t1 = now();
          reads.push([t0, t1, i, v]);
          ops.push([t0, t1, true, 'r', i, undefined, false]);
        } catch (e) {
          ops.push([t0, now(), false, 'r', i, code(e), false, e?.message]);
        }
      }
      await pace(t0);
    }
  };

  const caches = Array.from({ length: tierKeys.length ? tiers : 0 }, () =>
    new TieredCache({
      redis: new RedisRest({ url, token, retries: 0, timeout }),
      signer: { keys: { k1: secret } },
      prefix,
      l1Ttl: 60_000,
      maxStaleness,
      staleWhileUnreachable: false,
      failOpen: false,
      log: () => {},
    }),
  );
  if (caches.length) {
    await caches[0].setMany(tierKeys.map((k, i) => [k, `${i}:init`]));
    tierKeys.forEach((_, i) => th.initial(i, `${i}:init`));
  }
  const tierWorker = async (c, w) => {
    const mine = tierKeys.map((_, i) => i).filter((i) => i % caches.length === w);
    while (!stop) {
      const t0 = now();
      if (Math.random() < 0.3) {
        const i = mine[Math.floor(Math.random() * mine.length)];
        const v = `${i}:${++seq}`;
        try {
          await c.set(tierKeys[i], v);
          const t1 = now();
          th.record(t0, [i], [v], t1);
          ops.push([t0, t1, true, 't', i, undefined, true]);
        } catch (e) {
          th.unknown(t0, [i], [v]);
          ops.push([t0, now(), false, 't', i, code(e), true, e?.message]);
        }
      } else {
        const i = Math.floor(Math.random() * tierKeys.length);
        try {
          const v = await c.get(tierKeys[i]);
          const t1 = now();
          tierReads.push([t0, t1, i, v ?? null]);
          ops.push([t0, t1, true, 't', i, undefined, false]);
        } catch (e) {
          ops.push([t0, now(), false, 't', i, code(e), false, e?.message]);
        }
      }
      await pace(t0);
    }
  };

  const t0 = now();
  const running = [
    ...Array.from({ length: workers }, (_, w) => rawWorker(w)),
    ...caches.map((c, w) => tierWorker(c, w)),
  ];
  await sleep(warm);
  const marks = await fault();
  await sleep(settle);
  stop = true;
  await Promise.all(running);
  const t1 = now();
  for (const c of caches) c.close();
  const wrong = check(h.h, reads, { bound: 0, who: 'RedisRest', name: (i) => keys[i] });
  const tierWrong = check(th.h, tierReads, { bound: maxStaleness + SLACK, who: 'TieredCache', name: (i) => tierKeys[i] });
  return { t00, t0, t1, marks, ops, reads: reads.length, tierReads: tierReads.length, wrong, tierWrong, h: h.h, prefix };
}

/**
 * Errors grouped: `groupOf(kind, keyIndex)` -> a group name. Per group:
 * operations, errors (by code, and by message with digits blanked), the first and last failure and the first
 * success after the last failure, in ms since `since`.
 */
export function byGroup(ops, groupOf, since) {
  const groups = {};
  for (const [t0, t1, ok, kind, i, code, write, message] of ops) {
    const g = groupOf(kind, i);
    const s = (groups[g] ??= { ops: 0, errors: 0, codes: {}, messages: {}, firstFail: undefined, lastFail: undefined, writesOkAgain: undefined, _okWrites: [] });
    s.ops++;
    if (ok) {
      if (write) s._okWrites.push(t1);
    } else {
      s.errors++;
      s.codes[code] = (s.codes[code] ?? 0) + 1;
      // The distinct messages (numbers and ports blanked), with a count.
      const m = String(message).replace(/\d+/g, 'N').slice(0, 160);
      s.messages[m] = (s.messages[m] ?? 0) + 1;
      s.firstFail = Math.min(s.firstFail ?? Infinity, t0 - since);
      s.lastFail = Math.max(s.lastFail ?? -Infinity, t1 - since);
    }
  }
  for (const s of Object.values(groups)) {
    if (s.lastFail !== undefined) {
      const after = s._okWrites.map((t) => t - since).filter((t) => t > s.lastFail);
      s.writesOkAgain = after.length ? Math.round(Math.min(...after)) : undefined;
      s.firstFail = Math.round(s.firstFail);
      s.lastFail = Math.round(s.lastFail);
    }
    delete s._okWrites;
  }
  return groups;
}

/** Polls `cli(i, 'ROLE')` until node i is a master; resolves to now() then. */
export async function promoted(cluster, i, ms = 30_000) {
  const deadline = now() + ms;
  for (;;) {
    const role = await cluster.cli(i, 'ROLE').catch(() => '');
    if (role.startsWith('master')) return now();
    if (now() > deadline) throw new Error(`node ${cluster.nodes[i].port} not promoted in ${ms} ms`);
    await sleep(20);
  }
}

/** The node index of a replica of the master at index `m`. */
export async function replicaOf(cluster, m) {
  const topo = await cluster.topology();
  const id = topo.find((n) => n.port === cluster.nodes[m].port).id;
  const r = topo.find((n) => n.masterId === id && !n.failed);
  return cluster.nodes.findIndex((n) => n.port === r.port);
}

/**
 * The three faults of the issue, each a `fault` for underLoad that returns
 * its marks, on `cluster`; `victim` is the master index to act on.
 */
export const FAULTS = {
  /** kill -9 of the master; marks: at (the kill), promoted (its replica answers ROLE master). */
  async kill(cluster, victim) {
    const replica = await replicaOf(cluster, victim);
    const at = now();
    await cluster.nodes[victim].kill9();
    const done = await promoted(cluster, replica);
    return { at, promoted: done, replica, victim };
  },
  /** CLUSTER FAILOVER on a replica of the master; marks: at, promoted. */
  async failover(cluster, victim) {
    const replica = await replicaOf(cluster, victim);
    const at = now();
    await cluster.cli(replica, 'CLUSTER', 'FAILOVER');
    const done = await promoted(cluster, replica);
    return { at, promoted: done, replica, victim };
  },
  /** 300 slots (or `slots`) moved from the master to another with redis-cli --cluster reshard; marks: at, done. */
  async reshard(cluster, victim, { slots = 300, to } = {}) {
    const topo = await cluster.topology();
    const from = topo.find((n) => n.port === cluster.nodes[victim].port);
    const target = to === undefined ? topo.find((n) => n.role === 'master' && n.id !== from.id && n.slots.length > 0) : topo.find((n) => n.port === cluster.nodes[to].port);
    const at = now();
    await cluster.cli(victim, '--cluster', 'reshard', `127.0.0.1:${cluster.nodes[victim].port}`, '--cluster-from', from.id, '--cluster-to', target.id, '--cluster-slots', slots, '--cluster-yes');
    return { at, done: now(), victim, to: cluster.nodes.findIndex((n) => n.port === target.port) };
  },
};

/** A one-screen summary of a run. */
export function summary(name, run, groups, extra = {}) {
  const m = run.marks;
  const rel = (t) => (t === undefined ? undefined : Math.round(t - m.at));
  const secs = (run.t1 - run.t0) / 1000;
  return {
    fault: name,
    seconds: Math.round(secs * 10) / 10,
    opsPerSecond: Math.round(run.ops.length / secs),
    promotedAfter: rel(m.promoted),
    doneAfter: rel(m.done),
    readsChecked: run.reads + run.tierReads,
    wrong: run.wrong.length + run.tierWrong.length,
    groups,
    ...extra,
  };
}

/**
 * Full SCANs (`MATCH match COUNT 50`) back to back, each checked to hold
 * every key of `expect` (keys nobody writes during the run): a SCAN must
 * cover every master and, through a topology change, skip no key (it may
 * return one twice). `stop()` resolves to { scans, incomplete, errors,
 * missing (the first incomplete scan's missing keys) }.
 */
export function scanLoop({ url, token, match, expect }) {
  const r = new RedisRest({ url, token, retries: 0, timeout: 2000 });
  const want = new Set(expect);
  const out = { scans: 0, incomplete: 0, errors: 0, codes: {}, missing: undefined };
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const seen = new Set();
      let cursor = '0';
      try {
        do {
          const [next, batch] = await r.scan(cursor, { match, count: 50 });
          for (const k of batch) seen.add(k);
          cursor = next;
        } while (cursor !== '0');
      } catch (e) {
        out.errors++;
        out.codes[e?.code ?? 'Error'] = (out.codes[e?.code ?? 'Error'] ?? 0) + 1;
        await sleep(20);
        continue;
      }
      out.scans++;
      const missing = [...want].filter((k) => !seen.has(k));
      if (missing.length) {
        out.incomplete++;
        out.missing ??= missing.slice(0, 5).concat(missing.length > 5 ? [`... ${missing.length} in all`] : []);
      }
      await sleep(50); // a bounded load
    }
  })();
  return {
    async stop() {
      stop = true;
      await loop;
      return out;
    },
  };
}
