package integration

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

// A sample ChatCluster yields every owned object, each with a controller owner
// reference and applied by our field manager.
func TestChildrenOwnershipAndManagedFields(t *testing.T) {
	f := newFixture(t)
	cc := f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	cc = f.chat("chat")

	children := map[string]client.Object{
		"chat":        &appsv1.Deployment{},
		"chat-redis":  &appsv1.StatefulSet{},
		"chat-config": &corev1.ConfigMap{},
		// The keyring Secret is retained by default: TestKeysSecretRetention.
		"chat-redis-auth": &corev1.Secret{},
	}
	others := []struct {
		name string
		obj  client.Object
	}{
		{"chat", &corev1.Service{}}, {"chat-redis", &corev1.Service{}}, {"chat-metrics", &corev1.Service{}},
		{"chat", &corev1.ServiceAccount{}}, {"chat", &networkingv1.Ingress{}},
		{"chat-redis", &networkingv1.NetworkPolicy{}}, {"chat", &policyv1.PodDisruptionBudget{}},
	}
	for name, obj := range children {
		others = append(others, struct {
			name string
			obj  client.Object
		}{name, obj})
	}
	for _, o := range others {
		f.get(o.obj, o.name)
		what := fmt.Sprintf("%T %s", o.obj, o.name)
		ref := metav1.GetControllerOf(o.obj)
		// Not blockOwnerDeletion: that would need update on chatclusters/finalizers,
		// which the operator's RBAC leaves out (it sets no finalizer).
		if ref == nil || ref.UID != cc.UID || ref.Kind != "ChatCluster" || ptr.Deref(ref.BlockOwnerDeletion, false) {
			t.Errorf("%s: controller owner reference = %+v, want the ChatCluster (uid %s), not blocking its deletion", what, ref, cc.UID)
		}
		if !ownedByOperator(o.obj) {
			t.Errorf("%s: no managedFields entry for manager %q with operation Apply: %+v", what, controllers.FieldOwner, o.obj.GetManagedFields())
		}
	}
	if !f.absent(&autoscalingv2.HorizontalPodAutoscaler{}, "chat") {
		t.Error("HPA exists although autoscaling is off")
	}

	// The Deployment runs the chat server contract.
	dep := children["chat"].(*appsv1.Deployment)
	if got := ptr.Deref(dep.Spec.Replicas, -1); got != 3 {
		t.Errorf("replicas = %d, want 3", got)
	}
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != "ghcr.io/parley-chat/chatserver:v1.0.0" || !slices.Equal(c.Command, []string{"/chatserver"}) {
		t.Errorf("image/command = %s %v", c.Image, c.Command)
	}
	if len(c.Ports) != 2 || c.Ports[0].Name != "http" || c.Ports[0].ContainerPort != 8080 || c.Ports[1].Name != "metrics" || c.Ports[1].ContainerPort != 9090 {
		t.Errorf("ports = %+v, want http 8080 and metrics 9090", c.Ports)
	}
	if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("probes = %s %s", c.LivenessProbe.HTTPGet.Path, c.ReadinessProbe.HTTPGet.Path)
	}
	sc := c.SecurityContext
	if !*sc.ReadOnlyRootFilesystem || *sc.AllowPrivilegeEscalation || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		*pod.SecurityContext.RunAsUser != 65532 || !*pod.SecurityContext.RunAsNonRoot || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("security context not restricted: pod %+v container %+v", pod.SecurityContext, sc)
	}
	if *pod.TerminationGracePeriodSeconds <= 25 || c.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("grace %d s / preStop %+v: must drain longer than the 25s shutdown timeout", *pod.TerminationGracePeriodSeconds, c.Lifecycle.PreStop)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if ref := env["PARLEY_DATABASE_URL"].ValueFrom; ref == nil || ref.SecretKeyRef.Name != "chat-db" || ref.SecretKeyRef.Key != "dsn" {
		t.Errorf("PARLEY_DATABASE_URL = %+v, want secretKeyRef chat-db/dsn", env["PARLEY_DATABASE_URL"])
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	if m, ok := mounts["/etc/parley/keys"]; !ok || !m.ReadOnly {
		t.Errorf("keyring not mounted read-only at /etc/parley/keys: %+v", c.VolumeMounts)
	}
	if _, ok := mounts["/tmp"]; !ok {
		t.Error("no writable /tmp")
	}
	if dep.Spec.Template.Annotations[controllers.AnnotationConfigHash] == "" {
		t.Error("pod template has no config hash annotation")
	}
	cm := children["chat-config"].(*corev1.ConfigMap)
	for k, want := range map[string]string{
		"PARLEY_ADDR":             ":8080",
		"PARLEY_REDIS_URL":        "redis://chat-redis:6379/0",
		"PARLEY_KEYRING_DIR":      "/etc/parley/keys",
		"PARLEY_ALLOWED_ORIGINS":  "https://chat.example.com",
		"PARLEY_ACCESS_TOKEN_TTL": "15m0s",
		"PARLEY_RATE_LOGIN":       "10/5m",
	} {
		if cm.Data[k] != want {
			t.Errorf("ConfigMap %s = %q, want %q", k, cm.Data[k], want)
		}
	}
	kr, _ := f.keyring(cc)
	if len(kr.JWT) != 1 || len(kr.Data) != 1 {
		t.Errorf("new keyring has %d jwt and %d data keys, want 1 and 1", len(kr.JWT), len(kr.Data))
	}
	if cc.Status.Endpoint != "https://chat.example.com" || cc.Status.Selector == "" {
		t.Errorf("endpoint %q selector %q", cc.Status.Endpoint, cc.Status.Selector)
	}
	if cc.Status.Keys.ActiveJWTKeyID != kr.JWT[0].ID {
		t.Errorf("status active JWT key %q, keyring has %q", cc.Status.Keys.ActiveJWTKeyID, kr.JWT[0].ID)
	}
	// Status names keys, never their material.
	status, err := json.Marshal(cc.Status)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range [][]byte{kr.JWT[0].PrivateKey, kr.Data[0].Key} {
		if strings.Contains(string(status), base64.StdEncoding.EncodeToString(m)) {
			t.Error("status contains key material")
		}
	}
	if evs := f.drainEvents(); !hasEvent(evs, "Normal Created") || !hasEvent(evs, "Normal KeysCreated") {
		t.Errorf("events %q, want Created and KeysCreated", evs)
	}
}

