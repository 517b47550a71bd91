# imagesvc: `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin

# The OpenAPI linter, pinned; npx fetches it from the npm registry on first
# use. The 1.x line runs on Node 18 (Debian 12's nodejs, which
# scripts/deps.sh installs where Node is missing) as well as on 20; the 2.x
# releases need 20.19 or later.
REDOCLY := REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npx --yes @redocly/cli@1.34.20

# `make run-services` talks to the local MariaDB, Redis and versitygw that
# scripts/deps.sh installs and starts.
SERVICES_ENV := DATABASE_URL=$${DATABASE_URL:-mysql://root@127.0.0.1:3306/imagesvc} \
	REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:6379/0} \
	S3_ENDPOINT=$${S3_ENDPOINT:-http://127.0.0.1:7070} S3_BUCKET=$${S3_BUCKET:-images} \
	AWS_ACCESS_KEY_ID=$${AWS_ACCESS_KEY_ID:-testkey} AWS_SECRET_ACCESS_KEY=$${AWS_SECRET_ACCESS_KEY:-testsecret} \
	JWT_SECRET=$${JWT_SECRET:-$$(cat data/jwt_secret)} LOG_FORMAT=$${LOG_FORMAT:-text} \
	DELIVERY_SIGNING_KEYS=$${DELIVERY_SIGNING_KEYS:-$$(cat data/delivery_keys)} \
	CORS_ALLOWED_ORIGINS=$${CORS_ALLOWED_ORIGINS:-http://localhost:8080,http://127.0.0.1:8080}

.PHONY: help vips deps build install-cli run run-services test test-unit test-faults cluster-test capacity fuzz bench bench-hostile load latency soak lint lint-api generate migrate admin clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

vips: ## install libvips (Debian package libvips-dev) if it is missing
	@bash scripts/deps.sh vips

deps: ## install libvips and versitygw, start versitygw, check MariaDB and Redis
	@bash scripts/deps.sh

build: vips ## build bin/api and bin/worker
	$(GO) build -o $(BIN)/api ./cmd/api
	$(GO) build -o $(BIN)/worker ./cmd/worker

install-cli: ## install the imagesvc command-line client into $(go env GOPATH)/bin (pure Go, no libvips)
	$(GO) install ./cmd/imagesvc

run: build ## quickstart: one process with embedded database, Redis and S3 under ./data, on :8080
	@QUICKSTART=true LOG_FORMAT=$${LOG_FORMAT:-text} $(BIN)/api

data/jwt_secret:
	@mkdir -p data && head -c 48 /dev/urandom | base64 | tr -d '\n' > $@ && chmod 600 $@

data/delivery_keys:
	@mkdir -p data && printf 'k1:%s' "$$(head -c 32 /dev/urandom | base64 | tr -d '\n')" > $@ && chmod 600 $@

run-services: deps build data/jwt_secret data/delivery_keys ## the API (:8080) and a separate worker (:9090) on local MariaDB, Redis and versitygw
	@mysql -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS imagesvc CHARACTER SET utf8mb4' 2>/dev/null || true
	@$(SERVICES_ENV) $(BIN)/api bucket-cors # pages of these origins may PUT straight to versitygw
	@$(SERVICES_ENV) WORKER_HTTP_ADDR=$${WORKER_HTTP_ADDR:-127.0.0.1:9090} $(BIN)/worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker' EXIT INT TERM; \
	$(SERVICES_ENV) $(BIN)/api

test: deps ## install and start what the tests need, lint the OpenAPI document, then run every test with -race, the imaging package's C under AddressSanitizer, and a short fuzz run
	$(GO) vet ./...
	$(REDOCLY) lint --format=stylish
	$(GO) test -race -count=1 -timeout 15m ./...
	# The C in internal/imaging reads untrusted JPEGs: its memory errors
	# fail here. Leak reports are off (libvips and GLib keep process-wide
	# caches until exit); make bench and make soak watch the RSS instead.
	# Two golden comparisons with libvips are skipped here: they feed
	# libvips' loaders and the resampler generated (trusted) pictures that
	# the other tests feed too, spend most of their time in instrumented Go
	# building them (over 2 of this step's 6.5 minutes), and have just run
	# under -race.
	ASAN_OPTIONS=detect_leaks=0 $(GO) test -asan -count=1 -timeout 10m \
		-skip '^(TestStreamedPNGMatchesLibvips|TestGoldenOrientation)$$' ./internal/imaging/
	# A count, not a duration: Go 1.26's fuzz coordinator can fail a run
	# with a bare "context deadline exceeded" when a -fuzztime duration
	# ends while a starved worker is mid-call (golang/go#75804, fixed in 1.27).
	$(GO) test -run '^$$' -fuzz FuzzInspect -fuzztime 50000x ./internal/sniff/

test-unit: vips ## the fast tier: every test that needs no MariaDB, Redis or S3 (domain logic on fakes, header checks, imaging), in about a minute
	$(GO) test -short -count=1 ./...

test-faults: deps ## the fault tests, three times in a row each, with a 30 s database outage; then, as root, make cluster-test
	FAULT_DB_OUTAGE=30s $(GO) test -count=3 -timeout 60m -run 'Fault|Killed|Stopped' ./cmd/worker/ ./internal/httpapi/
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory cluster-test; else echo "cluster-test skipped: it needs root (network namespaces)"; fi

cluster-test: ## (root) ten hosts in network namespaces under upload load: a worker host cut off, the Redis master killed (Sentinel), an API stopped; about 5 minutes (docs/scale-out.md)
	@bash scripts/deps.sh cluster
	CLUSTER_TEST=1 $(GO) test -count=1 -v -timeout 15m -run '^TestCluster$$' ./internal/cluster/

capacity: ## (root) images per second with 1, 2 and 3 worker hosts at equal CPU shares, CPU per image of every process, Redis, MariaDB and S3 requests per image (CAPACITY_IMAGES, CAPACITY_WORKER_CPU)
	@bash scripts/deps.sh cluster
	CLUSTER_TEST=1 CLUSTER_CAPACITY=1 $(GO) test -count=1 -v -timeout 40m -run '^TestCapacity$$' ./internal/cluster/

fuzz: ## fuzz the upload header checks for 5 minutes (FUZZTIME=…)
	$(GO) test -run '^$$' -fuzz FuzzInspect -fuzztime $${FUZZTIME:-5m} ./internal/sniff/

bench: vips ## F/N/P table on a generated corpus, each VARIANT_FORMATS set against JPEG alone, a worker's memory over 500 24 MP images (BENCH_SOAK=…), then the hostile sources
	$(GO) build -o $(BIN)/imagebench ./cmd/imagebench
	$(BIN)/imagebench -soak 0 2>/dev/null
	# The format sets on the generated 12 MP JPEG and on the real photos
	# of bimg's test data (a phone's 12 MP, a 24 MP), in the module cache.
	$(BIN)/imagebench -formats -photos "$$($(GO) list -m -f '{{.Dir}}' github.com/h2non/bimg)/testdata" 2>/dev/null
	$(BIN)/imagebench -table=false -soak $${BENCH_SOAK:-500} 2>/dev/null
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 5x ./internal/imaging/ 2>/dev/null
	$(BIN)/imagebench -hostile 2>/dev/null

bench-hostile: vips ## the costliest sources an upload can carry, two at once: CPU, wall time and peak RSS of each
	$(GO) build -o $(BIN)/imagebench ./cmd/imagebench
	$(BIN)/imagebench -hostile 2>/dev/null

load: ## the API and two workers on local services under loadgen (LOAD_ARGS="-images 500 -c 32 -mp 12")
	@bash scripts/load.sh $${LOAD_ARGS:-}

latency: ## on an idle stack: accepted-to-done beside the processing time, a batch of 8 large photos against their decode floor, idle Redis commands; asynq's check interval 1s and 100ms
	@bash scripts/latency.sh

soak: ## the API and two workers under steady load for SOAK_DURATION (10m); goroutines, fds and RSS at start and end
	@bash scripts/soak.sh

lint: vips ## gofmt, go vet and staticcheck
	@test -z "$$(gofmt -l .)" || { gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

lint-api: ## lint internal/httpapi/openapi.yaml with Redocly's recommended rules (redocly.yaml; installs Node if missing)
	@bash scripts/deps.sh node
	$(REDOCLY) lint --format=stylish

generate: ## regenerate the API client (pkg/client) from the OpenAPI document
	$(GO) generate ./pkg/client/

migrate: build data/jwt_secret data/delivery_keys ## apply the database migrations to DATABASE_URL (default: local MariaDB) and exit
	@mysql -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS imagesvc CHARACTER SET utf8mb4' 2>/dev/null || true
	@$(SERVICES_ENV) $(BIN)/api bucket-cors # pages of these origins may PUT straight to versitygw
	@$(SERVICES_ENV) $(BIN)/api migrate

admin: build ## give a user the admin role: make admin EMAIL=me@example.com (uses DATABASE_URL, else the quickstart's ./data)
	@test -n "$(EMAIL)" || { echo "usage: make admin EMAIL=user@example.com"; exit 2; }
	@QUICKSTART=$${QUICKSTART:-true} $(BIN)/api promote "$(EMAIL)"

clean: ## remove build output and local data
	rm -rf $(BIN) data
