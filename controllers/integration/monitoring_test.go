package integration

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// serviceMonitorCRD is a minimal stand-in for the Prometheus Operator's CRD.
func serviceMonitorCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{
						"spec": {Type: "object", XPreserveUnknownFields: ptr.To(true)},
					},
				}},
			}},
		},
	}
}

func serviceMonitor(f *fixture, name string) (*unstructured.Unstructured, bool) {
	f.t.Helper()
	sm := &unstructured.Unstructured{}
	sm.SetAPIVersion("monitoring.coreos.com/v1")
	sm.SetKind("ServiceMonitor")
	err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, sm)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		f.t.Fatalf("get ServiceMonitor: %v", err)
	}
	return sm, true
}

func scrapeAnnotated(f *fixture, name string) bool {
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	return dep.Spec.Template.Annotations["prometheus.io/scrape"] == "true"
}

// Without the ServiceMonitor CRD the reconcile succeeds and says so; once the
// CRD is installed the ServiceMonitor appears; monitoring off removes it.
func TestServiceMonitorFollowsCRDAndSpec(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Monitoring.ServiceMonitor = true
	f.create(cc)

	res := f.reconcile("chat")
	got := f.chat("chat")
	if c := cond(got, "ServiceMonitorReady"); c.Status != metav1.ConditionFalse || c.Reason != "CRDNotInstalled" {
		t.Fatalf("ServiceMonitorReady = %+v, want False/CRDNotInstalled", c)
	}
	if c := cond(got, "Degraded"); c.Status != metav1.ConditionFalse {
		t.Errorf("a missing optional CRD degrades the cluster: %+v", c)
	}
	if !scrapeAnnotated(f, "chat") {
		t.Error("no prometheus.io/scrape annotation without a ServiceMonitor")
	}
	if res.RequeueAfter == 0 || res.RequeueAfter > 10*time.Minute {
		t.Errorf("requeue %s: the CRD should be re-checked periodically", res.RequeueAfter)
	}

	crd := serviceMonitorCRD()
	if err := k8s.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Later tests run without the CRD: wait until it is really gone.
		_ = k8s.Delete(ctx, serviceMonitorCRD())
		eventually(t, 30*time.Second, "the ServiceMonitor CRD to go", func() bool {
			err := k8s.Get(ctx, client.ObjectKey{Name: crd.Name}, &apiextensionsv1.CustomResourceDefinition{})
			return apierrors.IsNotFound(err)
		})
	})
	eventually(t, 20*time.Second, "the ServiceMonitor CRD to be served", func() bool {
		ok, err := f.r.Capabilities.ServiceMonitors(ctx)
		return err == nil && ok
	})
	// The reconciler's client learns the new kind on its own (lazy REST mapping).
	eventually(t, 20*time.Second, "a reconcile to create the ServiceMonitor", func() bool {
		_, err := f.r.Reconcile(ctx, reqFor(f, "chat"))
		if err != nil {
			t.Logf("reconcile: %v", err)
			return false
		}
		_, ok := serviceMonitor(f, "chat")
		return ok
	})
	sm, _ := serviceMonitor(f, "chat")
	if ref := metav1.GetControllerOf(sm); ref == nil || ref.Name != "chat" {
		t.Errorf("ServiceMonitor owner = %+v", ref)
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["path"] != "/metrics" {
		t.Errorf("endpoints = %v, want port metrics (the chat servers' own metrics listener)", eps)
	}
	// The alerts and dashboard group the chat servers' series by ChatCluster.
	relabel, _, _ := unstructured.NestedSlice(eps[0].(map[string]any), "relabelings")
	if len(relabel) != 1 || relabel[0].(map[string]any)["targetLabel"] != "chatcluster" || relabel[0].(map[string]any)["replacement"] != "chat" {
		t.Errorf("relabelings = %v, want chatcluster=chat", relabel)
	}
	// It selects the metrics Service, not the client-facing one.
	sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
	for name, want := range map[string]bool{"chat-metrics": true, "chat": false} {
		svc := &corev1.Service{}
		f.get(svc, name)
		if got := labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)); got != want {
			t.Errorf("ServiceMonitor selector %v selects Service %s: %v, want %v", sel, name, got, want)
		}
	}
	if c := cond(f.chat("chat"), "ServiceMonitorReady"); c.Status != metav1.ConditionTrue {
		t.Errorf("ServiceMonitorReady = %+v", c)
	}
	if scrapeAnnotated(f, "chat") {
		t.Error("pods still carry scrape annotations next to a ServiceMonitor (double scraping)")
	}
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("steady state with a ServiceMonitor wrote %q", w)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Monitoring.ServiceMonitor = false })
	f.reconcile("chat")
	if _, ok := serviceMonitor(f, "chat"); ok {
		t.Error("ServiceMonitor still present with monitoring off")
	}
	if c := cond(f.chat("chat"), "ServiceMonitorReady"); c.Reason != "Disabled" {
		t.Errorf("ServiceMonitorReady = %+v, want reason Disabled", c)
	}
	if !scrapeAnnotated(f, "chat") {
		t.Error("scrape annotations not restored with monitoring off")
	}
}
