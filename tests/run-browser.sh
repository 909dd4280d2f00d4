#!/usr/bin/env bash
# The roster status page in a real browser, and /metrics through promtool, against a local
# cothority of four `conode server` processes running a beacon (period 2 s).
# Installs Debian's chromium, chromium-driver and prometheus (for promtool) when missing (as root,
# with apt-get); where they cannot be installed, says so and skips that part. Drives headless
# chromium with tests/browser/roster_page.py (chromedriver, stdlib Python only). Screenshots and
# logs stay in $CARGO_TARGET_DIR/browser. Usage: tests/run-browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
out=$target/browser
rm -rf "$out"
mkdir -p "$out"

install_debian() { # packages...
  local missing=()
  for p in "$@"; do [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    return 1
  fi
  echo "installing ${missing[*]} (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$out/apt.log" 2>&1
}

have_browser=1
install_debian chromium chromium-driver || have_browser=0
command -v chromium >/dev/null && command -v chromedriver >/dev/null || have_browser=0
have_promtool=1
install_debian prometheus || true
command -v promtool >/dev/null || have_promtool=0
if [ $have_browser -eq 0 ] && [ $have_promtool -eq 0 ]; then
  echo "SKIP: neither chromium+chromedriver nor promtool could be installed (needs root and apt-get; see $out/apt.log)"
  exit 0
fi

# Same package and target selection as test.sh, so this reuses its build (building the CLI alone
# unifies features differently and compiled conode-core again).
cargo build -q --workspace --all-targets --locked
conode=$target/debug/conode

# Four conodes on free loopback ports.
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # They are disowned (the browser test kills one on purpose): poll until they are gone.
  for p in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}
trap cleanup EXIT
ports=$(python3 - <<'PY'
import socket
socks, ports = [], []
while len(ports) < 4:
    a, b = socket.socket(), socket.socket()
    a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); b.close(); continue
    socks += [a, b]; ports.append(p)
print(" ".join(map(str, ports)))
PY
)
dir=$out/cothority
: >"$dir.toml"
mkdir -p "$dir"
i=0
for port in $ports; do
  "$conode" setup --non-interactive --host 127.0.0.1 --port "$port" --description "browser node $i" \
    --folder "$dir/co$i" >/dev/null
  cat "$dir/co$i/public.toml" >>"$dir.toml"
  i=$((i + 1))
done
mv "$dir.toml" "$dir/roster.toml"
for i in 0 1 2 3; do
  "$conode" -c "$dir/co$i/private.toml" server --allow-root >"$out/node$i.log" 2>&1 &
  pids+=($!)
  disown $!
done
first=$(echo "$ports" | cut -d' ' -f1)
base=http://127.0.0.1:$((first + 1))
for port in $ports; do
  for _ in $(seq 100); do
    python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$((port + 1))/ok', timeout=1)" 2>/dev/null && break
    sleep 0.2
  done
done
for i in 0 1 2 3; do
  "$conode" -c "$dir/co$i/private.toml" beacon approve --roster "$dir/roster.toml" --period 2 \
    --scheme bls-unchained-g1-rfc9380 >>"$out/beacon-init.log" 2>&1
done
"$conode" beacon init --roster "$dir/roster.toml" --period 2 --scheme bls-unchained-g1-rfc9380 \
  --phase-timeout 2 --genesis-delay 2 --json >"$out/beacon-init.json" 2>"$out/beacon-init.log"
# The roster's keys, in roster order, for the page test.
python3 - "$dir/roster.toml" >"$out/keys.txt" <<'PY'
import re, sys
print("\n".join(re.findall(r'^Public\s*=\s*"([0-9a-f]{64})"', open(sys.argv[1]).read(), re.M)))
PY
[ "$(wc -l <"$out/keys.txt")" -eq 4 ] || { echo "cannot read the 4 keys of $dir/roster.toml" >&2; exit 1; }

if [ $have_promtool -eq 1 ]; then
  # Wait for a beacon so every beacon series is present, then lint the exposition.
  for _ in $(seq 50); do
    python3 -c "import urllib.request; t=urllib.request.urlopen('$base/metrics').read().decode(); exit(0 if 'conode_beacon_lag_seconds_count' in t and 'conode_beacon_lag_seconds_count 0' not in t else 1)" && break
    sleep 0.2
  done
  python3 -c "import urllib.request; print(urllib.request.urlopen('$base/metrics').read().decode(), end='')" >"$out/metrics.txt"
  promtool check metrics <"$out/metrics.txt"
  echo "promtool check metrics: ok ($(grep -c '^# TYPE' "$out/metrics.txt") families)"
else
  echo "SKIP promtool check: promtool (Debian package prometheus) could not be installed"
fi

if [ $have_browser -eq 1 ]; then
  python3 tests/browser/roster_page.py "$base/" "$out/keys.txt" "${pids[3]}" "$out"
else
  echo "SKIP browser test: chromium and chromium-driver could not be installed (needs root and apt-get; see $out/apt.log)"
fi
