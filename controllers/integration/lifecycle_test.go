package integration

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

func deploymentReplicas(f *fixture, name string) int32 {
	f.t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, name)
	return ptr.Deref(dep.Spec.Replicas, -1)
}

// ownsField reports whether our field manager's managedFields mention a field path
// such as `"f:spec":{"f:replicas"`.
func ownsField(obj client.Object, field string) bool {
	for _, m := range obj.GetManagedFields() {
		if m.Manager == controllers.FieldOwner && m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), field) {
			return true
		}
	}
	return false
}

// With autoscaling on, an autoscaling/v2 HPA owns the replica count and the
// operator stops applying the Deployment's replicas.
func TestAutoscalingHandsReplicasToHPA(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 10, TargetConnectionsPerPod: ptr.To[int32](500)}
	f.create(cc)
	f.reconcile("chat")

	hpa := &autoscalingv2.HorizontalPodAutoscaler{}
	f.get(hpa, "chat")
	if *hpa.Spec.MinReplicas != 2 || hpa.Spec.MaxReplicas != 10 || hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != "chat" {
		t.Errorf("HPA spec = %+v", hpa.Spec)
	}
	if len(hpa.Spec.Metrics) != 1 || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("HPA metrics = %+v, want CPU only (no custom metrics API in envtest)", hpa.Spec.Metrics)
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if ownsField(dep, `"f:replicas"`) {
		t.Error("the operator still owns Deployment spec.replicas while autoscaling")
	}
	f.get(&policyv1.PodDisruptionBudget{}, "chat")

	// The HPA scales the Deployment through its scale subresource; the operator leaves it.
	scale := &autoscalingv1.Scale{}
	if err := k8s.SubResource("scale").Get(ctx, dep, scale); err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 7
	if err := k8s.SubResource("scale").Update(ctx, dep, client.WithSubResourceBody(scale), client.FieldOwner("horizontal-pod-autoscaler")); err != nil {
		t.Fatal(err)
	}
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v1.0.1" })
	f.reconcile("chat")
	if got := deploymentReplicas(f, "chat"); got != 7 {
		t.Errorf("Deployment replicas = %d after a reconcile, want the HPA's 7", got)
	}

	// Autoscaling off: the HPA goes, spec.replicas applies again.
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Autoscaling = nil })
	f.reconcile("chat")
	if !f.absent(&autoscalingv2.HorizontalPodAutoscaler{}, "chat") {
		t.Error("HPA still present after autoscaling was turned off")
	}
	if got := deploymentReplicas(f, "chat"); got != 3 {
		t.Errorf("Deployment replicas = %d, want spec.replicas 3", got)
	}
}

// A hand edit of an owned field is reverted; labels and annotations another
// field manager added survive.
func TestDriftIsRevertedForeignFieldsSurvive(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")

	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	dep.Spec.Template.Spec.Containers[0].Image = "evil.example.com/chatserver:latest"
	// Onto the metrics port: two ports with one number are duplicate list keys,
	// which the operator's own field extraction refuses until it repairs them.
	dep.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = controllers.MetricsPort
	if err := k8s.Update(ctx, dep, client.FieldOwner("kubectl-edit")); err != nil {
		t.Fatal(err)
	}
	// Another tool labels and annotates the Deployment and the Service.
	for _, obj := range []*unstructured.Unstructured{
		{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}},
		{Object: map[string]any{"apiVersion": "v1", "kind": "Service"}},
	} {
		obj.SetNamespace(f.ns)
		obj.SetName("chat")
		obj.SetLabels(map[string]string{"team": "chat-sre"})
		obj.SetAnnotations(map[string]string{"example.com/owner": "sre"})
		if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("other-tool")); err != nil {
			t.Fatalf("foreign apply: %v", err)
		}
	}

	f.resetWrites()
	f.reconcile("chat")
	if len(f.writesSinceReset()) == 0 {
		t.Fatal("drift was not written back")
	}
	f.get(dep, "chat")
	c := dep.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/parley-chat/chatserver:v1.0.0" || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("after reconcile image=%s port=%d, want the spec's image and 8080", c.Image, c.Ports[0].ContainerPort)
	}
	if len(c.Ports) != 2 || c.Ports[1].Name != "metrics" || c.Ports[1].ContainerPort != controllers.MetricsPort {
		t.Errorf("ports = %+v, want exactly the http and metrics ports", c.Ports)
	}
	svc := &corev1.Service{}
	f.get(svc, "chat")
	for _, obj := range []client.Object{dep, svc} {
		if obj.GetLabels()["team"] != "chat-sre" || obj.GetAnnotations()["example.com/owner"] != "sre" {
			t.Errorf("%T lost the foreign label/annotation: %v %v", obj, obj.GetLabels(), obj.GetAnnotations())
		}
		if obj.GetLabels()["app.kubernetes.io/managed-by"] != controllers.FieldOwner {
			t.Errorf("%T lost our labels: %v", obj, obj.GetLabels())
		}
	}
	// And then it is quiet again.
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("reconcile after the drift repair wrote %q", w)
	}
}

