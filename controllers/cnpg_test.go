package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func cnpgCluster(spec, status map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec, "status": status}}
	u.SetName("pg")
	return u
}

func TestCNPGClusterReady(t *testing.T) {
	cond := func(s string) []any { return []any{map[string]any{"type": "Ready", "status": s}} }
	for _, tc := range []struct {
		name   string
		status map[string]any
		want   bool
	}{
		{"no status", nil, false},
		{"Ready condition True", map[string]any{"readyInstances": int64(3), "conditions": cond("True")}, true},
		// The condition wins over the phase where CloudNativePG sets it.
		{"Ready condition False, healthy phase", map[string]any{"readyInstances": int64(3), "conditions": cond("False"), "phase": cnpgHealthyPhase}, false},
		{"older version: healthy phase, no condition", map[string]any{"readyInstances": int64(1), "phase": cnpgHealthyPhase}, true},
		{"older version: another phase", map[string]any{"readyInstances": int64(1), "phase": "Failing over"}, false},
		{"no ready instance", map[string]any{"readyInstances": int64(0), "conditions": cond("True")}, false},
	} {
		if got := cnpgClusterReady(cnpgCluster(nil, tc.status)); got != tc.want {
			t.Errorf("%s: ready = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCNPGApplicationSecretAndDatabase(t *testing.T) {
	for _, tc := range []struct {
		name             string
		spec             map[string]any
		secret, database string
	}{
		{"defaults", map[string]any{}, "pg-app", "app"},
		{"initdb", map[string]any{"bootstrap": map[string]any{"initdb": map[string]any{"database": "chat"}}}, "pg-app", "chat"},
		{"initdb with its own secret", map[string]any{"bootstrap": map[string]any{"initdb": map[string]any{"database": "chat", "secret": map[string]any{"name": "creds"}}}}, "creds", "chat"},
		{"recovery", map[string]any{"bootstrap": map[string]any{"recovery": map[string]any{"database": "r", "secret": map[string]any{"name": "rs"}}}}, "rs", "r"},
		{"pg_basebackup", map[string]any{"bootstrap": map[string]any{"pg_basebackup": map[string]any{"database": "b"}}}, "pg-app", "b"},
	} {
		u := cnpgCluster(tc.spec, nil)
		if got := cnpgAppSecret(u); got != tc.secret {
			t.Errorf("%s: secret %q, want %q", tc.name, got, tc.secret)
		}
		if got := cnpgAppDatabase(u); got != tc.database {
			t.Errorf("%s: database %q, want %q", tc.name, got, tc.database)
		}
	}
}
