package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

// The ClusterRole generated from the +kubebuilder:rbac markers (config/rbac/role.yaml)
// is enough for a full reconcile: the reconciler runs as a user bound to nothing else.
func TestGeneratedRBACSuffices(t *testing.T) {
	f := newFixture(t)
	user := bindGeneratedRole(t, "parley-operator-rbac-"+f.ns)
	cc := sample(f.ns, "chat")
	f.create(cc)

	// envtest enforces RBAC: a user bound to nothing is refused.
	nobody, err := testEnv.AddUser(envtest.User{Name: "nobody-" + f.ns}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.newReconcilerAs(nobody.Config(), f.clock).Reconcile(ctx, reqFor(f, "chat")); !apierrors.IsForbidden(err) {
		t.Fatalf("reconcile as an unbound user: %v, want Forbidden", err)
	}

	u, err := testEnv.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.r = f.newReconcilerAs(u.Config(), f.clock)
	f.reconcile("chat") // fails the test on any Forbidden
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Ready"); c.Status != metav1.ConditionTrue {
		t.Errorf("Ready = %+v", c)
	}
	// Pruning needs delete: remove the Ingress through the spec.
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Ingress = nil })
	f.reconcile("chat")
	// From managed to external Redis prunes a StatefulSet, Services, a
	// NetworkPolicy and a Secret.
	f.createSecret("ext-redis", map[string]string{"password": "pw"})
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{Address: "redis:6379",
			PasswordSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "ext-redis"}, Key: "password"}}}
	})
	f.reconcile("chat")
	if !f.absent(&appsv1.StatefulSet{}, "chat-redis") || !f.absent(&corev1.Secret{}, "chat-redis-auth") {
		t.Error("managed Redis was not pruned")
	}
	// The accept-keyring-loss annotation is removed with a patch of the ChatCluster.
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationAcceptKeyringLoss: "true"}
	})
	f.reconcile("chat")
	if _, ok := f.chat("chat").Annotations[chatv1alpha1.AnnotationAcceptKeyringLoss]; ok {
		t.Error("accept-keyring-loss annotation not removed")
	}
	// Paused: a status patch only.
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Paused = true })
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Paused"); c.Status != metav1.ConditionTrue {
		t.Errorf("Paused = %+v", c)
	}
}

// The upgrade gate's Lease needs only the leader-election Role in the
// operator's namespace (config/rbac/leader_election_role.yaml).
func TestUpgradeGateNeedsOnlyTheLeaderElectionRole(t *testing.T) {
	f := newFixture(t)
	user := bindGeneratedRole(t, "parley-operator-gate-"+f.ns)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "leader_election_role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.Role{}
	if err := yaml.Unmarshal([]byte(strings.Split(string(raw), "\n---")[0]), role); err != nil {
		t.Fatal(err)
	}
	role.Namespace = f.ns
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "gate"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	u, err := testEnv.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cc := sample(f.ns, "chat")
	cc.Spec.Image = ""
	f.create(cc)
	f.reconcile("chat")
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat")

	f.r = f.newReconcilerAs(u.Config(), f.clock)
	f.r.Version = "v0.2.0"
	f.r.Upgrades = &controllers.UpgradeGate{Namespace: f.ns, Delay: time.Minute}
	f.reconcile("chat") // takes the Lease (create)
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat") // releases it (update)
	lease := &coordinationv1.Lease{}
	f.get(lease, controllers.UpgradeLeaseName)
	if lease.Annotations[controllers.AnnotationUpgradeReleased] == "" {
		t.Errorf("Lease %+v not released", lease)
	}
}

// The manager's informers (list and watch on every kind it caches) work with
// the generated ClusterRole alone. (Confined to the test's namespace: across
// the suite's namespaces the one worker would first reconcile every earlier
// test's ChatCluster.)
func TestManagerRunsWithGeneratedRBAC(t *testing.T) {
	f := newFixture(t)
	user := bindGeneratedRole(t, "parley-operator-mgr-"+f.ns)
	u, err := testEnv.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	startManagerAs(t, u.Config(), f.ns)
	f.create(sample(f.ns, "chat"))
	eventually(t, 30*time.Second, "the Deployment from a manager with the generated RBAC", func() bool {
		return !f.absent(&appsv1.Deployment{}, "chat")
	})
	// Its Events go through events.k8s.io, the only Events it may write.
	eventually(t, 30*time.Second, "an events.k8s.io Event from that manager", func() bool {
		list := &eventsv1.EventList{}
		if err := k8s.List(ctx, list, client.InNamespace(f.ns)); err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			if e.Reason == "Created" && e.Regarding.Name == "chat" {
				return true
			}
		}
		return false
	})
}

// What the operator never does is not in its ClusterRole.
func TestGeneratedRBACIsTrimmed(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		t.Fatal(err)
	}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			for _, g := range r.APIGroups {
				for _, v := range r.Verbs {
					rule := g + "/" + res + ":" + v
					switch {
					case res == "chatclusters" && (v == "update" || v == "create" || v == "delete"):
						t.Errorf("%s: the operator never writes a ChatCluster's spec", rule)
					case strings.HasSuffix(res, "/finalizers"):
						t.Errorf("%s: the operator sets no finalizer", rule)
					case res == "chatclusters/status" && v != "patch":
						t.Errorf("%s: status is only patched", rule)
					case v == "*" || res == "*" || g == "*":
						t.Errorf("%s: wildcard", rule)
					case g == "" && res == "events":
						t.Errorf("%s: Events go through events.k8s.io", rule)
					case v == "update" && g != "apps":
						t.Errorf("%s: writes are server-side apply (patch); update only repairs workloads", rule)
					}
				}
			}
		}
	}
}

// bindGeneratedRole creates the ClusterRole generated from the RBAC markers
// (config/rbac/role.yaml) under the name user, binds it to that user and
// returns the name; both go away with the test.
func bindGeneratedRole(t *testing.T, user string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, role); err != nil {
		t.Fatal(err)
	}
	role.Name = user
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	if err := k8s.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = k8s.Delete(ctx, binding)
		_ = k8s.Delete(ctx, role)
	})
	return user
}

// --watch-namespace: the operator runs with the generated rules as a Role in
// that one namespace (as the chart renders them with watchNamespace) and no
// cluster-wide access.
func TestSingleNamespaceModeWithARole(t *testing.T) {
	f := newFixture(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cr := &rbacv1.ClusterRole{}
	if err := yaml.UnmarshalStrict(raw, cr); err != nil {
		t.Fatal(err)
	}
	user := "parley-operator-ns-" + f.ns
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "operator"}, Rules: cr.Rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "operator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "operator"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "User", Name: user}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	u, err := testEnv.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	startManagerAs(t, u.Config(), f.ns)
	f.create(sample(f.ns, "chat"))
	eventually(t, 30*time.Second, "the Deployment and a status from a namespace-scoped operator", func() bool {
		return !f.absent(&appsv1.Deployment{}, "chat") && cond(f.chat("chat"), "Ready").Status != "<missing>"
	})
}
