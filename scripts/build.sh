#!/usr/bin/env bash
# Builds the npm package into dist/: the wasm (release, without its name
# section), its wasm-bindgen glue, the same wasm inlined for every platform
# but Workers, the TypeScript front end with its .d.ts types, and the
# Workers bundle (scripts/wasm-glue.mjs and scripts/dist.mjs say how).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# The wasm toolchain's environment (written by scripts/setup.sh) only for
# the wasm build, in a subshell.
(
  # shellcheck source=/dev/null
  . target/wasm-env.sh
  $WASM_CARGO build --quiet --release --target wasm32-unknown-unknown --lib
)
# The name section (function names for stack traces) was a fifth of the
# file; panics abort, and the JS front end names its own errors.
rm -rf js/wasm
wasm-bindgen --target web --remove-name-section --remove-producers-section \
  --out-dir js/wasm --out-name edgecache \
  target/wasm32-unknown-unknown/release/edgecache.wasm
node scripts/wasm-glue.mjs
rm -rf dist
node_modules/.bin/tsc -p js/tsconfig.json
mkdir -p dist/wasm
cp js/wasm/edgecache.js js/wasm/edgecache.d.ts js/wasm/edgecache_bg.wasm \
  js/wasm/edgecache_bg.inline.js js/wasm/edgecache_bg.inline.d.ts dist/wasm/
node scripts/dist.mjs
