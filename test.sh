#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, integration, CLI process tests), the light-client
# build without the runtime, and (as they land) the C, Python and Kotlin binding tests, all on one
# shared build. Usage: ./test.sh
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TERM_COLOR=never
# Every section header says how long the run has taken so far (CI allows 30 minutes in all).
section() { echo "== $1 (at ${SECONDS}s)"; }

# Debian packages the tests use download while the build keeps both cores busy.
target=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target"
bash tests/provision.sh "$target/provision.log" &
provision=$!
# Never leave apt-get or dpkg running behind an early failure (an interrupted dpkg breaks apt).
trap 'wait "$provision" 2>/dev/null || true' EXIT

section "build (shared by every test below)"
cargo build --workspace --all-targets --locked

section "light-client part compiles without the runtime (no tokio, no sled)"
# A type check is what this proves (nothing links a library), at a fraction of a build's time.
cargo check -p conode-core --no-default-features --locked
if cargo tree -p conode-core --no-default-features -e normal --prefix none --locked | grep -E '^(tokio|sled) '; then
  echo "conode-core without its default features still depends on the runtime (above)" >&2
  exit 1
fi

section "tools the tests use (fetched during the build: $target/provision.log)"
wait "$provision" || true
grep '^provision:' "$target/provision.log" || true
# iptables (installed by the provisioning): the silent partition test says so and skips without.
command -v iptables >/dev/null 2>&1 || echo "iptables is not installed: the silent partition test will be skipped"

section "rust tests"
cargo test --workspace --locked -- --test-threads 2

for extra in tests/run-*.sh; do
  [ -e "$extra" ] || continue
  section "$extra"
  bash "$extra"
done
section "all tests passed"
