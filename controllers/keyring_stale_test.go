package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
)

// A keyring Secret deleted while the cache has not yet seen the status that
// recorded it: the reconcile's ChatCluster looks new, but the API server says
// a keyring was recorded, so the operator reports it missing and generates
// nothing. (Fakes stand for the lagging cache and the API server: the stale
// read cannot be produced on purpose against a real one.)
func TestMissingKeyringIsCheckedAgainstTheAPIServer(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := chatv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	recorded := testCluster()
	recorded.Status.Keys = chatv1alpha1.KeysStatus{ActiveDataKeyID: "d_1"}
	api := fake.NewClientBuilder().WithScheme(scheme).WithObjects(recorded).WithStatusSubresource(recorded).Build()
	cached := fake.NewClientBuilder().WithScheme(scheme).WithObjects(testCluster()).Build()
	r := &ChatClusterReconciler{Client: cached, APIReader: api, Recorder: events.NewFakeRecorder(10), Clock: clock.RealClock{}}

	cc := testCluster() // as the lagging cache has it: nothing recorded
	if _, err := r.reconcileKeys(t.Context(), cc, Settings{}, time.Now(), applier{c: cached}); err != nil {
		t.Fatalf("reconcileKeys: %v", err)
	}
	c := apimeta.FindStatusCondition(cc.Status.Conditions, chatv1alpha1.ConditionKeysReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != string(ReasonKeyringMissing) {
		t.Errorf("KeysReady = %+v, want False/KeyringMissing", c)
	}
	err := cached.Get(t.Context(), client.ObjectKey{Namespace: cc.Namespace, Name: keysSecretName(cc)}, &corev1.Secret{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("a keyring Secret was written over the recorded one (get: %v)", err)
	}
}
