#!/usr/bin/env bash
# Every test suite. Run through `make test`, which sets up and builds first.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

section "Rust: format and lints"
cargo fmt --all -- --check
cargo clippy --quiet --workspace --all-targets -- -D warnings
# The Rust Workers binding (feature `worker`): its host-side code.
cargo clippy --quiet -p edgecache --features worker --all-targets -- -D warnings

section "Rust: unit tests, doctests, model-based proptest, Glob vs redis-server, the bridge"
cargo test --quiet --workspace
cargo test --quiet -p edgecache --features worker --lib worker
cargo test --quiet -p edgecache --features worker --doc worker

wasm_test() {
  (
    # shellcheck source=/dev/null
    . target/wasm-env.sh
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    $WASM_CARGO test --target wasm32-unknown-unknown --test web "$@"
  )
}
section "wasm-bindgen-test in Node"
wasm_test
section "wasm-bindgen-test in headless Chromium"
CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_USE_BROWSER=1 wasm_test

section "edgecache-bridge, release build, for the JS tests"
cargo build --quiet --release -p edgecache-bridge

section "The example Rust Worker (worker-build), for the JS tests"
scripts/rust-worker.sh

section "JS tests of the built package (dist/)"
# Files, not the folder: Node >= 22 reads --test arguments as file globs.
node --test --test-concurrency=1 tests/js/*.test.mjs
