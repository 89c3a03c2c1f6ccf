// `make dev-cluster` (issue 16): a local Redis Cluster (3 masters, 3
// replicas, on free loopback ports, no persistence) and edgecache-bridge in
// front of it, for trying the bridge on a cluster. Prints the bridge's URL
// and token, the cluster URL and a few commands to try; Ctrl-C stops
// everything (the nodes' temp dirs are removed).
//
//   node scripts/dev-cluster.mjs [--masters 3] [--replicas 1] [--node-timeout 2000] [--port 0]
// The bridge binary: $EDGECACHE_BRIDGE_BIN, else target/release/edgecache-bridge.
import { randomBytes } from 'node:crypto';
import { startCluster, startBridgeOn, BRIDGE_BIN } from '../tests/js/servers.mjs';

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const token = randomBytes(24).toString('base64url');
const t0 = Date.now();
const cluster = await startCluster({ masters: arg('masters', 3), replicas: arg('replicas', 1), nodeTimeout: arg('node-timeout', 2000) });
let bridge;
try {
  bridge = await startBridgeOn(arg('port', 0), { redisUrl: cluster.url, token, env: { RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
} catch (e) {
  await cluster.stop();
  throw e;
}
const topo = await cluster.topology();
const masters = topo.filter((n) => n.role === 'master').sort((a, b) => a.slots[0][0] - b.slots[0][0]);
const p = cluster.nodes[0].port;
console.log(`dev-cluster: up in ${Date.now() - t0} ms (bridge ${BRIDGE_BIN})

  bridge   ${bridge.url}
  token    ${token}
  cluster  ${cluster.url}
${masters.map((m) => `  master   127.0.0.1:${m.port}  slots ${m.slots.map((s) => s.join('-')).join(',')}  replica ${topo.filter((r) => r.masterId === m.id).map((r) => `127.0.0.1:${r.port}`).join(', ')}`).join('\n')}

Try:
  export EDGECACHE_REDIS_URL=${bridge.url} EDGECACHE_REDIS_TOKEN=${token}
  curl -H "Authorization: Bearer $EDGECACHE_REDIS_TOKEN" -d '["MSET","a","1","b","2","c","3"]' $EDGECACHE_REDIS_URL
  curl -H "Authorization: Bearer $EDGECACHE_REDIS_TOKEN" -d '["MGET","a","b","c"]' $EDGECACHE_REDIS_URL
  curl $EDGECACHE_REDIS_URL/healthz
  redis-cli -c -p ${p} cluster nodes                 # the cluster itself
  kill -9 ${cluster.nodes.find((n) => n.port === masters[0]?.port)?.proc.pid}                                  # a master dies; its replica takes over after ${arg('node-timeout', 2000)} ms + election

Ctrl-C stops the bridge and the cluster.`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log('\ndev-cluster: stopping');
  await bridge.stop();
  await cluster.stop();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
bridge.proc.once('exit', (code) => {
  if (stopping) return;
  console.error(`dev-cluster: the bridge exited (${code}); stopping the cluster`);
  cluster.stop().then(() => process.exit(1));
});
