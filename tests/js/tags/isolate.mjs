// One isolate of tests/js/tags-multi.test.mjs: a TieredCache of its own
// (its own L1, client and writer id) in its own process, driven by JSON
// lines on stdin: [id, method, ...args] on the cache (or on a scope view
// when the method is "scope.<tenant>.<method>"), answered on stdout as
// [id, result] or [id, null, error code]. "l1has" answers whether its L1
// holds a key; "stats" its stats().
import readline from 'node:readline';
import { TieredCache, RedisRest } from 'edgecache';

const { URL: url, TOKEN: token, SECRET: secret, PREFIX: prefix, MAX_STALENESS } = process.env;
const cache = new TieredCache({
  redis: new RedisRest({ url, token }),
  signer: { keys: { k1: secret } },
  prefix,
  l1Ttl: 600_000, // only tags and coherence take a copy out of L1
  maxStaleness: Number(MAX_STALENESS),
  log: () => {},
});

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', async (line) => {
  const [id, method, ...args] = JSON.parse(line);
  try {
    let target = cache;
    let name = method;
    if (method.startsWith('scope.')) {
      const [, tenant, m] = method.split('.');
      target = cache.scope({ tenant });
      name = m;
    }
    let out;
    if (name === 'l1has') out = target.l1.has(args[0]);
    else if (name === 'stats') out = target.stats();
    else out = await target[name](...args);
    if (out === target) out = true;
    process.stdout.write(JSON.stringify([id, out ?? null]) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify([id, null, e?.code ?? String(e)]) + '\n');
  }
});
rl.on('close', () => process.exit(0));
process.stdout.write('ready\n');