// An image change rolls with maxUnavailable 0; Progressing holds until the
// rollout completes and only then does status report the new version.
func TestUpgradeRollsWithoutCapacityLoss(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat")
	if cc := f.chat("chat"); cc.Status.Version != "v1.0.0" || cond(cc, "Ready").Status != metav1.ConditionTrue {
		t.Fatalf("before upgrade: version %q Ready %+v", cc.Status.Version, cond(cc, "Ready"))
	}
	f.drainEvents()

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v1.1.0" })
	f.reconcile("chat")
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	ru := dep.Spec.Strategy.RollingUpdate
	if dep.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge.IntValue() < 1 {
		t.Fatalf("strategy = %+v, want RollingUpdate with maxUnavailable 0", dep.Spec.Strategy)
	}
	if dep.Spec.Template.Spec.Containers[0].Image != "ghcr.io/parley-chat/chatserver:v1.1.0" {
		t.Fatalf("Deployment image not updated")
	}

	steps := []struct{ updated, available int32 }{{0, 3}, {1, 3}, {2, 3}, {3, 3}}
	for i, st := range steps {
		// The Deployment controller surges one new pod at a time.
		f.simulateRollout("chat", st.updated, st.available)
		if i < len(steps)-1 {
			// Not complete: old pods still run (Replicas > Updated).
			dep := &appsv1.Deployment{}
			f.get(dep, "chat")
			dep.Status.Replicas = 4
			if err := k8s.Status().Update(ctx, dep); err != nil {
				t.Fatal(err)
			}
		}
		f.reconcile("chat")
		cc := f.chat("chat")
		prog, ready := cond(cc, "Progressing"), cond(cc, "Ready")
		if i < len(steps)-1 {
			if prog.Status != metav1.ConditionTrue || cc.Status.Version != "v1.0.0" || ready.Status != metav1.ConditionFalse {
				t.Errorf("step %d (%d updated): Progressing %s/%s, version %q, Ready %s; want True, v1.0.0, False",
					i, st.updated, prog.Status, prog.Reason, cc.Status.Version, ready.Status)
			}
			if cond(cc, "Available").Status != metav1.ConditionTrue {
				t.Errorf("step %d: Available %+v during a rollout with full capacity", i, cond(cc, "Available"))
			}
		} else if prog.Status != metav1.ConditionFalse || cc.Status.Version != "v1.1.0" || ready.Status != metav1.ConditionTrue {
			t.Errorf("rollout complete: Progressing %s, version %q, Ready %s; want False, v1.1.0, True", prog.Status, cc.Status.Version, ready.Status)
		}
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal RolloutComplete") {
		t.Errorf("events %q, want RolloutComplete", evs)
	}
}

// Deleting a ChatCluster never waits on the operator: there is no finalizer, and
// every child carries an owner reference for the garbage collector (which
// envtest does not run).
func TestDeletionDoesNotHang(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	cc := f.chat("chat")
	if len(cc.Finalizers) != 0 {
		t.Fatalf("finalizers %v", cc.Finalizers)
	}
	start := time.Now()
	if err := k8s.Delete(ctx, cc); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the ChatCluster to disappear", func() bool { return f.absent(&chatv1alpha1.ChatCluster{}, "chat") })
	t.Logf("ChatCluster gone %s after delete", time.Since(start).Round(time.Millisecond))
	f.reconcile("chat") // a late event for a deleted object is a no-op
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if ref := metav1.GetControllerOf(dep); ref == nil || ref.UID != cc.UID {
		t.Errorf("Deployment has no owner reference to the deleted ChatCluster: %+v", ref)
	}
}

