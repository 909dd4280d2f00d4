#!/usr/bin/env bash
# Long fuzz run with cargo-fuzz: every target of fuzz/ for FUZZ_SECONDS (default 600) each, with
# AddressSanitizer (FUZZ_SANITIZER) and every dependency instrumented too (nightly; installs
# nightly and cargo-fuzz when missing). Not run by test.sh (its smoke is tests/run-fuzz.sh).
# Corpora stay in fuzz/corpus/<target> between runs; findings land in fuzz/artifacts/<target>/
# (reproduce with `cargo +nightly fuzz run <target> <file>` in fuzz/).
set -euo pipefail
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
source "$(dirname "$0")/fuzz-common.sh"
fuzz_tools_or_skip
cd "$fuzz_dir"
# The workspace's release profile strips debug info; the sanitizer's reports need file and line.
export CARGO_PROFILE_RELEASE_STRIP=none
targets=$(cargo +nightly fuzz list)
echo "building $(echo "$targets" | wc -w) fuzz targets (sanitizer: $FUZZ_SANITIZER)"
cargo +nightly fuzz build -s "$FUZZ_SANITIZER" -O >fuzz-build.log 2>&1 \
  || { cat fuzz-build.log; echo "fuzz targets do not build"; exit 1; }
fuzz_header
failed=0
for t in $targets; do
  fuzz_run "$t" cargo +nightly fuzz run -s "$FUZZ_SANITIZER" -O "$t" "$fuzz_dir/corpus/$t" -- || failed=1
done
exit $failed
