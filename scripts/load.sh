#!/usr/bin/env bash
# make load: the API and two workers on the local MariaDB, Redis and
# versitygw, then loadgen against them. Extra arguments go to loadgen (see
# bin/loadgen -h).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/stack.sh
start_stack load 18080 19091 19092 9
bin/loadgen -url http://127.0.0.1:18080 -api-metrics http://127.0.0.1:18080/metrics \
	-worker-metrics http://127.0.0.1:19091/metrics,http://127.0.0.1:19092/metrics "$@"
