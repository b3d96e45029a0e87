# smoothcast — `make help` lists the targets.
GO        ?= go
BIN       := build
PKGS      := ./...
FUZZTIME  ?= 10s
# Minimizing each new interesting input defaults to 60 s, which stalls short runs.
FUZZMIN   ?= 2s

.DEFAULT_GOAL := help
.PHONY: help run test test-short chaos synth cdk-app deploy destroy bench build build-lambda build-relay fmt lint fuzz deps players clean

help: ## list the targets
	@awk 'BEGIN{FS=":.*## "} /^[a-zA-Z_-]+:.*## /{printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: ## build and start the local stack (embedded S3, relay :8080, edge :8081, player page /player/)
	@[ -d players/node_modules/dashjs ] || { command -v npm >/dev/null 2>&1 && $(MAKE) --no-print-directory players; } || echo "npm not found: the player page will lack dash.js and hls.js (install npm, then make players)" >&2
	$(GO) build -buildvcs=auto -o $(BIN)/smoothcast ./cmd/smoothcast
	./$(BIN)/smoothcast run $(ARGS)

players: ## install the browser players and their driver (npm ci in players/)
	cd players && npm ci --no-audit --no-fund

deps: ## bring the tools the tests drive (gcc, ffmpeg, chromium, node, players/, GStreamer, qemu-user): as root, install them; otherwise say how
	@scripts/check-deps.sh

test: deps ## the whole suite (brings its tools first, see deps): vet, race-enabled unit tests, end-to-end with ffmpeg, short fuzz runs
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	@mkdir -p $(BIN) && rm -f $(BIN)/figures.txt
	@# The unit packages first, then the end-to-end suite on its own: its
	@# encoders, players and relays run in real time and must not share
	@# two cores with race-enabled unit tests.
	@# go test -race needs cgo, hence a C compiler: without one (deps has
	@# said so, and in CI failed) the tests run without the race detector.
	race=-race; [ "$$($(GO) env CGO_ENABLED)" = 1 ] || { race=; echo "no C compiler (gcc): the tests run without -race" >&2; }; \
	SMOOTHCAST_MEASURE_OUT=$(CURDIR)/$(BIN)/figures.txt $(GO) test $$race -count=1 -timeout 15m $$($(GO) list $(PKGS) | grep -v '/e2e$$') && \
	SMOOTHCAST_MEASURE_OUT=$(CURDIR)/$(BIN)/figures.txt $(GO) test $$race -count=1 -timeout 25m ./e2e; rc=$$?; \
	  [ ! -s $(BIN)/figures.txt ] || { echo "figures (the chaos suite's, among others):"; cat $(BIN)/figures.txt; }; exit $$rc
	$(MAKE) --no-print-directory fuzz FUZZTIME=3s

test-short: ## unit tests only (no ffmpeg, no end-to-end)
	$(GO) test -short -count=1 $(PKGS)

FUZZJOBS  ?= 2

fuzz: ## run every fuzz target for FUZZTIME each, FUZZJOBS at a time (scripts/fuzz.sh: a failure is run again, the finding first)
	@GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMIN=$(FUZZMIN) FUZZJOBS=$(FUZZJOBS) scripts/fuzz.sh

CHAOS_FRAGMENTS ?= 600
# SMOOTHCAST_CHAOS_SEED (from the environment or the command line) replays
# the fault decisions of the run that logged it (RELIABILITY.md).
chaos: ## the chaos suite at length: CHAOS_FRAGMENTS 1-second fragments per encoder (600: 10 minutes) through S3 faults, a relay kill and a zone lost for good; SMOOTHCAST_CHAOS_SEED=n replays a run
	SMOOTHCAST_CHAOS_SEED=$(SMOOTHCAST_CHAOS_SEED) SMOOTHCAST_CHAOS_FRAGMENTS=$(CHAOS_FRAGMENTS) $(GO) test -run '^TestChaos$$' -count=1 -v -timeout 90m ./e2e 2>&1 | grep -E 'chaos_test|^(---|ok|FAIL|panic)'

