// Package charts_test tests the Helm chart in parley-operator/: its copies of the
// generated CRD and RBAC rules against config/, helm lint, helm template with default
// and non-default values (checked field by field, decoded strictly into the API
// types), and a real install, upgrade and uninstall on envtest's kube-apiserver
// (install_test.go). helm is bin/helm, built by `make helm`.
package charts_test

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

const (
	chart     = "parley-operator" // relative to this package's folder
	release   = "parley"
	namespace = "parley-system"
)

// helmHome isolates helm's cache, config and data folders from the user's.
var helmHome string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "parley-helm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: temp dir:", err)
		os.Exit(1)
	}
	helmHome = dir
	code := m.Run()
	stopEnv()
	os.RemoveAll(dir)
	os.Exit(code)
}

// helmBin returns bin/helm; without it the test fails (under -short it is skipped).
func helmBin(t *testing.T) string {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "bin", "helm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("short mode and no bin/helm (%v): the chart tests run under make test", err)
		}
		t.Fatalf("bin/helm is missing (%v): run `make helm` (make test and make test-helm build it with hack/helm.sh)", err)
	}
	return path
}

// helm runs bin/helm (in this package's folder, so the chart is ./parley-operator) and
// returns stdout; a non-zero exit is returned as an error carrying stderr.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(helmHome, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(helmHome, "config"),
		"HELM_DATA_HOME="+filepath.Join(helmHome, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustHelm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := helm(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// doc is one rendered manifest.
type doc struct {
	Kind, Name, Namespace string
	raw                   []byte
}

// rendered is the output of helm template, by kind and name.
type rendered []doc

func parseDocs(t *testing.T, out string) rendered {
	t.Helper()
	var docs rendered
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(out)))
	for {
		b, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read rendered YAML: %v", err)
		}
		var meta struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(b, &meta); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, b)
		}
		if meta.Kind == "" {
			continue // a comment-only document
		}
		docs = append(docs, doc{Kind: meta.Kind, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, raw: b})
	}
	return docs
}

// template renders the chart as release "parley" in parley-system with extra helm args.
func template(t *testing.T, args ...string) rendered {
	t.Helper()
	return parseDocs(t, mustHelm(t, append([]string{"template", release, chart, "--namespace", namespace}, args...)...))
}

func (r rendered) kinds() []string {
	var ks []string
	for _, d := range r {
		ks = append(ks, d.Kind+"/"+d.Name)
	}
	slices.Sort(ks)
	return ks
}

func (r rendered) find(kind string) []doc {
	var out []doc
	for _, d := range r {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// one decodes the single object of a kind strictly (unknown fields fail) into obj.
func (r rendered) one(t *testing.T, kind string, obj any) {
	t.Helper()
	ds := r.find(kind)
	if len(ds) != 1 {
		t.Fatalf("want one %s, rendered %v", kind, r.kinds())
	}
	if err := yaml.UnmarshalStrict(ds[0].raw, obj); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v\n%s", kind, ds[0].Name, err, ds[0].raw)
	}
}

// decodeAll decodes every rendered object strictly into its API type, so a misspelt
// field anywhere in the templates fails.
func (r rendered) decodeAll(t *testing.T) {
	t.Helper()
	for _, d := range r {
		var obj any
		switch d.Kind {
		case "Deployment":
			obj = &appsv1.Deployment{}
		case "Service":
			obj = &corev1.Service{}
		case "ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "ClusterRole":
			obj = &rbacv1.ClusterRole{}
		case "ClusterRoleBinding":
			obj = &rbacv1.ClusterRoleBinding{}
		case "Role":
			obj = &rbacv1.Role{}
		case "RoleBinding":
			obj = &rbacv1.RoleBinding{}
		case "ChatCluster":
			obj = &chatv1alpha1.ChatCluster{}
		case "ServiceMonitor", "PrometheusRule":
			obj = &map[string]any{} // no Go type here; checked in TestTemplateServiceMonitor, TestTemplateAlertsAndDashboard
		case "ConfigMap":
			obj = &corev1.ConfigMap{}
		case "CustomResourceDefinition":
			obj = &apiextensionsv1.CustomResourceDefinition{}
		default:
			t.Errorf("unexpected kind %s/%s in the chart", d.Kind, d.Name)
			continue
		}
		if err := yaml.UnmarshalStrict(d.raw, obj); err != nil {
			t.Errorf("%s %s does not decode strictly: %v", d.Kind, d.Name, err)
		}
		cluster := d.Kind == "ClusterRole" || d.Kind == "ClusterRoleBinding" || d.Kind == "CustomResourceDefinition"
		if cluster != (d.Namespace == "") {
			t.Errorf("%s %s: namespace %q (cluster-scoped %v)", d.Kind, d.Name, d.Namespace, cluster)
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configRules are the ClusterRole rules of config/rbac/role.yaml (make manifests).
func configRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join("..", "config", "rbac", "role.yaml")), &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatal("config/rbac/role.yaml has no rules")
	}
	return role.Rules
}

// appVersion is Chart.yaml's appVersion, the default image tag.
func appVersion(t *testing.T) string {
	t.Helper()
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(chart, "Chart.yaml")), &c); err != nil {
		t.Fatal(err)
	}
	if c.AppVersion == "" {
		t.Fatal("Chart.yaml has no appVersion")
	}
	return c.AppVersion
}

