#!/usr/bin/env bash
# The container entrypoint (deploy/docker/entrypoint.sh) without Docker: the first start runs
# `conode setup --non-interactive` from CONODE_* variables and serves; a second start keeps the
# keys; a missing CONODE_HOST on first start is a clear error; SIGTERM stops the node. Also checks
# that the systemd unit parses where systemd-analyze exists.
# Usage: tests/run-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
cargo build --workspace --all-targets --locked
export CONODE_BIN=$target/debug/conode
work=$(mktemp -d "${TMPDIR:-/tmp}/conode-deploy.XXXXXX")
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1] + 1; s.close()
    try:
        for q in (p, p + 1):
            t = socket.socket(); t.bind(("127.0.0.1", q)); t.close()
        print(p); break
    except OSError: pass')
export CONODE_DATA=$work/data CONODE_PORT=$port CONODE_LISTEN=127.0.0.1:$port CONODE_DEBUG=0

echo "-- first start without CONODE_HOST: refused"
if sh deploy/docker/entrypoint.sh >"$work/out" 2>&1; then echo "expected a failure" >&2; exit 1; fi
grep -q "CONODE_HOST" "$work/out"

start() {
  sh deploy/docker/entrypoint.sh server --allow-root >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$((port + 1))/ok" >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.1
  done
  echo "the node did not come up" >&2; cat "$work/log" >&2; exit 1
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || true
  grep -q "stopped" "$work/log" || { echo "no graceful stop" >&2; cat "$work/log" >&2; exit 1; }
  pid=""
}

echo "-- first start: setup from the environment, then serve"
CONODE_HOST=node.example.org CONODE_DESCRIPTION="deploy test" CONODE_URL=https://node.example.org start
[ "$(stat -c %a "$CONODE_DATA/private.toml")" = 600 ]
grep -q 'Address = "tls://node.example.org:'"$port"'"' "$CONODE_DATA/public.toml"
grep -q 'URL = "https://node.example.org"' "$CONODE_DATA/public.toml"
grep -q "ListenAddress = \"127.0.0.1:$port\"" "$CONODE_DATA/private.toml"
key=$(grep -m1 '^Public' "$CONODE_DATA/public.toml")
echo "-- hot backup of the running container's node"
"$CONODE_BIN" -c "$CONODE_DATA/private.toml" backup --out "$work/b.bak" -q >/dev/null
stop

echo "-- second start keeps the keys"
CONODE_HOST=other.example.org start
[ "$(grep -m1 '^Public' "$CONODE_DATA/public.toml")" = "$key" ]
stop

if command -v systemd-analyze >/dev/null; then
  echo "-- systemd unit"
  systemd-analyze verify deploy/systemd/conode.service 2>&1 | grep -v "conode: No such file\|/usr/local/bin/conode" || true
fi
echo "deploy: entrypoint first start, restart, backup and graceful stop ok"
