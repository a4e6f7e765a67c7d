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

# RocksDB's bindings need libclang; its C++ sources need a C/C++ compiler.
need_pkgs=()
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
  need_pkgs+=(libclang-dev)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing ${need_pkgs[*]} (needed to build RocksDB)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "error: missing ${need_pkgs[*]}; run:" >&2
    echo "  sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# A target folder outside the clone is reused between runs as a build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"
echo "==> building the release binaries in $CARGO_TARGET_DIR (the first build compiles RocksDB: ~15 min on 2 cores)"
cargo build --release -p hotledger-node -p hotledger-testnet

# The release `hotledger` goes in through HOTLEDGER_BIN, so an explicit --bin still wins.
export HOTLEDGER_BIN="$CARGO_TARGET_DIR/release/hotledger"
exec "$CARGO_TARGET_DIR/release/hotledger-testnet" run "$@"
