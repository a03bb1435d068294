package integration

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/config/monitoring"
)

// gauges gathers the reconciler's state gauges as "name{label=value,...}" → value.
func (f *fixture) gauges() map[string]float64 {
	f.t.Helper()
	reg := prometheus.NewRegistry()
	s := f.r.Metrics.State
	reg.MustRegister(s.Ready, s.Phase, s.ReplicasDesired, s.ReplicasAvailable, s.ConnectionLimit,
		s.KeyActivated, s.StagedKeyCreated, s.PropagationWindow, s.DataKeyInfo)
	mfs, err := reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out[seriesName(mf.GetName(), m)] = m.GetGauge().GetValue()
		}
	}
	return out
}

func seriesName(name string, m *dto.Metric) string {
	var l []string
	for _, p := range m.GetLabel() {
		l = append(l, p.GetName()+"="+p.GetValue())
	}
	return name + "{" + strings.Join(l, ",") + "}"
}

// kubectlGet prints `kubectl get chatcluster` as a person sees it.
func kubectlGet(t *testing.T, ns string) string {
	t.Helper()
	stdout, stderr, err := testEnv.ControlPlane.KubeCtl().Run("get", "chatcluster", "-n", ns)
	out, _ := io.ReadAll(stdout)
	if err != nil {
		e, _ := io.ReadAll(stderr)
		t.Fatalf("kubectl get chatcluster: %v\n%s", err, e)
	}
	return string(out)
}

// row returns the whitespace-separated fields of the line for name.
func row(t *testing.T, table, name string) []string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return f
		}
	}
	t.Fatalf("no row %s in\n%s", name, table)
	return nil
}

// spec.paused stops reconciliation and says so: Paused=True, the health
// conditions Unknown (not the health seen before the pause), the Reason
// column "Paused" and the phase gauge; unpausing applies what waited.
func TestPausedShowsPausedCondition(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.simulateRollout("chat", 3, 3)
	f.simulateRedisReady("chat")
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Ready"); c.Status != metav1.ConditionTrue {
		t.Fatalf("Ready = %+v before the pause", c)
	}
	if c := cond(f.chat("chat"), "Paused"); c.Status != metav1.ConditionFalse || c.Reason != "NotPaused" {
		t.Errorf("Paused = %+v, want False/NotPaused", c)
	}
	table := kubectlGet(t, f.ns)
	if !strings.Contains(table, "READY") || !strings.Contains(table, "REASON") || !strings.Contains(table, "DESIRED") || !strings.Contains(table, "AVAILABLE") {
		t.Errorf("kubectl get columns:\n%s", table)
	}
	if got := strings.Join(row(t, table, "chat")[1:5], " "); got != "True Ready 3 3" {
		t.Errorf("kubectl get row = %q, want \"True Ready 3 3\"\n%s", got, table)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Paused = true
		cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v9"
	})
	f.reconcile("chat")
	got := f.chat("chat")
	if c := cond(got, "Paused"); c.Status != metav1.ConditionTrue || c.Reason != "Paused" || !strings.Contains(c.Message, "spec.paused") {
		t.Errorf("Paused = %+v, want True/Paused naming spec.paused", c)
	}
	for _, typ := range []string{"Ready", "Available", "Progressing", "Degraded"} {
		if c := cond(got, typ); c.Status != metav1.ConditionUnknown || c.Reason != "Paused" {
			t.Errorf("%s while paused = %+v, want Unknown/Paused", typ, c)
		}
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if dep.Spec.Template.Spec.Containers[0].Image == "ghcr.io/parley-chat/chatserver:v9" {
		t.Error("a paused ChatCluster's Deployment was changed")
	}
	if got := strings.Join(row(t, kubectlGet(t, f.ns), "chat")[1:3], " "); got != "Unknown Paused" {
		t.Errorf("kubectl get while paused = %q, want \"Unknown Paused\"", got)
	}
	g := f.gauges()
	if g["parley_operator_chatcluster_phase{chatcluster=chat,namespace="+f.ns+",phase=Paused}"] != 1 ||
		g["parley_operator_chatcluster_ready{chatcluster=chat,namespace="+f.ns+"}"] != 0 {
		t.Errorf("gauges while paused: %v", g)
	}
	if _, ok := g["parley_operator_chatcluster_phase{chatcluster=chat,namespace="+f.ns+",phase=Ready}"]; ok {
		t.Error("the phase before the pause is still exported")
	}
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("a second paused reconcile wrote %q", w)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Paused = false })
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Paused"); c.Status != metav1.ConditionFalse {
		t.Errorf("Paused after unpausing = %+v", c)
	}
	f.get(dep, "chat")
	if dep.Spec.Template.Spec.Containers[0].Image != "ghcr.io/parley-chat/chatserver:v9" {
		t.Error("the change made while paused was not applied after unpausing")
	}
	if c := cond(f.chat("chat"), "Ready"); c.Reason != "RollingOut" {
		t.Errorf("Ready after unpausing = %+v, want RollingOut (observed again)", c)
	}
}

