package integration

import (
	"context"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

var ctx = context.Background()

// sample is a production-shaped ChatCluster: PostgreSQL, managed Redis, three replicas.
func sample(ns, name string) *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: chatv1alpha1.ChatClusterSpec{
			Image:    "ghcr.io/parley-chat/chatserver:v1.0.0",
			Replicas: ptr.To[int32](3),
			Redis:    &chatv1alpha1.RedisSpec{Managed: &chatv1alpha1.ManagedRedisSpec{}},
			Database: chatv1alpha1.DatabaseSpec{Postgres: &chatv1alpha1.PostgresSpec{
				DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-db"}, Key: "dsn"},
			}},
			Security: chatv1alpha1.SecuritySpec{AllowedOrigins: []string{"https://chat.example.com"}},
			Ingress:  &chatv1alpha1.IngressSpec{Host: "chat.example.com", TLSSecretName: "chat-tls"},
		},
	}
}

func (f *fixture) createSecret(name string, data map[string]string) *corev1.Secret {
	f.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, StringData: data}
	if err := k8s.Create(ctx, s); err != nil {
		f.t.Fatalf("create Secret %s: %v", name, err)
	}
	return s
}

// create stores a ChatCluster (and its DSN Secret when it uses PostgreSQL).
func (f *fixture) create(cc *chatv1alpha1.ChatCluster) *chatv1alpha1.ChatCluster {
	f.t.Helper()
	if pg := cc.Spec.Database.Postgres; pg != nil && pg.DSNSecretRef.Name != "" {
		f.createSecret(pg.DSNSecretRef.Name, map[string]string{pg.DSNSecretRef.Key: "postgres://parley:pw@db:5432/parley"})
	}
	if err := k8s.Create(ctx, cc); err != nil {
		f.t.Fatalf("create ChatCluster: %v", err)
	}
	return cc
}

func reqFor(f *fixture, name string) ctrl.Request {
	return ctrl.Request{NamespacedName: client.ObjectKey{Namespace: f.ns, Name: name}}
}

func (f *fixture) reconcile(name string) ctrl.Result {
	f.t.Helper()
	res, err := f.r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Namespace: f.ns, Name: name}})
	if err != nil {
		f.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (f *fixture) get(obj client.Object, name string) {
	f.t.Helper()
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, obj); err != nil {
		f.t.Fatalf("get %T %s: %v", obj, name, err)
	}
}

func (f *fixture) absent(obj client.Object, name string) bool {
	f.t.Helper()
	err := k8s.Get(ctx, client.ObjectKey{Namespace: f.ns, Name: name}, obj)
	if err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatalf("get %T %s: %v", obj, name, err)
	}
	return apierrors.IsNotFound(err)
}

func (f *fixture) chat(name string) *chatv1alpha1.ChatCluster {
	f.t.Helper()
	cc := &chatv1alpha1.ChatCluster{}
	f.get(cc, name)
	return cc
}

// update applies a change to the stored ChatCluster, retrying on conflicts.
func (f *fixture) update(name string, mutate func(cc *chatv1alpha1.ChatCluster)) *chatv1alpha1.ChatCluster {
	f.t.Helper()
	for i := 0; ; i++ {
		cc := f.chat(name)
		mutate(cc)
		err := k8s.Update(ctx, cc)
		if err == nil {
			return cc
		}
		if !apierrors.IsConflict(err) || i > 5 {
			f.t.Fatalf("update ChatCluster %s: %v", name, err)
		}
	}
}

func cond(cc *chatv1alpha1.ChatCluster, t string) metav1.Condition {
	c := apimeta.FindStatusCondition(cc.Status.Conditions, t)
	if c == nil {
		return metav1.Condition{Type: t, Status: "<missing>"}
	}
	return *c
}

// simulateRollout plays the Deployment controller: the current spec is fully
// rolled out with `available` pods available (and `updated` up to date).
func (f *fixture) simulateRollout(name string, updated, available int32) {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	replicas := ptr.Deref(dep.Spec.Replicas, 1)
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation,
		Replicas:           max(replicas, updated),
		UpdatedReplicas:    updated,
		ReadyReplicas:      available,
		AvailableReplicas:  available,
	}
	if err := k8s.Status().Update(ctx, dep); err != nil {
		f.t.Fatalf("set Deployment status: %v", err)
	}
}

// simulateRedisReady plays the StatefulSet controller for the managed Redis.
func (f *fixture) simulateRedisReady(name string) {
	f.t.Helper()
	sts := &appsv1.StatefulSet{}
	f.get(sts, name+"-redis")
	sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 1, ReadyReplicas: 1, AvailableReplicas: 1, CurrentReplicas: 1, UpdatedReplicas: 1}
	if err := k8s.Status().Update(ctx, sts); err != nil {
		f.t.Fatalf("set StatefulSet status: %v", err)
	}
}

// keyring reads and parses the keyring Secret with the loader's parser.
func (f *fixture) keyring(cc *chatv1alpha1.ChatCluster) (*keyringfile.File, *corev1.Secret) {
	f.t.Helper()
	sec := &corev1.Secret{}
	f.get(sec, controllers.KeysSecretName(cc))
	kr, err := keyringfile.Parse(sec.Data[keyringfile.FileName])
	if err != nil {
		f.t.Fatalf("the chat server's parser refuses the keyring Secret: %v", err)
	}
	return kr, sec
}

// ownedByOperator reports whether our field manager applied the object.
func ownedByOperator(obj client.Object) bool {
	return slices.ContainsFunc(obj.GetManagedFields(), func(m metav1.ManagedFieldsEntry) bool {
		return m.Manager == controllers.FieldOwner && m.Operation == metav1.ManagedFieldsOperationApply
	})
}

func eventually(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func ctrlObjectMeta(ns, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: ns, Name: name}
}
