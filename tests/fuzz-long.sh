#!/usr/bin/env bash
# Long fuzz run with AddressSanitizer: every target of fuzz/ for FUZZ_SECONDS (default 600) each.
# Not run by test.sh. Corpora stay in fuzz/corpus/<target> between runs; findings land in
# fuzz/artifacts/<target>/ (reproduce with `cargo +nightly fuzz run <target> <file>`).
set -euo pipefail
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-address}
source "$(dirname "$0")/fuzz-common.sh"
fuzz_tools_or_skip
fuzz_all
