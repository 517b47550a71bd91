#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian machine: libvips (cgo,
# for bimg), redis-sentinel (the failover test), versitygw (an S3-protocol server, posix backend), and checks
# that MariaDB and Redis answer, starting them if they do not; Node and npm
# for the OpenAPI linter and tus-js-client for the tus tests; Chromium for
# the web app's browser test. With the argument "vips" it installs libvips
# only (all that `make run` needs), with "node" libvips and Node only, with
# "cluster" libvips and what make cluster-test and make capacity run.
# Idempotent: what is there and running is left alone.
set -euo pipefail

VGW_VERSION=${VGW_VERSION:-v1.8.0}
S3_ADDR=${S3_ADDR:-127.0.0.1:7070}
S3_DIR=${S3_DIR:-${TMPDIR:-/tmp}/imagesvc-s3}
S3_ACCESS_KEY=${S3_ACCESS_KEY:-testkey}
S3_SECRET_KEY=${S3_SECRET_KEY:-testsecret}
GOBIN=$(go env GOPATH)/bin

log() { echo "deps: $*" >&2; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		log "need root for: $*"; return 1; fi
}

# libvips (and libjpeg-turbo and lcms2, which the imaging package also calls
# directly); the vips and cjpeg commands make test sources Go cannot write.
if ! pkg-config --exists vips libjpeg lcms2 2>/dev/null || ! command -v vips >/dev/null || ! command -v cjpeg >/dev/null; then
	log "installing libvips-dev"
	if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libvips-dev libjpeg62-turbo-dev liblcms2-dev libvips-tools libjpeg-turbo-progs pkg-config >/dev/null; }; then
		log "could not install libvips; run: sudo apt-get install -y libvips-dev"
		exit 1
	fi
fi

[ "${1:-}" = vips ] && exit 0

# make cluster-test and make capacity: iproute2 (network namespaces), a
# MariaDB server, Redis with Sentinel, perf (the worker's CPU profile), and
# versitygw; each runs in the test's own namespaces, not as a service here.
if [ "${1:-}" = cluster ]; then
	need=()
	command -v ip >/dev/null || need+=(iproute2)
	{ command -v mariadbd >/dev/null && command -v mariadb-install-db >/dev/null; } || need+=(mariadb-server mariadb-client)
	command -v redis-server >/dev/null || need+=(redis-server)
	command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
	command -v perf >/dev/null || need+=(linux-perf)
	if [ ${#need[@]} -gt 0 ]; then
		log "installing ${need[*]}"
		{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; } ||
			{ log "could not install them; run: sudo apt-get install -y ${need[*]}"; exit 1; }
	fi
	if [ ! -x "$GOBIN/versitygw" ]; then
		log "installing versitygw $VGW_VERSION"
		go install "github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION"
	fi
	exit 0
fi

# Node and npm run the OpenAPI linter (npx @redocly/cli, make lint-api).
if ! command -v npx >/dev/null; then
	log "installing nodejs and npm"
	{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; } ||
		{ log "could not install Node; run: sudo apt-get install -y nodejs npm"; exit 1; }
fi

[ "${1:-}" = node ] && exit 0

# tus-js-client, the tus reference client, at the version its lock file
# pins, for the resumable upload tests.
TUSCLIENT=internal/httpapi/testdata/tusclient
if [ ! -d "$TUSCLIENT/node_modules/tus-js-client" ]; then
	log "installing tus-js-client (npm ci in $TUSCLIENT)"
	npm ci --prefix "$TUSCLIENT" --no-audit --no-fund --silent ||
		{ log "could not install tus-js-client; run: npm ci --prefix $TUSCLIENT"; exit 1; }
fi

# docker-compose validates the compose file in the tests (no engine needed).
if ! command -v docker-compose >/dev/null; then
	log "installing docker-compose"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null ||
		{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null; } ||
		{ log "could not install docker-compose; run: sudo apt-get install -y docker-compose"; exit 1; }
fi

# Chromium drives the web app's browser test (internal/webapp); the test
# fails without it rather than skip.
if [ ! -x /usr/bin/chromium ]; then
	log "installing chromium"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
		{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } ||
		{ log "could not install Chromium; run: sudo apt-get install -y chromium"; exit 1; }
fi

# versitygw.
if [ ! -x "$GOBIN/versitygw" ]; then
	log "installing versitygw $VGW_VERSION"
	go install "github.com/versity/versitygw/cmd/versitygw@$VGW_VERSION"
fi

port_open() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }

wait_port() {
	for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.1; done
	return 1
}

if ! port_open "$S3_ADDR"; then
	mkdir -p "$S3_DIR"
	log "starting versitygw on $S3_ADDR over $S3_DIR"
	nohup "$GOBIN/versitygw" --access "$S3_ACCESS_KEY" --secret "$S3_SECRET_KEY" \
		--port "$S3_ADDR" --quiet posix "$S3_DIR" >"${S3_DIR}.log" 2>&1 &
	wait_port "$S3_ADDR" || { log "versitygw did not start; see ${S3_DIR}.log"; exit 1; }
fi

# MariaDB and Redis: this kind of machine starts them; start them if down.
if ! port_open 127.0.0.1:3306; then
	log "starting MariaDB"
	as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
	wait_port 127.0.0.1:3306 || { log "MariaDB is not answering on 127.0.0.1:3306"; exit 1; }
fi
# redis-sentinel: the Sentinel failover test (internal/redisconn) starts its
# own master, replica and three Sentinels.
if ! command -v redis-sentinel >/dev/null || ! command -v redis-server >/dev/null; then
	log "installing redis-sentinel"
	{ as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-sentinel >/dev/null; } ||
		{ log "could not install redis-sentinel; run: sudo apt-get install -y redis-sentinel"; exit 1; }
fi
if ! port_open 127.0.0.1:6379; then
	log "starting Redis"
	as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
		--dir /var/lib/redis --logfile /var/log/redis/ci.log || true
	wait_port 127.0.0.1:6379 || { log "Redis is not answering on 127.0.0.1:6379"; exit 1; }
fi
log "ready: MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379, S3 http://$S3_ADDR"