// The chart's files/crds/ and files/role.yaml are copies of what `make manifests` generates;
// `make chart-manifests` refreshes them. A difference means the chart would install an
// API or permissions other than the operator's.
func TestChartCopiesMatchConfig(t *testing.T) {
	const fix = "run `make chart-manifests` to copy config/ into the chart"
	want, err := filepath.Glob(filepath.Join("..", "config", "crd", "bases", "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no CRDs in config/crd/bases (%v)", err)
	}
	got, err := filepath.Glob(filepath.Join(chart, "files", "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	base := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(base(want), base(got)) {
		t.Errorf("chart files/crds/ holds %v, config/crd/bases holds %v: %s", base(got), base(want), fix)
	}
	for _, w := range want {
		g := filepath.Join(chart, "files", "crds", filepath.Base(w))
		if b, err := os.ReadFile(g); err != nil || !bytes.Equal(b, readFile(t, w)) {
			t.Errorf("%s differs from %s (%v): %s", g, w, err, fix)
		}
	}
	role := filepath.Join("..", "config", "rbac", "role.yaml")
	copyPath := filepath.Join(chart, "files", "role.yaml")
	if b, err := os.ReadFile(copyPath); err != nil || !bytes.Equal(b, readFile(t, role)) {
		t.Errorf("%s differs from %s (%v): %s", copyPath, role, err, fix)
	}
}

func TestLint(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"-f", filepath.Join("testdata", "nondefault-values.yaml")},
		{"-f", filepath.Join("testdata", "install-values.yaml")},
		{"--set", "metrics.enabled=false,rbac.create=false,serviceAccount.create=false,serviceAccount.name=existing"},
	} {
		out, err := helm(t, append([]string{"lint", "--strict", chart}, args...)...)
		if err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
}

// mainFlags parses main.go for the flags it defines and adds controller-runtime's zap
// flags (opts.BindFlags), as main does, so rendered args can be parsed the way the
// operator will parse them.
func mainFlags(t *testing.T) *flag.FlagSet {
	t.Helper()
	src := string(readFile(t, filepath.Join("..", "main.go")))
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	re := regexp.MustCompile(`flag\.(String|Bool|Int|Duration)Var\(&\w+, "([^"]+)"`)
	matches := re.FindAllStringSubmatch(src, -1)
	if len(matches) == 0 {
		t.Fatal("found no flag definitions in main.go")
	}
	for _, m := range matches {
		switch m[1] {
		case "Bool":
			fs.Bool(m[2], false, "")
		default:
			fs.String(m[2], "", "")
		}
	}
	(&zap.Options{}).BindFlags(fs)
	return fs
}

