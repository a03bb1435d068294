package integration

import (
	"os"
	"path/filepath"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
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
