#!/usr/bin/env bash
# Builds (or reuses) the Kubernetes binaries a real single-node cluster needs, in bin/k8s:
#   kube-apiserver                     hack/envtest-assets.sh (wrapper module hack/kube)
#   kubelet, kube-controller-manager,  ONE go build through the wrapper module hack/cluster/kube
#   kube-scheduler, kube-proxy
# All at v1.37.2 (the version of our k8s.io/* v0.37.2 libraries). A binary is rebuilt only
# when it is missing or reports another version. Cold: 10+ min on 2 cores; warm: ~1 min.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$ROOT/bin/k8s
K8S_VERSION=v1.37.2
NODE_BINS="kubelet kube-controller-manager kube-scheduler kube-proxy"

"$ROOT/hack/envtest-assets.sh" ensure

has() { [ -x "$DIR/$1" ] && "$DIR/$1" --version 2>/dev/null | grep -q "$K8S_VERSION\$"; }
missing=()
for b in $NODE_BINS; do has "$b" || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
	pkgs=(); for b in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
	echo "k8s-binaries: building ${missing[*]} $K8S_VERSION (cold: 10+ min on 2 cores)..." >&2
	start=$(date +%s)
	tmp=$DIR/.build; rm -rf "$tmp"; mkdir -p "$tmp"
	# Into a scratch folder first, so an interrupted build never leaves a binary that looks cached.
	(cd "$ROOT/hack/cluster/kube" && go build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp/" "${pkgs[@]}")
	mv "$tmp"/* "$DIR/"; rmdir "$tmp"
	echo "k8s-binaries: built in $(( $(date +%s) - start ))s" >&2
fi
for b in kube-apiserver $NODE_BINS; do echo "  $b: $("$DIR/$b" --version)"; done >&2
if [ ${#missing[@]} -gt 0 ]; then echo "note: built ${missing[*]}"; else echo "note: all five cached in bin/k8s ($K8S_VERSION)"; fi
