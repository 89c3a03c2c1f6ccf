// Another Node process for tests/js/tiered.test.mjs: runs the operations
// in $OPS (JSON: [op, scope|null, key, value?]) against a TieredCache on
// the same bridge, and prints their results as JSON.
import { TieredCache, RedisRest, Signer } from 'edgecache';

const cache = new TieredCache({
  redis: new RedisRest({ url: process.env.BRIDGE_URL, token: process.env.BRIDGE_TOKEN }),
  signer: new Signer({ keys: { k1: process.env.SECRET } }),
  prefix: 'peer',
});
const out = [];
for (const [op, scope, key, value] of JSON.parse(process.env.OPS)) {
  const view = scope ? cache.scope(scope) : cache;
  if (op === 'set') out.push(await view.set(key, value).then(() => true));
  else if (op === 'get') out.push(await view.get(key));
  else if (op === 'incr') out.push(await view.incr(key, value));
  else throw new Error(`unknown op ${op}`);
}
process.stdout.write(JSON.stringify(out));
