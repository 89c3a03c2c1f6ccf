#!/usr/bin/env bash
# Builds the example Rust Worker (examples/rust-worker) with worker-build
# into examples/rust-worker/build/ (index.js + index_bg.wasm), offline:
# worker-build's downloads are pointed at local binaries (wasm-bindgen from
# `cargo install`, esbuild from npm; wasm-opt is off in its Cargo.toml).
# Run by `make dev`, `make test` and wrangler's [build] (wrangler.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export PATH="$HOME/.cargo/bin:$PATH"
# The wasm toolchain's environment (written by scripts/setup.sh).
# shellcheck source=/dev/null
. target/wasm-env.sh
# worker-build refuses to start without the wasm32 target's libdir; with
# build-std (Debian's rustc-web) an empty one is enough.
mkdir -p "$(rustc --target wasm32-unknown-unknown --print target-libdir)" 2>/dev/null || true
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
export CARGO="$WASM_CARGO"
cd examples/rust-worker
exec "$HOME/.cargo/bin/worker-build" --release
