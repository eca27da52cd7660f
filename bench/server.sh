#!/usr/bin/env bash
# Reference-server throughput on loopback: GET /.well-known/jwks.json without and with a Bearer
# token, measured with wrk in the same run (see bench/server_app.py). Bounded: under 60 s.
#
# Run: bench/server.sh [--seconds 4] [--rounds 3] [--redis-url URL]
# The interpreter: $PYTHON, else .venv/bin/python, else python3.
# wrk is installed with apt only when running as root in CI; otherwise a missing wrk skips.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" = "0" ] && [ -n "${CI:-}" ]; then
        echo "installing wrk (root, CI)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }
    else
        echo "server bench skipped: wrk is not installed (apt-get install wrk; this script installs it only as root in CI)"
        exit 0
    fi
fi

# SIGTERM at 58 s lets the helper stop its server; SIGKILL 2 s later if it does not.
exec timeout --kill-after=2 58 "$PYTHON" bench/server_app.py "$@"