// operatorArgs checks that the operator's args parse as main.go's flags and returns
// them as flag → value.
func operatorArgs(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	fs := mainFlags(t)
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("args %q are not flags the operator supports: %v", c.Args, err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("args %q leave positional arguments %q", c.Args, fs.Args())
	}
	got := map[string]string{}
	fs.Visit(func(f *flag.Flag) { got[f.Name] = f.Value.String() })
	return got
}

func container(t *testing.T, d *appsv1.Deployment) corev1.Container {
	t.Helper()
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("deployment has %d containers, want 1", n)
	}
	return d.Spec.Template.Spec.Containers[0]
}

func port(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkHardened asserts the restricted-profile security settings.
func checkHardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	pod := d.Spec.Template.Spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot || pod.RunAsUser == nil || *pod.RunAsUser == 0 {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and a non-zero runAsUser", pod)
	}
	if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want seccompProfile RuntimeDefault", pod)
	}
	sc := container(t, d).SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container securityContext %+v: want no privilege escalation, read-only root fs, drop ALL", sc)
	}
}

func TestTemplateDefaults(t *testing.T) {
	r := template(t)
	r.decodeAll(t)
	wantKinds := []string{
		"ClusterRole/parley-parley-operator",
		"ClusterRoleBinding/parley-parley-operator",
		"CustomResourceDefinition/chatclusters.chat.parley.dev",
		"Deployment/parley-parley-operator",
		"Role/parley-parley-operator-leader-election",
		"RoleBinding/parley-parley-operator-leader-election",
		"Service/parley-parley-operator-metrics",
		"ServiceAccount/parley-parley-operator",
	}
	if got := r.kinds(); !slices.Equal(got, wantKinds) {
		t.Fatalf("rendered %v, want %v (no ServiceMonitor or ChatCluster by default)", got, wantKinds)
	}
	// The CRD is a template (so helm upgrade upgrades it): config/crd/bases as
	// generated, kept by helm uninstall.
	var crd, base apiextensionsv1.CustomResourceDefinition
	r.one(t, "CustomResourceDefinition", &crd)
	if err := yaml.Unmarshal(readFile(t, filepath.Join("..", "config", "crd", "bases", "chat.parley.dev_chatclusters.yaml")), &base); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(crd.Spec, base.Spec) || crd.Annotations["controller-gen.kubebuilder.io/version"] == "" {
		t.Error("the rendered CRD differs from config/crd/bases")
	}
	if crd.Annotations["helm.sh/resource-policy"] != "keep" || crd.Labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("CRD labels %v annotations %v: want the chart's labels and helm.sh/resource-policy: keep", crd.Labels, crd.Annotations)
	}
	for _, d := range r {
		if d.Kind != "ClusterRole" && d.Kind != "ClusterRoleBinding" && d.Kind != "CustomResourceDefinition" && d.Namespace != namespace {
			t.Errorf("%s %s in namespace %q, want the release namespace %s", d.Kind, d.Name, d.Namespace, namespace)
		}
	}

	var dep appsv1.Deployment
	r.one(t, "Deployment", &dep)
	c := container(t, &dep)
	if want := "ghcr.io/parley-chat/parley-operator:" + appVersion(t); c.Image != want {
		t.Errorf("image %q, want %q (tag defaults to appVersion)", c.Image, want)
	}
	if c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Errorf("pullPolicy %q", c.ImagePullPolicy)
	}
	if !slices.Equal(c.Command, []string{"/manager"}) {
		t.Errorf("command %q", c.Command)
	}
	args := operatorArgs(t, c)
	for flag, want := range map[string]string{
		"leader-elect":              "true",
		"metrics-bind-address":      ":8080",
		"health-probe-bind-address": ":8081",
		"zap-log-level":             "info",
		"zap-encoder":               "json",
	} {
		if args[flag] != want {
			t.Errorf("--%s=%q, want %q (args %q)", flag, args[flag], want, c.Args)
		}
	}
	if port(c, "metrics") != 8080 || port(c, "health") != 8081 {
		t.Errorf("ports %+v", c.Ports)
	}
	if p := c.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.String() != "health" {
		t.Errorf("liveness probe %+v", p)
	}
	if p := c.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" || p.HTTPGet.Port.String() != "health" {
		t.Errorf("readiness probe %+v", p)
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("256Mi")) != 0 {
		t.Errorf("memory limit %s", got.String())
	}
	checkHardened(t, &dep)
	if *dep.Spec.Replicas != 1 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	spec := dep.Spec.Template.Spec
	if len(spec.ImagePullSecrets) != 0 || len(spec.NodeSelector) != 0 || len(spec.Tolerations) != 0 || spec.Affinity != nil {
		t.Errorf("pod spec has scheduling or pull secrets by default: %+v", spec)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("selector %v does not match pod labels %v", dep.Spec.Selector.MatchLabels, dep.Spec.Template.Labels)
		}
	}

	var sa corev1.ServiceAccount
	r.one(t, "ServiceAccount", &sa)
	if spec.ServiceAccountName != sa.Name {
		t.Errorf("pods run as %q, the chart's ServiceAccount is %q", spec.ServiceAccountName, sa.Name)
	}
	var cr rbacv1.ClusterRole
	r.one(t, "ClusterRole", &cr)
	if !reflect.DeepEqual(cr.Rules, configRules(t)) {
		t.Errorf("ClusterRole rules differ from config/rbac/role.yaml:\n%+v\nwant\n%+v", cr.Rules, configRules(t))
	}
	var crb rbacv1.ClusterRoleBinding
	r.one(t, "ClusterRoleBinding", &crb)
	wantSubject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: namespace}}
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != cr.Name || !reflect.DeepEqual(crb.Subjects, wantSubject) {
		t.Errorf("ClusterRoleBinding %+v %+v", crb.RoleRef, crb.Subjects)
	}
	var role rbacv1.Role
	r.one(t, "Role", &role)
	if len(role.Rules) == 0 || !slices.Contains(role.Rules[0].Resources, "leases") || !slices.Contains(role.Rules[0].Verbs, "update") {
		t.Errorf("leader-election Role rules %+v", role.Rules)
	}
	var rb rbacv1.RoleBinding
	r.one(t, "RoleBinding", &rb)
	if rb.RoleRef.Name != role.Name || !reflect.DeepEqual(rb.Subjects, wantSubject) {
		t.Errorf("RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}
	var svc corev1.Service
	r.one(t, "Service", &svc)
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.String() != "metrics" || svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("metrics Service ports %+v type %s", svc.Spec.Ports, svc.Spec.Type)
	}
	if !reflect.DeepEqual(svc.Spec.Selector, dep.Spec.Selector.MatchLabels) {
		t.Errorf("Service selector %v, Deployment selector %v", svc.Spec.Selector, dep.Spec.Selector.MatchLabels)
	}
}

