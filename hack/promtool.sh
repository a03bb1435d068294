#!/usr/bin/env bash
# Provides Prometheus' promtool in bin/promtool for `promtool test rules` (make
# test-alerts): `go install` builds it from the Go module proxy as its own module
# (pkg@version), so the project's go.mod is untouched. A cold build (module cache
# empty for Prometheus' dependencies) took 22 min on the shared 2-core machine
# (docs/operator.md, Alerts and dashboard).
#
#   hack/promtool.sh ensure    build bin/promtool unless it is there at PROMTOOL_VERSION
#   hack/promtool.sh path      print the binary's path
#   hack/promtool.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
# The Go module version of github.com/prometheus/prometheus (Prometheus 3.x is
# published to the proxy as v0.3xx.y): go list -m -versions github.com/prometheus/prometheus
PROMTOOL_VERSION=v0.316.0

installed_version() {
	# The version is stamped in with ldflags below; --version prints it.
	"$BIN/promtool" --version 2>/dev/null | sed -n 's/^promtool, version \([^ ]*\).*/\1/p' || true
}

ensure() {
	if [ -x "$BIN/promtool" ] && [ "$(installed_version)" = "$PROMTOOL_VERSION" ]; then
		return 0
	fi
	echo "promtool: building promtool $PROMTOOL_VERSION from the Go module proxy (minutes on 2 cores)..." >&2
	local start
	start=$(date +%s)
	mkdir -p "$BIN"
	# A private folder first, so an interrupted build never leaves a binary that a
	# later run would take for the cached one.
	PROMTOOL_TMP=$(mktemp -d "$BIN/.promtool-build.XXXXXX")
	trap 'rm -rf "$PROMTOOL_TMP"' EXIT
	local tmp=$PROMTOOL_TMP
	local ldflags="-s -w -X github.com/prometheus/common/version.Version=$PROMTOOL_VERSION"
	(cd "$tmp" && GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" \
		"github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION")
	mv "$tmp/promtool" "$BIN/promtool"
	echo "promtool: $PROMTOOL_VERSION built in $(($(date +%s) - start))s" >&2
	if [ "$(installed_version)" != "$PROMTOOL_VERSION" ]; then
		echo "promtool: bin/promtool reports '$(installed_version)', want $PROMTOOL_VERSION" >&2
		exit 1
	fi
}

case "${1:-}" in
ensure) ensure ;;
path) echo "$BIN/promtool" ;;
version) echo "$PROMTOOL_VERSION" ;;
*)
	echo "usage: $0 ensure|path|version" >&2
	exit 2
	;;
esac
