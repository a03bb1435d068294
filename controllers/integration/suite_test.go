// Package integration runs the ChatCluster reconciler against a real
// kube-apiserver and etcd (controller-runtime's envtest). envtest runs no
// controllers and no kubelet: tests set Deployment status themselves to
// simulate rollouts, and nothing garbage-collects.
package integration

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

var (
	cfg     *rest.Config
	testEnv *envtest.Environment
	scheme  = runtime.NewScheme()
	k8s     client.Client // plain client for the tests' own reads and writes
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(chatv1alpha1.AddToScheme(scheme))
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() && os.Getenv("KUBEBUILDER_ASSETS") == "" {
		// The project's convention (see the PostgreSQL suites): make test-unit
		// (go test -short) is the no-services tier and leaves out suites whose
		// services are absent; without -short, their absence is a failure.
		fmt.Println("integration: -short without KUBEBUILDER_ASSETS: the envtest suite runs under make test")
		os.Exit(0)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		fmt.Fprintln(os.Stderr, "FAIL: KUBEBUILDER_ASSETS is not set. Run `make test` (or `make test-operator`): "+
			"it builds kube-apiserver and links etcd with hack/envtest-assets.sh ensure and exports "+
			"KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh path).")
		return 1
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL: %s missing in KUBEBUILDER_ASSETS=%s; run `make test-assets`: %v\n", bin, assets, err)
			return 1
		}
	}
	// The operator's logs only with -v.
	logOut := io.Discard
	if testing.Verbose() {
		logOut = os.Stderr
	}
	logf.SetLogger(zap.New(zap.WriteTo(logOut), zap.UseDevMode(true)))

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme,
	}
	testEnv = env
	var err error
	start := time.Now()
	cfg, err = env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: start envtest: %v\n", err)
		return 1
	}
	fmt.Printf("integration: kube-apiserver and etcd up in %s\n", time.Since(start).Round(time.Millisecond))
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stop envtest: %v\n", err)
		}
	}()
	k8s, err = client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: client: %v\n", err)
		return 1
	}
	return m.Run()
}

// fixture is a reconciler wired to the envtest API server with a fake clock, a
// fake event recorder and a client that counts writes.
type fixture struct {
	t        *testing.T
	ns       string
	clock    *clocktesting.FakeClock
	recorder *events.FakeRecorder
	writes   *atomic.Int64
	mu       sync.Mutex
	writeLog []string
	r        *controllers.ChatClusterReconciler
}

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	f := &fixture{t: t, ns: ns.Name, clock: clocktesting.NewFakeClock(t0), recorder: events.NewFakeRecorder(1000), writes: &atomic.Int64{}}
	f.r = f.newReconciler(f.clock)
	return f
}

// newReconciler builds a reconciler as main does, but with the given clock; a
// second one over the same cluster stands for a restarted operator.
func (f *fixture) newReconciler(clk *clocktesting.FakeClock) *controllers.ChatClusterReconciler {
	f.t.Helper()
	return f.newReconcilerAs(cfg, clk)
}

// newReconcilerAs builds a reconciler that talks to the API server with the given credentials.
func (f *fixture) newReconcilerAs(restCfg *rest.Config, clk *clocktesting.FakeClock) *controllers.ChatClusterReconciler {
	f.t.Helper()
	base, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		f.t.Fatal(err)
	}
	count := func(what string) {
		f.writes.Add(1)
		f.mu.Lock()
		f.writeLog = append(f.writeLog, what)
		f.mu.Unlock()
	}
	counting := interceptor.NewClient(base, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			count("create " + describe(obj))
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			count("update " + describe(obj))
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			count("patch " + describe(obj))
			return c.Patch(ctx, obj, p, opts...)
		},
		Apply: func(ctx context.Context, c client.WithWatch, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
			count(fmt.Sprintf("apply %T", obj))
			return c.Apply(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			count("delete " + describe(obj))
			return c.Delete(ctx, obj, opts...)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteAllOfOption) error {
			count("deleteAllOf " + describe(obj))
			return c.DeleteAllOf(ctx, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, subObj client.Object, opts ...client.SubResourceCreateOption) error {
			count(sub + " create " + describe(obj))
			return c.SubResource(sub).Create(ctx, obj, subObj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			count(sub + " update " + describe(obj))
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			count(sub + " patch " + describe(obj))
			return c.SubResource(sub).Patch(ctx, obj, p, opts...)
		},
		SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
			count(fmt.Sprintf("%s apply %T", sub, obj))
			return c.SubResource(sub).Apply(ctx, obj, opts...)
		},
	})
	metrics, err := controllers.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		f.t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(restCfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return &controllers.ChatClusterReconciler{
		Client:       counting,
		Recorder:     f.recorder,
		Clock:        clk,
		Metrics:      metrics,
		Capabilities: controllers.DiscoveryCapabilities{Discovery: disc},
		Version:      "v0.1.0",
	}
}

// drainEvents returns the events recorded since the last call.
func (f *fixture) drainEvents() []string {
	var out []string
	for {
		select {
		case e := <-f.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func hasEvent(evs []string, prefix string) bool {
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return true
		}
	}
	return false
}

func describe(obj client.Object) string {
	return fmt.Sprintf("%T %s", obj, obj.GetName())
}

// resetWrites starts a new count of write calls.
func (f *fixture) resetWrites() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes.Store(0)
	f.writeLog = nil
}

func (f *fixture) writesSinceReset() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.writeLog)
}