// Hibernate scales to zero and drops the HPA and PDB; pause stops all writes.
func TestHibernateAndPause(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 4}
	f.create(cc)
	f.reconcile("chat")
	f.get(&autoscalingv2.HorizontalPodAutoscaler{}, "chat")

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationHibernate: "true"}
	})
	f.reconcile("chat")
	if got := deploymentReplicas(f, "chat"); got != 0 {
		t.Errorf("hibernating Deployment has %d replicas", got)
	}
	if !f.absent(&autoscalingv2.HorizontalPodAutoscaler{}, "chat") || !f.absent(&policyv1.PodDisruptionBudget{}, "chat") {
		t.Error("HPA or PDB left while hibernating")
	}
	f.simulateRollout("chat", 0, 0)
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Ready"); c.Reason != "Hibernating" {
		t.Errorf("Ready while hibernating = %+v", c)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationPaused: "true"}
		cc.Spec.Image = "ghcr.io/parley-chat/chatserver:v9"
	})
	// The first paused reconcile reports the pause in status (Paused=True);
	// after that a paused reconcile writes nothing at all.
	f.reconcile("chat")
	if c := cond(f.chat("chat"), "Paused"); c.Status != metav1.ConditionTrue {
		t.Errorf("Paused = %+v, want True", c)
	}
	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Errorf("paused reconcile wrote %q", w)
	}
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if dep.Spec.Template.Spec.Containers[0].Image == "ghcr.io/parley-chat/chatserver:v9" {
		t.Error("a paused ChatCluster was reconciled")
	}
}

// Objects the spec no longer wants are removed: the Ingress when spec.ingress
// goes, the managed Redis when the cluster moves to an external one.
func TestSpecChangesPruneChildren(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.drainEvents()

	f.createSecret("redis-auth", map[string]string{"password": "pw"})
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Ingress = nil
		cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{Address: "redis.example.com:6379"}}
	})
	f.reconcile("chat")
	for _, o := range []struct {
		obj  client.Object
		name string
	}{
		{&networkingv1.Ingress{}, "chat"}, {&appsv1.StatefulSet{}, "chat-redis"},
		{&corev1.Service{}, "chat-redis"}, {&networkingv1.NetworkPolicy{}, "chat-redis"},
	} {
		if !f.absent(o.obj, o.name) {
			t.Errorf("%T %s still present", o.obj, o.name)
		}
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal Deleted deleted Ingress chat") {
		t.Errorf("events %q, want a Deleted event naming the Ingress", evs)
	}
	cc := f.chat("chat")
	if cc.Status.Endpoint != "http://chat."+f.ns+".svc:80" {
		t.Errorf("endpoint %q after removing the Ingress", cc.Status.Endpoint)
	}
	if c := cond(cc, "RedisReady"); c.Reason != "External" {
		t.Errorf("RedisReady = %+v", c)
	}
}

// A Deployment that stopped progressing makes the ChatCluster Degraded, with the
// Deployment's reason and a Warning Event.
func TestStalledRolloutIsDegraded(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.drainEvents()
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation, Replicas: 4, UpdatedReplicas: 1, ReadyReplicas: 3, AvailableReplicas: 3,
		Conditions: []appsv1.DeploymentCondition{{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded",
			Message: `ReplicaSet "chat-7d9f" has timed out progressing.`,
		}},
	}
	if err := k8s.Status().Update(ctx, dep); err != nil {
		t.Fatal(err)
	}
	f.reconcile("chat")
	cc := f.chat("chat")
	if c := cond(cc, "Degraded"); c.Status != metav1.ConditionTrue || c.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("Degraded = %+v", c)
	}
	if c := cond(cc, "Progressing"); c.Status != metav1.ConditionTrue {
		t.Errorf("Progressing = %+v", c)
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Warning Degraded ProgressDeadlineExceeded") {
		t.Errorf("events %q", evs)
	}
}
