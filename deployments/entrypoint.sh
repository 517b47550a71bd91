#!/bin/sh
# Runs "api" or "worker" (with any further arguments, such as "api migrate").
set -e
cmd=${1:-api}
shift || true
case "$cmd" in
  api|worker) exec "/usr/local/bin/$cmd" "$@" ;;
  *) exec "$cmd" "$@" ;;
esac
