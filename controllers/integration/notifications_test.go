package integration

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/settings"
)

// spec.notifications: the API server refuses what the chat server would
// refuse, fills the defaults, and the ConfigMap carries what was asked.
func TestNotificationsSpec(t *testing.T) {
	f := newFixture(t)
	d := func(x time.Duration) *metav1.Duration { return &metav1.Duration{Duration: x} }
	for _, tc := range []struct {
		name string
		n    chatv1alpha1.NotificationsSpec
		want string
	}{
		{"grace too short", chatv1alpha1.NotificationsSpec{Grace: d(50 * time.Millisecond)}, "notifications.grace must be between 100ms and 10m"},
		{"grace too long", chatv1alpha1.NotificationsSpec{Grace: d(time.Hour)}, "notifications.grace must be between 100ms and 10m"},
		{"ttl too long", chatv1alpha1.NotificationsSpec{TTL: d(700 * time.Hour)}, "notifications.ttl must be between 1m and 672h"},
		{"contact without mailto:", chatv1alpha1.NotificationsSpec{Contact: "ops@example.com"}, "spec.notifications.contact"},
		{"contact over plain http", chatv1alpha1.NotificationsSpec{Contact: "http://example.com"}, "spec.notifications.contact"},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			cc := sample(f.ns, "bad")
			cc.Spec.Notifications = &tc.n
			err := k8s.Create(ctx, cc)
			if err == nil {
				_ = k8s.Delete(ctx, cc)
				t.Fatal("the API server accepted the spec")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}

	cc := sample(f.ns, "push")
	cc.Spec.Notifications = &chatv1alpha1.NotificationsSpec{Contact: "mailto:ops@example.com"}
	f.create(cc)
	if got := f.chat("push").Spec.Notifications; got.Grace == nil || got.Grace.Duration != settings.PushGrace.Def ||
		got.TTL == nil || got.TTL.Duration != settings.PushTTL.Def {
		t.Fatalf("defaults not filled in by the API server: %+v", got)
	}
	f.reconcile("push")
	cm := &corev1.ConfigMap{}
	f.get(cm, "push-config")
	for k, want := range map[string]string{settings.PushContact.Env: "mailto:ops@example.com",
		settings.PushGrace.Env: settings.PushGrace.Def.String(), settings.PushTTL.Env: settings.PushTTL.Def.String()} {
		if cm.Data[k] != want {
			t.Errorf("ConfigMap %s = %q, want %q", k, cm.Data[k], want)
		}
	}
}
