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
#   hack/prometheus.sh ensure    build bin/prometheus unless it is there at PROMETHEUS_VERSION
#   hack/prometheus.sh path      print the binary's path
#   hack/prometheus.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
# The Go module version of github.com/prometheus/prometheus (Prometheus 3.x is published to
# the proxy as v0.3xx.y); kept equal to hack/promtool.sh's PROMTOOL_VERSION.
PROMETHEUS_VERSION=$("$ROOT/hack/promtool.sh" version)

installed_version() {
	"$BIN/prometheus" --version 2>/dev/null | sed -n 's/^prometheus, version \([^ ]*\).*/\1/p' || true
}

ensure() {
	if [ -x "$BIN/prometheus" ] && [ "$(installed_version)" = "$PROMETHEUS_VERSION" ]; then
		return 0
	fi
	echo "prometheus: building prometheus $PROMETHEUS_VERSION from the Go module proxy (minutes on 2 cores)..." >&2
	local start
	start=$(date +%s)
	mkdir -p "$BIN"
	# A private folder first, so an interrupted build never leaves a binary that a later run
	# would take for the cached one.
	PROMETHEUS_TMP=$(mktemp -d "$BIN/.prometheus-build.XXXXXX")
	trap 'rm -rf "$PROMETHEUS_TMP"' EXIT
	local tmp=$PROMETHEUS_TMP
	local ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
	(cd "$tmp" && GOBIN="$tmp" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd -ldflags "$ldflags" \
		"github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION")
	mv "$tmp/prometheus" "$BIN/prometheus"
	echo "prometheus: $PROMETHEUS_VERSION built in $(($(date +%s) - start))s" >&2
	if [ "$(installed_version)" != "$PROMETHEUS_VERSION" ]; then
		echo "prometheus: bin/prometheus reports '$(installed_version)', want $PROMETHEUS_VERSION" >&2
		exit 1
	fi
}

case "${1:-}" in
ensure) ensure ;;
path) echo "$BIN/prometheus" ;;
version) echo "$PROMETHEUS_VERSION" ;;
*)
	echo "usage: $0 ensure|path|version" >&2
	exit 2
	;;
esac