func TestTemplateNonDefaults(t *testing.T) {
	r := template(t, "-f", filepath.Join("testdata", "nondefault-values.yaml"), "--api-versions", chatClusterAPI)
	r.decodeAll(t)
	wantKinds := []string{
		"ChatCluster/team-chat",
		"ClusterRole/chat-operator",
		"ClusterRoleBinding/chat-operator",
		"ConfigMap/chat-operator-dashboard",
		"Deployment/chat-operator",
		"PrometheusRule/chat-operator",
		"Role/chat-operator-leader-election",
		"RoleBinding/chat-operator-leader-election",
		"Service/chat-operator-metrics",
		"ServiceAccount/parley-sa",
		"ServiceMonitor/chat-operator",
	}
	if got := r.kinds(); !slices.Equal(got, wantKinds) {
		t.Fatalf("rendered %v, want %v", got, wantKinds)
	}
	var dep appsv1.Deployment
	r.one(t, "Deployment", &dep)
	c := container(t, &dep)
	spec := dep.Spec.Template.Spec
	if c.Image != "registry.example.com/parley/operator:v9.8.7" || c.ImagePullPolicy != corev1.PullAlways {
		t.Errorf("image %q pull %q", c.Image, c.ImagePullPolicy)
	}
	if !reflect.DeepEqual(spec.ImagePullSecrets, []corev1.LocalObjectReference{{Name: "regcred"}}) {
		t.Errorf("imagePullSecrets %+v", spec.ImagePullSecrets)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *dep.Spec.Replicas)
	}
	args := operatorArgs(t, c)
	for flag, want := range map[string]string{
		"leader-elect":              "true",
		"metrics-bind-address":      ":9090",
		"health-probe-bind-address": ":9091",
		"zap-log-level":             "debug",
		"zap-encoder":               "console",
		"zap-stacktrace-level":      "panic",
	} {
		if args[flag] != want {
			t.Errorf("--%s=%q, want %q (args %q)", flag, args[flag], want, c.Args)
		}
	}
	if port(c, "metrics") != 9090 || port(c, "health") != 9091 {
		t.Errorf("ports %+v", c.Ports)
	}
	if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("memory limit %s", got.String())
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("100m")) != 0 {
		t.Errorf("cpu request %s", got.String())
	}
	checkHardened(t, &dep)
	if *spec.SecurityContext.RunAsUser != 10001 || spec.SecurityContext.FSGroup == nil || *spec.SecurityContext.FSGroup != 10001 {
		t.Errorf("pod securityContext %+v", spec.SecurityContext)
	}
	if spec.NodeSelector["node-role.example.com/infra"] != "true" || spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector %v", spec.NodeSelector)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "dedicated" || spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations %+v", spec.Tolerations)
	}
	if a := spec.Affinity; a == nil || a.NodeAffinity == nil ||
		a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key != "kubernetes.io/arch" {
		t.Errorf("affinity %+v", spec.Affinity)
	}
	if spec.PriorityClassName != "system-cluster-critical" || *spec.TerminationGracePeriodSeconds != 30 {
		t.Errorf("priorityClassName %q terminationGracePeriodSeconds %d", spec.PriorityClassName, *spec.TerminationGracePeriodSeconds)
	}
	if dep.Spec.Template.Annotations["example.com/team"] != "chat" || dep.Spec.Template.Labels["tier"] != "control-plane" {
		t.Errorf("pod annotations %v labels %v", dep.Spec.Template.Annotations, dep.Spec.Template.Labels)
	}
	if _, ok := dep.Spec.Selector.MatchLabels["tier"]; ok {
		t.Errorf("podLabels leaked into the (immutable) selector: %v", dep.Spec.Selector.MatchLabels)
	}

	var sa corev1.ServiceAccount
	r.one(t, "ServiceAccount", &sa)
	if spec.ServiceAccountName != "parley-sa" || sa.Annotations["iam.example.com/role"] != "parley" {
		t.Errorf("serviceAccountName %q, annotations %v", spec.ServiceAccountName, sa.Annotations)
	}
	var crb rbacv1.ClusterRoleBinding
	r.one(t, "ClusterRoleBinding", &crb)
	if crb.Subjects[0].Name != "parley-sa" {
		t.Errorf("ClusterRoleBinding subjects %+v", crb.Subjects)
	}
	var svc corev1.Service
	r.one(t, "Service", &svc)
	if svc.Spec.Type != corev1.ServiceTypeNodePort || svc.Spec.Ports[0].Port != 9443 || svc.Annotations["example.com/scrape"] != "yes" {
		t.Errorf("Service %+v %v", svc.Spec, svc.Annotations)
	}
	var cc chatv1alpha1.ChatCluster
	r.one(t, "ChatCluster", &cc)
	if cc.Namespace != namespace || cc.Labels["team"] != "chat" || cc.Annotations["chat.parley.dev/hibernate"] != "true" {
		t.Errorf("ChatCluster metadata %+v", cc.ObjectMeta)
	}
	if cc.Spec.Replicas == nil || *cc.Spec.Replicas != 3 || cc.Spec.Redis == nil || cc.Spec.Redis.Managed == nil ||
		cc.Spec.Database.Postgres == nil || cc.Spec.Database.Postgres.DSNSecretRef.Name != "parley-db" {
		t.Errorf("ChatCluster spec not passed through: %+v", cc.Spec)
	}
}

