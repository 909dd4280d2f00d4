#!/usr/bin/env bash
# WAN simulation (issue 18): members in separate network namespaces on a bridge, every connection
# between them through a delaying relay (one-way delay, jitter, loss), measuring cosi rounds,
# skipchain appends and beacon tick -> served. Prints one JSON line per loss setting.
#
# Needs root and `ip netns` (the kernel has no netem: the delay comes from the test's own relay,
# cli/tests/cli/relay.rs, reached through each member's overrides.toml). Settings (environment):
#   CONODE_WAN_MEMBERS   members            (default 16)
#   CONODE_WAN_DELAY_MS  one-way delay, ms  (default 50)
#   CONODE_WAN_JITTER_MS jitter, ms         (default 5, uniform in ±jitter)
#   CONODE_WAN_LOSS      loss percents, comma-separated (default "0,1"); a lost chunk arrives
#                        CONODE_WAN_RTO_MS (default 200) late, as a TCP retransmission would
#   CONODE_WAN_ROUNDS    cosi rounds and appends per setting (default 30)
#   CONODE_WAN_BEACONS   beacon ticks per setting (default 10)
# The short variant (4 members, 5 rounds, 3 ticks) runs with the CLI tests (./test.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" -ne 0 ]; then
    echo "SKIPPED WAN simulation: needs root (network namespaces)" >&2
    exit 0
fi
if ! ip netns add conode-wan-probe 2>/dev/null; then
    echo "SKIPPED WAN simulation: network namespaces are not permitted here" >&2
    exit 0
fi
ip netns del conode-wan-probe
export CONODE_WAN_MEMBERS="${CONODE_WAN_MEMBERS:-16}"
export CONODE_WAN_DELAY_MS="${CONODE_WAN_DELAY_MS:-50}"
export CONODE_WAN_JITTER_MS="${CONODE_WAN_JITTER_MS:-5}"
export CONODE_WAN_LOSS="${CONODE_WAN_LOSS:-0,1}"
export CONODE_WAN_RTO_MS="${CONODE_WAN_RTO_MS:-200}"
export CONODE_WAN_ROUNDS="${CONODE_WAN_ROUNDS:-30}"
export CONODE_WAN_BEACONS="${CONODE_WAN_BEACONS:-10}"
cargo test --release -p conode-cli --test cli wan_simulation -- --nocapture --test-threads 1 2>&1 \
    | grep -E '^\{"|SKIPPED|panicked|FAILED|test result'
