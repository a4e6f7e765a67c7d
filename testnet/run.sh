#!/usr/bin/env bash
# One command for a local hotledger network: checks the build tools, builds the release
# binaries, then runs `hotledger-testnet run "$@"` (4 validators under 1,000 tx/s by default;
# Ctrl-C stops everything). See testnet/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi

scripts/build-deps.sh

# A target folder outside the clone is reused between runs as a build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"
# Exactly the build scripts/test.sh makes (release profile, whole workspace, tests included, so
# the same features), which leaves target/release/hotledger and hotledger-testnet: after the test
# command nothing is compiled again, and either command compiles RocksDB only once per machine.
echo "==> building in $CARGO_TARGET_DIR (a first build compiles RocksDB: ~17 min on 2 cores)"
cargo test --release --workspace --locked --no-run

# The release `hotledger` goes in through HOTLEDGER_BIN, so an explicit --bin still wins.
export HOTLEDGER_BIN="$CARGO_TARGET_DIR/release/hotledger"
exec "$CARGO_TARGET_DIR/release/hotledger-testnet" run "$@"
