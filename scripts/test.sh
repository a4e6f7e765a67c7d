#!/usr/bin/env bash
# Runs hotledger's whole test suite. Installs what the build needs when it is missing
# (RocksDB's bindings need libclang), then `cargo test` over the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
if ! ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 && ! ls /usr/lib/*/libclang*.so* >/dev/null 2>&1; then
  need_pkgs+=(libclang-dev)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "==> installing ${need_pkgs[*]} (needed to build RocksDB)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "error: missing ${need_pkgs[*]}; run: sudo apt-get install -y ${need_pkgs[*]}" >&2
    exit 1
  fi
fi

# The workspace is kept rustfmt-clean (default style); skipped where rustfmt is not installed.
if cargo fmt --version >/dev/null 2>&1; then
  echo "==> cargo fmt --check"
  cargo fmt --all --check
fi

# A target folder outside the clone is reused between runs as a build cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"
# Lints are errors, among them `unwrap`/`expect` outside tests (workspace lints); skipped where
# clippy is not installed.
if cargo clippy --version >/dev/null 2>&1; then
  echo "==> cargo clippy --workspace --all-targets -- -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi
echo "==> cargo test --workspace (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --locked "$@"
