// One reader process of tests/js/coherence-multi.test.mjs: a TieredCache of
// its own (its own L1, client and writer id) that reads the test's keys
// back to back until told to stop, and records every read with this
// machine's monotonic clock (CLOCK_MONOTONIC, shared by every process on
// it): [start ms, end ms, key index, value]. It prints "ready" once its L1
// holds every key, and its records as one JSON line when stdin closes.
import { TieredCache, RedisRest } from 'edgecache';

const { URL: url, TOKEN: token, SECRET: secret, PREFIX: prefix, MAX_STALENESS, KEYS, PUSH } = process.env;
const keys = JSON.parse(KEYS); // [[kind ('v' value | 'n' counter), tenant | null, key], ...]
const cache = new TieredCache({
  redis: new RedisRest({ url, token }),
  signer: { keys: { k1: secret } },
  prefix,
  l1Ttl: 600_000, // only coherence can take a copy out of L1
  maxStaleness: MAX_STALENESS === 'off' ? false : Number(MAX_STALENESS),
  push: PUSH === '1',
  log: () => {},
});
const views = keys.map(([, tenant]) => (tenant === null ? cache : cache.scope({ tenant })));
const ms = () => Number(process.hrtime.bigint()) / 1e6;
const read = (i) => (keys[i][0] === 'n' ? views[i].counter(keys[i][2]) : views[i].get(keys[i][2]));

const records = [];
// Reads that threw (a counter read throws when Redis fails, as after a
// SIGSTOP longer than the client's timeout): counted, not records.
const errors = {};
let stop = false;
process.stdin.on('data', () => {});
process.stdin.on('end', () => {
  stop = true;
});
if (PUSH === '1') while (cache.stats().coherence.push.state !== 'open') await new Promise((r) => setTimeout(r, 10));
for (let i = 0; i < keys.length; i++) await read(i);
for (let i = 0; i < keys.length; i++) await read(i);
process.stdout.write('ready\n');
let n = 0;
while (!stop) {
  const i = n++ % keys.length;
  const t0 = ms();
  let v;
  try {
    v = await read(i);
  } catch (e) {
    errors[e?.code ?? String(e)] = (errors[e?.code ?? String(e)] ?? 0) + 1;
    continue;
  }
  records.push([t0, ms(), i, v ?? null]);
  // Yield to I/O now and then (stdin end, the lease reads), which also bounds the records.
  if (n % 8 === 0) await new Promise((r) => setTimeout(r, 1));
}
cache.close();
process.stdout.write(JSON.stringify({ records, errors, stats: cache.stats().coherence ?? null }) + '\n');
