#!/usr/bin/env bash
# Provides CoreDNS in bin/coredns for make e2e-cluster: the node's cluster DNS (the kubernetes
# plugin answering for cluster.local, as on every Kubernetes cluster; hack/cluster/Corefile).
# `go install` builds it from the Go module proxy as its own module (pkg@version), so the
# project's go.mod is untouched.
#
#   hack/coredns.sh ensure    build bin/coredns unless it is there at VERSION
#   hack/coredns.sh path      print the binary's path
#   hack/coredns.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=coredns
VERSION=v1.14.2
PKG=github.com/coredns/coredns
INSTALL_ARGS=(-ldflags "-s -w")
INSTALL_ENV=(CGO_ENABLED=0)

installed_version() {
	# "CoreDNS-1.14.2" on the first line of -version
	"$ROOT/bin/coredns" -version 2>/dev/null | sed -n 's/^CoreDNS-\([0-9.]*\).*/v\1/p' | head -1 || true
}

# shellcheck source=hack/lib-goinstall.sh
. "$ROOT/hack/lib-goinstall.sh"
goinstall_main "$@"
