// Package v1alpha1 contains the ChatCluster API (group chat.parley.dev, version v1alpha1).
// +kubebuilder:object:generate=true
// +groupName=chat.parley.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the ChatCluster API.
	GroupVersion = schema.GroupVersion{Group: "chat.parley.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the API types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group and version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