// With metrics off there is no metrics port, Service or ServiceMonitor, and the operator
// gets --metrics-bind-address=0; with rbac and the ServiceAccount off the pods use the
// named existing ServiceAccount and the chart creates no RBAC.
func TestTemplateOptionalObjectsOff(t *testing.T) {
	r := template(t, "--set", "metrics.enabled=false,metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.force=true",
		"--set", "rbac.create=false,serviceAccount.create=false,serviceAccount.name=existing-sa,crds.install=false")
	r.decodeAll(t)
	if got := r.kinds(); !slices.Equal(got, []string{"Deployment/parley-parley-operator"}) {
		t.Fatalf("rendered %v, want only the Deployment", got)
	}
	var dep appsv1.Deployment
	r.one(t, "Deployment", &dep)
	c := container(t, &dep)
	if args := operatorArgs(t, c); args["metrics-bind-address"] != "0" {
		t.Errorf("--metrics-bind-address=%q, want 0 (disabled)", args["metrics-bind-address"])
	}
	if port(c, "metrics") != 0 {
		t.Errorf("metrics port still declared: %+v", c.Ports)
	}
	if dep.Spec.Template.Spec.ServiceAccountName != "existing-sa" {
		t.Errorf("serviceAccountName %q", dep.Spec.Template.Spec.ServiceAccountName)
	}
}

