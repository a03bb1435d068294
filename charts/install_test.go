package charts_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
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
	installMonitoringCRD(t, "servicemonitors", "servicemonitor", "ServiceMonitor")
}

// installMonitoringCRD installs a stand-in for one of the Prometheus Operator's
// CRDs that accepts any object.
func installMonitoringCRD(t *testing.T, plural, singular, kind string) {
	t.Helper()
	preserve := true
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: plural + ".monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: plural, Singular: singular, Kind: kind, ListKind: kind + "List"},
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
		t.Fatalf("create %s CRD: %v", kind, err)
	}
	eventually(t, kind+" CRD established", func() error { return established(crd.Name) })
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

// The chart installed with `helm install` on a real kube-apiserver: the CRD (a
// template of the release) is established and is the generated one, the operator's
// objects, the PrometheusRule and the dashboard carry the values' settings, an
// invalid ChatCluster is refused by the CRD's CEL rules; `helm upgrade` with a
// changed value updates the Deployment and creates the chart's sample ChatCluster
// (accepted, with the API server's defaults); `helm upgrade` to a chart whose CRD
// has a new field upgrades the CRD; `helm uninstall` removes the release's objects
// and leaves the CRD (helm.sh/resource-policy: keep) with the other ChatClusters.
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
	installMonitoringCRD(t, "prometheusrules", "prometheusrule", "PrometheusRule")
	values := filepath.Join("testdata", "install-values.yaml")
	start := time.Now()
	notes := helmKube(t, "install", release, chart, "--namespace", namespace, "--create-namespace", "--wait=false", "-f", values)
	t.Logf("helm install took %s; its output:\n%s", time.Since(start).Round(time.Millisecond), notes)
	// The NOTES' example ChatCluster is one the installed CRD accepts.
	example := notesChatCluster(t, notes)
	if err := k8s.Create(ctx, example); err != nil {
		t.Errorf("the ChatCluster in the NOTES is refused: %v", err)
	}

	// The CRD, a template of the release: established, and the one config/crd/bases
	// holds (same schema and CEL rules), kept by helm uninstall.
	const crdName = "chatclusters.chat.parley.dev"
	eventually(t, "ChatCluster CRD established", func() error { return established(crdName) })
	var live apiextensionsv1.CustomResourceDefinition
	get(t, client.ObjectKey{Name: crdName}, &live)
	if live.Annotations["helm.sh/resource-policy"] != "keep" || live.Annotations["meta.helm.sh/release-name"] != release {
		t.Errorf("CRD annotations %v: want the release's, with helm.sh/resource-policy: keep", live.Annotations)
	}
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

	// The alerts and the dashboard (install-values turns them on).
	pr := &unstructured.Unstructured{}
	pr.SetGroupVersionKind(schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PrometheusRule"})
	get(t, key, pr)
	if groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups"); len(groups) == 0 {
		t.Error("the PrometheusRule has no rule groups")
	}
	dash := &corev1.ConfigMap{}
	get(t, client.ObjectKey{Namespace: namespace, Name: name + "-dashboard"}, dash)
	if dash.Labels["grafana_dashboard"] != "1" || !strings.Contains(dash.Data["parley.json"], `"uid": "parley-chat"`) {
		t.Errorf("dashboard ConfigMap labels %v", dash.Labels)
	}

	// The chart's sample ChatCluster waits for an upgrade: on the first install the
	// release itself created the CRD, and the NOTES say so.
	var cc chatv1alpha1.ChatCluster
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "parley"}, &cc); !apierrors.IsNotFound(err) {
		t.Errorf("sample ChatCluster on the first install: err %v, want not found", err)
	}
	if !strings.Contains(notes, "helm upgrade parley <chart> -n parley-system --reuse-values") {
		t.Errorf("NOTES do not say how to create the sample ChatCluster:\n%s", notes)
	}

	// An invalid spec rendered by the chart is refused by the CRD's CEL rules.
	bad := template(t, "--set", "chatCluster.enabled=true,chatCluster.name=too-many,chatCluster.spec.replicas=3", "--api-versions", chatClusterAPI).find("ChatCluster")
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
	// Now the API is served, the sample ChatCluster (values.yaml chatCluster.spec) is
	// created, accepted and defaulted by the installed CRD.
	get(t, client.ObjectKey{Namespace: namespace, Name: "parley"}, &cc)
	if cc.Spec.Database.SQLite == nil || cc.Spec.RateLimits.Login != "10/5m" {
		t.Errorf("sample ChatCluster spec %+v: want SQLite and the CRD's default rate limits", cc.Spec)
	}

	// helm upgrade upgrades the CRD: a chart whose CRD has a new spec field
	// (upgradeProbe) makes the live CRD serve it, and a ChatCluster keeps its value
	// (an un-upgraded CRD would prune it).
	newer := chartWithNewCRDField(t, "upgradeProbe")
	helmKube(t, "upgrade", release, newer, "--namespace", namespace, "--wait=false", "-f", values)
	eventually(t, "the upgraded CRD to serve spec.upgradeProbe", func() error {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := k8s.Get(ctx, client.ObjectKey{Name: crdName}, &crd); err != nil {
			return err
		}
		if _, ok := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["upgradeProbe"]; !ok {
			return fmt.Errorf("spec.upgradeProbe not in the CRD's schema")
		}
		return established(crdName)
	})
	probe := &unstructured.Unstructured{}
	probe.SetGroupVersionKind(chatv1alpha1.GroupVersion.WithKind("ChatCluster"))
	probe.SetNamespace(namespace)
	probe.SetName("probe")
	probe.Object["spec"] = map[string]any{"upgradeProbe": "kept", "database": map[string]any{"sqlite": map[string]any{}}}
	eventually(t, "a ChatCluster with spec.upgradeProbe to keep it", func() error {
		_ = k8s.Delete(ctx, probe.DeepCopy())
		if err := k8s.Create(ctx, probe.DeepCopy()); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(probe.GroupVersionKind())
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), got); err != nil {
			return err
		}
		if v, _, _ := unstructured.NestedString(got.Object, "spec", "upgradeProbe"); v != "kept" {
			return fmt.Errorf("spec.upgradeProbe = %q (pruned: the CRD was not upgraded)", v)
		}
		return nil
	})

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
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name + "-dashboard"}},
		sm, pr,
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
	// The CRD stays (helm.sh/resource-policy: keep), as upgraded, and so do the
	// ChatClusters the release did not create.
	if err := established(crdName); err != nil {
		t.Errorf("after uninstall: %v (the CRD carries helm.sh/resource-policy: keep)", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(probe), probe); err != nil {
		t.Errorf("a ChatCluster not created by the release is gone after uninstall: %v", err)
	}
	if out := helmKube(t, "list", "--all-namespaces", "-q"); slices.Contains(strings.Fields(out), release) {
		t.Errorf("release still listed after uninstall: %q", out)
	}
}

