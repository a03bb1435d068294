//go:build tools

// Package kube pins the Kubernetes binaries that hack/cluster runs next to
// hack/kube's kube-apiserver: kubelet, kube-controller-manager, kube-scheduler
// and kube-proxy, all at the same version (v1.37.2).
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
