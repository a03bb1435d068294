#!/usr/bin/env bash
# Provides Helm 3 in bin/helm without a download site: `go install` builds it from the
# Go module proxy as its own module (pkg@version), so the project's go.mod and its
# k8s.io/* versions are untouched. A cold build takes several minutes on 2 cores.
#
#   hack/helm.sh ensure    build bin/helm unless it is there and reports HELM_VERSION
#   hack/helm.sh path      print the binary's path
#   hack/helm.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/bin
# A version the Go module proxy serves: go list -m -versions helm.sh/helm/v3
HELM_VERSION=v3.22.0
# The Kubernetes version helm's release builds stamp in (from its k8s.io/* modules,
# v0.37.0 for v3.22.0): the default .Capabilities.KubeVersion of `helm template` and
# `helm lint` and the base of lint's deprecation checks.
K8S_MAJOR=1
K8S_MINOR=37

installed_version() {
	"$BIN/helm" version --template '{{.Version}}' 2>/dev/null || true
}

ensure() {
	if [ -x "$BIN/helm" ] && [ "$(installed_version)" = "$HELM_VERSION" ]; then
		return 0
	fi
	echo "helm: building helm $HELM_VERSION from the Go module proxy (several minutes on 2 cores)..." >&2
	local start
	start=$(date +%s)
	mkdir -p "$BIN"
	# Install into a private folder first so an interrupted build never leaves a
	# binary that a later run would take for the cached one.
	HELM_TMP=$(mktemp -d "$BIN/.helm-build.XXXXXX")
	trap 'rm -rf "$HELM_TMP"' EXIT
	local tmp=$HELM_TMP
	# The version and Kubernetes version come from ldflags, as in helm's own Makefile,
	# so `helm version` (and the cache check above) reports the version.
	local pkg=helm.sh/helm/v3
	local ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION -X $pkg/internal/version.gitTreeState=clean \
 -X $pkg/pkg/lint/rules.k8sVersionMajor=$K8S_MAJOR -X $pkg/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
 -X $pkg/pkg/chartutil.k8sVersionMajor=$K8S_MAJOR -X $pkg/pkg/chartutil.k8sVersionMinor=$K8S_MINOR"
	(cd "$tmp" && GOBIN="$tmp" go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION")
	mv "$tmp/helm" "$BIN/helm"
	echo "helm: $("$BIN/helm" version --short) built in $(($(date +%s) - start))s" >&2
	if [ "$(installed_version)" != "$HELM_VERSION" ]; then
		echo "helm: bin/helm reports '$(installed_version)', want $HELM_VERSION" >&2
		exit 1
	fi
}

case "${1:-}" in
ensure) ensure ;;
path) echo "$BIN/helm" ;;
version) echo "$HELM_VERSION" ;;
*)
	echo "usage: $0 ensure|path|version" >&2
	exit 2
	;;
esac
