package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/settings"
)

// /metrics is served on its own port: the chat server is told so, the pod
// declares it, the client-facing Service and the Ingress only know http, and
// Prometheus (ServiceMonitor or annotations) is pointed at the metrics port.
func TestMetricsPortIsApartFromClientTraffic(t *testing.T) {
	cc := testCluster()
	cc.Spec.Ingress = &chatv1alpha1.IngressSpec{Host: "chat.example.com"}
	s := Resolve(cc, "v1")
	if got := ConfigMap(cc, s).Data[settings.MetricsAddr.Env]; got != ":9090" {
		t.Errorf("%s = %q, want :9090", settings.MetricsAddr.Env, got)
	}
	dep := Deployment(cc, s, DeploymentInput{PrometheusAnnotations: true})
	ports := dep.Spec.Template.Spec.Containers[0].Ports
	if len(ports) != 2 || ports[1].Name != "metrics" || ports[1].ContainerPort != MetricsPort {
		t.Errorf("container ports %+v", ports)
	}
	if got := dep.Spec.Template.Annotations["prometheus.io/port"]; got != "9090" {
		t.Errorf("prometheus.io/port = %q", got)
	}
	for _, p := range Service(cc).Spec.Ports {
		if p.TargetPort.String() != "http" {
			t.Errorf("client-facing Service routes to %s", p.TargetPort.String())
		}
	}
	for _, p := range Ingress(cc).Spec.Rules[0].HTTP.Paths {
		if p.Backend.Service.Name != chatName(cc) || p.Backend.Service.Port.Name != "http" {
			t.Errorf("Ingress backend %+v", p.Backend.Service)
		}
	}
	ms := MetricsService(cc)
	if ms.Spec.ClusterIP != corev1.ClusterIPNone || len(ms.Spec.Ports) != 1 || ms.Spec.Ports[0].TargetPort.String() != "metrics" {
		t.Errorf("metrics Service %+v", ms.Spec)
	}
	sm := ServiceMonitor(cc)
	ep := sm.Object["spec"].(map[string]any)["endpoints"].([]any)[0].(map[string]any)
	sel := sm.Object["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any)
	if ep["port"] != "metrics" {
		t.Errorf("ServiceMonitor scrapes port %v", ep["port"])
	}
	for k, v := range sel {
		if ms.Labels[k] != v {
			t.Errorf("ServiceMonitor selector %v does not select the metrics Service %v", sel, ms.Labels)
		}
	}
	if Service(cc).Labels["app.kubernetes.io/component"] == sel["app.kubernetes.io/component"] {
		t.Error("the ServiceMonitor also selects the client-facing Service")
	}
}

// Retain (the default): no owner reference, so the garbage collector keeps the
// keyring. Delete: the controller owner reference, as every other child.
func TestKeysSecretOwnerFollowsRetention(t *testing.T) {
	cc := testCluster()
	if refs := KeysSecret(cc, []byte("{}"), "").OwnerReferences; len(refs) != 0 {
		t.Errorf("default policy: owner references %+v", refs)
	}
	cc.Spec.Security.KeyRetentionPolicy = chatv1alpha1.KeyRetentionRetain
	if refs := KeysSecret(cc, []byte("{}"), "").OwnerReferences; len(refs) != 0 {
		t.Errorf("Retain: owner references %+v", refs)
	}
	cc.Spec.Security.KeyRetentionPolicy = chatv1alpha1.KeyRetentionDelete
	if refs := KeysSecret(cc, []byte("{}"), "").OwnerReferences; len(refs) != 1 || refs[0].UID != cc.UID || !*refs[0].Controller {
		t.Errorf("Delete: owner references %+v", refs)
	}
}

// The managed Redis password reaches Redis, its probe and the chat servers by
// reference only; a chosen password with quotes and spaces is quoted for redis.conf.
func TestManagedRedisPasswordOnlyByReference(t *testing.T) {
	cc := testCluster()
	pw := []byte("s3cret-password-value")
	sec := RedisAuthSecret(cc, pw)
	sts := RedisStatefulSet(cc, RedisAuthHash(pw))
	dep := Deployment(cc, Resolve(cc, "v1"), DeploymentInput{})
	for what, obj := range map[string]any{"StatefulSet": sts, "Deployment": dep, "ConfigMap": ConfigMap(cc, Resolve(cc, "v1"))} {
		b, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), string(pw)) {
			t.Errorf("%s contains the password", what)
		}
	}
	if got := string(sec.Data[redisConfKey]); !strings.Contains(got, `requirepass "s3cret-password-value"`) {
		t.Errorf("redis.conf %q", got)
	}
	if got := redisQuote([]byte(`a b"c\d` + "\n")); got != `"a b\"c\\d\x0a"` {
		t.Errorf("redisQuote = %s", got)
	}
	if RedisAuthHash(pw) == RedisAuthHash([]byte("other")) || sts.Spec.Template.Annotations[AnnotationConfigHash] != RedisAuthHash(pw) {
		t.Error("the Redis pod template does not follow the password")
	}
}
