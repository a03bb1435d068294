package controllers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/keyringfile"
	"github.com/parley-chat/parley/pkg/settings"
)

// StateMetrics are gauges of each ChatCluster's state as the operator last saw
// it, for alerts (config/monitoring/alerts.yaml) and the dashboard. Every
// series carries namespace and chatcluster (the ChatCluster's, not the
// operator's: scrape the operator with honorLabels).
type StateMetrics struct {
	Ready             *prometheus.GaugeVec
	Phase             *prometheus.GaugeVec
	ReplicasDesired   *prometheus.GaugeVec
	ReplicasAvailable *prometheus.GaugeVec
	ConnectionLimit   *prometheus.GaugeVec
	KeyActivated      *prometheus.GaugeVec
	StagedKeyCreated  *prometheus.GaugeVec
	PropagationWindow *prometheus.GaugeVec
	DataKeyInfo       *prometheus.GaugeVec
}

var clusterLabels = []string{"namespace", "chatcluster"}

func newStateMetrics() *StateMetrics {
	g := func(name, help string, extra ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, append(append([]string{}, clusterLabels...), extra...))
	}
	return &StateMetrics{
		Ready: g("parley_operator_chatcluster_ready",
			"1 when the ChatCluster's Ready condition is True, 0 otherwise (also while paused or hibernating: see parley_operator_chatcluster_phase)."),
		Phase: g("parley_operator_chatcluster_phase",
			"1 for the ChatCluster's phase: the reason of its Ready condition (Ready, RollingOut, Unavailable, KeysNotReady, Hibernating, Paused, ...).", "phase"),
		ReplicasDesired: g("parley_operator_chatcluster_replicas_desired",
			"Chat server replicas the operator asks for (0 when hibernating; the autoscaler's choice when autoscaling)."),
		ReplicasAvailable: g("parley_operator_chatcluster_replicas_available",
			"Chat server replicas available, as the Deployment reports them."),
		ConnectionLimit: g("parley_operator_chatcluster_connection_limit",
			"WebSocket connections each chat server of the ChatCluster accepts (spec.server.maxConnections or the server's default)."),
		KeyActivated: g("parley_operator_key_activated_timestamp_seconds",
			"When the active key of each kind (jwt, data) was activated, in Unix seconds: time() minus this is the key's age.", "kind"),
		StagedKeyCreated: g("parley_operator_staged_key_created_timestamp_seconds",
			"When the oldest staged key of each kind (jwt, data) was created, in Unix seconds; absent while none is staged.", "kind"),
		PropagationWindow: g("parley_operator_key_propagation_window_seconds",
			"The ChatCluster's key propagation window: how long a staged key waits at least before it is promoted."),
		DataKeyInfo: g("parley_operator_data_key_info",
			"1 for each data key in the keyring, by key id and state (staged, active, retired).", "kid", "state"),
	}
}

func (m *StateMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Ready, m.Phase, m.ReplicasDesired, m.ReplicasAvailable, m.ConnectionLimit,
		m.KeyActivated, m.StagedKeyCreated, m.PropagationWindow, m.DataKeyInfo}
}

func clusterKey(cc *chatv1alpha1.ChatCluster) prometheus.Labels {
	return prometheus.Labels{"namespace": cc.Namespace, "chatcluster": cc.Name}
}

// Forget removes every series of a ChatCluster that is gone.
func (m *StateMetrics) Forget(namespace, name string) {
	for _, c := range m.collectors() {
		c.(*prometheus.GaugeVec).DeletePartialMatch(prometheus.Labels{"namespace": namespace, "chatcluster": name})
	}
}

// observeCluster records the state the status (just computed) describes.
func (m *StateMetrics) observeCluster(cc *chatv1alpha1.ChatCluster) {
	ns, name := cc.Namespace, cc.Name
	phase := string(ReasonReconciling)
	ready := 0.0
	if c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionReady); c != nil {
		phase = c.Reason
		if c.Status == metav1.ConditionTrue {
			ready = 1
		}
	}
	m.Ready.WithLabelValues(ns, name).Set(ready)
	// One phase series per cluster: drop the previous one first.
	m.Phase.DeletePartialMatch(clusterKey(cc))
	m.Phase.WithLabelValues(ns, name, phase).Set(1)
	m.ReplicasDesired.WithLabelValues(ns, name).Set(float64(cc.Status.DesiredReplicas))
	m.ReplicasAvailable.WithLabelValues(ns, name).Set(float64(cc.Status.ReadyReplicas))
	limit := float64(settings.MaxConnections.Def)
	if cc.Spec.Server.MaxConnections != nil {
		limit = float64(*cc.Spec.Server.MaxConnections)
	}
	m.ConnectionLimit.WithLabelValues(ns, name).Set(limit)
}

// observeKeys records the keyring's key ages and data key states.
func (m *StateMetrics) observeKeys(cc *chatv1alpha1.ChatCluster, f *keyringfile.File, window time.Duration) {
	ns, name := cc.Namespace, cc.Name
	m.PropagationWindow.WithLabelValues(ns, name).Set(window.Seconds())
	type key struct {
		state     string
		created   time.Time
		activated *time.Time
	}
	kinds := map[string][]key{}
	for _, k := range f.JWT {
		kinds["jwt"] = append(kinds["jwt"], key{k.State, k.Created, k.Activated})
	}
	m.DataKeyInfo.DeletePartialMatch(clusterKey(cc))
	for _, k := range f.Data {
		kinds["data"] = append(kinds["data"], key{k.State, k.Created, k.Activated})
		m.DataKeyInfo.WithLabelValues(ns, name, k.ID, k.State).Set(1)
	}
	for _, kind := range []string{"jwt", "data"} {
		var oldestStaged time.Time
		for _, k := range kinds[kind] {
			switch k.state {
			case keyringfile.StateActive:
				at := k.created
				if k.activated != nil {
					at = *k.activated
				}
				m.KeyActivated.WithLabelValues(ns, name, kind).Set(unixSeconds(at))
			case keyringfile.StateStaged:
				if oldestStaged.IsZero() || k.created.Before(oldestStaged) {
					oldestStaged = k.created
				}
			}
		}
		if oldestStaged.IsZero() {
			m.StagedKeyCreated.DeleteLabelValues(ns, name, kind)
		} else {
			m.StagedKeyCreated.WithLabelValues(ns, name, kind).Set(unixSeconds(oldestStaged))
		}
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
