# panther — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
GOBIN ?= $(shell $(GO) env GOPATH)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/pantheros/panther/pkg/version.Version=$(VERSION)
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
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN)/panther-lab ./controller/cmd/panther-lab

.PHONY: demo
demo: build ## As root: the whole flow on this machine (tailnet + 3 sandboxed hosts), ~1 min.
	$(BIN)/pantherctl lab demo

.PHONY: test
test: ## Run every test (real nix, systemd sandboxes and tailnet need root; see README).
	$(GO) test -count=1 -timeout 75m ./...

.PHONY: test-short
test-short: ## Run the fast unit tests only.
	$(GO) test -short ./...

.PHONY: tools
tools: ## Install buf and the protoc plugins at pinned versions.
	GOFLAGS= $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	GOFLAGS= $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOFLAGS= $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

.PHONY: proto
proto: ## Regenerate the gRPC code from proto/ with buf.
	PATH="$(GOBIN):$$PATH" buf generate

.PHONY: proto-check
proto-check: proto ## Fail when the committed generated code is stale.
	@git diff --exit-code -- proto/ || { echo "generated code is stale: run 'make proto' and commit"; exit 1; }

.PHONY: lint
lint: ## go vet, gofmt and buf lint.
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); [ -z "$$out" ] || { echo "gofmt needed: $$out"; exit 1; }
	PATH="$(GOBIN):$$PATH" buf lint

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 1m).
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-1m} $$pkg || exit 1; \
	  done; \
	done

.PHONY: clean
clean: ## Remove built binaries.
	rm -rf $(BIN)
