package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	chatmetrics "github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/pkg/settings"
)

func testCluster() *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "prod", UID: "uid-1"},
		Spec: chatv1alpha1.ChatClusterSpec{
			Replicas: ptr.To[int32](3),
			Redis:    &chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedRedisSpec{}},
			Database: chatv1alpha1.DatabaseSpec{Postgres: &chatv1alpha1.PostgresSpec{
				DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "dsn"},
			}},
		},
	}
}

func TestResolveDefaults(t *testing.T) {
	s := Resolve(testCluster(), "v0.3.0")
	if s.Image != "ghcr.io/parley-chat/chatserver:v0.3.0" {
		t.Errorf("default image %q, want the operator's version", s.Image)
	}
	if s.AccessTokenTTL != 15*time.Minute || s.RefreshTokenTTL != 720*time.Hour || s.ShutdownTimeout != 25*time.Second ||
		s.MaxMessageChars != 4000 {
		t.Errorf("defaults %+v", s)
	}
}

// The server refuses frames too small for the longest message, so the operator
// raises PARLEY_MAX_FRAME_BYTES with maxMessageChars, and leaves it out while the
// server's default suffices (an operator upgrade does not roll those pods).
func TestConfigMapFrameBytesFollowMessageLength(t *testing.T) {
	largestAtDefault := (settings.MaxFrameBytes.Def - 512) / 6 // 5376
	for chars, want := range map[int32]string{
		0:                           "",
		4000:                        "",
		int32(largestAtDefault):     "",
		int32(largestAtDefault + 1): "32774",
		100000:                      "600512",
	} {
		cc := testCluster()
		cc.Spec.Server.MaxMessageChars = chars
		got, ok := ConfigMap(cc, Resolve(cc, "v1")).Data[settings.MaxFrameBytes.Env]
		if got != want || ok != (want != "") {
			t.Errorf("maxMessageChars %d: %s = %q (set %v), want %q", chars, settings.MaxFrameBytes.Env, got, ok, want)
		}
	}
}

func TestDeploymentReplicasFollowMode(t *testing.T) {
	cc := testCluster()
	if got := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{}).Spec.Replicas; ptr.Deref(got, -1) != 3 {
		t.Errorf("fixed replicas = %v, want 3", got)
	}
	cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 5}
	if got := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{}).Spec.Replicas; got != nil {
		t.Errorf("autoscaled Deployment sets replicas %d; the HPA owns them", *got)
	}
	if HPA(cc, Resolve(cc, "v1"), false) == nil || PDB(cc, Resolve(cc, "v1")) == nil {
		t.Error("autoscaling without HPA or PDB")
	}
	cc.Annotations = map[string]string{chatv1alpha1.AnnotationHibernate: "true"}
	s := Resolve(cc, "v1")
	if got := Deployment(cc, s, DeploymentInput{}).Spec.Replicas; ptr.Deref(got, -1) != 0 {
		t.Errorf("hibernating replicas = %v, want 0", got)
	}
	if HPA(cc, s, false) != nil || PDB(cc, s) != nil {
		t.Error("hibernating cluster keeps an HPA or PDB")
	}
}

func TestHPACustomMetricOnlyWhenServed(t *testing.T) {
	cc := testCluster()
	cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 5, TargetConnectionsPerPod: ptr.To[int32](400)}
	s := Resolve(cc, "v1")
	if n := len(HPA(cc, s, false).Spec.Metrics); n != 1 {
		t.Errorf("%d metrics without the custom metrics API, want CPU only", n)
	}
	m := HPA(cc, s, true).Spec.Metrics
	if len(m) != 2 || m[1].Pods == nil || m[1].Pods.Metric.Name != ConnectionsMetric || m[1].Pods.Target.AverageValue.Value() != 400 {
		t.Errorf("metrics with custom metrics API = %+v", m)
	}
	// The metric is one the chat server exports (it was once named
	// parley_connections, which no server had).
	families, err := chatmetrics.New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == ConnectionsMetric
	}
	if !found {
		t.Errorf("the HPA reads %q, which the chat server does not export", ConnectionsMetric)
	}
}

