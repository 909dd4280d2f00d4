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
# Cargo tells wrapped builds apart by the wrapper's path, not its contents: a copy named by its
# hash makes an edited wrapper rebuild what it instruments.
wrapper=$target/fuzz-instrument-$(sha1sum tests/fuzz-instrument.sh | cut -c1-12).sh
[ -x "$wrapper" ] || install -m 0755 tests/fuzz-instrument.sh "$wrapper"
echo "building the fuzz targets with coverage instrumentation"
# Selected beside the targets (it has no binary to build), conode-python brings its
# feature-alignment block, so cargo resolves the dependencies' features as test.sh's workspace
# build did and reuses every one of them.
RUSTC_WORKSPACE_WRAPPER=$wrapper \
  cargo build -p conode-fuzz -p conode-python --bins --locked --message-format=json-render-diagnostics \
  >"$target/fuzz-smoke-build.json" 2>"$build_log" \
  || { cat "$build_log"; echo "fuzz targets do not build" >&2; exit 1; }
# The feature-alignment block of bindings/python/Cargo.toml keeps every dependency shared.
extra=$(grep -E '^ *Compiling ' "$build_log" | grep -vE 'Compiling (conode-core|conode-fuzz) ' || true)
if [ -n "$extra" ]; then
  echo "NOTE: the fuzz smoke compiled dependencies a second time: the feature-alignment block of" \
    "bindings/python/Cargo.toml no longer matches the workspace (see the comment there):" >&2
  echo "$extra" >&2
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
  fuzz_run "$name" "$exe" "fuzz/corpus/$name" || failed=1
done <<<"$executables"
exit $failed
