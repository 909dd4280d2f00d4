# Shared by tests/run-fuzz.sh (smoke) and tests/fuzz-long.sh: finds or installs nightly and
# cargo-fuzz, then runs every target of fuzz/ for a while and reports executions and findings.
# Sourced, not run. Uses FUZZ_SECONDS (per target) and FUZZ_SANITIZER.

fuzz_tools_or_skip() {
  if ! command -v rustup >/dev/null 2>&1; then
    echo "SKIP fuzzing: rustup is not installed (needed for the nightly toolchain)"; exit 0
  fi
  if ! rustup run nightly cargo --version >/dev/null 2>&1; then
    echo "installing the nightly toolchain (minimal profile)"
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 \
      || { echo "SKIP fuzzing: cannot install the nightly toolchain"; exit 0; }
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install, once)"
    cargo install cargo-fuzz --locked >/dev/null 2>&1 \
      || { echo "SKIP fuzzing: cannot install cargo-fuzz from crates.io"; exit 0; }
  fi
}

fuzz_all() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
  # The fuzz workspace has its own target dir: nightly and sanitizer builds share nothing with
  # the main build.
  unset CARGO_TARGET_DIR
  local targets failed=0
  targets=$(cargo +nightly fuzz list)
  echo "building $(echo "$targets" | wc -w) fuzz targets (sanitizer: $FUZZ_SANITIZER)"
  cargo +nightly fuzz build -s "$FUZZ_SANITIZER" -O >/dev/null 2>fuzz-build.log \
    || { cat fuzz-build.log; echo "fuzz targets do not build"; return 1; }
  printf '%-18s %12s %10s  %s\n' target executions seconds findings
  for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    local log="artifacts/$t/last-run.log"
    local status=0
    cargo +nightly fuzz run -s "$FUZZ_SANITIZER" -O "$t" "corpus/$t" -- \
      -max_total_time="$FUZZ_SECONDS" -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || status=$?
    local execs findings
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
    findings=$(ls "artifacts/$t" | grep -cE '^(crash|oom|timeout|leak)-' || true)
    printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "$FUZZ_SECONDS" "$findings"
    if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ]; then
      failed=1
      tail -40 "$log"
    fi
  done
  return $failed
}
