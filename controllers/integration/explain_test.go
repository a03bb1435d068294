package integration

import (
	"io"
	"strings"
	"testing"
)

// `kubectl explain chatcluster.spec.attachments` shows the Go doc comments of
// the API types: what each store is and the rules a person must know.
func TestExplainAttachments(t *testing.T) {
	explain := func(field string) string {
		t.Helper()
		stdout, stderr, err := testEnv.ControlPlane.KubeCtl().Run("explain", field)
		out, _ := io.ReadAll(stdout)
		if err != nil {
			e, _ := io.ReadAll(stderr)
			t.Fatalf("kubectl explain %s: %v\n%s", field, err, e)
		}
		return strings.Join(strings.Fields(string(out)), " ")
	}
	for field, wants := range map[string][]string{
		"chatcluster.spec.attachments": {
			"Attachments says where uploaded files", "volume", "s3", "maxAttachmentMiB", "quotaMiB",
			"from 1 to 10240. Default 100.", "AttachmentsReady condition reports",
		},
		"chatcluster.spec.attachments.volume":               {"With more than one replica it must be ReadWriteMany", "claimName", "accessModes"},
		"chatcluster.spec.attachments.s3":                   {"credentialsSecret", "caSecret", "insecure", "pathStyle", "The bucket must exist"},
		"chatcluster.spec.attachments.s3.credentialsSecret": {"secretKeyRef", "never copied into the Deployment", "IAM role"},
		"chatcluster.spec.paused":                           {"Paused stops reconciliation", "Paused condition", "chat.parley.dev/paused annotation"},
		"chatcluster.spec.monitoring.prometheusRule":        {"PrometheusRule", "docs/runbooks", "chatcluster label"},
		"chatcluster.spec.database.postgres.cloudNativePG":  {"postgresql.cnpg.io/v1", "waits for it to be ready", "<cluster>-rw", "<cluster>-app", "clusterName"},
		"chatcluster.status.pendingImage":                   {"new default image", "one at a time"},
	} {
		got := explain(field)
		for _, w := range wants {
			if !strings.Contains(got, w) {
				t.Errorf("kubectl explain %s does not say %q:\n%s", field, w, got)
			}
		}
	}
}
