package controllers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the operator's own metrics, registered on controller-runtime's
// registry by main (and on a private registry by tests).
type Metrics struct {
	Reconciles *prometheus.CounterVec
	Errors     *prometheus.CounterVec
	Rotations  *prometheus.CounterVec
	// State: gauges of each ChatCluster's state (state_metrics.go).
	State *StateMetrics
}

// NewMetrics creates and registers the operator metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_operator_reconciles_total",
			Help: "ChatCluster reconciles, by result (success, requeue, error, paused).",
		}, []string{"result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_operator_reconcile_errors_total",
			Help: "ChatCluster reconcile errors, by reason.",
		}, []string{"reason"}),
		Rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_operator_key_rotations_total",
			Help: "Key rotation steps, by key kind (jwt, data) and step (staged, activated, removed).",
		}, []string{"kind", "step"}),
		State: newStateMetrics(),
	}
	for _, c := range append([]prometheus.Collector{m.Reconciles, m.Errors, m.Rotations}, m.State.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register operator metrics: %w", err)
		}
	}
	return m, nil
}
