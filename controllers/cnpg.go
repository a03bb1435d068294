package controllers

import (
	"context"
	"fmt"
	"net/url"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// cnpgClusterGVK is CloudNativePG's Cluster. It is read as unstructured: the
// operator does not link CloudNativePG's API module for four fields.
var cnpgClusterGVK = schema.GroupVersionKind{Group: "postgresql.cnpg.io", Version: "v1", Kind: "Cluster"}

// cnpgHealthyPhase is CloudNativePG's status.phase of a healthy cluster
// (api/v1 PhaseHealthy), for versions without the Ready condition.
const cnpgHealthyPhase = "Cluster in healthy state"

// While a CloudNativePG Cluster is not ready the operator looks again this
// often (no watch on a kind it only reads); once ready, its Secret is read
// again at least this often.
const (
	cnpgRecheck = 15 * time.Second
	cnpgResync  = 5 * time.Minute
)

// cnpgPostgresPort is the port of CloudNativePG's Services.
const cnpgPostgresPort = 5432

// Environment variables libpq and pgx read when the connection string leaves
// the user and password out: the chat server's DSN then names no secret.
const (
	envPGUser     = "PGUSER"
	envPGPassword = "PGPASSWORD"
)

// cnpgDatabase is what the chat servers need from a CloudNativePG Cluster.
type cnpgDatabase struct {
	// DSN without credentials: the read-write Service and the application database.
	DSN string
	// Secret holding the application user's username and password.
	Secret string
}

// cnpgReady reads the CloudNativePG Cluster a ChatCluster references. It
// returns the database when the Cluster is ready and its read-write Service
// exists, or a message saying what it waits for.
func (r *ChatClusterReconciler) cnpgReady(ctx context.Context, cc *chatv1alpha1.ChatCluster) (cnpgDatabase, string, error) {
	ref := cc.Spec.Database.Postgres.CloudNativePG
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(cnpgClusterGVK)
	// Uncached: one Get per reconcile, and no informer (nor list/watch RBAC) on
	// a kind the operator only reads.
	err := r.uncached().Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: ref.ClusterName}, u)
	switch {
	case apimeta.IsNoMatchError(err):
		return cnpgDatabase{}, "the CloudNativePG Cluster CRD (postgresql.cnpg.io/v1) is not installed", nil
	case apierrors.IsNotFound(err):
		return cnpgDatabase{}, fmt.Sprintf("CloudNativePG Cluster %s/%s not found", cc.Namespace, ref.ClusterName), nil
	case err != nil:
		return cnpgDatabase{}, "", fmt.Errorf("get CloudNativePG Cluster %s: %w", ref.ClusterName, err)
	}
	if !cnpgClusterReady(u) {
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyInstances")
		return cnpgDatabase{}, fmt.Sprintf("CloudNativePG Cluster %s is not ready (phase %q, %d ready instances)", ref.ClusterName, phase, ready), nil
	}
	rw := ref.ClusterName + "-rw"
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: cc.Namespace, Name: rw}, &corev1.Service{}); err != nil {
		if apierrors.IsNotFound(err) {
			return cnpgDatabase{}, fmt.Sprintf("CloudNativePG Cluster %s is ready but its read-write Service %s does not exist", ref.ClusterName, rw), nil
		}
		return cnpgDatabase{}, "", fmt.Errorf("get Service %s: %w", rw, err)
	}
	db := cnpgAppDatabase(u)
	dsn := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s.%s.svc:%d", rw, cc.Namespace, cnpgPostgresPort), Path: "/" + db,
		// CloudNativePG serves TLS only, with its own CA: require encrypts; to
		// verify the server too, use dsnSecretRef with sslmode=verify-full and the CA.
		RawQuery: "sslmode=require"}
	return cnpgDatabase{DSN: dsn.String(), Secret: cnpgAppSecret(u)}, "", nil
}

// cnpgClusterReady: the Ready condition where CloudNativePG sets it, else the
// healthy phase; and at least one ready instance.
func cnpgClusterReady(u *unstructured.Unstructured) bool {
	if n, _, _ := unstructured.NestedInt64(u.Object, "status", "readyInstances"); n < 1 {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
	return phase == cnpgHealthyPhase
}

// cnpgBootstraps are the bootstrap methods that may name the application
// database and Secret, in CloudNativePG's order (GetApplicationSecretName).
var cnpgBootstraps = []string{"recovery", "pg_basebackup", "initdb"}

// cnpgAppSecret is the application user's Secret: the bootstrap's own, else <cluster>-app.
func cnpgAppSecret(u *unstructured.Unstructured) string {
	for _, b := range cnpgBootstraps {
		if name, _, _ := unstructured.NestedString(u.Object, "spec", "bootstrap", b, "secret", "name"); name != "" {
			return name
		}
	}
	return u.GetName() + "-app"
}

// cnpgAppDatabase is the application database: the bootstrap's, else "app"
// (CloudNativePG's default).
func cnpgAppDatabase(u *unstructured.Unstructured) string {
	for _, b := range cnpgBootstraps {
		if db, _, _ := unstructured.NestedString(u.Object, "spec", "bootstrap", b, "database"); db != "" {
			return db
		}
	}
	return "app"
}
