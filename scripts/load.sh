#!/usr/bin/env bash
# make load: the API and two workers on the local MariaDB, Redis and
# versitygw (scripts/deps.sh starts them), then loadgen against them.
# Extra arguments go to loadgen (see bin/loadgen -h).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
go build -o bin/api ./cmd/api
go build -o bin/worker ./cmd/worker
go build -o bin/loadgen ./cmd/loadgen
db=imagesvc_load_$$
mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $db CHARACTER SET utf8mb4"
redis-cli -n 9 FLUSHDB >/dev/null
export DATABASE_URL=mysql://root@127.0.0.1:3306/$db REDIS_URL=redis://127.0.0.1:6379/9 \
	S3_ENDPOINT=http://127.0.0.1:7070 S3_BUCKET=load-$$ AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret \
	JWT_SECRET=load-test-secret-load-test-secret-load LOG_LEVEL=warn LOG_FORMAT=text \
	UPLOAD_RATE_PER_MINUTE=0 WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-2}
pids=()
cleanup() {
	kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $db" || true
}
trap cleanup EXIT
HTTP_ADDR=127.0.0.1:18080 bin/api & pids+=($!)
for _ in $(seq 1 100); do curl -fs http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.2; done
WORKER_HTTP_ADDR=127.0.0.1:19091 bin/worker & pids+=($!)
WORKER_HTTP_ADDR=127.0.0.1:19092 bin/worker & pids+=($!)
bin/loadgen -url http://127.0.0.1:18080 -api-metrics http://127.0.0.1:18080/metrics \
	-worker-metrics http://127.0.0.1:19091/metrics,http://127.0.0.1:19092/metrics "$@"
