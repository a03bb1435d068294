package controllers

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/parley-chat/parley/chatserver/keyring"
)

// podAt is a chat server pod whose named container ports point at test servers.
func podAt(t *testing.T, ports map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "chat-0"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar", Ports: []corev1.ContainerPort{{Name: "metrics", ContainerPort: 1}}}, {Name: containerName}}},
	}
	for name, url := range ports {
		host, port, err := net.SplitHostPort(strings.TrimPrefix(url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(port)
		pod.Status.PodIP = host
		pod.Spec.Containers[1].Ports = append(pod.Spec.Containers[1].Ports, corev1.ContainerPort{Name: name, ContainerPort: int32(n)})
	}
	return pod
}

// The prober speaks the chat server's /keyringz (its own types encode the
// answer here), prefers the metrics port, falls back to the API port, and
// turns every failure into an error within its timeout.
func TestHTTPKeyringProber(t *testing.T) {
	want := keyring.Loaded{Keys: []keyring.LoadedKey{{ID: "d-1", Kind: "data", State: "active"}, {ID: "j-1", Kind: "jwt", State: "active"}, {ID: "j-2", Kind: "jwt", State: "staged"}}}
	want.Digest = keyring.Digest(want.Keys)
	var paths []string
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths = append(paths, r.Method+" "+r.URL.Path)
		_ = json.NewEncoder(w).Encode(want)
	}))
	defer good.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusNotFound)
	}))
	defer broken.Close()
	stop := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(stop)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("[", 2<<20)))
	}))
	defer garbage.Close()

	p := HTTPKeyringProber{Timeout: 300 * time.Millisecond}
	ctx := context.Background()

	got, err := p.LoadedKeyring(ctx, podAt(t, map[string]string{"metrics": good.URL, "http": broken.URL}))
	if err != nil {
		t.Fatalf("metrics port: %v", err)
	}
	if got.Digest != want.Digest || len(got.Keys) != 3 || !got.Has("j-2") || got.Has("j-3") || got.Keys[2] != (LoadedKey{ID: "j-2", Kind: "jwt", State: "staged"}) {
		t.Fatalf("LoadedKeyring = %+v, want %+v", got, want)
	}
	if len(paths) != 1 || paths[0] != "GET /keyringz" {
		t.Errorf("requests %v, want one GET /keyringz", paths)
	}
	if _, err := p.LoadedKeyring(ctx, podAt(t, map[string]string{"http": good.URL})); err != nil {
		t.Errorf("no metrics port: the API port should answer: %v", err)
	}

	for name, ports := range map[string]map[string]string{
		"status 404":    {"metrics": broken.URL},
		"slow":          {"metrics": slow.URL},
		"not JSON":      {"metrics": garbage.URL},
		"no known port": {"grpc": good.URL},
	} {
		began := time.Now()
		_, err := p.LoadedKeyring(ctx, podAt(t, ports))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Errorf("%s: took %s, beyond the %s timeout", name, d, p.Timeout)
		}
		if !strings.Contains(err.Error(), "chat-0") {
			t.Errorf("%s: error %q does not name the pod", name, err)
		}
	}
	noIP := podAt(t, map[string]string{"metrics": good.URL})
	noIP.Status.PodIP = ""
	if _, err := p.LoadedKeyring(ctx, noIP); err == nil {
		t.Error("a pod without an IP was probed")
	}
}
