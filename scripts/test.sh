#!/usr/bin/env bash
# Every test suite. Run through `make test`, which sets up first.
#
# Independent work runs side by side, since most of a fresh run is
# compiling on 2 cores with serial gaps (linking, LTO, test runs):
#   * the release bridge and the example Rust Worker build in the
#     background from the start (their own build directories, so they
#     never wait on the foreground's cargo lock);
#   * the package build, lints, Rust tests and wasm-bindgen tests run in
#     the foreground meanwhile;
#   * the JS files then run several at a time, except the few that time
#     recoveries or load the machine (SERIAL below), which run alone after.
# Each section prints when it started, so a slow step shows in CI's log.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
T0=$SECONDS
section() { printf '\n\033[1m== %s\033[0m (%d s in)\n' "$*" $((SECONDS - T0)); }
logs=target/test-logs
mkdir -p "$logs"

background() { # background NAME COMMAND... : runs it, its output in $logs/NAME.log
  local name=$1
  shift
  ("$@") >"$logs/$name.log" 2>&1 &
  eval "pid_${name//-/_}=$!"
}
collect() { # collect NAME : waits for a background job; its log if it failed
  local var="pid_${1//-/_}"
  if ! wait "${!var}"; then
    cat "$logs/$1.log" >&2
    echo "test.sh: $1 failed (its log is above, and in $logs/$1.log)" >&2
    exit 1
  fi
  printf '%s: done (%d s in)\n' "$1" $((SECONDS - T0))
}
trap 'jobs -p | xargs -r kill 2>/dev/null || true' EXIT

section "Background: the release bridge and the example Rust Worker (worker-build), for the JS tests"
# Optimized, but without the release profile's fat LTO and single codegen
# unit (kept for the npm wasm's size): those are most of these two builds'
# time, and the tests measure no speed (`make bench` builds its own).
fast_release() { CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 "$@"; }
# Its own target dir: the wasm build's build scripts lock target/release.
export EDGECACHE_BRIDGE_BIN=target/bridge/release/edgecache-bridge
background bridge-build fast_release cargo build --quiet --release -p edgecache-bridge --target-dir target/bridge
background rust-worker-build fast_release nice -n 5 scripts/rust-worker.sh

section "Build the npm package (dist/)"
scripts/build.sh

section "Rust: format and lints"
cargo fmt --all -- --check
# With the Rust Workers binding (feature `worker`), in one pass: on the
# host the feature only adds code (what it leaves out is wasm32-only), so
# one build checks both and compiles the crate once, not twice.
cargo clippy --quiet --workspace --all-targets --features edgecache/worker -- -D warnings

section "Rust: unit tests, doctests, model-based proptests, Glob vs redis-server, the bridge"
cargo test --quiet --workspace --features edgecache/worker

wasm_test() {
  (
    # shellcheck source=/dev/null
    . target/wasm-env.sh
    export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
    # No debug info: std and the deps build in 2/3 of the CPU time, and the
    # test wasm is 5 MB instead of 27 (the runner reads it twice: Node and
    # Chromium). A failing test still prints its panic message.
    export CARGO_PROFILE_DEV_DEBUG=0
    $WASM_CARGO test --target wasm32-unknown-unknown --test web "$@"
  )
}
section "wasm-bindgen-test in Node"
wasm_test
section "wasm-bindgen-test in headless Chromium"
CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_USE_BROWSER=1 wasm_test

section "Waiting for the background builds"
collect bridge-build
collect rust-worker-build

# Files that time recoveries, measure memory or put the machine under load:
# alone, after the rest, so that neighbours neither slow them nor are
# slowed by them.
SERIAL=(tests/js/chaos.test.mjs tests/js/chaos-memory.test.mjs tests/js/bridge-abuse.test.mjs tests/js/coherence-multi.test.mjs)
# Failovers timed against Redis's own promotion (Sentinel's and a
# cluster's): mostly waiting, little CPU, so these two run side by side,
# after the rest.
FAILOVER=(tests/js/bridge-sentinel.test.mjs tests/js/cluster-failover.test.mjs)
parallel=()
for f in tests/js/*.test.mjs; do
  [[ " ${SERIAL[*]} ${FAILOVER[*]} " == *" $f "* ]] || parallel+=("$f")
done
rc=0
section "JS tests of the built package (dist/), ${#parallel[@]} files, 3 at a time"
# Files, not the folder: Node >= 22 reads --test arguments as file globs.
node --test --test-concurrency=3 "${parallel[@]}" || rc=1
section "JS tests that run alone: ${SERIAL[*]}"
node --test --test-concurrency=1 "${SERIAL[@]}" || rc=1
section "JS failover tests, side by side: ${FAILOVER[*]}"
node --test --test-concurrency=2 "${FAILOVER[@]}" || rc=1
section "Done: $([ $rc = 0 ] && echo passed || echo FAILED)"
exit $rc
