# Shared by tests/run-fuzz.sh (smoke, stable toolchain) and tests/fuzz-long.sh (cargo-fuzz,
# nightly, AddressSanitizer): running one target for FUZZ_SECONDS and reporting its executions
# and findings, and (for the long run) finding or installing nightly and cargo-fuzz.
# Sourced, not run.

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz" && pwd)"

fuzz_header() {
  printf '%-18s %12s %10s  %s\n' target executions seconds findings
}

# fuzz_run TARGET COMMAND...: runs COMMAND with libFuzzer's arguments appended (the time
# budget, where findings go) and prints the target's row; COMMAND names the target's corpus
# ($fuzz_dir/corpus/TARGET, created here). Returns 1 when the run failed or left a finding (its
# log's tail is printed).
fuzz_run() {
  local t=$1
  shift
  mkdir -p "$fuzz_dir/corpus/$t" "$fuzz_dir/artifacts/$t"
  local log="$fuzz_dir/artifacts/$t/last-run.log" status=0 execs findings
  "$@" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$fuzz_dir/artifacts/$t/" </dev/null >"$log" 2>&1 || status=$?
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1)
  findings=$(ls "$fuzz_dir/artifacts/$t" | grep -cE '^(crash|oom|timeout|leak)-' || true)
  printf '%-18s %12s %10s  %s\n' "$t" "${execs:-?}" "$FUZZ_SECONDS" "$findings"
  if [ "$status" -ne 0 ] || [ "$findings" -gt 0 ] || [ -z "$execs" ]; then
    tail -40 "$log"
    return 1
  fi
}

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
