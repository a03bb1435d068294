package integration

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The chat servers serve /metrics on their own port (PARLEY_METRICS_ADDR=:9090,
// container port "metrics"), which neither the client-facing Service nor the
// Ingress route to: a separate headless Service <name>-metrics exposes it to
// Prometheus, and annotation-based scraping points at it.
func TestMetricsOnTheirOwnPort(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")

	cm := &corev1.ConfigMap{}
	f.get(cm, "chat-config")
	if cm.Data["PARLEY_METRICS_ADDR"] != ":9090" {
		t.Errorf("PARLEY_METRICS_ADDR = %q, want :9090", cm.Data["PARLEY_METRICS_ADDR"])
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	ports := map[string]int32{}
	for _, p := range dep.Spec.Template.Spec.Containers[0].Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["http"] != 8080 || ports["metrics"] != 9090 || len(ports) != 2 {
		t.Errorf("container ports %v, want http 8080 and metrics 9090", ports)
	}
	if a := dep.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != "9090" {
		t.Errorf("scrape annotations %v, want port 9090", a)
	}

	svc := &corev1.Service{}
	f.get(svc, "chat")
	for _, p := range svc.Spec.Ports {
		if p.Name != "http" || p.TargetPort.String() != "http" {
			t.Errorf("client-facing Service port %+v: only http may be exposed", p)
		}
	}
	ing := &networkingv1.Ingress{}
	f.get(ing, "chat")
	for _, r := range ing.Spec.Rules {
		for _, p := range r.HTTP.Paths {
			if b := p.Backend.Service; b == nil || b.Name != "chat" || b.Port.Name != "http" {
				t.Errorf("Ingress path %s goes to %+v, want Service chat port http", p.Path, p.Backend)
			}
		}
	}

	ms := &corev1.Service{}
	if f.absent(ms, "chat-metrics") {
		t.Fatal("no metrics Service chat-metrics")
	}
	if ms.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("metrics Service clusterIP %q, want None (headless: Prometheus scrapes each pod)", ms.Spec.ClusterIP)
	}
	if len(ms.Spec.Ports) != 1 || ms.Spec.Ports[0].Name != "metrics" || ms.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("metrics Service ports %+v", ms.Spec.Ports)
	}
	if ms.Spec.Selector["app.kubernetes.io/component"] != "chatserver" || ms.Spec.Selector["app.kubernetes.io/instance"] != "chat" {
		t.Errorf("metrics Service selector %v", ms.Spec.Selector)
	}
	if ref := metav1.GetControllerOf(ms); ref == nil || ref.Name != "chat" {
		t.Errorf("metrics Service controller %+v", ref)
	}
}

// The keyring Secret carries no owner reference with Retain, so its watch must
// map it by name: deleting it brings a reconcile (KeyringMissing) and restoring it
// (with its labels, as a backup of it has them) another (Ready). A restore
// without the labels is outside the operator's Secret cache: read uncached, it
// is found by the KeyringMissing backoff instead.
func TestManagerNoticesRetainedKeyringChanges(t *testing.T) {
	f := newFixture(t)
	startManager(t, f.ns)

	f.create(sample(f.ns, "chat"))
	keysReason := func() string { return cond(f.chat("chat"), "KeysReady").Reason }
	eventually(t, 20*time.Second, "the keyring to be created", func() bool {
		return cond(f.chat("chat"), "KeysReady").Status == metav1.ConditionTrue
	})
	sec := &corev1.Secret{}
	f.get(sec, "chat-keys")
	saved, savedLabels := sec.Data, sec.Labels

	if err := k8s.Delete(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "KeysReady=False/KeyringMissing after the Secret was deleted", func() bool { return keysReason() == "KeyringMissing" })
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-keys", Labels: savedLabels}, Data: saved}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "KeysReady=True after the Secret was restored", func() bool {
		return cond(f.chat("chat"), "KeysReady").Status == metav1.ConditionTrue
	})
}
