#!/usr/bin/env bash
# Kotlin (and Swift) light-client bindings: regenerates them with the pinned uniffi-bindgen and fails
# if the checked-in sources are stale, starts a local cothority, and runs the JUnit tests against the
# shared debug build of libconode. Swift is compiled and tested where `swift` is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
lib=$target/debug/libconode.so

# Same package and target selection as test.sh, so this reuses its build.
cargo build --workspace --all-targets --locked
gen=$target/uniffi-gen
rm -rf "$gen"
"$target/debug/uniffi-bindgen" generate "$lib" --language kotlin --out-dir "$gen/kotlin" --no-format >/dev/null
"$target/debug/uniffi-bindgen" generate "$lib" --language swift --out-dir "$gen/swift" --no-format >/dev/null
stale=0
diff -ru "$gen/kotlin" bindings/kotlin/src/main/kotlin || stale=1
diff -u "$gen/swift/conode.swift" bindings/swift/Sources/Conode/conode.swift || stale=1
diff -u "$gen/swift/conodeFFI.h" bindings/swift/Sources/conodeFFI/conodeFFI.h || stale=1
diff -u "$gen/swift/conodeFFI.modulemap" bindings/swift/Sources/conodeFFI/module.modulemap || stale=1
if [ "$stale" = 1 ]; then
  echo "generated bindings are stale: run tests/regenerate-bindings.sh and commit" >&2
  exit 1
fi
echo "generated Kotlin and Swift bindings are current"

# A local cothority for the live tests.
base=$(python3 - <<'PY'
import socket, random
for _ in range(500):
    base = random.randrange(20000, 60000, 2)
    socks = []
    try:
        for p in range(base, base + 6):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
)
work=$(mktemp -d "$target/kotlin-cothority.XXXXXX")
"$target/debug/conode" run-nodes -n 3 -v 0 --port-base "$base" -d "$work" > "$work/run-nodes.log" 2>&1 &
runner=$!
trap 'kill -INT $runner 2>/dev/null; wait $runner 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  grep -q "conodes running" "$work/run-nodes.log" && break
  kill -0 $runner 2>/dev/null || { cat "$work/run-nodes.log"; exit 1; }
  sleep 0.1
done
grep -q "conodes running" "$work/run-nodes.log" || { echo "local cothority did not start"; cat "$work/run-nodes.log"; exit 1; }

export MAVEN_OPTS="${MAVEN_OPTS:-} -Xmx1g"
mvn -B -q -f bindings/kotlin/pom.xml -Dmaven.repo.local="$target/m2" \
  -Dconode.lib.dir="$target/debug" -Dconode.roster="$work/public.toml" -Dconode.url="ws://127.0.0.1:$((base + 1))" \
  test
echo "kotlin tests passed"

if command -v swift >/dev/null 2>&1; then
  (cd bindings/swift && CONODE_ROSTER="$work/public.toml" LD_LIBRARY_PATH="$target/debug" swift test -Xlinker -L"$target/debug")
else
  echo "SKIPPED: Swift tests (no \`swift\` toolchain on this machine); Swift sources were checked to be current"
fi
