#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration, CLI process tests), the light-client
# build without the runtime, and (as they land) the C, Python and Kotlin binding tests, all on one
# shared build. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never

echo "== build (shared by every test below)"
cargo build --workspace --all-targets --locked

echo "== light-client part compiles without the runtime (no tokio, no sled)"
cargo build -p conode-core --no-default-features --locked

echo "== rust tests"
cargo test --workspace --locked -- --test-threads 2

for extra in tests/run-*.sh; do
  [ -e "$extra" ] || continue
  echo "== $extra"
  bash "$extra"
done
echo "== all tests passed"
