//go:build tools

// Package kube pins the Kubernetes control-plane binaries that envtest runs.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
