#!/usr/bin/env bash
# Fuzz smoke run (test.sh runs it): every cargo-fuzz target of fuzz/ for a few seconds each,
# reporting executions and findings per target. Installs nightly and cargo-fuzz itself, or skips
# with a message when it cannot. The first run builds the targets (minutes); later runs take
# about FUZZ_SECONDS x 7 targets. A longer run: tests/fuzz-long.sh.
set -euo pipefail
FUZZ_SECONDS=${FUZZ_SECONDS:-8}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
source "$(dirname "$0")/fuzz-common.sh"
fuzz_tools_or_skip
fuzz_all
