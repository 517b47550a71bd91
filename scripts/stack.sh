# Sourced by load.sh and soak.sh: start_stack NAME API_PORT WORKER_PORT_1
# WORKER_PORT_2 REDIS_DB starts the API and two workers on the local
# MariaDB (a fresh database), Redis (a flushed database) and versitygw (a
# fresh bucket), waits for the API to be ready, and stops everything and
# drops the database on exit.
start_stack() {
	local name=$1 api=$2 w1=$3 w2=$4 rdb=$5
	bash scripts/deps.sh
	go build -o bin/api ./cmd/api
	go build -o bin/worker ./cmd/worker
	go build -o bin/loadgen ./cmd/loadgen
	stack_db=imagesvc_${name}_$$
	mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $stack_db CHARACTER SET utf8mb4"
	redis-cli -n "$rdb" FLUSHDB >/dev/null
	export DATABASE_URL=mysql://root@127.0.0.1:3306/$stack_db REDIS_URL=redis://127.0.0.1:6379/$rdb \
		S3_ENDPOINT=http://127.0.0.1:7070 S3_BUCKET=$name-$$ AWS_ACCESS_KEY_ID=testkey AWS_SECRET_ACCESS_KEY=testsecret \
		JWT_SECRET=$name-test-secret-$name-test-secret-0123456789 DELIVERY_SIGNING_KEYS=t1:dGVzdC1kZWxpdmVyeS1rZXktMDEyMzQ1Njc4OWFiY2RlZg== LOG_LEVEL=warn LOG_FORMAT=text \
		UPLOAD_RATE_PER_MINUTE=0 WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-2}
	stack_pids=()
	trap stop_stack EXIT
	HTTP_ADDR=127.0.0.1:$api bin/api & stack_pids+=($!)
	for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$api/readyz" >/dev/null && break; sleep 0.2; done
	WORKER_HTTP_ADDR=127.0.0.1:$w1 bin/worker & stack_pids+=($!)
	WORKER_HTTP_ADDR=127.0.0.1:$w2 bin/worker & stack_pids+=($!)
	sleep 1
}

stop_stack() {
	kill "${stack_pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	mysql -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $stack_db" || true
}
