package controllers

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
)

// Capabilities tells which optional APIs the cluster serves. It is asked on every
// reconcile, so a CRD installed later is noticed without restarting the operator.
type Capabilities interface {
	ServiceMonitors(ctx context.Context) (bool, error)
	PrometheusRules(ctx context.Context) (bool, error)
	CustomMetrics(ctx context.Context) (bool, error)
}

// DiscoveryCapabilities answers from the API server's discovery endpoints.
type DiscoveryCapabilities struct {
	Discovery discovery.DiscoveryInterface
}

// ServiceMonitors reports whether monitoring.coreos.com/v1 serves servicemonitors.
func (d DiscoveryCapabilities) ServiceMonitors(ctx context.Context) (bool, error) {
	return d.serves("monitoring.coreos.com/v1", "servicemonitors")
}

// PrometheusRules reports whether monitoring.coreos.com/v1 serves prometheusrules.
func (d DiscoveryCapabilities) PrometheusRules(ctx context.Context) (bool, error) {
	return d.serves("monitoring.coreos.com/v1", "prometheusrules")
}

// CustomMetrics reports whether the custom metrics API is served (e.g. by prometheus-adapter).
func (d DiscoveryCapabilities) CustomMetrics(ctx context.Context) (bool, error) {
	for _, gv := range []string{"custom.metrics.k8s.io/v1beta2", "custom.metrics.k8s.io/v1beta1"} {
		ok, err := d.serves(gv, "")
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (d DiscoveryCapabilities) serves(groupVersion, resource string) (bool, error) {
	list, err := d.Discovery.ServerResourcesForGroupVersion(groupVersion)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", groupVersion, err)
	}
	if resource == "" {
		return true, nil
	}
	for _, r := range list.APIResources {
		if r.Name == resource {
			return true, nil
		}
	}
	return false, nil
}