// chartWithNewCRDField copies the chart into a temporary folder with one more
// string field in the CRD's spec schema: the next chart version's CRD.
func chartWithNewCRDField(t *testing.T, field string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "parley-operator")
	if err := os.CopyFS(dst, os.DirFS(chart)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dst, "files", "crds", "chat.parley.dev_chatclusters.yaml")
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(readFile(t, path), &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	spec.Properties[field] = apiextensionsv1.JSONSchemaProps{Type: "string", Description: "Added by the next chart version."}
	crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = spec
	b, err := yaml.Marshal(&crd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
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

// A release installed by an older chart, whose CRD came from crds/ and carries no
// Helm ownership: helm refuses to take the CRD over until the label and
// annotations the chart README and docs/operator.md give are set (with kubectl, as
// written there); then the release adopts the CRD, and uninstalling it keeps it.
func TestAdoptCRDFromOlderChart(t *testing.T) {
	helmBin(t)
	startEnv(t)
	ctx := context.Background()
	const crdName = "chatclusters.chat.parley.dev"
	const rel, ns = "legacy", "legacy-system"

	// The CRD as the older chart's crds/ left it: no Helm label or annotations.
	var old apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(readFile(t, filepath.Join("..", "config", "crd", "bases", "chat.parley.dev_chatclusters.yaml")), &old); err != nil {
		t.Fatal(err)
	}
	live := &apiextensionsv1.CustomResourceDefinition{}
	switch err := k8s.Get(ctx, client.ObjectKey{Name: crdName}, live); {
	case apierrors.IsNotFound(err):
		if err := k8s.Create(ctx, &old); err != nil {
			t.Fatal(err)
		}
	case err != nil:
		t.Fatal(err)
	default: // left by an earlier test's release: strip Helm's ownership
		delete(live.Labels, "app.kubernetes.io/managed-by")
		for _, a := range []string{"meta.helm.sh/release-name", "meta.helm.sh/release-namespace", "helm.sh/resource-policy"} {
			delete(live.Annotations, a)
		}
		if err := k8s.Update(ctx, live); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "ChatCluster CRD established", func() error { return established(crdName) })

	install := []string{"upgrade", "--install", rel, chart, "--namespace", ns, "--create-namespace", "--wait=false", "--kubeconfig", kubeconfig}
	if _, err := helm(t, install...); err == nil || !strings.Contains(err.Error(), "cannot be imported into the current release") {
		t.Fatalf("helm with an unowned CRD: err %v, want the ownership refusal the docs quote", err)
	}

	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	for _, args := range [][]string{
		{"label", "crd", crdName, "app.kubernetes.io/managed-by=Helm"},
		{"annotate", "crd", crdName, "meta.helm.sh/release-name=" + rel, "meta.helm.sh/release-namespace=" + ns},
	} {
		if out, err := exec.Command(kubectl, append(args, "--kubeconfig", kubeconfig)...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	helmKube(t, install[:len(install)-2]...)
	get(t, client.ObjectKey{Name: crdName}, live)
	if live.Annotations["meta.helm.sh/release-name"] != rel || live.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Errorf("adopted CRD annotations %v: want release %s and the keep policy", live.Annotations, rel)
	}
	helmKube(t, "uninstall", rel, "--namespace", ns)
	if err := established(crdName); err != nil {
		t.Errorf("after uninstalling the adopting release: %v", err)
	}
}
