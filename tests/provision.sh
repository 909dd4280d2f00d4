#!/usr/bin/env bash
# Fetches the outside tools the test scripts need while test.sh builds (the build is bound by the
# two cores, these by the network and the disk): one apt-get run for every Debian package
# (iptables, chromium + chromium-driver, promtool's prometheus, nginx-light), without the
# recommended extras (prometheus alone pulled ~100 MiB of exporters and took minutes). Best
# effort: each test script still checks for its own tools and installs them, or skips with a
# message, where this could not. Usage: tests/provision.sh [LOG]
set -uo pipefail
log=${1:-/dev/stdout}
{
  echo "provision: started"
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    missing=()
    for p in iptables chromium chromium-driver prometheus nginx-light; do
      [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "provision: apt-get install ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      # man pages are not needed by the tests; their trigger alone takes a while.
      # A dpkg run interrupted earlier would make every apt-get refuse; a stalled mirror must
      # not hold the tests for long.
      dpkg --configure -a || true
      timeout 600 apt-get update -qq &&
        timeout 900 apt-get install -y -qq --no-install-recommends -o "Dpkg::Options::=--path-exclude=/usr/share/man/*" \
          "${missing[@]}" ||
        echo "provision: apt-get failed (the test scripts will try again or skip)"
    fi
  else
    echo "provision: not root or no apt-get: the test scripts install or skip their tools"
  fi
  echo "provision: done"
} >"$log" 2>&1
