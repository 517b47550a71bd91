#!/usr/bin/env bash
# make soak: the API and two workers on local services under a steady load
# for SOAK_DURATION (default 10m); prints goroutines, open file descriptors
# and RSS of each process at the start, every ten batches of 100 images and
# at the end, so that a leak shows as a climb rather than two points.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${SOAK_DURATION:-10m}
. scripts/stack.sh
start_stack soak 18180 19191 19192 10
sample() {
	for m in http://127.0.0.1:18180/metrics http://127.0.0.1:19191/metrics http://127.0.0.1:19192/metrics; do
		curl -fs "$m" | awk -v m="$m" '
			/^go_goroutines / {g=$2} /^process_open_fds / {f=$2} /^process_resident_memory_bytes / {r=$2}
			END {printf "  %-36s goroutines %4d  open fds %4d  RSS %5d MB\n", m, g, f, r/1048576}'
	done
}
echo "start (after warm-up):"
bin/loadgen -url http://127.0.0.1:18180 -users 2 -images 20 -c 4 -mp 2 >/dev/null
sample
echo "steady load for $duration (8 clients, 2 MP uploads, one batch of 100 after another)…"
case "$duration" in
	*m) seconds=$(( ${duration%m} * 60 )) ;;
	*s) seconds=${duration%s} ;;
	*) seconds=$duration ;;
esac
end=$(( $(date +%s) + seconds ))
batches=0
while [ "$(date +%s)" -lt "$end" ]; do
	bin/loadgen -url http://127.0.0.1:18180 -users 2 -images 100 -c 8 -mp 2 >/dev/null
	batches=$((batches + 1))
	if [ $((batches % 10)) = 0 ]; then
		echo "after $batches batches:"
		sample
	fi
done
sleep 5 # let idle connections close
echo "end, after $batches batches of 100 images:"
sample
