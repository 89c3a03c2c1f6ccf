#!/usr/bin/env bash
# `make dev`: the example Rust Worker (wrangler.toml, examples/rust-worker)
# on a local workerd at http://127.0.0.1:8787. wrangler builds it first
# (the [build] command: scripts/rust-worker.sh, worker-build).
#
# L1 only, unless the Redis bindings are in the environment (or in
# .dev.vars, which wrangler reads itself): EDGECACHE_REDIS_URL,
# EDGECACHE_REDIS_TOKEN, EDGECACHE_SIGNING_KEYS (or the UPSTASH_REDIS_REST_*
# names), handed to the Worker with --var.
#
# `make dev-tiered` (--tiered): a redis-server and edgecache-bridge on free
# loopback ports, fresh secrets, and the Worker tiered against them; both
# servers stop with the Worker (Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
args=()
for name in EDGECACHE_REDIS_URL EDGECACHE_REDIS_TOKEN UPSTASH_REDIS_REST_URL UPSTASH_REDIS_REST_TOKEN \
  EDGECACHE_SIGNING_KEYS EDGECACHE_ADMIN_TOKEN EDGECACHE_PREFIX EDGECACHE_MAX_ENTRIES EDGECACHE_MAX_BYTES \
  EDGECACHE_DEFAULT_TTL EDGECACHE_L1_TTL EDGECACHE_REDIS_TIMEOUT ORIGIN_URL CACHE_TTL STALE_TTL; do
  if [ -n "${!name:-}" ]; then args+=(--var "$name:${!name}"); fi
done

if [ "${1:-}" = --tiered ]; then
  command -v redis-server >/dev/null || { echo "redis-server is missing: make setup (or apt-get install redis-server)" >&2; exit 1; }
  cargo build --quiet --release -p edgecache-bridge
  secret() { node -e "process.stdout.write(require('node:crypto').randomBytes(32).toString('base64url'))"; }
  port=$(node -e "const s=require('node:net').createServer().listen(0,'127.0.0.1',()=>{process.stdout.write(String(s.address().port));s.close()})")
  tmp=$(mktemp -d)
  pids=()
  cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
  trap cleanup EXIT INT TERM
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >"$tmp/redis.log" 2>&1 &
  pids+=($!)
  token=$(secret)
  RUST_LOG=${RUST_LOG:-warn} EDGECACHE_BRIDGE_TOKEN="$token" target/release/edgecache-bridge --listen 127.0.0.1:0 \
    --redis-url "redis://127.0.0.1:$port" >"$tmp/bridge.out" &
  pids+=($!)
  url=""
  for _ in $(seq 100); do
    url=$(sed -n 's/^listening on \(http:\/\/[^ ]*\).*/\1/p' "$tmp/bridge.out" | head -1)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "edgecache-bridge did not start" >&2; exit 1; }
  admin=$(secret)
  args+=(--var "EDGECACHE_REDIS_URL:$url" --var "EDGECACHE_REDIS_TOKEN:$token"
    --var "EDGECACHE_SIGNING_KEYS:k1:$(secret)" --var "EDGECACHE_ADMIN_TOKEN:$admin")
  cat <<MSG
dev-tiered: redis-server on 127.0.0.1:$port, edgecache-bridge at $url
            purge with: curl -X DELETE -H 'Authorization: Bearer $admin' 'http://127.0.0.1:8787/__edgecache/purge?pattern=*'
MSG
  node_modules/.bin/wrangler dev "${args[@]}"
else
  exec node_modules/.bin/wrangler dev "${args[@]}"
fi
