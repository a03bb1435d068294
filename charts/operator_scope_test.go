package charts_test

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

// watchNamespace confines the operator to one namespace: --watch-namespace, and
// its rules as a Role and RoleBinding there instead of a ClusterRole and
// ClusterRoleBinding. upgradeDelay and the operator's namespace reach the flags.
func TestTemplateOperatorScope(t *testing.T) {
	def := template(t)
	if len(def.find("ClusterRole")) != 1 || len(def.find("ClusterRoleBinding")) != 1 {
		t.Fatalf("by default: want a ClusterRole and its binding, rendered %v", def.kinds())
	}
	var dep appsv1.Deployment
	def.one(t, "Deployment", &dep)
	args := operatorArgs(t, container(t, &dep))
	if _, ok := args["watch-namespace"]; ok {
		t.Errorf("by default --watch-namespace is passed: %v", args)
	}
	if args["upgrade-delay"] != "5m" || args["operator-namespace"] != namespace {
		t.Errorf("args %v, want --upgrade-delay=5m and --operator-namespace=%s", args, namespace)
	}

	one := template(t, "--set", "watchNamespace=chat", "--set", "upgradeDelay=15m")
	one.decodeAll(t)
	if n := len(one.find("ClusterRole")) + len(one.find("ClusterRoleBinding")); n != 0 {
		t.Errorf("with watchNamespace: %d cluster-wide RBAC objects, rendered %v", n, one.kinds())
	}
	var role *rbacv1.Role
	for _, d := range one.find("Role") {
		if d.Namespace == "chat" {
			role = &rbacv1.Role{}
			if err := yaml.UnmarshalStrict(d.raw, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if role == nil {
		t.Fatalf("with watchNamespace: no Role in namespace chat, rendered %v", one.kinds())
	}
	if !equality.Semantic.DeepEqual(role.Rules, configRules(t)) {
		t.Errorf("the Role's rules differ from config/rbac/role.yaml:\n%+v", role.Rules)
	}
	var bound bool
	for _, d := range one.find("RoleBinding") {
		b := &rbacv1.RoleBinding{}
		if err := yaml.UnmarshalStrict(d.raw, b); err != nil {
			t.Fatal(err)
		}
		if b.Namespace == "chat" && b.RoleRef.Kind == "Role" && b.RoleRef.Name == role.Name &&
			len(b.Subjects) == 1 && b.Subjects[0].Kind == "ServiceAccount" && b.Subjects[0].Namespace == namespace {
			bound = true
		}
	}
	if !bound {
		t.Error("with watchNamespace: no RoleBinding in chat binds the Role to the operator's ServiceAccount")
	}
	one.one(t, "Deployment", &dep)
	args = operatorArgs(t, container(t, &dep))
	if args["watch-namespace"] != "chat" || args["upgrade-delay"] != "15m" {
		t.Errorf("args %v, want --watch-namespace=chat and --upgrade-delay=15m", args)
	}

	for _, bad := range []string{"watchNamespace=Not_A_Namespace", "upgradeDelay=soon"} {
		if _, err := helm(t, "template", release, chart, "--namespace", namespace, "--set", bad); err == nil {
			t.Errorf("--set %s was accepted", bad)
		}
	}
}
