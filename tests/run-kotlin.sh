#!/usr/bin/env bash
# Kotlin (and Swift) light-client bindings: regenerates them with the pinned uniffi-bindgen and fails
# if the checked-in sources are stale, starts a local cothority and makes on it, with the CLI, what the
# live tests fetch and verify (a collective signature, a skipchain and its proof, a beacon chain), then
# runs the JUnit tests against the shared debug build of libconode (their inputs as -D properties).
# Swift is compiled and tested where `swift` is installed (the same inputs as CONODE_* variables).
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
conode=$target/debug/conode
roster=$work/public.toml
url=ws://127.0.0.1:$((base + 1))
"$conode" run-nodes -n 3 -v 0 --port-base "$base" -d "$work" --allow-open-signing > "$work/run-nodes.log" 2>&1 &
runner=$!
# Stop the cothority; keep its folder (logs, keys, files the tests read) only when something failed.
cleanup() {
  local rc=$?
  kill -INT "$runner" 2>/dev/null || true
  wait "$runner" 2>/dev/null || true
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "cothority folder and logs kept in $work" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
# Says what failed and shows every log of the live setup (each step writes <step>.out / <step>.err).
die() {
  echo "run-kotlin.sh: $*" >&2
  for f in "$work"/*.log "$work"/*.out "$work"/*.err; do
    [ -s "$f" ] || continue
    echo "----- $f" >&2
    tail -n 40 "$f" >&2
  done
  exit 1
}
# run_step NAME COMMAND...: runs one setup command, its output in NAME.out / NAME.err.
run_step() {
  local name=$1
  shift
  "$@" > "$work/$name.out" 2> "$work/$name.err" || die "step '$name' failed: $*"
}
json_field() { python3 -c 'import json, sys; print(json.loads(open(sys.argv[1]).read())[sys.argv[2]])' "$1" "$2"; }

deadline=$((SECONDS + 30))
until grep -q "conodes running" "$work/run-nodes.log"; do
  kill -0 "$runner" 2>/dev/null || die "conode run-nodes exited"
  [ "$SECONDS" -lt "$deadline" ] || die "the local cothority did not start within 30 s"
  sleep 0.1
done

# What the live tests fetch and verify. The beacon DKG goes first so that its genesis delay runs
# while the signature and the skipchain are made.
scheme=pedersen-bls-chained
for private in "$work"/co*/private.toml; do
  run_step beacon-approve "$conode" -c "$private" beacon approve --roster "$roster" --period 1 --scheme "$scheme"
done
run_step beacon-init "$conode" beacon init --roster "$roster" --period 1 --phase-timeout 2 --genesis-delay 1 \
  --scheme "$scheme"
chain_hash=$(sed -n 's/^chain hash: //p' "$work/beacon-init.out")
[ -n "$chain_hash" ] || die "beacon init printed no chain hash"

# A collective signature by the three members, and an outsider (a configured but never started
# conode) to build rosters the signers are not exactly.
run_step sign "$conode" sign --roster "$roster" --message "conode light client test" --out "$work/signature.json"
run_step outsider "$conode" setup --non-interactive --host 127.0.0.1 --port $((base + 6)) --description Outsider \
  --folder "$work/outsider"

# A skipchain of genesis + $blocks blocks, and the proof from its genesis saved by the CLI.
blocks=5
run_step skipchain-create "$conode" skipchain create --roster "$roster" --key "$work/owner.toml" --data genesis
genesis=$(json_field "$work/skipchain-create.out" genesis) || die "skipchain create printed no genesis"
for i in $(seq 1 "$blocks"); do
  run_step "skipchain-append-$i" "$conode" skipchain append --roster "$roster" --key "$work/owner.toml" \
    --genesis "$genesis" --data "block $i"
done
run_step skipchain-update "$conode" skipchain update --roster "$roster" --from "$genesis" --out "$work/proof.bin"

# Round 1 is due one second after the DKG; wait until a member serves it, verified.
deadline=$((SECONDS + 20))
until "$conode" beacon get 1 --verify --chain-hash "$chain_hash" --url "$url" > "$work/beacon-get.out" 2> "$work/beacon-get.err"; do
  [ "$SECONDS" -lt "$deadline" ] || die "round 1 of beacon chain $chain_hash was not served within 20 s"
  sleep 0.1
done
echo "live cothority ready: signature, skipchain $genesis ($blocks blocks), beacon chain $chain_hash"

export MAVEN_OPTS="${MAVEN_OPTS:-} -Xmx1g"
mvn -B -q -f bindings/kotlin/pom.xml -Dmaven.repo.local="$target/m2" \
  -Dconode.lib.dir="$target/debug" -Dconode.roster="$roster" -Dconode.url="$url" \
  -Dconode.signature="$work/signature.json" -Dconode.outsider="$work/outsider/public.toml" \
  -Dconode.genesis="$genesis" -Dconode.blocks="$blocks" -Dconode.proof="$work/proof.bin" \
  -Dconode.beacon.scheme="$scheme" -Dconode.chain.hash="$chain_hash" \
  clean test || die "Kotlin tests failed (reports in bindings/kotlin/target/surefire-reports)"
echo "kotlin tests passed"

if command -v swift >/dev/null 2>&1; then
  closed_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
  (cd bindings/swift && CONODE_ROSTER="$roster" CONODE_URL="$url" CONODE_SIGNATURE="$work/signature.json" \
    CONODE_OUTSIDER="$work/outsider/public.toml" CONODE_GENESIS="$genesis" CONODE_BLOCKS="$blocks" \
    CONODE_PROOF="$work/proof.bin" CONODE_BEACON_SCHEME="$scheme" CONODE_CHAIN_HASH="$chain_hash" \
    CONODE_VECTORS="$root/tests/vectors/drand.json" CONODE_CLOSED_PORT="$closed_port" \
    LD_LIBRARY_PATH="$target/debug" swift test -Xlinker -L"$target/debug") || die "Swift tests failed"
  echo "swift tests passed"
else
  echo "SKIPPED: Swift tests (no \`swift\` toolchain on this machine); Swift sources were checked to be current"
fi
