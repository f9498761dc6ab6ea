# panther — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/pantheros/panther/internal/version.Version=$(VERSION)
# ts_omit_peerapiserver removes tsnet's PeerAPI server, which otherwise opens a
# TCP listener on all of the host's interfaces: panther listens on the tailnet only.
TAGS := ts_omit_peerapiserver
BIN := bin

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build pantherctl, panther-agent and panther-lab into bin/.
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/pantherctl ./controller/cmd/pantherctl
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/panther-agent ./agent/cmd/panther-agent
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/panther-lab ./lab/cmd/panther-lab

.PHONY: setup
setup: ## As root: install what demo and test need (Debian packages, nix config, Go tools); idempotent.
	@hack/setup
	@$(MAKE) --no-print-directory tools

.PHONY: man
man: build ## Write the man pages and shell completions (generated from the commands) into bin/share.
	mkdir -p $(BIN)/share/man/man1 $(BIN)/share/man/man8 $(BIN)/share/completions
	$(BIN)/pantherctl man > $(BIN)/share/man/man1/pantherctl.1
	$(BIN)/panther-agent man > $(BIN)/share/man/man8/panther-agent.8
	for sh in bash zsh fish; do $(BIN)/pantherctl completion $$sh > $(BIN)/share/completions/pantherctl.$$sh; done

.PHONY: demo
demo: setup build ## As root: set up, then the whole flow on this machine (tailnet + 3 sandboxed hosts), ~1 min.
	$(BIN)/pantherctl lab demo

.PHONY: test
test: setup ## Set up, then run every test (real nix, systemd sandboxes and tailnet need root; see README).
	$(GO) test -tags $(TAGS) -count=1 -timeout 75m ./...

.PHONY: test-short
test-short: ## Run the fast unit tests only.
	$(GO) test -tags $(TAGS) -short ./...

TOOLS := github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION) \
	google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION) \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: tools
tools: ## Install buf and the protoc plugins at pinned versions (skips those already installed).
	@for t in $(TOOLS); do \
	  pkg=$${t%@*}; ver=$${t##*@}; bin="$(GOBIN)/$${pkg##*/}"; \
	  if $(GO) version -m "$$bin" 2>/dev/null | awk '$$1 == "mod" {print $$3; exit}' | grep -qxF "$$ver"; then \
	    echo "tools: $${pkg##*/} $$ver installed"; continue; \
	  fi; \
	  echo "tools: go install $$t"; GOFLAGS= $(GO) install "$$t" || exit 1; \
	done

.PHONY: proto
proto: ## Regenerate the gRPC code from proto/ with buf.
	PATH="$(GOBIN):$$PATH" buf generate

.PHONY: proto-check
proto-check: proto ## Fail when the committed generated code is stale.
	@git diff --exit-code -- proto/ || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }

.PHONY: lint
lint: ## go vet, gofmt and buf lint.
	$(GO) vet -tags $(TAGS) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	PATH="$(GOBIN):$$PATH" buf lint

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 1m).
	@GO=$(GO) TAGS=$(TAGS) hack/fuzz

# The benchmarks run in groups, each with the -benchtime (samples) it needs;
# their raw output lands in BENCH_OUT, and benchreport turns it into the table.
BENCH_OUT ?= $(BIN)/bench.out
BENCH_ENV := TS_NO_LOGS_NO_SUPPORT=true

.PHONY: bench
bench: ## As root: measure the figures with goals (~20 min) and write docs/BENCHMARKS.md.
	@mkdir -p $(BIN) docs
	@sysctl -qw fs.inotify.max_user_instances=1024 || echo "warning: raise fs.inotify.max_user_instances (32 sandboxes need more than the default 128)"
	@echo "benchmarks running (full output in $(BENCH_OUT))"
	@{ \
	  echo "bench-env: date: $$(date -u +%Y-%m-%dT%H:%M:%SZ)"; \
	  echo "bench-env: commit: $$(git describe --always --dirty 2>/dev/null)"; \
	  echo "bench-env: cores: $$(nproc)"; \
	  echo "bench-env: memory: $$(free -m | awk '/^Mem:/ {print $$2 " MiB"}')"; \
	  echo "bench-env: kernel: $$(uname -r)"; \
	  echo "bench-env: go: $$($(GO) env GOVERSION)"; \
	  echo "bench-env: load average at start: $$(cat /proc/loadavg)"; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^Benchmark(NoopDeploy|ColdStart|Upload)$$' -benchtime 10x -timeout 30m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^Benchmark(FanOut|DeadlineToRollback)$$' -benchtime 3x -timeout 30m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^BenchmarkAgentIdle$$' -benchtime 1x -timeout 10m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^BenchmarkPromptedDeploy$$' -benchtime 5x -timeout 15m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^BenchmarkFleetCache$$' -benchtime 1x -timeout 30m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^BenchmarkInputs50MB$$' -benchtime 1x -timeout 10m ./lab/e2e; \
	  $(BENCH_ENV) $(GO) test -run '^$$' -bench '^BenchmarkColdStartPersisted/tailnet$$' -benchtime 10x -timeout 10m ./internal/tailnet; \
	  $(BENCH_ENV) $(GO) test -tags $(TAGS) -run '^$$' -bench '^BenchmarkSimFleet$$' -benchtime 3x -timeout 20m ./lab/simfleet; \
	  echo "bench-env: load average at end: $$(cat /proc/loadavg)"; \
	} 2>&1 | tee $(BENCH_OUT) | grep --line-buffered -E '^(Benchmark|--- FAIL|FAIL|ok )' || true
	$(GO) run ./lab/e2e/benchreport -o docs/BENCHMARKS.md $(BENCH_OUT)

.PHONY: option-docs
option-docs: ## Regenerate docs/nixos-options.md, the NixOS module's option reference (nixos-module TestModuleOptionDocsCurrent checks it).
	nix --extra-experimental-features nix-command eval --raw -f nixos-module/stub/eval.nix optionsMarkdown > docs/nixos-options.md.tmp || { rm -f docs/nixos-options.md.tmp; exit 1; }
	mv docs/nixos-options.md.tmp docs/nixos-options.md

.PHONY: vendor-hash
vendor-hash: ## Print the Nix vendorHash of go.mod/go.sum (offline, from the Go module cache).
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	  GOFLAGS=-mod=mod $(GO) mod vendor -o "$$d/vendor" && \
	  nix --extra-experimental-features nix-command hash path "$$d/vendor"

.PHONY: clean
clean: ## Remove built binaries.
	rm -rf $(BIN)