// Bad values fail the render with a message naming the value: the chart's own checks
// and values.schema.json (unknown keys, wrong types).
func TestTemplateRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		set, want string
	}{
		{"replicaCount=2,leaderElection.enabled=false", "replicaCount > 1 needs leaderElection.enabled"},
		{"serviceAccount.create=false", "serviceAccount.name is required"},
		// values.schema.json
		{"imag.tag=v1", "additional properties 'imag' not allowed"},
		{"metrics.servicemonitor.enabled=true", "additional properties 'servicemonitor' not allowed"},
		{"replicaCount=two", "want integer"},
		{"image.pullPolicy=Sometimes", "value must be one of"},
		{"logging.level=verbose", "/logging/level"},
		{"chatCluster.name=Not_A_Name", "/chatCluster/name"},
	} {
		_, err := helm(t, "template", release, chart, "--namespace", namespace, "--set", tc.set)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--set %s: err %v, want one containing %q", tc.set, err, tc.want)
		}
	}
}

// The ServiceMonitor follows the values toggle and the cluster's capabilities: with
// the toggle on it is rendered only when monitoring.coreos.com/v1 is served (here
// --api-versions stands for discovery) or when forced.
func TestTemplateServiceMonitor(t *testing.T) {
	on := "metrics.serviceMonitor.enabled=true"
	if r := template(t, "--api-versions", "monitoring.coreos.com/v1"); len(r.find("ServiceMonitor")) != 0 {
		t.Error("ServiceMonitor rendered with the toggle off")
	}
	if r := template(t, "--set", on); len(r.find("ServiceMonitor")) != 0 {
		t.Error("ServiceMonitor rendered although monitoring.coreos.com/v1 is not served")
	}
	for _, args := range [][]string{
		{"--set", on, "--api-versions", "monitoring.coreos.com/v1"},
		{"--set", on + ",metrics.serviceMonitor.force=true"},
	} {
		r := template(t, args...)
		ds := r.find("ServiceMonitor")
		if len(ds) != 1 {
			t.Fatalf("%v: rendered %v, want a ServiceMonitor", args, r.kinds())
		}
		var sm struct {
			APIVersion string `json:"apiVersion"`
			Metadata   struct {
				Namespace string `json:"namespace"`
			} `json:"metadata"`
			Spec struct {
				Selector          struct{ MatchLabels map[string]string }
				NamespaceSelector struct{ MatchNames []string }
				Endpoints         []map[string]any
			} `json:"spec"`
		}
		if err := yaml.Unmarshal(ds[0].raw, &sm); err != nil {
			t.Fatal(err)
		}
		var svc corev1.Service
		r.one(t, "Service", &svc)
		for k, v := range sm.Spec.Selector.MatchLabels {
			if svc.Labels[k] != v {
				t.Errorf("ServiceMonitor selector %v does not select the metrics Service (labels %v)", sm.Spec.Selector.MatchLabels, svc.Labels)
			}
		}
		if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Metadata.Namespace != namespace ||
			!slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{namespace}) || len(sm.Spec.Endpoints) != 1 ||
			sm.Spec.Endpoints[0]["port"] != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0]["path"] != "/metrics" ||
			sm.Spec.Endpoints[0]["interval"] != "30s" || sm.Spec.Endpoints[0]["honorLabels"] != true {
			t.Errorf("ServiceMonitor %+v", sm)
		}
	}
}

