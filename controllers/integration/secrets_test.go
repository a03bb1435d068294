package integration

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

func podTemplateHash(f *fixture, name string) string {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	return dep.Spec.Template.Annotations[controllers.AnnotationConfigHash]
}

func (f *fixture) setSecret(name, key, value string) {
	f.t.Helper()
	sec := &corev1.Secret{}
	f.get(sec, name)
	sec.Data[key] = []byte(value)
	if err := k8s.Update(ctx, sec); err != nil {
		f.t.Fatal(err)
	}
}

// Changing a referenced Secret (the DSN, the external Redis password) changes the
// pod template hash, which rolls the pods. (The watch path that triggers the
// reconcile is covered by TestManagerWatchesSecretsAndEmitsEvents.)
func TestReferencedSecretChangeRollsPods(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{
		Address: "redis.example.com:6380", TLS: true,
		PasswordSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "redis-auth"}, Key: "password"},
	}}
	f.createSecret("redis-auth", map[string]string{"password": "s3cret"})
	f.create(cc)
	f.reconcile("chat")
	h1 := podTemplateHash(f, "chat")

	cm := &corev1.ConfigMap{}
	f.get(cm, "chat-config")
	if cm.Data["PARLEY_REDIS_URL"] != "rediss://redis.example.com:6380/0" {
		t.Errorf("PARLEY_REDIS_URL = %q", cm.Data["PARLEY_REDIS_URL"])
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	found := false
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "PARLEY_REDIS_PASSWORD" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef.Name == "redis-auth" {
			found = true
		}
		if strings.Contains(e.Value, "s3cret") {
			t.Error("the Redis password is copied into the pod spec")
		}
	}
	if !found {
		t.Error("PARLEY_REDIS_PASSWORD does not reference the Secret")
	}
	if !f.absent(&appsv1.StatefulSet{}, "chat-redis") {
		t.Error("managed Redis exists with external Redis configured")
	}

	f.setSecret("chat-db", "dsn", "postgres://parley:rotated@db:5432/parley")
	f.reconcile("chat")
	h2 := podTemplateHash(f, "chat")
	if h2 == h1 {
		t.Fatal("pod template hash unchanged after the DSN Secret changed")
	}
	f.setSecret("redis-auth", "password", "n3w")
	f.reconcile("chat")
	if h3 := podTemplateHash(f, "chat"); h3 == h2 {
		t.Fatal("pod template hash unchanged after the Redis password changed")
	}
	// Unrelated Secret data does not roll pods.
	f.createSecret("unrelated", map[string]string{"x": "y"})
	before := podTemplateHash(f, "chat")
	f.reconcile("chat")
	if podTemplateHash(f, "chat") != before {
		t.Error("hash changed without a referenced change")
	}
}

// A missing Secret gives Ready=False/SecretNotFound, a Warning Event and a
// growing requeue delay rather than a hot loop; creating it recovers.
func TestMissingSecretBacksOff(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	if err := k8s.Create(ctx, cc); err != nil { // no DSN Secret
		t.Fatal(err)
	}
	res := f.reconcile("chat")
	got := f.chat("chat")
	if c := cond(got, "Ready"); c.Status != metav1.ConditionFalse || c.Reason != "SecretNotFound" || !strings.Contains(c.Message, "chat-db") {
		t.Fatalf("Ready = %+v, want False/SecretNotFound naming chat-db", c)
	}
	if c := cond(got, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "SecretNotFound" {
		t.Errorf("Degraded = %+v", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning SecretNotFound") {
		t.Errorf("events %q, want a Warning SecretNotFound", evs)
	}
	if res.RequeueAfter < 5*time.Second {
		t.Errorf("first requeue after %s, want at least 5s", res.RequeueAfter)
	}
	f.clock.Step(time.Minute)
	res2 := f.reconcile("chat")
	if res2.RequeueAfter <= res.RequeueAfter {
		t.Errorf("requeue did not back off: %s then %s", res.RequeueAfter, res2.RequeueAfter)
	}
	f.clock.Step(time.Hour)
	if res3 := f.reconcile("chat"); res3.RequeueAfter > 5*time.Minute {
		t.Errorf("requeue %s exceeds the 5m cap", res3.RequeueAfter)
	}
	if !f.absent(&appsv1.Deployment{}, "chat") {
		t.Error("Deployment created although its DSN Secret is missing")
	}

	f.createSecret("chat-db", map[string]string{"dsn": "postgres://x@db/parley"})
	f.reconcile("chat")
	got = f.chat("chat")
	if c := cond(got, "Ready"); c.Reason == "SecretNotFound" {
		t.Errorf("Ready still SecretNotFound after the Secret appeared: %+v", c)
	}
	if c := cond(got, "Degraded"); c.Status != metav1.ConditionFalse {
		t.Errorf("Degraded = %+v after recovery", c)
	}
	f.get(&appsv1.Deployment{}, "chat")
}

// A keyring the servers would refuse is never overwritten (new keys would sign
// everyone out and strand stored data): KeysReady=False, Degraded, a Warning.
func TestInvalidKeyringIsLeftAloneAndReported(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.drainEvents()

	sec := &corev1.Secret{}
	f.get(sec, "chat-keys")
	sec.Data["keyring.json"] = []byte(`{"version": 1, "jwt": [], "data": []}`)
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	cc := f.chat("chat")
	if c := cond(cc, "KeysReady"); c.Status != metav1.ConditionFalse || c.Reason != "InvalidKeyring" {
		t.Errorf("KeysReady = %+v, want False/InvalidKeyring", c)
	}
	if c := cond(cc, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "InvalidKeyring" {
		t.Errorf("Degraded = %+v", c)
	}
	if c := cond(cc, "Ready"); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning InvalidKeyring") {
		t.Errorf("events %q, want Warning InvalidKeyring", evs)
	}
	f.get(sec, "chat-keys")
	if string(sec.Data["keyring.json"]) != `{"version": 1, "jwt": [], "data": []}` {
		t.Error("the operator overwrote the invalid keyring")
	}
}
