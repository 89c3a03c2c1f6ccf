#!/usr/bin/env bash
# `make rust-starter`: the Rust Worker starter (examples/rust-starter/)
# copied to a fresh folder outside the repository and built the way its
# README says, then run in workerd (scripts/rust-starter-check.mjs): L1
# alone, and two isolates sharing a real redis-server through the bridge.
# The one difference from a user's folder: a [patch.crates-io] line builds
# it against this clone's edgecache instead of the published crate.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export PATH="$HOME/.cargo/bin:$PATH"
# The Node of the caller (the Makefile's): target/wasm-env.sh puts /usr/bin first.
node="$(command -v node)"
T0=$SECONDS
dir="$(mktemp -d "${TMPDIR:-/tmp}/edgecache-rust-starter-XXXXXX")"
[ -n "${EDGECACHE_KEEP:-}" ] || trap 'rm -rf "$dir"' EXIT
cp -r examples/rust-starter/. "$dir/"
printf '\n[patch.crates-io]\nedgecache = { path = "%s" }\n' "$root" >>"$dir/Cargo.toml"
echo "rust-starter: building in $dir"

# README.md, "The wasm32 target": a rustup toolchain with the target
# installed needs nothing; without it (these machines), Debian's rustc-web
# and std built from source (target/wasm-env.sh, written by scripts/setup.sh).
if rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "rust-starter: rustup's wasm32-unknown-unknown target"
else
  echo "rust-starter: no wasm32 std from rustup: rustc-web and build-std (target/wasm-env.sh)"
  # shellcheck source=/dev/null
  . "$root/target/wasm-env.sh"
  export CARGO="$WASM_CARGO"
  mkdir -p "$(rustc --target wasm32-unknown-unknown --print target-libdir)" 2>/dev/null || true
fi
# README.md, "When worker-build tries to download": local binaries.
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
# The [build] command of its wrangler.toml.
(cd "$dir" && "$HOME/.cargo/bin/worker-build" --release)
echo "rust-starter: built in $((SECONDS - T0)) s"
EDGECACHE_BRIDGE_BIN="${EDGECACHE_BRIDGE_BIN:-target/release/edgecache-bridge}" "$node" scripts/rust-starter-check.mjs "$dir"
echo "rust-starter: passed in $((SECONDS - T0)) s"
