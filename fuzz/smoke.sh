#!/usr/bin/env bash
# Fuzz smoke, run by scripts/test.sh and alone (`fuzz/smoke.sh`): builds every fuzz target, runs
# each target's committed corpus once (`-runs=0`; crash inputs kept there are regressions), then
# fuzzes each for FUZZ_SMOKE_SECS seconds (5 by default). Any crash fails it. See fuzz/README.md.
#
# Needs the nightly toolchain; without it, says the smoke is skipped and exits 0. Installs
# cargo-fuzz into $HOTLEDGER_TOOLS (/var/tmp/hotledger-tools) when it is not found.
set -euo pipefail
cd "$(dirname "$0")"
. ./env.sh

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "==> fuzz smoke SKIPPED: no nightly toolchain (cargo-fuzz needs one: rustup toolchain install nightly)"
  exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz into $HOTLEDGER_TOOLS (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked --root "$HOTLEDGER_TOOLS"
fi

secs="${FUZZ_SMOKE_SECS:-5}"
# The sanitizer is off: the workspace forbids unsafe code, and the build must match between
# `build` and `run` or cargo-fuzz rebuilds.
fuzz=(cargo +nightly fuzz)
opts=(--sanitizer none)
echo "==> cargo +nightly fuzz build ${opts[*]} (target dir $CARGO_TARGET_DIR; RocksDB: ${ROCKSDB_LIB_DIR:-compiled from source})"
"${fuzz[@]}" build "${opts[@]}"

# New inputs and crash files go to a scratch folder, not the clone.
scratch=$(mktemp -d "${TMPDIR:-/tmp}/hotledger-fuzz-smoke.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in $("${fuzz[@]}" list); do
  mkdir -p "$scratch/$target/corpus" "$scratch/$target/crashes"
  log="$scratch/$target/log"
  libfuzzer=(-artifact_prefix="$scratch/$target/crashes/" -print_final_stats=1)
  if ! "${fuzz[@]}" run "${opts[@]}" "$target" "corpus/$target" -- -runs=0 "${libfuzzer[@]}" >"$log" 2>&1 \
    || ! "${fuzz[@]}" run "${opts[@]}" "$target" "$scratch/$target/corpus" "corpus/$target" -- \
      -max_total_time="$secs" "${libfuzzer[@]}" >>"$log" 2>&1; then
    echo "==> fuzz $target: FAILED"
    grep -A12 -m1 'panicked at\|ERROR: libFuzzer' "$log" || tail -20 "$log"
    for crash in "$scratch/$target/crashes"/*; do
      [ -f "$crash" ] || continue
      mkdir -p "artifacts/$target"
      cp "$crash" "artifacts/$target/"
      echo "    input kept as fuzz/artifacts/$target/$(basename "$crash")"
      echo "    reproduce: cd fuzz && cargo +nightly fuzz run ${opts[*]} $target artifacts/$target/$(basename "$crash")"
    done
    failed+=("$target")
    continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(sed -n 's/^Done .*//;s/.* corp: \([0-9]*\)\/.*/\1/p' "$log" | tail -1)
  echo "==> fuzz $target: ok (corpus $(ls "corpus/$target" | wc -l) inputs, then ${secs}s: ${runs:-?} runs, corpus ${corpus:-?})"
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "==> fuzz smoke FAILED: ${failed[*]}"
  exit 1
fi
