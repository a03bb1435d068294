#!/usr/bin/env bash
# Provides Prometheus' promtool in bin/promtool for `promtool test rules` (make
# test-alerts): `go install` builds it from the Go module proxy as its own module
# (pkg@version), so the project's go.mod is untouched. A cold build (module cache
# empty for Prometheus' dependencies) took 22 min on the shared 2-core machine
# (docs/operator.md, Alerts and dashboard).
#
#   hack/promtool.sh ensure    build bin/promtool unless it is there at VERSION
#   hack/promtool.sh path      print the binary's path
#   hack/promtool.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The Go module version of github.com/prometheus/prometheus (Prometheus 3.x is
# published to the proxy as v0.3xx.y): go list -m -versions github.com/prometheus/prometheus
NAME=promtool
VERSION=v0.316.0
PKG=github.com/prometheus/prometheus/cmd/promtool
# The version is stamped in with ldflags; --version prints it.
INSTALL_ARGS=(-ldflags "-s -w -X github.com/prometheus/common/version.Version=$VERSION")
INSTALL_ENV=()

installed_version() {
	"$ROOT/bin/promtool" --version 2>/dev/null | sed -n 's/^promtool, version \([^ ]*\).*/\1/p' || true
}

# shellcheck source=hack/lib-goinstall.sh
. "$ROOT/hack/lib-goinstall.sh"
goinstall_main "$@"