// Conditions exist from the first reconcile, always carry a reason and the
// current generation; Ready waits for the (simulated) rollout.
func TestConditionsTrackGenerationAndReadiness(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")

	check := func(step string) *chatv1alpha1.ChatCluster {
		t.Helper()
		cc := f.chat("chat")
		if cc.Status.ObservedGeneration != cc.Generation {
			t.Errorf("%s: status.observedGeneration %d, generation %d", step, cc.Status.ObservedGeneration, cc.Generation)
		}
		for _, typ := range []string{"Ready", "Available", "Progressing", "Degraded", "KeysReady", "RedisReady", "ServiceMonitorReady"} {
			c := cond(cc, typ)
			if c.Status == "<missing>" || c.Reason == "" {
				t.Errorf("%s: condition %s = %+v, want present with a reason", step, typ, c)
			}
			if c.ObservedGeneration != cc.Generation {
				t.Errorf("%s: condition %s observedGeneration %d, want %d", step, typ, c.ObservedGeneration, cc.Generation)
			}
		}
		return cc
	}
	cc := check("first reconcile")
	if c := cond(cc, "Ready"); c.Status != metav1.ConditionFalse || c.Reason != "RollingOut" {
		t.Errorf("Ready before any pod = %s/%s, want False/RollingOut", c.Status, c.Reason)
	}

	f.update("chat", func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Replicas = ptr.To[int32](2) })
	f.reconcile("chat")
	cc = check("after an edit")
	if cc.Generation < 2 {
		t.Fatalf("generation %d after an edit", cc.Generation)
	}

	// Pods exist but are not all available: still not Ready.
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 2, 1)
	f.reconcile("chat")
	cc = check("partially available")
	if c := cond(cc, "Ready"); c.Status != metav1.ConditionFalse {
		t.Errorf("Ready with 1 of 2 available = %s/%s, want False", c.Status, c.Reason)
	}

	f.simulateRollout("chat", 2, 2)
	f.reconcile("chat")
	cc = check("rolled out")
	for typ, want := range map[string]metav1.ConditionStatus{"Ready": "True", "Available": "True", "Progressing": "False", "Degraded": "False", "KeysReady": "True", "RedisReady": "True"} {
		if c := cond(cc, typ); c.Status != want {
			t.Errorf("after rollout %s = %s/%s (%s), want %s", typ, c.Status, c.Reason, c.Message, want)
		}
	}
	if cc.Status.ReadyReplicas != 2 || cc.Status.Replicas != 2 || cc.Status.Version != "v1.0.0" {
		t.Errorf("status replicas %d ready %d version %q", cc.Status.Replicas, cc.Status.ReadyReplicas, cc.Status.Version)
	}
}

