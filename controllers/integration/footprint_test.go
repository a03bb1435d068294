package integration

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/parley-chat/parley/controllers"
)

const (
	noiseSecrets    = 2000
	noiseSecretSize = 10 << 10
)

// A cluster full of Secrets that are none of the operator's business (2,000 of
// 10 KiB in another namespace, unlabelled, as Helm releases and service account
// tokens are) stays out of the operator's cache: the cached Secrets are the
// ChatCluster's keyring and Redis password and the DSN Secret labelled
// app.kubernetes.io/part-of=parley, nothing else. The heap figures are logged
// for docs/operator.md, not asserted: a cache without the selector, started
// in the same process on the same objects, shows what it saves.
func TestCacheHoldsOnlyTheOperatorsSecrets(t *testing.T) {
	f := newFixture(t)
	noise := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "noise-"}}
	if err := k8s.Create(ctx, noise); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller: delete the Secrets themselves.
		if err := k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(noise.Name)); err != nil {
			t.Errorf("delete noise Secrets: %v", err)
		}
	})
	createNoise(t, noise.Name)
	// Unrelated ConfigMaps too, in the operator's namespace this time.
	for i := range 50 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("other-%d", i)},
			Data: map[string]string{"x": strings.Repeat("x", 1024)}}
		if err := k8s.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
	}

	cc := sample(f.ns, "chat")
	dsn := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chat-db",
		Labels: map[string]string{controllers.SecretWatchLabel: controllers.SecretWatchValue}},
		StringData: map[string]string{"dsn": "postgres://a@db/parley"}}
	unlabelled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "unrelated"},
		StringData: map[string]string{"x": "y"}}
	for _, s := range []*corev1.Secret{dsn, unlabelled} {
		if err := k8s.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// Reconciled once here, so that its Secrets exist before the manager starts:
	// the manager's one worker may first have every earlier test's ChatCluster
	// to go through, and what is checked is its cache, not its queue.
	if err := k8s.Create(ctx, cc); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	before := heapAfterGC()
	mgr := startManager(t, "") // every namespace, as the operator runs by default
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		t.Fatal("the operator's cache did not sync")
	}
	cached := &corev1.SecretList{}
	eventually(t, 30*time.Second, "the keyring and Redis Secrets in the cache", func() bool {
		if err := mgr.GetCache().List(ctx, cached); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range cached.Items {
			if s.Namespace == f.ns {
				n++
			}
		}
		return n >= 3
	})
	withSelector := heapAfterGC()

	// Other tests' ChatClusters (other namespaces) have their own labelled
	// Secrets: every cached Secret carries the label, and of this test's two
	// namespaces exactly the ChatCluster's three are there.
	var names []string
	for _, s := range cached.Items {
		if s.Labels[controllers.SecretWatchLabel] != controllers.SecretWatchValue {
			t.Errorf("the operator's cache holds Secret %s/%s without the label", s.Namespace, s.Name)
		}
		if s.Namespace == f.ns || s.Namespace == noise.Name {
			names = append(names, s.Namespace+"/"+s.Name)
		}
	}
	want := map[string]bool{f.ns + "/chat-keys": true, f.ns + "/chat-redis-auth": true, f.ns + "/chat-db": true}
	if len(names) != len(want) {
		t.Fatalf("the operator's cache holds %v of this test's Secrets, want exactly %v", names, want)
	}
	for _, n := range names {
		if !want[n] {
			t.Errorf("the operator's cache holds Secret %s", n)
		}
	}
	cms := &corev1.ConfigMapList{}
	if err := mgr.GetCache().List(ctx, cms); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		if cm.Labels["app.kubernetes.io/managed-by"] != controllers.FieldOwner {
			t.Errorf("the operator's cache holds ConfigMap %s/%s it did not make", cm.Namespace, cm.Name)
		}
	}
	if len(cms.Items) == 0 {
		t.Error("the operator's own ConfigMap is not in its cache")
	}

	// The same objects through a cache without the selector: the noise is
	// there to be held, so the assertions above can fail.
	plain, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = plain.Start(pctx) }()
	if !plain.WaitForCacheSync(pctx) {
		t.Fatal("the unselected cache did not start")
	}
	all := &corev1.SecretList{}
	if err := plain.List(ctx, all); err != nil { // blocks until the informer has synced
		t.Fatal(err)
	}
	if len(all.Items) < noiseSecrets {
		t.Fatalf("an unselected cache holds %d Secrets, want at least the %d noise Secrets", len(all.Items), noiseSecrets)
	}
	withoutSelector := heapAfterGC()
	t.Logf("heap: %.1f MiB before the manager, +%.1f MiB with the operator's cache (%d Secrets cached), +%.1f MiB more for an unselected Secret informer (%d Secrets)",
		mib(before), mib(withSelector-before), len(cached.Items), mib(withoutSelector-withSelector), len(all.Items))
}

func createNoise(t *testing.T, ns string) {
	t.Helper()
	payload := strings.Repeat("n", noiseSecretSize)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < noiseSecrets; i += 8 {
				s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("noise-%04d", i)},
					StringData: map[string]string{"data": payload}}
				if err := k8s.Create(ctx, s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("create noise Secret: %v", err)
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
