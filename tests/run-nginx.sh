#!/usr/bin/env bash
# deploy/nginx/conode.conf in front of a local cothority, as an operator would run it: a private CA
# (openssl), nginx on loopback terminating TLS for node 0's client port, and the CLI (check, sign,
# skipchain, beacon) and the Python client going through it with --cacert / cacert=. Without the
# CA the same commands must fail. Installs Debian's nginx when missing (as root with apt-get);
# skips with a message only when nginx cannot be installed at all.
# Usage: tests/run-nginx.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target

nginx=$(command -v nginx || true)
[ -z "$nginx" ] && [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx
if [ -z "$nginx" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "-- installing Debian's nginx"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light; } >/dev/null 2>&1 || true
  fi
  nginx=$(command -v nginx || true)
  [ -z "$nginx" ] && [ -x /usr/sbin/nginx ] && nginx=/usr/sbin/nginx
fi
if [ -z "$nginx" ]; then
  echo "SKIP tests/run-nginx.sh: nginx is not installed and cannot be installed here (need root and apt-get)"
  exit 0
fi
command -v openssl >/dev/null || { echo "tests/run-nginx.sh needs openssl" >&2; exit 1; }

cargo build --workspace --all-targets --locked
conode=$target/debug/conode
work=$(mktemp -d "${TMPDIR:-/tmp}/conode-nginx.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { # an even port whose next port is free too (node port P, client port P+1)
  python3 - <<'PY'
import socket
for _ in range(200):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
    p += p % 2  # bind(0) hands out odd ports on recent kernels
    if p > 65000: continue
    ok = True
    for q in range(p, p + 6):
        t = socket.socket()
        try: t.bind(("127.0.0.1", q))
        except OSError: ok = False
        finally: t.close()
    if ok: print(p); break
PY
}
wait_http() { # url [cacert]
  for _ in $(seq 1 150); do
    if python3 - "$@" <<'PY' 2>/dev/null; then return 0; fi
import ssl, sys, urllib.request
ctx = ssl.create_default_context(cafile=sys.argv[2]) if len(sys.argv) > 2 else None
urllib.request.urlopen(sys.argv[1], timeout=1, context=ctx).read()
PY
    sleep 0.1
  done
  echo "no answer from $1" >&2; return 1
}

echo "-- private CA and a certificate for localhost"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=conode test CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$work/key.pem" -out "$work/req.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/ext.cnf"
openssl x509 -req -in "$work/req.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/ext.cnf" -out "$work/cert.pem" 2>/dev/null

echo "-- local cothority of 3"
base=$(free_port)
"$conode" run-nodes -n 3 -d "$work/cothority" --port-base "$base" --allow-open-signing -v 0 >"$work/nodes.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$((base + 1))/ok"
wait_http "http://127.0.0.1:$((base + 5))/ok"

echo "-- nginx on loopback in front of node 0's client port"
proxy=$(( $(free_port) + 1 ))
mkdir -p "$work/nginx/logs"
sed -e "s|@CLIENT_PORT@|$((base + 1))|" -e "s|@LISTEN@|127.0.0.1:$proxy|" -e "s|@SERVER_NAME@|localhost|" \
    -e "s|@CERT@|$work/cert.pem|" -e "s|@KEY@|$work/key.pem|" deploy/nginx/conode.conf >"$work/nginx/site.conf"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/logs/error.log warn;
events { worker_connections 256; }
http {
  access_log $work/nginx/logs/access.log;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi; uwsgi_temp_path $work/nginx/uwsgi; scgi_temp_path $work/nginx/scgi;
  include $work/nginx/site.conf;
}
CONF
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
sed -i "1i $user_line" "$work/nginx/nginx.conf"
"$nginx" -t -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" >/dev/null 2>&1 \
  || { "$nginx" -t -p "$work/nginx" -c "$work/nginx/nginx.conf"; exit 1; }
"$nginx" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/logs/error.log" -g "daemon off;" &
pids+=($!)
url="https://localhost:$proxy"
wait_http "$url/ok" "$work/ca.pem"

# The roster as clients see it: node 0 published behind the proxy (URL), the others direct.
python3 - "$work/cothority/public.toml" "$url" >"$work/roster.toml" <<'PY'
import sys
text = open(sys.argv[1]).read()
first = text.index("[[servers]]") + len("[[servers]]\n")
print(text[:first] + 'URL = "%s"\n' % sys.argv[2] + text[first:], end="")
PY

fails() { if "$@" >"$work/out" 2>&1; then echo "expected a failure: $*" >&2; cat "$work/out" >&2; exit 1; fi; }
echo "-- without the CA: refused (unknown issuer)"
fails "$conode" check "$work/roster.toml" --timeout 5
grep -q "UnknownIssuer" "$work/out" || { echo "no UnknownIssuer in:" >&2; cat "$work/out" >&2; exit 1; }
fails "$conode" sign --roster "$work/roster.toml" --message nope

echo "-- status (check) through nginx"
"$conode" --cacert "$work/ca.pem" check "$work/roster.toml" --timeout 5
echo "-- SSL_CERT_FILE works as well"
SSL_CERT_FILE="$work/ca.pem" "$conode" check "$work/roster.toml" --timeout 5 >/dev/null

echo "-- sign through nginx"
"$conode" sign --cacert "$work/ca.pem" --roster "$work/roster.toml" --message "through nginx" --out "$work/sig.json" >/dev/null
"$conode" verify --roster "$work/roster.toml" --signature "$work/sig.json" >/dev/null

echo "-- skipchain through nginx"
sc() { "$conode" skipchain "$@" --cacert "$work/ca.pem" --roster "$work/roster.toml"; }
genesis=$(sc create --key "$work/owner.toml" --data genesis | python3 -c 'import json,sys; print(json.load(sys.stdin)["genesis"])')
sc append --key "$work/owner.toml" --genesis "$genesis" --data "block 1" >/dev/null
sc get --genesis "$genesis" --index 1 >/dev/null
sc update --from "$genesis" --out "$work/proof.bin" >/dev/null

echo "-- beacon through nginx (each member's operator approves the group first, on its admin socket)"
for private in "$work"/cothority/co*/private.toml; do
  "$conode" -c "$private" beacon approve --roster "$work/roster.toml" --period 1 >/dev/null
done
"$conode" beacon init --cacert "$work/ca.pem" --roster "$work/roster.toml" --period 1 --phase-timeout 2 --genesis-delay 1 >/dev/null
for _ in $(seq 1 100); do
  "$conode" beacon get latest --cacert "$work/ca.pem" --roster "$work/roster.toml" --node 0 --verify >"$work/beacon.json" 2>/dev/null && break
  sleep 0.2
done
grep -q '"round"' "$work/beacon.json" || { echo "no beacon through nginx" >&2; cat "$work/beacon.json" >&2; exit 1; }

for route in "GET /Status/Request" "GET /Cosi/Sign" "GET /Skipchain/CreateChain" "GET /Skipchain/Append" \
             "GET /Beacon/Init" "GET /public/latest" "GET /info"; do
  grep -q "\"$route" "$work/nginx/logs/access.log" || { echo "nginx did not carry $route" >&2; exit 1; }
done

echo "-- Python client through nginx (cacert=)"
venv=$target/pyenv
# Always this checkout's module (an installed one may be older); the build shares the target dir.
echo "   building the Python module (tests/run-python.sh does the full Python suite)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q -r bindings/python/requirements-test.txt
wheels=$target/nginx-wheels
rm -rf "$wheels"
"$venv/bin/maturin" build --locked --profile dev -m bindings/python/Cargo.toml -i "$venv/bin/python" --out "$wheels" >/dev/null 2>&1
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/conode-*.whl
"$venv/bin/python" - "$url" "$work/ca.pem" <<'PY'
import sys, conode
url, ca = sys.argv[1], sys.argv[2]
try:
    conode.status(url, timeout=5)
    raise SystemExit("expected a failure without cacert")
except conode.NetworkError as e:
    assert "UnknownIssuer" in str(e), e
st = conode.status(url, timeout=5, cacert=ca)
assert "ServerIdentity" in st, st
c = conode.Client(url, timeout=10, cacert=ca)
info = c.beacon_info()
b = c.beacon_latest(info)
assert b.round >= 1, b
print("python: status and a verified beacon (round %d) through nginx" % b.round)
PY
echo "nginx: all client faces reach the node through the TLS proxy with a private CA"
