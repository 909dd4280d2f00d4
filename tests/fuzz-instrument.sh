#!/bin/sh
# rustc wrapper for the fuzz smoke (tests/run-fuzz.sh sets it as RUSTC_WORKSPACE_WRAPPER, which
# cargo applies to workspace members only): adds libFuzzer's coverage instrumentation, the flags
# cargo-fuzz passes, to conode-core and the fuzz targets. Dependencies are not instrumented, so
# they are the very artifacts of test.sh's build, and the smoke compiles two crates instead of
# every dependency again with nightly. Build scripts and proc-macros run on the host without
# libFuzzer: plain.
# Usage (by cargo): fuzz-instrument.sh RUSTC ARGS...
rustc=$1
shift
case " $* " in
  *" --crate-name build_script_"* | *" --crate-type proc-macro "*) exec "$rustc" "$@" ;;
esac
exec "$rustc" "$@" --cfg fuzzing \
  -Cpasses=sancov-module \
  -Cllvm-args=-sanitizer-coverage-level=4 \
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
  -Cllvm-args=-sanitizer-coverage-pc-table \
  -Cllvm-args=-sanitizer-coverage-trace-compares \
  -Cllvm-args=-sanitizer-coverage-stack-depth \
  -Cllvm-args=-simplifycfg-branch-fold-threshold=0
