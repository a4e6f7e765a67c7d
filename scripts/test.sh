#!/usr/bin/env bash
# Runs hotledger's whole test suite: rustfmt, clippy with warnings as errors, then every test.
# Everything builds in the release profile, the same build `testnet/run.sh` uses, so RocksDB's
# C++ sources are compiled once per machine for both (see README "Set up").
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-deps.sh

# A target folder outside the clone is reused between runs as a build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"

# The workspace is kept rustfmt-clean (default style); skipped where rustfmt is not installed.
if cargo fmt --version >/dev/null 2>&1; then
  echo "==> cargo fmt --check"
  cargo fmt --all --check
fi

# Lints are errors, among them `unwrap`/`expect` outside tests (workspace lints); skipped where
# clippy is not installed.
if cargo clippy --version >/dev/null 2>&1; then
  echo "==> cargo clippy --release --workspace --all-targets -- -D warnings"
  cargo clippy --release --workspace --all-targets --locked -- -D warnings
fi
echo "==> cargo test --release --workspace (target dir $CARGO_TARGET_DIR)"
cargo test --release --workspace --locked "$@"
