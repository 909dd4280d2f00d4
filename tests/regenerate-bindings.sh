#!/usr/bin/env bash
# Regenerates the checked-in uniffi bindings (Kotlin, Swift) and the C header from the current code.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --workspace --all-targets
"$target/debug/uniffi-bindgen" generate "$target/debug/libconode.so" --language kotlin --out-dir bindings/kotlin/src/main/kotlin --no-format
gen=$(mktemp -d)
"$target/debug/uniffi-bindgen" generate "$target/debug/libconode.so" --language swift --out-dir "$gen" --no-format
cp "$gen/conode.swift" bindings/swift/Sources/Conode/conode.swift
cp "$gen/conodeFFI.h" bindings/swift/Sources/conodeFFI/conodeFFI.h
cp "$gen/conodeFFI.modulemap" bindings/swift/Sources/conodeFFI/module.modulemap
rm -rf "$gen"
CONODE_UPDATE_HEADER=1 cargo test -p conode-ffi --test header