LATENCY_MINUTES ?= 10
BENCH ?= .

bench: ## every measurement of BENCHMARKS.md: Go benchmarks in 5 rounds (build/bench.txt; BENCH=regexp), then latency, CPU against ffmpeg, memory (build/measure.txt; LATENCY_MINUTES=10)
	@# Five rounds of every benchmark rather than -count=5, which runs each
	@# five times in a row: on a shared machine the load would then differ
	@# between a figure and the baseline it is compared with.
	mkdir -p $(BIN) && rm -f $(BIN)/bench.txt
	set -e; for round in 1 2 3 4 5; do \
		$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -count=1 ./shared/... ./functions/... > $(BIN)/bench.round; \
		cat $(BIN)/bench.round >> $(BIN)/bench.txt; cat $(BIN)/bench.round; \
	done; rm -f $(BIN)/bench.round
	rm -f $(BIN)/measure.txt
	SMOOTHCAST_MEASURE=1 SMOOTHCAST_MEASURE_OUT=$(CURDIR)/$(BIN)/measure.txt LATENCY_MINUTES=$(LATENCY_MINUTES) \
		$(GO) test -count=1 -timeout 90m -run='^TestMeasure' ./e2e/
	cat $(BIN)/measure.txt

build: build-lambda build-relay ## build the Lambda bootstrap and the relay for linux/arm64
	$(GO) build -buildvcs=auto -o $(BIN)/smoothcast ./cmd/smoothcast

build-lambda: ## the manifest function: build/manifest/bootstrap (provided.al2023, arm64)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags='-s -w' -o $(BIN)/manifest/bootstrap ./functions/manifest

build-relay: ## the ingest relay: build/ingest/smoothcast-ingest (linux/arm64)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/ingest/smoothcast-ingest ./functions/ingest

# The CDK CLI from infra/package-lock.json, quiet: no notices, no version
# check, no telemetry.
CDK := CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true infra/_cdk/node_modules/.bin/cdk --no-notices

infra/_cdk/node_modules/.bin/cdk: infra/_cdk/package-lock.json
	cd infra/_cdk && npm ci --no-audit --no-fund

# cdk.json's app: the assets first, so that cdk synth, deploy and
# bootstrap work on a clean checkout.
cdk-app: build-lambda build-relay
	$(GO) run ./infra

# cfn-lint's exit status is a bit mask: 2 errors, 4 warnings, 8
# informational. Errors fail; warnings are shown.
synth: infra/_cdk/node_modules/.bin/cdk ## synthesize the AWS stack into cdk.out/ (offline): cdk-nag's AwsSolutions checks and cfn-lint must pass (CDK_ARGS="-c relays=2" for another configuration)
	$(CDK) synth --quiet $(CDK_ARGS)
	@command -v cfn-lint >/dev/null || { echo "cfn-lint not found: pip install cfn-lint (1.51)" >&2; exit 1; }
	cfn-lint cdk.out/*.template.json; rc=$$?; [ $$((rc & 2)) -eq 0 ] || { echo "cfn-lint found errors in the template" >&2; exit 1; }

deploy: infra/_cdk/node_modules/.bin/cdk ## deploy to the account and region of your AWS credentials (pass context with CDK_ARGS="-c ingestCidrs=203.0.113.0/24")
	$(CDK) deploy --require-approval broadening $(CDK_ARGS)

destroy: infra/_cdk/node_modules/.bin/cdk ## tear the stack down (the media and log buckets are kept: empty and delete them yourself)
	$(CDK) destroy $(CDK_ARGS)

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

lint: ## gofmt check and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)

clean: ## remove build output, cdk.out, the local data directory and the npm packages
	rm -rf $(BIN) cdk.out .smoothcast players/node_modules infra/_cdk/node_modules
