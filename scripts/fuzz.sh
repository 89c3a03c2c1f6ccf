#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS each (default 600, the
# campaign the reliability issue asks for) and prints the executions per
# target. `make fuzz` runs it; CI runs the proptest twins instead.
#   FUZZ_SECONDS=60 scripts/fuzz.sh          # a short campaign
#   scripts/fuzz.sh rest layout              # some targets only
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH=${FUZZ_SECONDS:-600}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo install cargo-fuzz (a few minutes)"
  cargo install -q cargo-fuzz --locked
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
printf '%-16s %14s %10s\n' target executions seconds
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  seeds=(); [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  log="target/fuzz-$t.log"
  mkdir -p target
  cargo +nightly fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$log" 2>&1 || { tail -40 "$log"; echo "fuzz: $t FAILED (log: $log)"; exit 1; }
  execs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  printf '%-16s %14s %10s\n' "$t" "$execs" "$SECONDS_EACH"
done
