// Package controllers reconciles ChatClusters (chat.parley.dev/v1alpha1).
//
// The desired children are built by pure functions (resources.go) and written
// with server-side apply under one field manager, only when they differ from what
// that manager owns (apply.go). The keyring Secret follows the rotation schedule
// in keyring.go. Status conditions, Events and metrics report what a person needs
// to see. docs/operator.md describes the behaviour; the envtest suites in
// controllers/integration demonstrate it against a real kube-apiserver.
package controllers
