package integration

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/parley-chat/parley/controllers"
)

// The operator as main wires it, in a manager: a missing Secret gives a real
// Warning Event; creating the Secret, changing it, and deleting an owned object
// each trigger a reconcile through the watches.
func TestManagerWatchesSecretsAndEmitsEvents(t *testing.T) {
	f := newFixture(t)
	startManager(t, f.ns)

	cc := sample(f.ns, "chat")
	if err := k8s.Create(ctx, cc); err != nil { // its DSN Secret does not exist yet
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a Warning SecretNotFound Event", func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(ctx, list, client.InNamespace(f.ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == "SecretNotFound" && e.Regarding.Name == "chat" && e.Regarding.Kind == "ChatCluster" {
				return true
			}
		}
		return false
	})

	// Labelled as docs/operator.md asks, so that the operator's cache watches it.
	dsn := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-db",
		Labels: map[string]string{controllers.SecretWatchLabel: controllers.SecretWatchValue}},
		StringData: map[string]string{"dsn": "postgres://a@db/parley"}}
	if err := k8s.Create(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the Deployment after the Secret appeared", func() bool {
		return !f.absent(&appsv1.Deployment{}, "chat")
	})
	h1 := podTemplateHash(f, "chat")

	// Nothing else is due now (keys rotate in weeks): only the Secret watch can
	// bring this change in.
	f.setSecret("chat-db", "dsn", "postgres://b@db/parley")
	eventually(t, 20*time.Second, "the pod template hash to follow the DSN change", func() bool {
		return podTemplateHash(f, "chat") != h1
	})

	// An owned object deleted by hand comes back.
	if err := k8s.Delete(ctx, &corev1.Service{ObjectMeta: ctrlObjectMeta(f.ns, "chat")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the Service to be recreated", func() bool {
		return !f.absent(&corev1.Service{}, "chat")
	})
}

// startManager runs the reconciler in a manager, as main wires it, watching
// namespace ns (every namespace if "") until the test ends.
func startManager(t *testing.T, ns string) ctrl.Manager {
	t.Helper()
	return startManagerAs(t, cfg, ns)
}

// startManagerAs is startManager with the given credentials.
func startManagerAs(t *testing.T, restCfg *rest.Config, ns string) ctrl.Manager {
	t.Helper()
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(ns),
		Client:                 controllers.ClientOptions(),
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	metrics, err := controllers.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.ChatClusterReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(), // as main.go
		Recorder:     mgr.GetEventRecorder(controllers.FieldOwner),
		Clock:        clock.RealClock{},
		Metrics:      metrics,
		Capabilities: controllers.DiscoveryCapabilities{Discovery: disc},
		Version:      "v0.1.0",
	}
	mctx, cancel := context.WithCancel(ctx)
	if err := r.SetupWithManager(mctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		// A manager whose caches cannot sync (a test's RBAC forbids a list) may
		// not stop: report it rather than hang the suite.
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("manager did not stop within 30s of its context's end")
		}
	})
	return mgr
}
