#!/usr/bin/env bash
# The reference server's request path against its floors (bare Falcon, fastapi-users), in one
# run: see bench/server.py. Bounded: the whole run, installs included, stays under 300 s.
#
# Run: bench/server.sh [--seconds 3] [--rounds 4] [--connections 16] [--no-postgres]
# The interpreter: $PYTHON, else .venv/bin/python, else python3.
# wrk is installed with apt when running as root in CI; without it a Python load generator runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && [ -n "${CI:-}" ]; then
    echo "installing wrk (root, CI)"
    DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q wrk >/dev/null 2>&1 \
        || { timeout 60 apt-get update -q >/dev/null \
             && DEBIAN_FRONTEND=noninteractive timeout 60 apt-get install -y -q wrk >/dev/null; } \
        || echo "wrk could not be installed: the Python load generator runs instead"
fi

# SIGTERM at 280 s lets the driver stop its servers; SIGKILL 5 s later if it does not.
exec timeout --kill-after=5 280 "$PYTHON" bench/server.py "$@"
