#!/usr/bin/env bash
# make latency: how soon a client learns its image is done on an idle
# stack, and the Redis commands an idle worker sends, with asynq's task
# check interval at its default (1s) and at ours (100ms). The API and one
# worker (concurrency 2) run on the local MariaDB and versitygw and on a
# Redis of their own (so that its command count is theirs alone); then
# bin/waitbench. Everything is stopped and dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
go build -o bin/api ./cmd/api
go build -o bin/worker ./cmd/worker
go build -o bin/waitbench ./cmd/waitbench

port=16390
db=imagesvc_latency_$$
redis-server --port $port --bind 127.0.0.1 --save "" --appendonly no --daemonize yes --pidfile /tmp/latency-redis-$$.pid >/dev/null
mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $db CHARACTER SET utf8mb4"
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true
	mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT
export DATABASE_URL=mysql://root@127.0.0.1:3306/$db REDIS_URL=redis://127.0.0.1:$port/0 \
	S3_ENDPOINT=http://127.0.0.1:7070 S3_BUCKET=latency-$$ AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret \
	JWT_SECRET=latency-test-secret-latency-test-secret-0123 DELIVERY_SIGNING_KEYS=t1:dGVzdC1kZWxpdmVyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg== LOG_LEVEL=warn LOG_FORMAT=text \
	UPLOAD_RATE_PER_MINUTE=0 WORKER_CONCURRENCY=2

commands() { redis-cli -p $port info stats | awk -F: '/^total_commands_processed/ {print $2+0}'; }

for interval in 1s 100ms; do
	echo "== WORKER_TASK_CHECK_INTERVAL=$interval"
	HTTP_ADDR=127.0.0.1:18090 bin/api & pids+=($!)
	for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.2; done
	WORKER_TASK_CHECK_INTERVAL=$interval WORKER_HTTP_ADDR=127.0.0.1:19095 bin/worker & pids+=($!)
	sleep 5
	a=$(commands); sleep 20; b=$(commands)
	echo "idle: $(( (b - a) / 20 )) Redis commands per second (API and worker, nothing queued)"
	bin/waitbench -url http://127.0.0.1:18090 -worker-metrics http://127.0.0.1:19095/metrics 2>/dev/null
	kill "${pids[@]}"; wait 2>/dev/null || true; pids=()
done
