#!/usr/bin/env bash
# C tests: checks the header is current, writes the pkg-config file, compiles tests/c/*.c against the
# shared debug build with -Wall -Wextra -Werror, runs them, then once more under AddressSanitizer.
# The verifier tests read the League of Entropy drand vectors from tests/vectors/drand.json.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
libdir=$target/debug
out=$target/c-tests
mkdir -p "$out" "$target/pkgconfig"

# Same package and target selection as test.sh, so this reuses its build (the header staleness
# test runs with the Rust tests).
cargo build --workspace --all-targets --locked

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
sed -e "s|@PREFIX@|$root|" -e "s|@INCLUDEDIR@|$root/include|" -e "s|@LIBDIR@|$libdir|" -e "s|@VERSION@|$version|" \
  conode-ffi/conode.pc.in > "$target/pkgconfig/conode.pc"
export PKG_CONFIG_PATH="$target/pkgconfig"
export CONODE_VECTORS=${CONODE_VECTORS:-$root/tests/vectors/drand.json}
[ -f "$CONODE_VECTORS" ] || { echo "drand vectors not found at $CONODE_VECTORS (set CONODE_VECTORS)" >&2; exit 1; }
cflags=$(pkg-config --cflags conode)
libs=$(pkg-config --libs conode)

for src in tests/c/*.c; do
  name=$(basename "$src" .c)
  echo "-- $name"
  cc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror $cflags "$src" -o "$out/$name" $libs -Wl,-rpath,"$libdir"
  "$out/$name"
  cc -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -fsanitize=address -fno-omit-frame-pointer $cflags "$src" \
    -o "$out/$name-asan" $libs -Wl,-rpath,"$libdir"
  ASAN_OPTIONS=detect_leaks=1 "$out/$name-asan"
done
