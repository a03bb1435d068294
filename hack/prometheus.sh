#!/usr/bin/env bash
# Provides the Prometheus server in bin/prometheus for make e2e-cluster (a real Prometheus on
# the node scraping the chat servers and the operator, loading config/monitoring/alerts.yaml).
# `go install` builds it from the Go module proxy as its own module (pkg@version), so the
# project's go.mod is untouched; same version as hack/promtool.sh, so the module cache a
# promtool build filled serves this one too. Built without the `builtinassets` tag (no web UI;
# the HTTP API, what the scenario reads, is all there) and with only the Kubernetes service
# discovery (`remove_all_sd,enable_kubernetes_sd`: the cloud SDKs of the other 25 discoveries
# would more than double the build).
#
#   hack/prometheus.sh ensure    build bin/prometheus unless it is there at VERSION
#   hack/prometheus.sh path      print the binary's path
#   hack/prometheus.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=prometheus
# The Go module version of github.com/prometheus/prometheus (Prometheus 3.x is published to
# the proxy as v0.3xx.y); kept equal to hack/promtool.sh's.
VERSION=$("$ROOT/hack/promtool.sh" version)
PKG=github.com/prometheus/prometheus/cmd/prometheus
INSTALL_ARGS=(-tags remove_all_sd,enable_kubernetes_sd -ldflags "-s -w -X github.com/prometheus/common/version.Version=$VERSION")
INSTALL_ENV=()

installed_version() {
	"$ROOT/bin/prometheus" --version 2>/dev/null | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p' || true
}

# shellcheck source=hack/lib-goinstall.sh
. "$ROOT/hack/lib-goinstall.sh"
goinstall_main "$@"