// The PrometheusRule carries config/monitoring/alerts.yaml's groups unchanged
// (rendered only with monitoring.coreos.com/v1 or force, like the ServiceMonitor);
// the dashboard ConfigMap carries dashboard.json with Grafana's sidecar label.
func TestTemplateAlertsAndDashboard(t *testing.T) {
	if r := template(t, "--api-versions", "monitoring.coreos.com/v1"); len(r.find("PrometheusRule")) != 0 || len(r.find("ConfigMap")) != 0 {
		t.Errorf("rendered %v with prometheusRule and grafanaDashboard off", r.kinds())
	}
	if r := template(t, "--set", "prometheusRule.enabled=true"); len(r.find("PrometheusRule")) != 0 {
		t.Error("PrometheusRule rendered although monitoring.coreos.com/v1 is not served")
	}
	var source struct {
		Groups []any `json:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join("..", "config", "monitoring", "alerts.yaml")), &source); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--set", "prometheusRule.enabled=true,grafanaDashboard.enabled=true,prometheusRule.labels.release=kp", "--api-versions", "monitoring.coreos.com/v1"},
		{"--set", "prometheusRule.enabled=true,prometheusRule.force=true,grafanaDashboard.enabled=true,prometheusRule.labels.release=kp"},
	} {
		r := template(t, args...)
		var pr struct {
			APIVersion string `json:"apiVersion"`
			Metadata   struct {
				Namespace string            `json:"namespace"`
				Labels    map[string]string `json:"labels"`
			} `json:"metadata"`
			Spec struct {
				Groups []any `json:"groups"`
			} `json:"spec"`
		}
		ds := r.find("PrometheusRule")
		if len(ds) != 1 {
			t.Fatalf("%v: rendered %v, want a PrometheusRule", args, r.kinds())
		}
		if err := yaml.Unmarshal(ds[0].raw, &pr); err != nil {
			t.Fatal(err)
		}
		if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Metadata.Namespace != namespace || pr.Metadata.Labels["release"] != "kp" {
			t.Errorf("PrometheusRule %+v", pr)
		}
		if len(source.Groups) == 0 || !reflect.DeepEqual(pr.Spec.Groups, source.Groups) {
			t.Errorf("PrometheusRule groups differ from config/monitoring/alerts.yaml:\n%s", ds[0].raw)
		}
		var cm corev1.ConfigMap
		r.one(t, "ConfigMap", &cm)
		if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != namespace {
			t.Errorf("dashboard ConfigMap %s/%s labels %v", cm.Namespace, cm.Name, cm.Labels)
		}
		if want := string(readFile(t, filepath.Join("..", "config", "monitoring", "dashboard.json"))); cm.Data["parley.json"] != strings.TrimSuffix(want, "\n") {
			t.Error("dashboard ConfigMap does not carry config/monitoring/dashboard.json")
		}
	}
	r := template(t, "--set", "grafanaDashboard.enabled=true,grafanaDashboard.namespace=monitoring")
	var cm corev1.ConfigMap
	r.one(t, "ConfigMap", &cm)
	if cm.Namespace != "monitoring" {
		t.Errorf("dashboard ConfigMap in %q, want monitoring", cm.Namespace)
	}
}

// chatClusterAPI stands for discovery serving the ChatCluster kind (--api-versions).
const chatClusterAPI = "chat.parley.dev/v1alpha1/ChatCluster"

// chartValues reads the chart's values.yaml.
func chartValues(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal(readFile(t, filepath.Join(chart, "values.yaml")), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// The sample ChatCluster is off by default; on, it carries values.yaml's spec unchanged.
func TestTemplateChatClusterFromValues(t *testing.T) {
	// Not before the API is served: on a first install the release itself creates
	// the CRD, and Helm cannot build an object of a kind not yet served.
	if r := template(t, "--set", "chatCluster.enabled=true"); len(r.find("ChatCluster")) != 0 {
		t.Errorf("ChatCluster rendered before chat.parley.dev/v1alpha1 is served: %v", r.kinds())
	}
	r := template(t, "--set", "chatCluster.enabled=true", "--api-versions", chatClusterAPI)
	r.decodeAll(t)
	ds := r.find("ChatCluster")
	if len(ds) != 1 || ds[0].Name != "parley" || ds[0].Namespace != namespace {
		t.Fatalf("rendered %v, want ChatCluster/parley in %s", r.kinds(), namespace)
	}
	var got struct {
		APIVersion string         `json:"apiVersion"`
		Spec       map[string]any `json:"spec"`
	}
	if err := yaml.Unmarshal(ds[0].raw, &got); err != nil {
		t.Fatal(err)
	}
	want := chartValues(t)["chatCluster"].(map[string]any)["spec"]
	if got.APIVersion != "chat.parley.dev/v1alpha1" || !reflect.DeepEqual(got.Spec, want) {
		t.Errorf("ChatCluster %s spec %v, want values.yaml chatCluster.spec %v", got.APIVersion, got.Spec, want)
	}
}

// Every value in values.yaml has a "# --" comment above it (users read the file):
// each leaf, and each map or list given as a whole (resources, spec, ...), whose
// contents are then the described value. A map of settings without its own comment
// (image:, metrics:) is described by its children's.
func TestValuesAreCommented(t *testing.T) {
	lines := strings.Split(string(readFile(t, filepath.Join(chart, "values.yaml"))), "\n")
	key := regexp.MustCompile(`^(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$`)
	covered := -1 // indentation of a commented map or list whose contents are its value
	for i, line := range lines {
		m := key.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		indent := len(m[1])
		if covered >= 0 && indent > covered {
			continue
		}
		covered = -1
		commented := false
		for j := i - 1; j >= 0 && strings.HasPrefix(strings.TrimSpace(lines[j]), "#"); j-- {
			if strings.HasPrefix(strings.TrimSpace(lines[j]), "# --") {
				commented = true
			}
		}
		if commented {
			covered = indent
			continue
		}
		// A map of settings: the next key line is a child.
		if strings.TrimSpace(m[3]) == "" {
			j := i + 1
			for j < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
				j++
			}
			if j < len(lines) {
				if n := key.FindStringSubmatch(lines[j]); n != nil && len(n[1]) > indent {
					continue
				}
			}
		}
		t.Errorf("values.yaml line %d: %q has no \"# --\" comment above it", i+1, strings.TrimSpace(line))
	}
}

// The chart README's values table names every leaf value of values.yaml.
func TestReadmeListsValues(t *testing.T) {
	readme := string(readFile(t, filepath.Join(chart, "README.md")))
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 || slices.Contains([]string{
			"resources", "podSecurityContext", "securityContext", "chatCluster.spec",
			"nodeSelector", "affinity", "podAnnotations", "podLabels",
		}, prefix) || strings.HasSuffix(prefix, "annotations") || strings.HasSuffix(prefix, "labels") {
			if !strings.Contains(readme, "| `"+prefix+"` |") {
				t.Errorf("README.md values table has no row for `%s`", prefix)
			}
			return
		}
		for k, child := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, child)
		}
	}
	walk("", chartValues(t))
}
