#!/usr/bin/env bash
# Provides CoreDNS in bin/coredns for make e2e-cluster: the node's cluster DNS (the kubernetes
# plugin answering for cluster.local, as on every Kubernetes cluster; hack/cluster/Corefile).
# `go install` builds it from the Go module proxy as its own module (pkg@version), so the
# project's go.mod is untouched.
#
#   hack/coredns.sh ensure    build bin/coredns unless it is there at COREDNS_VERSION
#   hack/coredns.sh path      print the binary's path
#   hack/coredns.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
COREDNS_VERSION=v1.14.2

installed_version() {
	# "CoreDNS-1.14.2" on the first line of -version
	"$BIN/coredns" -version 2>/dev/null | sed -n 's/^CoreDNS-\([0-9.]*\).*/v\1/p' | head -1 || true
}

ensure() {
	if [ -x "$BIN/coredns" ] && [ "$(installed_version)" = "$COREDNS_VERSION" ]; then
		return 0
	fi
	echo "coredns: building coredns $COREDNS_VERSION from the Go module proxy (minutes on 2 cores)..." >&2
	local start
	start=$(date +%s)
	mkdir -p "$BIN"
	# A private folder first, so an interrupted build never leaves a binary that a later run
	# would take for the cached one.
	COREDNS_TMP=$(mktemp -d "$BIN/.coredns-build.XXXXXX")
	trap 'rm -rf "$COREDNS_TMP"' EXIT
	local tmp=$COREDNS_TMP
	(cd "$tmp" && CGO_ENABLED=0 GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
		"github.com/coredns/coredns@$COREDNS_VERSION")
	mv "$tmp/coredns" "$BIN/coredns"
	echo "coredns: $COREDNS_VERSION built in $(($(date +%s) - start))s" >&2
	if [ "$(installed_version)" != "$COREDNS_VERSION" ]; then
		echo "coredns: bin/coredns reports '$(installed_version)', want $COREDNS_VERSION" >&2
		exit 1
	fi
}

case "${1:-}" in
ensure) ensure ;;
path) echo "$BIN/coredns" ;;
version) echo "$COREDNS_VERSION" ;;
*)
	echo "usage: $0 ensure|path|version" >&2
	exit 2
	;;
esac
