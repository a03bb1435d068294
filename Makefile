# Parley: make run (one chat server, embedded defaults) and make test (everything).
SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := $(CURDIR)/bin
export GOBIN := $(BIN)

.PHONY: all run build test test-unit deps postgres-up postgres-down redis-up redis-down fmt vet lint clean help

all: build

help:
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

## ---------------------------------------------------------------- chat server
build: web ## Build the chat server and the operator into bin/
	$(GO) build -o $(BIN)/chatserver ./chatserver/cmd/chatserver
	$(GO) build -o $(BIN)/manager .

run: web ## Run one chat server on the embedded defaults (SQLite, in-process backplane, generated keys)
	$(GO) build -o $(BIN)/chatserver ./chatserver/cmd/chatserver
	$(BIN)/chatserver $(ARGS)

deps: ## Install the system packages the tests need (PostgreSQL, Redis, etcd, Chromium)
	hack/install-deps.sh

postgres-up: deps
	hack/postgres.sh start >/dev/null

postgres-down:
	hack/postgres.sh stop

redis-up: deps
	hack/redis.sh start >/dev/null

redis-down:
	hack/redis.sh stop

fmt:
	gofmt -l -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

test: deps postgres-up redis-up test-assets web vet helm ## Install and start what the tests need, then run them all
	set -a; source tmp/postgres/env; source tmp/redis/env; set +a; \
	export KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh path)"; \
	rc=0; \
	$(GO) test -count=1 -timeout 30m ./... || rc=$$?; \
	$(MAKE) --no-print-directory test-web || rc=1; \
	exit $$rc

test-unit: ## Fast tests only (no services)
	$(GO) test -short ./...

clean:
	rm -rf bin tmp data chatserver/web/dist/assets chatserver/web/node_modules

## ---------------------------------------------------------------- web client
.PHONY: web test-web
web: ## Build the web client into chatserver/web/dist (embedded in the binary)
	hack/web.sh build

test-web: ## Web client unit tests (Vitest) and browser tests (Chromium)
	hack/web.sh test

## ---------------------------------------------------------------- operator
.PHONY: test-assets manifests generate controller-gen test-operator install deploy
test-assets: ## Build or reuse kube-apiserver and etcd for envtest (cached in bin/)
	hack/envtest-assets.sh ensure

CONTROLLER_GEN := $(BIN)/controller-gen
CONTROLLER_GEN_VERSION := v0.23.0

$(CONTROLLER_GEN):
	$(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)

controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/

generate: $(CONTROLLER_GEN) ## Generate the API's deepcopy functions
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

manifests: $(CONTROLLER_GEN) ## Generate the CRD and the operator's RBAC into config/
	$(CONTROLLER_GEN) crd rbac:roleName=parley-operator paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

test-operator: test-assets ## Operator tests only (unit + envtest)
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh path)" $(GO) test -count=1 ./api/... ./controllers/... ./pkg/keyringfile/...

install: manifests ## Install the CRD into the cluster of the current kubeconfig
	kubectl apply --server-side -k config/crd

deploy: manifests ## Deploy the operator (config/default) into the cluster of the current kubeconfig
	kubectl apply --server-side -k config/default

## ---------------------------------------------------------------- benchmarks
.PHONY: bench bench-go
bench: deps ## Load test: 2 replicas + Redis + PostgreSQL on loopback, with baselines; figures into docs/benchmarks.md
	hack/bench.sh

bench-go: postgres-up ## Go benchmarks of the hot paths (seal/open, store append, fan-out); output into docs/benchmarks.md
	mkdir -p tmp/bench
	set -a; source tmp/postgres/env; set +a; \
	$(GO) test -run '^$$' -bench . -benchmem -count 1 \
		./chatserver/keyring/ ./chatserver/store/sqlstore/ ./chatserver/realtime/ | tee tmp/bench/go-bench.txt
	{ echo "date: $$(date -u '+%Y-%m-%d %H:%M UTC')"; echo "commit: $$(git rev-parse --short HEAD)"; \
	  echo "command: make bench-go (go test -run '^\$$' -bench . -benchmem on keyring, store/sqlstore, realtime)"; \
	  echo "load average: $$(cut -d' ' -f1-3 /proc/loadavg) (shared machine)"; } > tmp/bench/go-bench-meta.txt
	$(GO) run ./chatserver/cmd/parley-load/benchdoc -doc docs/benchmarks.md -go-bench tmp/bench/go-bench.txt

## ---------------------------------------------------------------- helm
.PHONY: helm chart-manifests helm-lint test-helm
CHART := charts/parley-operator

helm: ## Build or reuse Helm 3 in bin/helm (go install from the Go module proxy, pinned in hack/helm.sh)
	hack/helm.sh ensure

chart-manifests: manifests ## Copy the CRD and the operator's ClusterRole rules from config/ into the chart
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/role.yaml

helm-lint: helm ## helm lint --strict the chart
	$(BIN)/helm lint --strict $(CHART)

test-helm: helm test-assets ## The chart's tests only: drift, lint, template, install/upgrade/uninstall on envtest
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh path)" $(GO) test -count=1 ./charts/...

## ---------------------------------------------------------------- real cluster
.PHONY: e2e-cluster e2e-cluster-down
e2e-cluster: ## End-to-end on a REAL single-node Kubernetes (root, no Docker): operator + ChatCluster; ~2 min warm, 15+ cold
	hack/cluster/e2e.sh

e2e-cluster-down: ## Tear down what an interrupted make e2e-cluster left running
	hack/cluster/node.sh down
