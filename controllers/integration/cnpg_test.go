package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// installCloudNativePGCRD installs CloudNativePG's real Cluster CRD
// (testdata/cnpg, see SOURCE.md) once per test process.
func installCloudNativePGCRD(t *testing.T) {
	t.Helper()
	_, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join("testdata", "cnpg")},
		ErrorIfPathMissing: true,
		MaxTime:            30 * time.Second,
	})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("install CloudNativePG CRD: %v", err)
	}
}

func cnpgSample(ns, name, cluster string) *chatv1alpha1.ChatCluster {
	cc := sample(ns, name)
	cc.Spec.Ingress = nil
	cc.Spec.Database.Postgres = &chatv1alpha1.PostgresSpec{CloudNativePG: &chatv1alpha1.CloudNativePGRef{ClusterName: cluster}}
	return cc
}

func (f *fixture) createCNPGCluster(name string, spec map[string]any) *unstructured.Unstructured {
	f.t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
		"metadata": map[string]any{"namespace": f.ns, "name": name},
		"spec":     spec,
	}}
	if err := k8s.Create(ctx, u); err != nil {
		f.t.Fatalf("create CloudNativePG Cluster (validated by its CRD): %v", err)
	}
	return u
}

// setCNPGStatus plays CloudNativePG's operator: the status it writes.
func (f *fixture) setCNPGStatus(name string, ready int64, readyCond string) {
	f.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("postgresql.cnpg.io/v1")
	u.SetKind("Cluster")
	f.get(u, name)
	phase := "Setting up primary"
	if readyCond == "True" {
		phase = "Cluster in healthy state"
	}
	u.Object["status"] = map[string]any{
		"instances": int64(3), "readyInstances": ready, "phase": phase,
		"conditions": []any{map[string]any{
			"type": "Ready", "status": readyCond, "reason": "ClusterIsReady", "message": "x",
			"lastTransitionTime": metav1.Now().UTC().Format(time.RFC3339),
		}},
	}
	if err := k8s.Status().Update(ctx, u); err != nil {
		f.t.Fatalf("set CloudNativePG Cluster status: %v", err)
	}
}

func envOf(dep *appsv1.Deployment) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		out[e.Name] = e
	}
	return out
}

// spec.database.postgres.cloudNativePG: the operator waits for the Cluster
// (missing, then not ready, then without its read-write Service), and then
// points the chat servers at <cluster>-rw with the application database and
// the user and password of the application Secret; a new password rolls them.
func TestCloudNativePGDatabase(t *testing.T) {
	installCloudNativePGCRD(t)
	f := newFixture(t)
	f.create(cnpgSample(f.ns, "chat", "pg"))

	waiting := func(want string) {
		t.Helper()
		res := f.reconcile("chat")
		c := cond(f.chat("chat"), "Ready")
		if c.Status != metav1.ConditionFalse || c.Reason != "DatabaseNotReady" || !strings.Contains(c.Message, want) {
			t.Fatalf("Ready = %+v, want False/DatabaseNotReady saying %q", c, want)
		}
		if res.RequeueAfter <= 0 || res.RequeueAfter > time.Minute {
			t.Errorf("requeue after %s while waiting for the database", res.RequeueAfter)
		}
		if !f.absent(&appsv1.Deployment{}, "chat") {
			t.Fatal("a Deployment was created before the database was ready")
		}
	}
	waiting("CloudNativePG Cluster " + f.ns + "/pg not found")

	f.createCNPGCluster("pg", map[string]any{
		"instances": int64(3),
		"storage":   map[string]any{"size": "1Gi"},
		"bootstrap": map[string]any{"initdb": map[string]any{"database": "chat", "owner": "chat"}},
	})
	waiting("is not ready")
	f.setCNPGStatus("pg", 1, "False")
	waiting("is not ready")
	f.setCNPGStatus("pg", 3, "True")
	waiting("read-write Service pg-rw does not exist")

	// What CloudNativePG creates: the Services and the application Secret.
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "pg-rw"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "postgres", Port: 5432}}}}
	if err := k8s.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Ready"); c.Reason != "SecretNotFound" || !strings.Contains(c.Message, "pg-app") {
		t.Fatalf("Ready = %+v, want SecretNotFound naming pg-app", c)
	}
	app := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "pg-app"}, Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"username": "chat", "password": "pw1", "dbname": "chat", "host": "pg-rw", "port": "5432",
			"uri": "postgresql://chat:pw1@pg-rw." + f.ns + ":5432/chat"}}
	if err := k8s.Create(ctx, app); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile("chat")
	if res.RequeueAfter <= 0 || res.RequeueAfter > 5*time.Minute {
		t.Errorf("requeue after %s: the unwatched CloudNativePG Secret must be read again within 5m", res.RequeueAfter)
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	env := envOf(dep)
	if got, want := env["PARLEY_DATABASE_URL"].Value, "postgres://pg-rw."+f.ns+".svc:5432/chat?sslmode=require"; got != want {
		t.Errorf("PARLEY_DATABASE_URL = %q, want %q", got, want)
	}
	for name, key := range map[string]string{"PGUSER": "username", "PGPASSWORD": "password"} {
		ref := env[name].ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != "pg-app" || ref.SecretKeyRef.Key != key {
			t.Errorf("%s = %+v, want secretKeyRef pg-app/%s", name, env[name], key)
		}
	}
	hash := dep.Spec.Template.Annotations["chat.parley.dev/config-hash"]

	// CloudNativePG rotates the password: the pods roll at the next reconcile.
	app.StringData = map[string]string{"password": "pw2"}
	if err := k8s.Update(ctx, app); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	f.get(dep, "chat")
	if dep.Spec.Template.Annotations["chat.parley.dev/config-hash"] == hash {
		t.Error("the pod template did not change with the database password")
	}

	// A bootstrap with its own application Secret.
	f.create(cnpgSample(f.ns, "other", "pg2"))
	f.createCNPGCluster("pg2", map[string]any{
		"instances": int64(1), "storage": map[string]any{"size": "1Gi"},
		"bootstrap": map[string]any{"initdb": map[string]any{"database": "db2", "owner": "u2", "secret": map[string]any{"name": "u2-creds"}}},
	})
	f.setCNPGStatus("pg2", 1, "True")
	for _, o := range []*corev1.Service{{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "pg2-rw"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}}} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	f.createSecret("u2-creds", map[string]string{"username": "u2", "password": "x"})
	f.reconcile("other")
	f.get(dep, "other")
	env = envOf(dep)
	if got := env["PARLEY_DATABASE_URL"].Value; got != "postgres://pg2-rw."+f.ns+".svc:5432/db2?sslmode=require" {
		t.Errorf("PARLEY_DATABASE_URL = %q", got)
	}
	if r := env["PGPASSWORD"].ValueFrom; r == nil || r.SecretKeyRef == nil || r.SecretKeyRef.Name != "u2-creds" {
		t.Errorf("PGPASSWORD = %+v, want the bootstrap's Secret u2-creds", env["PGPASSWORD"])
	}
}

