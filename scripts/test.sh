#!/usr/bin/env bash
# Runs hotledger's whole test suite: rustfmt, clippy with warnings as errors, every test, then
# the fuzz smoke.
# Everything builds in the release profile, the same build `testnet/run.sh` uses, so RocksDB's
# C++ sources are compiled once per machine for both (see README "Set up").
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/build-deps.sh

# The fault tests on network namespaces run as root only (otherwise they say they are skipped)
# and need `ip` (iproute2), `nft` (nftables) and libfaketime; as root with apt-get, what is
# missing is installed.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  command -v nft >/dev/null 2>&1 || need+=(nftables)
  # The chaos slice's clock faults preload libfaketime into validators.
  [ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || need+=(libfaketime)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "==> installing ${need[*]} (fault tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi

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

# Fuzz smoke (fuzz/README.md): builds the cargo-fuzz targets in their own target folder
# (/var/tmp/hotledger-fuzz-target, reusing the librocksdb.a built above), runs each target's
# committed corpus once and then fuzzes each for a few seconds; any crash fails the command. It
# needs the nightly toolchain (skipped, saying so, without it) and installs cargo-fuzz into
# /var/tmp/hotledger-tools when missing. `fuzz/smoke.sh` runs this step alone;
# FUZZ_SMOKE=0 skips it.
if [ "${FUZZ_SMOKE:-1}" != 0 ]; then
  echo "==> fuzz smoke (fuzz/smoke.sh)"
  fuzz/smoke.sh
fi
