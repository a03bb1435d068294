package charts_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

var (
	envOnce    sync.Once
	env        *envtest.Environment
	envErr     error
	kubeconfig string        // file for helm --kubeconfig (a system:masters user)
	k8s        client.Client // the tests' own reads and writes
	scheme     = runtime.NewScheme()
)

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(chatv1alpha1.AddToScheme(scheme))
}

// startEnv starts envtest's kube-apiserver and etcd once for the package, without any
// CRD: the chart installs it. It fails the test when KUBEBUILDER_ASSETS is unset
// (skips under -short).
func startEnv(t *testing.T) {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		if testing.Short() {
			t.Skip("short mode without KUBEBUILDER_ASSETS: the chart install test runs under make test")
		}
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test` or `make test-helm` (they build kube-apiserver and link etcd " +
			"with hack/envtest-assets.sh ensure and export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh path))")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			t.Fatalf("%s missing in KUBEBUILDER_ASSETS=%s: run `make test-assets`: %v", bin, assets, err)
		}
	}
	envOnce.Do(func() {
		start := time.Now()
		e := &envtest.Environment{Scheme: scheme}
		cfg, err := e.Start()
		if err != nil {
			envErr = fmt.Errorf("start envtest: %w", err)
			return
		}
		env = e
		user, err := e.AddUser(envtest.User{Name: "helm-test", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			envErr = fmt.Errorf("add user: %w", err)
			return
		}
		kc, err := user.KubeConfig()
		if err != nil {
			envErr = fmt.Errorf("kubeconfig: %w", err)
			return
		}
		kubeconfig = filepath.Join(helmHome, "kubeconfig")
		if err := os.WriteFile(kubeconfig, kc, 0o600); err != nil {
			envErr = err
			return
		}
		if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
			envErr = fmt.Errorf("client: %w", err)
			return
		}
		fmt.Printf("charts: kube-apiserver and etcd up in %s\n", time.Since(start).Round(time.Millisecond))
	})
	if envErr != nil {
		t.Fatal(envErr)
	}
}

func stopEnv() {
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}
}

// eventually polls cond for up to 30s.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func get(t *testing.T, key client.ObjectKey, obj client.Object) {
	t.Helper()
	if err := k8s.Get(context.Background(), key, obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, key, err)
	}
}

var serviceMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}

// installServiceMonitorCRD stands in for the Prometheus Operator: a ServiceMonitor CRD
// that accepts any spec, so discovery serves monitoring.coreos.com/v1.
func installServiceMonitorCRD(t *testing.T) {
	t.Helper()
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "servicemonitors", Singular: "servicemonitor", Kind: "ServiceMonitor", ListKind: "ServiceMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve,
				}},
			}},
		},
	}
	if err := k8s.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceMonitor CRD: %v", err)
	}
	eventually(t, "ServiceMonitor CRD established", func() error { return established(crd.Name) })
}

func established(name string) error {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: name}, &crd); err != nil {
		return err
	}
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("CRD %s not established: %+v", name, crd.Status.Conditions)
}

// helmKube runs helm against the envtest API server.
func helmKube(t *testing.T, args ...string) string {
	t.Helper()
	return mustHelm(t, append(args, "--kubeconfig", kubeconfig)...)
}

// The chart installed with `helm install` on a real kube-apiserver: the CRD from crds/
// is established and is the generated one, the operator's objects carry the values'
// settings, the chart's sample ChatCluster is accepted (with the API server's
// defaults) and an invalid one refused by the CRD's CEL rules; `helm upgrade` with a
// changed value updates the Deployment; `helm uninstall` removes the release's objects
// and leaves the CRD (Helm never deletes crds/).
func TestInstallUpgradeUninstall(t *testing.T) {
	helmBin(t)
	startEnv(t)
	ctx := context.Background()

	// Before the Prometheus Operator's API exists, the ServiceMonitor toggle renders
	// nothing and the NOTES say why; once it is served (discovery), it renders.
	dry := helmKube(t, "install", release, chart, "--namespace", namespace, "--dry-run", "--set", "metrics.serviceMonitor.enabled=true")
	if strings.Contains(dry, "kind: ServiceMonitor") || !strings.Contains(dry, "does not serve monitoring.coreos.com/v1") {
		t.Errorf("dry run without monitoring.coreos.com/v1: want no ServiceMonitor and a note saying why:\n%s", dry)
	}
	installServiceMonitorCRD(t)
	values := filepath.Join("testdata", "install-values.yaml")
	start := time.Now()
	notes := helmKube(t, "install", release, chart, "--namespace", namespace, "--create-namespace", "--wait=false", "-f", values)
	t.Logf("helm install took %s; its output:\n%s", time.Since(start).Round(time.Millisecond), notes)
	// The NOTES' example ChatCluster is one the installed CRD accepts.
	example := notesChatCluster(t, notes)
	if err := k8s.Create(ctx, example); err != nil {
		t.Errorf("the ChatCluster in the NOTES is refused: %v", err)
	}

	// The CRD: established, and the one config/crd/bases holds (same schema and CEL rules).
	const crdName = "chatclusters.chat.parley.dev"
	eventually(t, "ChatCluster CRD established", func() error { return established(crdName) })
	var live apiextensionsv1.CustomResourceDefinition
	get(t, client.ObjectKey{Name: crdName}, &live)
	var want apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(readFile(t, filepath.Join("..", "config", "crd", "bases", "chat.parley.dev_chatclusters.yaml")), &want); err != nil {
		t.Fatal(err)
	}
	if len(live.Spec.Versions) != 1 || !reflect.DeepEqual(live.Spec.Versions[0].Schema, want.Spec.Versions[0].Schema) ||
		!reflect.DeepEqual(live.Spec.Versions[0].Subresources, want.Spec.Versions[0].Subresources) {
		t.Errorf("installed CRD differs from config/crd/bases")
	}

	name := release + "-parley-operator"
	key := client.ObjectKey{Namespace: namespace, Name: name}
	var dep appsv1.Deployment
	get(t, key, &dep)
	c := container(t, &dep)
	spec := dep.Spec.Template.Spec
	if c.Image != "registry.example.com/parley/operator:v0.1.0-test" || c.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %q pull policy %q", c.Image, c.ImagePullPolicy)
	}
	if !reflect.DeepEqual(spec.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}) ||
		spec.NodeSelector["kubernetes.io/os"] != "linux" || len(spec.Tolerations) != 1 || spec.Tolerations[0].Value != "infra" {
		t.Errorf("pod spec pull secrets %v nodeSelector %v tolerations %v", spec.ImagePullSecrets, spec.NodeSelector, spec.Tolerations)
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("128Mi")) != 0 {
		t.Errorf("memory limit %s, want 128Mi", got.String())
	}
	checkHardened(t, &dep)
	if args := operatorArgs(t, c); args["leader-elect"] != "true" || args["metrics-bind-address"] != ":8080" {
		t.Errorf("args %q", c.Args)
	}
	if dep.Labels["app.kubernetes.io/managed-by"] != "Helm" || dep.Annotations["meta.helm.sh/release-name"] != release {
		t.Errorf("Deployment not marked as the release's: labels %v annotations %v", dep.Labels, dep.Annotations)
	}

	var sa corev1.ServiceAccount
	get(t, key, &sa)
	if spec.ServiceAccountName != sa.Name {
		t.Errorf("pods run as %q, ServiceAccount is %q", spec.ServiceAccountName, sa.Name)
	}
	var cr rbacv1.ClusterRole
	get(t, client.ObjectKey{Name: name}, &cr)
	if !reflect.DeepEqual(cr.Rules, configRules(t)) {
		t.Errorf("installed ClusterRole rules differ from config/rbac/role.yaml")
	}
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: namespace}}
	var crb rbacv1.ClusterRoleBinding
	get(t, client.ObjectKey{Name: name}, &crb)
	if crb.RoleRef.Name != cr.Name || !reflect.DeepEqual(crb.Subjects, subject) {
		t.Errorf("ClusterRoleBinding %+v %+v", crb.RoleRef, crb.Subjects)
	}
	var role rbacv1.Role
	get(t, client.ObjectKey{Namespace: namespace, Name: name + "-leader-election"}, &role)
	var rb rbacv1.RoleBinding
	get(t, client.ObjectKey{Namespace: namespace, Name: name + "-leader-election"}, &rb)
	if rb.RoleRef.Name != role.Name || !reflect.DeepEqual(rb.Subjects, subject) {
		t.Errorf("leader-election RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}
	var svc corev1.Service
	get(t, client.ObjectKey{Namespace: namespace, Name: name + "-metrics"}, &svc)
	// Discovery serves monitoring.coreos.com/v1, so the toggle alone renders the ServiceMonitor.
	sm := &unstructured.Unstructured{}
	sm.SetGroupVersionKind(serviceMonitorGVK)
	get(t, key, sm)

	// The chart's sample ChatCluster (values.yaml chatCluster.spec) was accepted and
	// defaulted by the installed CRD.
	var cc chatv1alpha1.ChatCluster
	get(t, client.ObjectKey{Namespace: namespace, Name: "parley"}, &cc)
	if cc.Spec.Database.SQLite == nil || cc.Spec.RateLimits.Login != "10/5m" {
		t.Errorf("sample ChatCluster spec %+v: want SQLite and the CRD's default rate limits", cc.Spec)
	}

	// An invalid spec rendered by the chart is refused by the CRD's CEL rules.
	bad := template(t, "--set", "chatCluster.enabled=true,chatCluster.name=too-many,chatCluster.spec.replicas=3").find("ChatCluster")
	if len(bad) != 1 {
		t.Fatal("no ChatCluster rendered")
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(bad[0].raw, &obj.Object); err != nil {
		t.Fatal(err)
	}
	err := k8s.Create(ctx, obj)
	if err == nil || !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "SQLite supports a single replica only") {
		t.Errorf("3 replicas on SQLite: err %v, want the CEL rule's refusal", err)
	}

	// helm upgrade with changed values updates the Deployment in place.
	gen := dep.Generation
	helmKube(t, "upgrade", release, chart, "--namespace", namespace, "--wait=false", "-f", values,
		"--set", "image.tag=v0.2.0,leaderElection.enabled=false,resources.limits.memory=512Mi,logging.level=debug")
	var up appsv1.Deployment
	get(t, key, &up)
	uc := container(t, &up)
	args := operatorArgs(t, uc)
	if up.Generation <= gen || uc.Image != "registry.example.com/parley/operator:v0.2.0" ||
		args["leader-elect"] != "false" || args["zap-log-level"] != "debug" {
		t.Errorf("after upgrade: generation %d (was %d), image %q, args %q", up.Generation, gen, uc.Image, uc.Args)
	}
	if got := uc.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("512Mi")) != 0 {
		t.Errorf("after upgrade: memory limit %s, want 512Mi", got.String())
	}
	if status := helmKube(t, "status", release, "--namespace", namespace, "-o", "json"); !strings.Contains(status, `"version":2`) {
		t.Errorf("release is not at revision 2 after the upgrade: %s", status)
	}

	// helm uninstall removes the release's objects; the CRD stays.
	helmKube(t, "uninstall", release, "--namespace", namespace)
	gone := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-metrics"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-leader-election"}},
		&rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-leader-election"}},
		&chatv1alpha1.ChatCluster{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "parley"}},
		sm,
	}
	for _, o := range gone {
		eventually(t, fmt.Sprintf("%T %s removed by helm uninstall", o, o.GetName()), func() error {
			err := k8s.Get(ctx, client.ObjectKeyFromObject(o), o)
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (err %v)", err)
		})
	}
	if err := established(crdName); err != nil {
		t.Errorf("after uninstall: %v (Helm keeps CRDs from crds/)", err)
	}
	if out := helmKube(t, "list", "--all-namespaces", "-q"); slices.Contains(strings.Fields(out), release) {
		t.Errorf("release still listed after uninstall: %q", out)
	}
}

// notesChatCluster extracts the example ChatCluster from the install NOTES: the
// indented YAML block starting at its apiVersion line.
func notesChatCluster(t *testing.T, notes string) *unstructured.Unstructured {
	t.Helper()
	lines := strings.Split(notes, "\n")
	first := slices.IndexFunc(lines, func(l string) bool { return strings.TrimSpace(l) == "apiVersion: chat.parley.dev/v1alpha1" })
	if first < 0 {
		t.Fatalf("install NOTES show no ChatCluster to create:\n%s", notes)
	}
	indent := len(lines[first]) - len(strings.TrimLeft(lines[first], " "))
	var block []string
	for _, l := range lines[first:] {
		if strings.TrimSpace(l) == "" {
			break
		}
		block = append(block, l[min(indent, len(l)-len(strings.TrimLeft(l, " "))):])
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(strings.Join(block, "\n")), &obj.Object); err != nil {
		t.Fatalf("the NOTES' ChatCluster is not YAML: %v\n%s", err, strings.Join(block, "\n"))
	}
	if obj.GetKind() != "ChatCluster" || obj.GetName() == "" {
		t.Fatalf("the NOTES' example is %s %q", obj.GetKind(), obj.GetName())
	}
	return obj
}