// The operator's gauges follow the ChatCluster: readiness and phase, desired
// and available replicas, the connection limit, key ages and data key states,
// a staged key's creation; all gone with the ChatCluster.
func TestStateGauges(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	key := func(name string, extra ...string) string {
		// Gathered labels come sorted by name, as these do.
		l := append([]string{"chatcluster=chat", "namespace=" + f.ns}, extra...)
		slices.Sort(l)
		return name + "{" + strings.Join(l, ",") + "}"
	}
	g := f.gauges()
	if g[key("parley_operator_chatcluster_ready")] != 0 || g[key("parley_operator_chatcluster_phase", "phase=RollingOut")] != 1 ||
		g[key("parley_operator_chatcluster_replicas_desired")] != 3 || g[key("parley_operator_chatcluster_replicas_available")] != 0 {
		t.Errorf("gauges before the rollout: %v", g)
	}
	f.simulateRollout("chat", 3, 2)
	f.simulateRedisReady("chat")
	f.reconcile("chat")
	if g := f.gauges(); g[key("parley_operator_chatcluster_replicas_available")] != 2 {
		t.Errorf("available replicas gauge = %v, want 2", g[key("parley_operator_chatcluster_replicas_available")])
	}
	f.simulateRollout("chat", 3, 3)
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Server.MaxConnections = ptr.To[int32](500) })
	f.reconcile("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat")
	cc := f.chat("chat")
	g = f.gauges()
	phases := 0
	for k := range g {
		if strings.HasPrefix(k, "parley_operator_chatcluster_phase{") {
			phases++
		}
	}
	if g[key("parley_operator_chatcluster_ready")] != 1 || g[key("parley_operator_chatcluster_phase", "phase=Ready")] != 1 || phases != 1 {
		t.Errorf("ready/phase gauges when Ready (%d phase series): %v", phases, g)
	}
	if g[key("parley_operator_chatcluster_connection_limit")] != 500 {
		t.Errorf("connection limit gauge = %v, want 500", g[key("parley_operator_chatcluster_connection_limit")])
	}
	if got, want := g[key("parley_operator_key_activated_timestamp_seconds", "kind=data")], float64(cc.Status.Keys.LastDataRotation.Unix()); got != want {
		t.Errorf("data key activated = %v, want %v (status.keys.lastDataRotation)", got, want)
	}
	if g[key("parley_operator_data_key_info", "kid="+cc.Status.Keys.ActiveDataKeyID, "state=active")] != 1 {
		t.Errorf("no data key info for the active key %s: %v", cc.Status.Keys.ActiveDataKeyID, g)
	}
	if g[key("parley_operator_key_propagation_window_seconds")] != 300 {
		t.Errorf("propagation window gauge = %v, want 300", g[key("parley_operator_key_propagation_window_seconds")])
	}
	if _, ok := g[key("parley_operator_staged_key_created_timestamp_seconds", "kind=data")]; ok {
		t.Error("a staged key time with no staged key")
	}

	f.clock.Step(time.Hour)
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationRotateKeysNow: "now"}
	})
	f.reconcile("chat")
	if len(f.chat("chat").Status.Keys.StagedKeyIDs) == 0 {
		t.Fatal("rotate-keys-now staged no key")
	}
	g = f.gauges()
	for _, kind := range []string{"jwt", "data"} {
		if got := g[key("parley_operator_staged_key_created_timestamp_seconds", "kind="+kind)]; got != float64(f.clock.Now().Unix()) {
			t.Errorf("staged %s key created = %v, want %d (now)", kind, got, f.clock.Now().Unix())
		}
	}

	if err := k8s.Delete(ctx, f.chat("chat")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the ChatCluster to go", func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "chat"}, &chatv1alpha1.ChatCluster{}))
	})
	f.reconcile("chat")
	if g := f.gauges(); len(g) != 0 {
		t.Errorf("series left after the ChatCluster was deleted: %v", g)
	}
}

