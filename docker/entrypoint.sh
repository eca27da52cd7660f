#!/bin/sh
# The one start script of the container image (and of CI's test of it): checks that it runs
# as an unprivileged user, prepares the data directory, then replaces itself with
# `storno-security <command>` (default: serve), so signals reach the server directly.
#
#   docker run ... storno-security-image                  # serve
#   docker run ... storno-security-image vault rotate     # any other command
set -eu

if [ "$(id -u)" = "0" ]; then
  echo "storno-entrypoint: refusing to run as root: run the image as its storno user" >&2
  exit 1
fi

: "${STORNO_DATA_DIR:=/data}"
: "${STORNO_HOST:=0.0.0.0}"
export STORNO_DATA_DIR STORNO_HOST

umask 077
if ! mkdir -p "$STORNO_DATA_DIR" 2>/dev/null || [ ! -w "$STORNO_DATA_DIR" ]; then
  echo "storno-entrypoint: the data directory $STORNO_DATA_DIR is not writable by uid $(id -u)" >&2
  exit 1
fi

if [ "$#" -eq 0 ]; then
  set -- serve
fi
exec storno-security "$@"