func TestSQLiteUsesClaimAndRecreate(t *testing.T) {
	cc := testCluster()
	cc.Spec.Replicas = ptr.To[int32](1)
	cc.Spec.Redis = nil
	cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
	s := Resolve(cc, "v1")
	dep := Deployment(cc, s, DeploymentInput{})
	if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("SQLite strategy %s: two pods must never share the database file", dep.Spec.Strategy.Type)
	}
	var claim string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Name == "data" && v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
	}
	if claim != "chat-data" || DataClaim(cc).Name != "chat-data" {
		t.Errorf("data volume claim %q", claim)
	}
	if got := ConfigMap(cc, s).Data["PARLEY_DATABASE_URL"]; got != "sqlite:///var/lib/parley/parley.db" {
		t.Errorf("PARLEY_DATABASE_URL = %q", got)
	}
	if _, ok := ConfigMap(cc, s).Data["PARLEY_REDIS_URL"]; ok {
		t.Error("PARLEY_REDIS_URL set without Redis")
	}
	if RedisStatefulSet(cc, "") != nil || RedisNetworkPolicy(cc) != nil || PDB(cc, s) != nil {
		t.Error("single SQLite replica got Redis, a NetworkPolicy or a PDB")
	}
}

func TestConfigHashChangesWithInputs(t *testing.T) {
	cc := testCluster()
	cm := ConfigMap(cc, Resolve(cc, "v1"))
	base := ConfigHash(cm, map[string][]byte{"dsn": []byte("a")})
	if base != ConfigHash(cm, map[string][]byte{"dsn": []byte("a")}) {
		t.Fatal("hash is not deterministic")
	}
	if base == ConfigHash(cm, map[string][]byte{"dsn": []byte("b")}) {
		t.Error("hash ignores the Secret value")
	}
	cc.Spec.Security.AllowedOrigins = []string{"https://x.example"}
	if base == ConfigHash(ConfigMap(cc, Resolve(cc, "v1")), map[string][]byte{"dsn": []byte("a")}) {
		t.Error("hash ignores the configuration")
	}
}

func TestRedisNetworkPolicyAdmitsOnlyChatServers(t *testing.T) {
	cc := testCluster()
	np := RedisNetworkPolicy(cc)
	if np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"] != "redis" {
		t.Errorf("policy selects %v", np.Spec.PodSelector.MatchLabels)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 ||
		np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "chatserver" ||
		np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/instance"] != "chat" {
		t.Errorf("ingress rules %+v", np.Spec.Ingress)
	}
}

// Managed Redis accepts the chat servers' connections whatever the image's
// protected-mode default (found on a real node: Debian's redis-server refuses
// every non-loopback client without a password).
func TestManagedRedisIsReachableFromOtherPods(t *testing.T) {
	cc := testCluster()
	cc.Spec.Redis = &chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedRedisSpec{}}
	sts := RedisStatefulSet(cc, "")
	if sts == nil {
		t.Fatal("no StatefulSet for managed Redis")
	}
	args := strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(args, "--protected-mode no") {
		t.Errorf("redis args %q lack --protected-mode no", args)
	}
}

func TestEndpointAndImageTag(t *testing.T) {
	cc := testCluster()
	if got := Endpoint(cc); got != "http://chat.prod.svc:80" {
		t.Errorf("endpoint %q", got)
	}
	cc.Spec.Ingress = &chatv1alpha1.IngressSpec{Host: "chat.example.com", TLSSecretName: "tls"}
	if got := Endpoint(cc); got != "https://chat.example.com" {
		t.Errorf("endpoint %q", got)
	}
	for image, want := range map[string]string{
		"ghcr.io/parley-chat/chatserver:v1.2.3": "v1.2.3",
		"localhost:5000/chatserver":             "latest",
		"ghcr.io/x/y@sha256:abc":                "sha256:abc",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}

func TestSubsetComparison(t *testing.T) {
	want := map[string]any{"spec": map[string]any{"a": "1", "l": []any{map[string]any{"x": 1.0}}}}
	have := map[string]any{"spec": map[string]any{"a": "1", "b": "extra", "l": []any{map[string]any{"x": 1.0, "y": 2.0}}}}
	if !isSubset(want, have) {
		t.Error("extra fields should not count as a difference")
	}
	have["spec"].(map[string]any)["a"] = "2"
	if isSubset(want, have) {
		t.Error("a changed field was not noticed")
	}
}

// A keyring replaced by accepting its loss (status.keys.epoch) rolls the
// chat server pods: running servers refuse to reload a foreign keyring.
func TestDeploymentCarriesKeyringEpoch(t *testing.T) {
	cc := testCluster()
	if _, ok := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{}).Spec.Template.Annotations[AnnotationKeyringEpoch]; ok {
		t.Error("a keyring never replaced puts an epoch on the pods")
	}
	cc.Status.Keys.Epoch = 2
	if got := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{}).Spec.Template.Annotations[AnnotationKeyringEpoch]; got != "2" {
		t.Errorf("keyring-epoch = %q, want 2", got)
	}
}
