// Run by scripts/rust-starter.sh: the starter Worker built in the folder
// given, in workerd (Miniflare), as `wrangler dev` would serve it: L1 alone
// (a page MISS then HIT, a counter), then two isolates over a real
// redis-server and edgecache-bridge (a page one rendered is an L2 HIT in
// the other; the counter is shared). Exits non-zero on any difference.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { startRedis, startBridge } from '../tests/js/servers.mjs';

const dir = process.argv[2];
const workers = [];
function worker(bindings = {}) {
  const mf = new Miniflare({
    scriptPath: path.join(dir, 'build/index.js'),
    // The starter's folder is outside the repository (and this script's cwd).
    modulesRoot: dir,
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    bindings,
  });
  workers.push(mf);
  return mf;
}
async function get(mf, p, init) {
  const res = await mf.dispatchFetch(`http://localhost${p}`, init);
  return { status: res.status, cache: res.headers.get('x-cache'), tier: res.headers.get('x-cache-tier'), text: await res.text() };
}

let redis;
let bridge;
try {
  const l1 = worker();
  const first = await get(l1, '/hello');
  assert.equal(first.status, 200, first.text);
  assert.equal(first.cache, 'MISS');
  assert.match(first.text, /^rendered \/hello at \d+$/);
  assert.deepEqual(await get(l1, '/hello'), { ...first, cache: 'HIT', tier: 'l1' });
  assert.equal((await get(l1, '/count', { method: 'POST' })).text, '1');
  assert.equal((await get(l1, '/count', { method: 'POST' })).text, '2');
  console.log('rust-starter: L1 alone: MISS, then HIT from l1; the counter counts');

  const token = randomBytes(24).toString('base64url');
  redis = await startRedis();
  bridge = await startBridge({ redisUrl: redis.url, token });
  const bindings = { EDGECACHE_REDIS_URL: bridge.url, EDGECACHE_REDIS_TOKEN: token, EDGECACHE_SIGNING_KEYS: `k1:${randomBytes(32).toString('base64url')}` };
  const [a, b] = [worker(bindings), worker(bindings)];
  const page = await get(a, '/shared');
  assert.equal(page.cache, 'MISS', page.text);
  assert.deepEqual(await get(b, '/shared'), { ...page, cache: 'HIT', tier: 'l2' });
  assert.equal((await get(a, '/count', { method: 'POST' })).text, '1');
  assert.equal((await get(b, '/count', { method: 'POST' })).text, '2');
  console.log('rust-starter: two isolates over redis-server and the bridge: an L2 HIT, a shared counter');
} finally {
  for (const mf of workers) await mf.dispose();
  await bridge?.stop();
  await redis?.stop();
}
