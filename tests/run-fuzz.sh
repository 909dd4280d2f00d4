#!/usr/bin/env bash
# Fuzz smoke run (test.sh runs it): every libFuzzer target of fuzz/ for FUZZ_SECONDS (8) each,
# reporting executions and findings per target. Built with the stable toolchain on test.sh's
# build: tests/fuzz-instrument.sh adds the coverage instrumentation to conode-core and the
# targets only, so two crates are compiled (~1 min), not every dependency again. The long run
# with AddressSanitizer and instrumented dependencies: tests/fuzz-long.sh.
set -euo pipefail
FUZZ_SECONDS=${FUZZ_SECONDS:-8}
cd "$(dirname "$0")/.."
root=$PWD
source tests/fuzz-common.sh
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
mkdir -p "$target"
build_log=$target/fuzz-smoke-build.log
echo "building the fuzz targets with coverage instrumentation"
RUSTC_WORKSPACE_WRAPPER=$root/tests/fuzz-instrument.sh \
  cargo build -p conode-fuzz --bins --locked --message-format=json-render-diagnostics \
  >"$target/fuzz-smoke-build.json" 2>"$build_log" \
  || { cat "$build_log"; echo "fuzz targets do not build" >&2; exit 1; }
# The feature-alignment block of fuzz/Cargo.toml keeps every dependency shared with test.sh's build.
if grep -E '^ *Compiling ' "$build_log" | grep -vqE 'Compiling (conode-core|conode-fuzz) '; then
  echo "NOTE: the fuzz smoke compiled dependencies a second time: the feature-alignment block of" \
    "fuzz/Cargo.toml no longer matches the workspace (see the comment there):" >&2
  grep -E '^ *Compiling ' "$build_log" | grep -vE 'Compiling (conode-core|conode-fuzz) ' >&2
fi
# name <tab> executable, for every target of the fuzz package.
executables=$(python3 - "$target/fuzz-smoke-build.json" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if (m.get("reason") == "compiler-artifact" and m.get("executable")
            and "/fuzz/" in m["target"]["src_path"]):
        print(m["target"]["name"] + "\t" + m["executable"])
PY
)
expected=$(ls fuzz/fuzz_targets/*.rs | wc -l)
if [ "$(echo "$executables" | grep -c .)" != "$expected" ]; then
  echo "expected $expected fuzz targets, the build reported: $executables" >&2
  exit 1
fi
fuzz_header
failed=0
while IFS=$'\t' read -r name exe; do
  fuzz_run "$name" "$exe" || failed=1
done <<<"$executables"
exit $failed
