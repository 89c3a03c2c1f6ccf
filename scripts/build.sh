#!/usr/bin/env bash
# Builds the npm package into dist/: the wasm (release), its wasm-bindgen
# glue, and the TypeScript front end compiled with its .d.ts types.
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
wasm-bindgen --target web --out-dir js/wasm --out-name edgecache \
  target/wasm32-unknown-unknown/release/edgecache.wasm
rm -rf dist
node_modules/.bin/tsc -p js/tsconfig.json
mkdir -p dist/wasm
cp js/wasm/edgecache.js js/wasm/edgecache.d.ts js/wasm/edgecache_bg.wasm js/wasm/edgecache_bg.wasm.d.ts dist/wasm/
printf 'build: dist/ ready (wasm %s bytes, %s gzipped)\n' \
  "$(wc -c < dist/wasm/edgecache_bg.wasm)" "$(gzip -9c dist/wasm/edgecache_bg.wasm | wc -c)"
