#!/bin/sh
# Entrypoint of the conode image: on the first start (no private.toml in the data volume) it runs
# `conode setup --non-interactive` from environment variables, then it runs the node in the
# foreground (PID 1 via exec, so `docker stop` sends SIGTERM to the node, which stops gracefully).
#
#   CONODE_HOST         name or IP the node is reachable under (required on first start)
#   CONODE_PORT         node port P (default 7770; the client port is P+1)
#   CONODE_LISTEN       address to bind (default 0.0.0.0:P)
#   CONODE_DESCRIPTION  description shown in rosters (default: empty)
#   CONODE_URL          public client URL when behind a TLS proxy (e.g. https://node.example.org)
#   CONODE_DATA         data folder (default /data, the volume)
#   CONODE_BIN          the conode binary (default: conode on PATH)
#   CONODE_DEBUG        log level 0..5 (default 1)
# Any arguments replace `server` (e.g. `docker run ... conode-image backup --out /data/b.bak`).
set -eu

data=${CONODE_DATA:-/data}
bin=${CONODE_BIN:-conode}
port=${CONODE_PORT:-7770}
config="$data/private.toml"

if [ ! -e "$config" ]; then
    if [ -z "${CONODE_HOST:-}" ]; then
        echo "entrypoint: first start: set CONODE_HOST (the name or IP this node is reachable under)" >&2
        exit 64
    fi
    echo "entrypoint: first start: creating the keys and config in $data"
    setup_url=""
    if [ -n "${CONODE_URL:-}" ]; then
        setup_url="--url=$CONODE_URL"
    fi
    # shellcheck disable=SC2086 # setup_url is one word or nothing
    "$bin" setup --non-interactive \
        --host "$CONODE_HOST" \
        --port "$port" \
        --listen "${CONODE_LISTEN:-0.0.0.0:$port}" \
        --description "${CONODE_DESCRIPTION:-}" \
        --folder "$data" $setup_url
fi

if [ "$#" -eq 0 ]; then
    set -- server
fi
exec "$bin" -d "${CONODE_DEBUG:-1}" -c "$config" "$@"
