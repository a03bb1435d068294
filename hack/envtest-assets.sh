#!/usr/bin/env bash
# Provides the binaries controller-runtime's envtest needs (kube-apiserver, etcd,
# optionally kubectl) in one folder, without Docker or a download site:
# kube-apiserver is built from the Go module proxy through the wrapper module in
# hack/kube, etcd is Debian's (package etcd-server, installed by hack/install-deps.sh).
#
#   hack/envtest-assets.sh ensure   build or reuse the binaries in bin/k8s
#   hack/envtest-assets.sh path     print that folder (for KUBEBUILDER_ASSETS)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/bin/k8s
KUBE_MOD=$ROOT/hack/kube
# Must match the k8s.io/kubernetes requirement in hack/kube/go.mod.
K8S_VERSION=v1.37.2

build_apiserver() {
	local minor ldflags start
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
	echo "envtest-assets: building kube-apiserver $K8S_VERSION from the Go module proxy (6-13 min on 2 cores)..." >&2
	start=$(date +%s)
	mkdir -p "$DIR"
	# Build to a temporary name so an interrupted build never leaves a partial binary
	# that a later run would take for a cached one.
	(cd "$KUBE_MOD" && go build -mod=readonly -trimpath -ldflags="$ldflags" \
		-o "$DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
	mv "$DIR/kube-apiserver.tmp" "$DIR/kube-apiserver"
	echo "envtest-assets: kube-apiserver built in $(( $(date +%s) - start ))s" >&2
}

link_tool() { # name, candidates...
	local name=$1; shift
	local c
	for c in "$@"; do
		if [ -x "$c" ]; then
			ln -sf "$c" "$DIR/$name"
			return 0
		fi
	done
	return 1
}

ensure() {
	mkdir -p "$DIR"
	if [ ! -x "$DIR/kube-apiserver" ] || ! "$DIR/kube-apiserver" --version 2>/dev/null | grep -q "$K8S_VERSION"; then
		build_apiserver
	fi
	link_tool etcd "$(command -v etcd || true)" /usr/bin/etcd || {
		echo "envtest-assets: etcd not found; install Debian's etcd-server (hack/install-deps.sh)" >&2
		exit 1
	}
	# envtest uses kubectl only for its optional helpers.
	link_tool kubectl "$(command -v kubectl || true)" /usr/bin/kubectl || true
	echo "envtest-assets: ready in $DIR ($("$DIR/kube-apiserver" --version), $("$DIR/etcd" --version | head -1))" >&2
}

case "${1:-}" in
ensure) ensure ;;
path) echo "$DIR" ;;
*)
	echo "usage: $0 ensure|path" >&2
	exit 2
	;;
esac