// prometheusRuleCRD is a minimal stand-in for the Prometheus Operator's CRD.
func prometheusRuleCRD() *apiextensionsv1.CustomResourceDefinition {
	crd := serviceMonitorCRD()
	crd.Name = "prometheusrules.monitoring.coreos.com"
	crd.Spec.Names = apiextensionsv1.CustomResourceDefinitionNames{Plural: "prometheusrules", Singular: "prometheusrule", Kind: "PrometheusRule", ListKind: "PrometheusRuleList"}
	return crd
}

// Without the PrometheusRule CRD the reconcile says so; with it the operator
// keeps the alerts of config/monitoring/alerts.yaml scoped to this
// ChatCluster; prometheusRule off removes them.
func TestPrometheusRuleFollowsCRDAndSpec(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Monitoring.ServiceMonitor = true
	cc.Spec.Monitoring.PrometheusRule = true
	f.create(cc)
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "PrometheusRuleReady"); c.Status != metav1.ConditionFalse || c.Reason != "CRDNotInstalled" {
		t.Fatalf("PrometheusRuleReady = %+v, want False/CRDNotInstalled", c)
	}

	crd := prometheusRuleCRD()
	if err := k8s.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, prometheusRuleCRD())
		eventually(t, 30*time.Second, "the PrometheusRule CRD to go", func() bool {
			err := k8s.Get(ctx, client.ObjectKey{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{})
			return apierrors.IsNotFound(err)
		})
	})
	eventually(t, 20*time.Second, "the PrometheusRule CRD to be served", func() bool {
		ok, err := f.r.Capabilities.PrometheusRules(ctx)
		return err == nil && ok
	})
	get := func() (*unstructured.Unstructured, bool) {
		pr := &unstructured.Unstructured{}
		pr.SetAPIVersion("monitoring.coreos.com/v1")
		pr.SetKind("PrometheusRule")
		err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: "chat"}, pr)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("get PrometheusRule: %v", err)
		}
		return pr, err == nil
	}
	eventually(t, 20*time.Second, "a reconcile to create the PrometheusRule", func() bool {
		if _, err := f.r.Reconcile(ctx, reqFor(f, "chat")); err != nil {
			t.Logf("reconcile: %v", err)
			return false
		}
		_, ok := get()
		return ok
	})
	pr, _ := get()
	if ref := metav1.GetControllerOf(pr); ref == nil || ref.Name != "chat" {
		t.Errorf("PrometheusRule owner = %+v", ref)
	}
	var source struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(monitoring.Alerts, &source); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, g := range source.Groups {
		for _, r := range g.Rules {
			want[r.Alert] = true
		}
	}
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	got := map[string]bool{}
	scope := `namespace="` + f.ns + `", chatcluster="chat"`
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			got[rule["alert"].(string)] = true
			expr := rule["expr"].(string)
			if strings.Contains(expr, monitoring.ScopeMatcher) || !strings.Contains(expr, scope) {
				t.Errorf("alert %s is not scoped to this ChatCluster: %s", rule["alert"], expr)
			}
			if ann, _ := rule["annotations"].(map[string]any); !strings.HasPrefix(ann["runbook_url"].(string), "https://") {
				t.Errorf("alert %s has no runbook_url", rule["alert"])
			}
		}
	}
	if len(want) < 10 || len(got) != len(want) {
		t.Errorf("PrometheusRule alerts %v, want those of alerts.yaml %v", got, want)
	}
	if c := cond(f.chat("chat"), "PrometheusRuleReady"); c.Status != metav1.ConditionTrue || c.Reason != "Applied" {
		t.Errorf("PrometheusRuleReady = %+v", c)
	}
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("steady state with a PrometheusRule wrote %q", w)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Monitoring.PrometheusRule = false })
	f.reconcile("chat")
	if _, ok := get(); ok {
		t.Error("PrometheusRule still present with prometheusRule off")
	}
	if c := cond(f.chat("chat"), "PrometheusRuleReady"); c.Reason != "Disabled" {
		t.Errorf("PrometheusRuleReady = %+v, want reason Disabled", c)
	}
}