// Exactly one way to name the PostgreSQL database.
func TestCloudNativePGRefIsExclusive(t *testing.T) {
	f := newFixture(t)
	both := cnpgSample(f.ns, "both", "pg")
	both.Spec.Database.Postgres.DSNSecretRef = corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "dsn"}
	neither := cnpgSample(f.ns, "neither", "pg")
	neither.Spec.Database.Postgres.CloudNativePG = nil
	for _, cc := range []*chatv1alpha1.ChatCluster{both, neither} {
		err := k8s.Create(ctx, cc)
		if err == nil || !strings.Contains(err.Error(), "set exactly one of spec.database.postgres.dsnSecretRef and spec.database.postgres.cloudNativePG") {
			t.Errorf("create %s: %v, want the exclusivity rule", cc.Name, err)
		}
	}
	bad := cnpgSample(f.ns, "bad", "Not_A_Name")
	if err := k8s.Create(ctx, bad); err == nil {
		t.Error("a clusterName that is no object name was accepted")
	}
}

// The production-shaped sample (config/samples/chat_v1alpha1_chatcluster_cloudnativepg.yaml)
// is accepted by both CRDs, CloudNativePG's and ours, and reconciles to chat servers on
// the Cluster's read-write Service once CloudNativePG reports it ready.
func TestCloudNativePGSample(t *testing.T) {
	installCloudNativePGCRD(t)
	f := newFixture(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "chat_v1alpha1_chatcluster_cloudnativepg.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(raw), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("want a Cluster and a ChatCluster, got %d documents", len(docs))
	}
	pg := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(docs[0]), &pg.Object); err != nil {
		t.Fatal(err)
	}
	pg.SetNamespace(f.ns)
	if err := k8s.Create(ctx, pg); err != nil {
		t.Fatalf("CloudNativePG's CRD refuses the sample's Cluster: %v", err)
	}
	cc := &chatv1alpha1.ChatCluster{}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), cc); err != nil {
		t.Fatalf("the sample's ChatCluster does not decode into the API types: %v", err)
	}
	cc.Namespace = f.ns
	if err := k8s.Create(ctx, cc); err != nil {
		t.Fatalf("the API server refuses the sample's ChatCluster: %v", err)
	}
	f.createSecret("parley-redis", map[string]string{"password": "pw"})
	f.createSecret("parley-s3", map[string]string{"accessKey": "a", "secretKey": "s"})
	f.reconcile("parley")
	if c := cond(f.chat("parley"), "Ready"); c.Reason != "DatabaseNotReady" {
		t.Fatalf("Ready = %+v before CloudNativePG is ready", c)
	}
	f.setCNPGStatus(pg.GetName(), 3, "True")
	if err := k8s.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "parley-db-rw"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 5432}}}}); err != nil {
		t.Fatal(err)
	}
	f.createSecret("parley-db-app", map[string]string{"username": "parley", "password": "pw"})
	f.reconcile("parley")
	dep := &appsv1.Deployment{}
	f.get(dep, "parley")
	if got := envOf(dep)["PARLEY_DATABASE_URL"].Value; got != "postgres://parley-db-rw."+f.ns+".svc:5432/parley?sslmode=require" {
		t.Errorf("PARLEY_DATABASE_URL = %q", got)
	}
	if got := *dep.Spec.Replicas; got != 3 {
		t.Errorf("replicas %d", got)
	}
}
