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

# A target folder outside the clone is reused between runs as a build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"
bin_dir="$CARGO_TARGET_DIR/release"

for arg in "$@"; do
  if [ "$arg" = -h ] || [ "$arg" = --help ]; then
    if [ -x "$bin_dir/hotledger-testnet" ]; then
      exec "$bin_dir/hotledger-testnet" run --help
    fi
    cat <<'USAGE'
Usage: testnet/run.sh [OPTIONS]   (builds hotledger, then runs `hotledger-testnet run OPTIONS`)

The full option list is printed by `hotledger-testnet run --help` once the first run has built it
(about 17 minutes on 2 cores). The common ones:
  --validators N   validators, 1 to 100 [default: 4]
  --rate TPS       offered transfers per second [default: 1000]
  --duration SECS  stop after SECS [default: until Ctrl-C]
  --no-load        no load generator; the network stays up for your own requests
  --dir DIR        the network's folder [default: ./.testnet]; --fresh replaces it
  --netns          each validator on its own network host (root only)
USAGE
    exit 0
  fi
done

scripts/build-deps.sh

# Exactly the build scripts/test.sh makes (release profile, whole workspace, tests included, so
# the same features), which leaves target/release/hotledger and hotledger-testnet: after the test
# command nothing is compiled again, and either command compiles RocksDB only once per machine.
echo "==> building in $CARGO_TARGET_DIR (a first build compiles RocksDB: ~17 min on 2 cores)"
cargo test --release --workspace --locked --no-run

# The release `hotledger` goes in through HOTLEDGER_BIN, so an explicit --bin still wins.
export HOTLEDGER_BIN="$bin_dir/hotledger"
exec "$bin_dir/hotledger-testnet" run "$@"
