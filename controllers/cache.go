package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretWatchLabel and SecretWatchValue select the Secrets the operator's cache
// holds and watches: its own (every object it creates carries the label) and
// the referenced ones (DSN, Redis password, S3 credentials) that users label so.
const (
	SecretWatchLabel = "app.kubernetes.io/part-of"
	SecretWatchValue = "parley"
)

// CacheOptions are the manager's cache options: informers on the operator's
// kinds, but for Secrets and ConfigMaps, which clusters hold by the thousand
// and which are often large, only those it made (ConfigMaps) or that carry
// the watch label (Secrets). watchNamespace, if set, limits every informer to
// that namespace (--watch-namespace).
func CacheOptions(watchNamespace string) cache.Options {
	o := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: labels.SelectorFromSet(labels.Set{SecretWatchLabel: SecretWatchValue})},
		&corev1.ConfigMap{}: {Label: labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": FieldOwner})},
	}}
	if watchNamespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{watchNamespace: {}}
	}
	return o
}

// ClientOptions make every Secret read go to the API server. The Secret cache
// is label-selected, so a cached Get could miss a referenced Secret nobody
// labelled, or a keyring Secret restored from a backup without its labels, and
// the operator would take it for missing (and, with nothing recorded, write a
// new keyring over the restored one). A reconcile reads at most a handful of
// Secrets; the label-selected informer remains, to bring changes in at once.
func ClientOptions() client.Options {
	return client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}
}
