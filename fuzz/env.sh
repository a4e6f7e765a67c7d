# Sourced by fuzz/smoke.sh and by hand (`. fuzz/env.sh`): the environment the fuzz builds use.
#
# * CARGO_TARGET_DIR: $FUZZ_TARGET_DIR, /var/tmp/hotledger-fuzz-target by default; apart from
#   the stable build's (the CARGO_TARGET_DIR this is sourced with, else /var/tmp/hotledger-target),
#   whose flags (stable, no coverage instrumentation) differ anyway.
# * cargo-fuzz: found on PATH, else in $HOTLEDGER_TOOLS/bin (/var/tmp/hotledger-tools), where
#   `fuzz/smoke.sh` installs it when missing.
# * RocksDB: the node crate links librocksdb-sys, whose C++ takes about 17 minutes to compile on
#   a 2-core machine. When the stable build (`scripts/test.sh`, `testnet/run.sh`) has already
#   compiled the same librocksdb-sys version, ROCKSDB_LIB_DIR and ROCKSDB_STATIC point the fuzz
#   build at its librocksdb.a; otherwise (or with ROCKSDB_COMPILE=1) librocksdb-sys compiles it
#   as usual. The static library does not carry its C++ runtime: libfuzzer-sys links libstdc++.

hotledger_stable_target="${CARGO_TARGET_DIR:-/var/tmp/hotledger-target}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/hotledger-fuzz-target}"
export HOTLEDGER_TOOLS="${HOTLEDGER_TOOLS:-/var/tmp/hotledger-tools}"
case ":$PATH:" in
  *":$HOTLEDGER_TOOLS/bin:"*) ;;
  *) export PATH="$PATH:$HOTLEDGER_TOOLS/bin" ;;
esac

# The librocksdb-sys version fuzz/Cargo.lock pins, e.g. `0.17.3+10.4.2`.
hotledger_fuzz_rocksdb_lib() {
  local lock version out dir
  lock="$(dirname "${BASH_SOURCE[0]}")/Cargo.lock"
  version=$(sed -n '/^name = "librocksdb-sys"$/{n;s/^version = "\(.*\)"$/\1/p;}' "$lock")
  [ -n "$version" ] || return 1
  # Each build-script run of librocksdb-sys records its sources (`cargo_manifest_dir`, named
  # after the version) and its output folder in `output`.
  for out in "$hotledger_stable_target"/release/build/librocksdb-sys-*/output; do
    [ -f "$out" ] || continue
    grep -q "^cargo:cargo_manifest_dir=.*/librocksdb-sys-$version\$" "$out" || continue
    dir=$(sed -n 's/^cargo:out_dir=//p' "$out")
    if [ -n "$dir" ] && [ -f "$dir/librocksdb.a" ]; then
      echo "$dir"
      return 0
    fi
  done
  return 1
}

if [ -z "${ROCKSDB_LIB_DIR:-}" ] && [ "${ROCKSDB_COMPILE:-}" != 1 ]; then
  if hotledger_fuzz_rocksdb_lib_dir=$(hotledger_fuzz_rocksdb_lib); then
    export ROCKSDB_LIB_DIR="$hotledger_fuzz_rocksdb_lib_dir" ROCKSDB_STATIC=1
  fi
  unset hotledger_fuzz_rocksdb_lib_dir
fi
unset hotledger_stable_target
