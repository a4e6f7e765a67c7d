#!/usr/bin/env bash
# Checks, and where it can installs, what building hotledger needs beyond Rust: a C and C++
# compiler (RocksDB's C++ sources) and a libclang that bindgen can load (RocksDB's bindings are
# generated at build time). Both README commands run it before building.
#
#   scripts/build-deps.sh            check; as root with apt-get, install what is missing
#   scripts/build-deps.sh --check    check only: print what is missing, exit 1 if anything is
#   scripts/build-deps.sh --help
#
# libclang is looked for the way bindgen's loader (clang-sys) looks: in $LIBCLANG_PATH when set
# (a folder, or the library file itself), else in `llvm-config --libdir` and the usual library
# folders. It must be libclang itself: `libclang.so`, `libclang-<version>.so`, `libclang.so.<n>`
# or `libclang-<version>.so.<n>`; `libclang-cpp.so*` is another library and does not count.
# HOTLEDGER_LIBCLANG_DIRS (folders separated by ':') replaces the usual folders; the test of this
# detection uses it.
set -euo pipefail

mode=install
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  -h|--help)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "error: unknown option '$1' (try --help)" >&2
    exit 2
    ;;
esac

# Whether the file name $1 is one bindgen loads as libclang.
is_libclang() {
  [[ $1 =~ ^libclang(-[0-9][0-9.]*)?\.so(\.[0-9]+)*$ ]]
}

# Prints the first file in folder $1 that bindgen can load as libclang; fails if there is none.
libclang_in() {
  local dir=$1 f
  [ -d "$dir" ] || return 1
  for f in "$dir"/libclang*.so*; do
    if [ -e "$f" ] && is_libclang "${f##*/}"; then
      echo "$f"
      return 0
    fi
  done
  return 1
}

# Prints where libclang was found; fails if it was not.
find_libclang() {
  local dirs=() d
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    if [ -f "$LIBCLANG_PATH" ]; then
      # A path to the library file itself.
      is_libclang "${LIBCLANG_PATH##*/}" && echo "$LIBCLANG_PATH"
      return
    fi
    libclang_in "$LIBCLANG_PATH"
    return
  fi
  if [ -n "${HOTLEDGER_LIBCLANG_DIRS:-}" ]; then
    IFS=: read -r -a dirs <<<"$HOTLEDGER_LIBCLANG_DIRS"
  else
    if command -v llvm-config >/dev/null 2>&1; then
      dirs+=("$(llvm-config --libdir 2>/dev/null || true)")
    fi
    dirs+=(/usr/lib/llvm-*/lib /usr/local/llvm*/lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu
      /usr/lib64 /usr/lib /usr/local/lib /lib/x86_64-linux-gnu /lib64 /lib)
  fi
  for d in "${dirs[@]}"; do
    [ -n "$d" ] && libclang_in "$d" && return 0
  done
  return 1
}

missing=()   # Debian packages to install
what=()      # what they are for, for the messages
if ! command -v "${CC:-cc}" >/dev/null 2>&1 || ! command -v "${CXX:-c++}" >/dev/null 2>&1; then
  missing+=(build-essential)
  what+=("a C/C++ compiler")
fi
if libclang=$(find_libclang); then
  found_libclang=$libclang
else
  found_libclang=""
  missing+=(libclang-dev)
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    what+=("libclang (none in LIBCLANG_PATH=$LIBCLANG_PATH)")
  else
    what+=("libclang")
  fi
fi

if [ ${#missing[@]} -eq 0 ]; then
  if [ "$mode" = check ]; then
    echo "build dependencies present: C/C++ compiler, libclang ($found_libclang)"
  fi
  exit 0
fi

list=$(IFS=', '; echo "${what[*]}")
if [ "$mode" = check ]; then
  echo "missing: $list (Debian packages: ${missing[*]})"
  exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "==> installing ${missing[*]} ($list, needed to build RocksDB)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" libclang-dev "* ]] && ! find_libclang >/dev/null; then
    echo "error: libclang-dev was installed but no libclang was found; set LIBCLANG_PATH to the folder holding libclang.so" >&2
    exit 1
  fi
  exit 0
fi
echo "error: building hotledger needs $list, which this machine lacks." >&2
if command -v apt-get >/dev/null 2>&1; then
  echo "  install it with: sudo apt-get install -y ${missing[*]}" >&2
else
  echo "  install a C/C++ compiler and libclang with your system's package manager" >&2
fi
echo "  (a libclang elsewhere is used when LIBCLANG_PATH names its folder)" >&2
exit 1
