#!/usr/bin/env bash
# Provides Helm 3 in bin/helm without a download site: `go install` builds it from the
# Go module proxy as its own module (pkg@version), so the project's go.mod and its
# k8s.io/* versions are untouched. A cold build takes several minutes on 2 cores.
#
#   hack/helm.sh ensure    build bin/helm unless it is there and reports VERSION
#   hack/helm.sh path      print the binary's path
#   hack/helm.sh version   print the version the project pins
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=helm
# A version the Go module proxy serves: go list -m -versions helm.sh/helm/v3
VERSION=v3.22.0
PKG=helm.sh/helm/v3/cmd/helm
# The Kubernetes version helm's release builds stamp in (from its k8s.io/* modules,
# v0.37.0 for v3.22.0): the default .Capabilities.KubeVersion of `helm template` and
# `helm lint` and the base of lint's deprecation checks.
K8S_MAJOR=1
K8S_MINOR=37
# The version and Kubernetes version come from ldflags, as in helm's own Makefile,
# so `helm version` (and the cache check) reports the version.
h=helm.sh/helm/v3
INSTALL_ARGS=(-ldflags "-s -w -X $h/internal/version.version=$VERSION -X $h/internal/version.gitTreeState=clean \
 -X $h/pkg/lint/rules.k8sVersionMajor=$K8S_MAJOR -X $h/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR \
 -X $h/pkg/chartutil.k8sVersionMajor=$K8S_MAJOR -X $h/pkg/chartutil.k8sVersionMinor=$K8S_MINOR")
INSTALL_ENV=()

installed_version() {
	"$ROOT/bin/helm" version --template '{{.Version}}' 2>/dev/null || true
}

# shellcheck source=hack/lib-goinstall.sh
. "$ROOT/hack/lib-goinstall.sh"
goinstall_main "$@"
