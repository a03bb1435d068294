package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// The API server itself refuses bad specs, with messages a person understands.
func TestValidationRejectsBadSpecs(t *testing.T) {
	f := newFixture(t)
	dur := func(s string) *metav1.Duration {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return &metav1.Duration{Duration: d}
	}
	cases := []struct {
		name   string
		mutate func(cc *chatv1alpha1.ChatCluster)
		want   string
	}{
		{"autoscaling min > max", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 5, MaxReplicas: 3}
		}, "spec.autoscaling.minReplicas must be less than or equal to spec.autoscaling.maxReplicas"},
		{"managed and external redis", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Redis.External = &chatv1alpha1.ExternalRedisSpec{Address: "redis.example.com:6379"}
		}, "set exactly one of spec.redis.managed and spec.redis.external: they are mutually exclusive"},
		{"sqlite with 3 replicas", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
		}, "SQLite supports a single replica only"},
		{"sqlite with autoscaling", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Replicas = ptr.To[int32](1)
			cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
			cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 1, MaxReplicas: 3}
		}, "SQLite supports a single replica only"},
		{"rotation interval shorter than window", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Security.KeyRotation = chatv1alpha1.KeyRotationSpec{JWTKeyInterval: dur("10m"), PropagationWindow: dur("30m")}
		}, "keyRotation.jwtKeyInterval must be longer than keyRotation.propagationWindow"},
		{"no database", func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Database = chatv1alpha1.DatabaseSpec{}
		}, "set exactly one of spec.database.postgres and spec.database.sqlite"},
		{"replicas without redis", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Redis = nil }, "more than one replica needs spec.redis"},
		{"bad rate limit", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.RateLimits.Login = "ten per minute" }, "spec.rateLimits.login"},
		{"unknown key retention policy", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Security.KeyRetentionPolicy = "Keep" },
			`spec.security.keyRetentionPolicy: Unsupported value: "Keep"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := sample(f.ns, "bad")
			tc.mutate(cc)
			err := k8s.Create(ctx, cc)
			if err == nil {
				_ = k8s.Delete(ctx, cc)
				t.Fatalf("the API server accepted the spec")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}

	t.Run("database engine is immutable", func(t *testing.T) {
		cc := sample(f.ns, "lite")
		cc.Spec.Replicas = ptr.To[int32](1)
		cc.Spec.Redis = nil
		cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
		if err := k8s.Create(ctx, cc); err != nil {
			t.Fatalf("a valid SQLite ChatCluster was refused: %v", err)
		}
		cc.Spec.Database = chatv1alpha1.DatabaseSpec{Postgres: &chatv1alpha1.PostgresSpec{
			DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "dsn"},
		}}
		err := k8s.Update(ctx, cc)
		if err == nil || !strings.Contains(err.Error(), "spec.database engine is immutable") {
			t.Fatalf("engine change: error %v, want the immutability message", err)
		}
	})
}

// kubectl scale goes through the scale subresource: it sets spec.replicas, and
// the scale status carries the pod selector.
func TestScaleSubresource(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")

	cc := f.chat("chat")
	scale := &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, cc, scale); err != nil {
		t.Fatalf("get /scale: %v", err)
	}
	if scale.Spec.Replicas != 3 || scale.Status.Selector == "" {
		t.Fatalf("scale = %+v, want 3 replicas and a selector", scale)
	}
	if !strings.Contains(scale.Status.Selector, "app.kubernetes.io/instance=chat") {
		t.Errorf("scale selector %q does not select the chat servers", scale.Status.Selector)
	}
	scale.Spec.Replicas = 5
	if err := k8s.SubResource("scale").Update(ctx, cc, client.WithSubResourceBody(scale)); err != nil {
		t.Fatalf("update /scale: %v", err)
	}
	cc = f.chat("chat")
	if ptr.Deref(cc.Spec.Replicas, 0) != 5 {
		t.Fatalf("spec.replicas = %v after scaling to 5", cc.Spec.Replicas)
	}
	f.reconcile("chat")
	if got := deploymentReplicas(f, "chat"); got != 5 {
		t.Errorf("Deployment replicas = %d after scaling the ChatCluster to 5", got)
	}
	// What `kubectl scale chatcluster chat --replicas=2` sends: a merge patch of /scale.
	if err := k8s.SubResource("scale").Patch(ctx, cc, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"replicas":2}}`))); err != nil {
		t.Fatalf("patch /scale: %v", err)
	}
	if got := ptr.Deref(f.chat("chat").Spec.Replicas, 0); got != 2 {
		t.Fatalf("spec.replicas = %d after patching /scale to 2", got)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal Scaled") {
		t.Errorf("events %q, want a Scaled event", evs)
	}
}

// The commented sample in config/samples is accepted as is, and the API server
// fills in the defaults the documentation promises.
func TestSampleIsAcceptedWithDefaults(t *testing.T) {
	f := newFixture(t)
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "chat_v1alpha1_chatcluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cc := &chatv1alpha1.ChatCluster{}
	if err := yaml.UnmarshalStrict(raw, cc); err != nil {
		t.Fatalf("sample does not decode into the API types: %v", err)
	}
	cc.Namespace = f.ns
	if err := k8s.Create(ctx, cc); err != nil {
		t.Fatalf("the API server refuses the sample: %v", err)
	}

	minimal := &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "minimal"},
		Spec:       chatv1alpha1.ChatClusterSpec{Database: chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}},
	}
	if err := k8s.Create(ctx, minimal); err != nil {
		t.Fatalf("minimal SQLite ChatCluster refused: %v", err)
	}
	got := f.chat("minimal")
	s := got.Spec
	if ptr.Deref(s.Replicas, 0) != 1 || s.Security.AccessTokenTTL == nil || s.Security.AccessTokenTTL.Duration != 15*time.Minute ||
		s.Security.KeyRotation.PropagationWindow == nil || s.RateLimits.Messages != "60/1m" || s.Server.MaxMessageChars != 4000 ||
		s.Database.SQLite.Size == nil || s.Database.SQLite.Size.String() != "1Gi" || s.Monitoring.Interval != "30s" {
		t.Errorf("defaults not applied: %+v", s)
	}
}
