#!/usr/bin/env bash
# Python bindings: creates a venv in target/pyenv, builds the abi3 wheel with maturin (debug profile,
# workspace target dir), installs the wheel into the venv, checks the typed stubs against the
# module (mypy stubtest, mypy --strict on the example), runs the example and the pytest suite.
# Everything it writes stays under the target dir. Needs Python >= 3.9 with venv, and Rust.
# Usage: tests/run-python.sh   (PYTHON=python3.12 to pick the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
python=${PYTHON:-python3}
venv=$target/pyenv
pkg=bindings/python

# No caches outside the checkout, no bytecode in the source tree.
export PIP_CACHE_DIR=$target/pip-cache
export PIP_DISABLE_PIP_VERSION_CHECK=1
export MYPY_CACHE_DIR=$target/mypy-cache
export PYTHONDONTWRITEBYTECODE=1

if ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  rm -rf "$venv"
  "$python" -m venv "$venv" || {
    echo "cannot create a venv with $python (Debian/Ubuntu: apt-get install python3-venv)" >&2
    exit 1
  }
fi
"$venv/bin/python" -m pip install -q -r "$pkg/requirements-test.txt"

# Same package and target selection as test.sh, so this reuses its build (a no-op there).
cargo build --workspace --all-targets --locked

echo "-- maturin build (debug profile, shared target dir)"
wheels=$target/python-wheels
rm -rf "$wheels"
"$venv/bin/maturin" build --locked --profile dev -m "$pkg/Cargo.toml" -i "$venv/bin/python" --out "$wheels" 2>&1 \
  | tee "$target/python-maturin.log"
# maturin builds the crate alone; with the feature-alignment block of bindings/python/Cargo.toml it
# reuses every dependency of the workspace build above (only pyo3 and the crate are recompiled,
# because maturin sets PYO3_* variables). Anything more means the block has drifted.
if grep -q "Compiling conode-core" "$target/python-maturin.log"; then
  echo "NOTE: maturin compiled conode-core and its dependencies a second time: the feature-alignment" \
    "block in bindings/python/Cargo.toml no longer matches the workspace (see the comment there)." >&2
fi
shopt -s nullglob
built=("$wheels"/conode-*-abi3-*.whl)
if [ "${#built[@]}" != 1 ]; then
  echo "expected one abi3 wheel in $wheels, found: $(ls "$wheels")" >&2
  exit 1
fi
wheel=${built[0]}
echo "built $(basename "$wheel")"
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheel"

echo "-- typed stubs match the module"
"$venv/bin/python" -m mypy.stubtest conode._conode --allowlist "$pkg/tests/stubtest-allowlist.txt"
"$venv/bin/python" -m mypy --strict --no-error-summary "$pkg/examples/quickstart.py"

echo "-- example"
(cd "$target" && "$venv/bin/python" "$root/$pkg/examples/quickstart.py" > "$target/python-example.log") || {
  cat "$target/python-example.log"
  exit 1
}

echo "-- pytest"
report=$target/python-tests/report.txt
mkdir -p "$(dirname "$report")"
: > "$report"
# Run from the target dir so `import conode` is the installed wheel, never the source folder.
(cd "$target" && CONODE_PY_REPORT="$report" "$venv/bin/python" -m pytest "$root/$pkg/tests" \
  -q -p no:cacheprovider --rootdir "$root/$pkg")
cat "$report"
echo "python tests passed"