// A second reconcile of an unchanged ChatCluster writes nothing, not even status or Events.
func TestSteadyStateMakesNoWrites(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	f.simulateRedisReady("chat")
	f.simulateRollout("chat", 3, 3)
	f.reconcile("chat") // observes the new status
	f.drainEvents()

	f.resetWrites()
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Fatalf("steady-state reconcile made %d write calls, want 0: %q", len(w), w)
	}
	f.reconcile("chat")
	if w := f.writesSinceReset(); len(w) != 0 {
		t.Fatalf("third reconcile made %d write calls, want 0: %q", len(w), w)
	}
	if evs := f.drainEvents(); len(evs) != 0 {
		t.Errorf("steady-state reconcile emitted events %q", evs)
	}
}

// Zero writes in steady state holds for every shape of ChatCluster, not only the sample.
func TestSteadyStateAcrossVariants(t *testing.T) {
	variants := map[string]func(cc *chatv1alpha1.ChatCluster){
		"autoscaling": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Autoscaling = &chatv1alpha1.AutoscalingSpec{MinReplicas: 2, MaxReplicas: 6, TargetConnectionsPerPod: ptr.To[int32](300)}
		},
		"sqlite": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Replicas = ptr.To[int32](1)
			cc.Spec.Redis = nil
			cc.Spec.Ingress = nil
			cc.Spec.Database = chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}}
		},
		"redis persistence, resources, scheduling": func(cc *chatv1alpha1.ChatCluster) {
			q := resource.MustParse("2Gi")
			cc.Spec.Redis.Managed.Persistence = &chatv1alpha1.PersistenceSpec{Size: &q}
			cc.Spec.Redis.Managed.Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.1")}}
			cc.Spec.Resources = corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("0.5Gi")},
			}
			cc.Spec.Scheduling.NodeSelector = map[string]string{"pool": "chat"}
			cc.Spec.Scheduling.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "chat", Effect: corev1.TaintEffectNoSchedule}}
			cc.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
		},
		"attachments on the operator's ReadWriteMany claim": func(cc *chatv1alpha1.ChatCluster) {
			q := resource.MustParse("0.5Ti")
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{
				Size: &q, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}}}
		},
		"attachments in S3 with credentials and a CA": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{Endpoint: "s3.example.com", Bucket: "files",
				CredentialsSecret: &chatv1alpha1.S3CredentialsSecret{Name: "chat-db"}, CASecret: &chatv1alpha1.S3CASecret{Name: "chat-db", Key: "dsn"}}}
		},
		"external redis, monitoring without CRD": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{Address: "redis:6379"}}
			cc.Spec.Monitoring.ServiceMonitor = true
			cc.Spec.Server.MaxConnections = ptr.To[int32](5000)
		},
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			cc := sample(f.ns, "chat")
			mutate(cc)
			if a := cc.Spec.Attachments; a != nil && a.S3 != nil && a.S3.CredentialsSecret != nil {
				// The S3 keys share the DSN's Secret (created with the ChatCluster).
				f.createSecret("chat-db", map[string]string{"dsn": "postgres://x@db/parley", "accessKey": "a", "secretKey": "s"})
				cc.Spec.Database.Postgres.DSNSecretRef.Name = "chat-db"
				if err := k8s.Create(ctx, cc); err != nil {
					t.Fatal(err)
				}
			} else {
				f.create(cc)
			}
			f.reconcile("chat")
			f.reconcile("chat")
			f.drainEvents()
			f.resetWrites()
			f.reconcile("chat")
			if w := f.writesSinceReset(); len(w) != 0 {
				t.Fatalf("steady-state reconcile wrote %q", w)
			}
			if evs := f.drainEvents(); len(evs) != 0 {
				t.Errorf("steady-state reconcile emitted %q", evs)
			}
		})
	}
}
