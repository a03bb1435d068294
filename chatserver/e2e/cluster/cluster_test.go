//go:build clustere2e

// Package cluster is the chat platform on a real single-node Kubernetes cluster
// (make e2e-cluster, hack/cluster/e2e.sh): the operator, installed by its Helm
// chart, runs a ChatCluster; this test drives it with kubectl and talks to the
// chat server from the host through its ClusterIP Service (kube-proxy, routed
// onto the node's bridge). It needs the build tag clustere2e and
// PARLEY_E2E_KUBECONFIG; `go test ./...` never builds it.
//
// Environment (set by hack/cluster/e2e.sh):
//
//	PARLEY_E2E_KUBECONFIG  kubeconfig of the cluster (required)
//	PARLEY_E2E_WORKDIR     folder for hostPath volumes and logs (tmp/cluster)
//	PARLEY_E2E_RESULTS     file the step table rows are appended to
//	PARLEY_E2E_REDIS_ADDR  host:port of a Redis on the bridge: also run the Redis scenario
//	PARLEY_E2E_REDIS_IMAGE a Redis image on the node: also check the managed Redis StatefulSet
package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

const (
	ns           = "parley-e2e"
	image        = "parley/chatserver:dev"
	storageClass = "parley-e2e-hostpath"
)

var (
	workDir    = envOr("PARLEY_E2E_WORKDIR", os.TempDir())
	resultFile = os.Getenv("PARLEY_E2E_RESULTS")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// kubectl runs kubectl against the test cluster and returns its trimmed output.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("kubectl", args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+os.Getenv("PARLEY_E2E_KUBECONFIG"), "KUBECACHEDIR="+filepath.Join(workDir, "kubecache"))
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

func kc(t *testing.T, args ...string) string {
	t.Helper()
	out, err := kubectl(t, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func apply(t *testing.T, manifest string) {
	t.Helper()
	if _, err := kubectl(t, manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every interval until it returns "" (done) or d passes;
// the last non-empty answer says what it was waiting for.
func eventually(t *testing.T, d time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < d {
		if last = cond(); last == "" {
			return time.Since(start)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, d, last)
	return 0
}

// step runs one scenario step and appends a row (name, seconds, result, what was
// observed) to the results table.
func step(t *testing.T, name string, fn func() string) {
	t.Helper()
	start := time.Now()
	result, note := "FAIL", "see the test log"
	defer func() {
		secs := time.Since(start).Seconds()
		t.Logf("step %-40s %6.1fs %s %s", name, secs, result, note)
		if resultFile != "" {
			if f, err := os.OpenFile(resultFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				fmt.Fprintf(f, "| %s | %.1f | %s | %s |\n", name, secs, result, strings.ReplaceAll(note, "|", "/"))
				f.Close()
			}
		}
	}()
	note = fn()
	result = "pass"
}

// chatCluster is the ChatCluster under test and what the test learned about it.
type chatCluster struct {
	t    *testing.T
	name string
	api  *chattest.API
}

func (c *chatCluster) get(jsonpath string) string {
	out, _ := kubectl(c.t, "", "-n", ns, "get", "chatcluster", c.name, "-o", "jsonpath="+jsonpath)
	return out
}

// waitReady waits for Ready=True observed at the current generation, with
// status.readyReplicas 1 and one running, ready chat server pod.
func (c *chatCluster) waitReady(d time.Duration) time.Duration {
	c.t.Helper()
	return eventually(c.t, d, c.name+" Ready", func() string {
		gen := c.get("{.metadata.generation}")
		st := c.get(`{.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason}/{.status.conditions[?(@.type=="Ready")].observedGeneration}`)
		ready := c.get("{.status.readyReplicas}")
		pods := c.pods()
		if gen != "" && st == "True/Ready/"+gen && ready == "1" && strings.Count(pods, "=Running/True") == 1 && strings.Count(pods, "=") == 1 {
			return ""
		}
		return fmt.Sprintf("generation %s, Ready %s, readyReplicas %q, pods %s", gen, st, ready, pods)
	})
}

// serverUIDs are the uids of the chat server processes of this node's pods
// (found through their cgroup under the node's cgroup root /parley-e2e).
func serverUIDs(t *testing.T) []string {
	var uids []string
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		comm, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(comm)) != "chatserver" {
			continue
		}
		dir := filepath.Dir(p)
		if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err != nil || !strings.Contains(string(cg), "/parley-e2e/") {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(dir, "status"))
		if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status); m != nil {
			uids = append(uids, string(m[1]))
		}
	}
	return uids
}

func (c *chatCluster) keyring() keyringfile.File {
	c.t.Helper()
	raw := kc(c.t, "-n", ns, "get", "secret", c.name+"-keys", "-o", `jsonpath={.data.keyring\.json}`)
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		c.t.Fatal(err)
	}
	var f keyringfile.File
	if err := json.Unmarshal(b, &f); err != nil {
		c.t.Fatalf("keyring.json: %v", err)
	}
	return f
}

// keyIDs lists the keyring's keys as "id(state)" and returns the active ids
// and the staged ids.
func keyIDs(f keyringfile.File) (jwtActive, dataActive string, staged []string) {
	for _, k := range f.JWT {
		switch k.State {
		case "active":
			jwtActive = k.ID
		case "staged":
			staged = append(staged, k.ID)
		}
	}
	for _, k := range f.Data {
		switch k.State {
		case "active":
			dataActive = k.ID
		case "staged":
			staged = append(staged, k.ID)
		}
	}
	return
}

func (c *chatCluster) logs() string {
	out, _ := kubectl(c.t, "", "-n", ns, "logs", "deploy/"+c.name, "--tail=-1")
	return out
}

// reloadedWith reports whether the chat server logged a keyring reload whose
// line names every id (key=value or JSON logs).
func reloadedWith(logs string, ids ...string) bool {
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "keyring reloaded") {
			continue
		}
		all := true
		for _, id := range ids {
			all = all && strings.Contains(line, id)
		}
		if all {
			return true
		}
	}
	return false
}

// metrics reads /metrics from a chat server pod's own metrics port (the
// operator serves them off the API port, which the Service and Ingress
// expose): the host reaches pod IPs on the node's bridge.
func (c *chatCluster) metrics() string {
	ip, _ := kubectl(c.t, "", "-n", ns, "get", "pods", "-l", "app.kubernetes.io/instance="+c.name+",app.kubernetes.io/component=chatserver",
		"--field-selector", "status.phase=Running", "-o", `jsonpath={.items[0].status.podIP}`)
	if ip == "" {
		return ""
	}
	res, err := http.Get("http://" + net.JoinHostPort(ip, "9090") + "/metrics")
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

func (c *chatCluster) pods() string {
	out, _ := kubectl(c.t, "", "-n", ns, "get", "pods", "-l", "app.kubernetes.io/instance="+c.name+",app.kubernetes.io/component=chatserver",
		"-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase}/{.status.conditions[?(@.type=="Ready")].status}{" "}{end}`)
	return out
}

// jwtKID is the kid in an access token's header.
func jwtKID(t *testing.T, tok string) string {
	head, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	_ = json.Unmarshal(b, &h)
	return h.Kid
}

// hostPathPV applies PersistentVolume <namespace>-<name> on a fresh folder
// owned by uid (hostPath volumes ignore fsGroup), bound in advance by claimRef
// to claim: there is no dynamic provisioner on the node.
func hostPathPV(t *testing.T, namespace, name, claim string, uid int) {
	t.Helper()
	pv := namespace + "-" + name
	dir := filepath.Join(workDir, "pv", pv)
	// A volume and its data left by an earlier run (a Released volume never binds again).
	if _, err := kubectl(t, "", "delete", "pv", pv, "--ignore-not-found"); err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	apply(t, fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: %[2]s
  claimRef: {namespace: %[3]s, name: %[4]s}
  hostPath: {path: %[5]s, type: Directory}
`, pv, storageClass, namespace, claim, dir))
}

// newChatCluster creates a hostPath PersistentVolume for the SQLite claim and
// applies the ChatCluster; extraSpec is more YAML under spec.
func newChatCluster(t *testing.T, name, extraSpec string) *chatCluster {
	hostPathPV(t, ns, name+"-data", name+"-data", 65532) // the chat server's uid
	apply(t, fmt.Sprintf(`apiVersion: chat.parley.dev/v1alpha1
kind: ChatCluster
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  image: %[4]s
  imagePullPolicy: Never
  replicas: 1
  database:
    sqlite: {size: 1Gi, storageClassName: %[3]s}
  security:
    keyRotation: {propagationWindow: 2m}
  server: {shutdownTimeout: 2s}
%[5]s`, ns, name, storageClass, image, extraSpec))
	c := &chatCluster{t: t, name: name}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpDiagnostics()
		}
	})
	return c
}

func (c *chatCluster) dumpDiagnostics() {
	dir := filepath.Join(workDir, "logs")
	_ = os.MkdirAll(dir, 0o755)
	var b strings.Builder
	for _, args := range [][]string{
		{"-n", ns, "get", "chatcluster", c.name, "-o", "yaml"},
		{"-n", ns, "get", "all,pvc,secret,configmap,events", "-o", "wide"},
		{"-n", ns, "describe", "pods"},
		{"-n", ns, "logs", "deploy/" + c.name, "--tail=200"},
		{"-n", "parley-system", "logs", "deploy/parley-operator", "--tail=200"},
		{"get", "pv", "-o", "wide"},
	} {
		out, err := kubectl(c.t, "", args...)
		fmt.Fprintf(&b, "### kubectl %s\n%s\n%v\n\n", strings.Join(args, " "), out, err)
	}
	p := filepath.Join(dir, "diagnostics-"+c.name+".txt")
	_ = os.WriteFile(p, []byte(b.String()), 0o644)
	c.t.Logf("diagnostics in %s", p)
}

// connect finds the Service's ClusterIP and waits until the chat server answers through it.
func (c *chatCluster) connect() string {
	ip := kc(c.t, "-n", ns, "get", "svc", c.name, "-o", "jsonpath={.spec.clusterIP}")
	c.api = &chattest.API{T: c.t, Base: "http://" + ip}
	d := eventually(c.t, 30*time.Second, "GET /readyz through the ClusterIP", func() string {
		res, err := (&http.Client{Timeout: 2 * time.Second}).Get(c.api.Base + "/readyz")
		if err != nil {
			return err.Error()
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return res.Status
		}
		return ""
	})
	return fmt.Sprintf("%s answers through ClusterIP %s:80 after %.1fs", c.name, ip, d.Seconds())
}

func TestChatClusterOnRealNode(t *testing.T) {
	if os.Getenv("PARLEY_E2E_KUBECONFIG") == "" {
		t.Fatal("PARLEY_E2E_KUBECONFIG is unset: run make e2e-cluster (hack/cluster/e2e.sh)")
	}
	kc(t, "create", "namespace", ns)
	t.Cleanup(func() {
		start := time.Now()
		if _, err := kubectl(t, "", "delete", "namespace", ns, "--timeout=90s"); err != nil {
			t.Errorf("namespace %s: %v", ns, err)
		}
		t.Logf("namespace %s deleted in %.1fs", ns, time.Since(start).Seconds())
	})

	c := newChatCluster(t, "chat", "")
	step(t, "ChatCluster (SQLite, 1 replica) Ready", func() string {
		d := c.waitReady(4 * time.Minute)
		uids := serverUIDs(t)
		chattest.Must(t, len(uids) == 1 && uids[0] == "65532", "chat server process uids %v, want [65532]", uids)
		return fmt.Sprintf("Ready=True after %.1fs; pvc %s; pods %s; the server process runs as uid %s", d.Seconds(),
			kc(t, "-n", ns, "get", "pvc", "chat-data", "-o", "jsonpath={.status.phase}"), c.pods(), uids[0])
	})
	step(t, "chat server reachable from the host", c.connect)

	var alice, bob *chattest.Client
	var bobWS *chattest.WS
	var convID string
	step(t, "register, direct conversation, WebSocket delivery", func() string {
		alice, bob = c.api.Register("alice"), c.api.Register("bob")
		convID = alice.Direct(bob).ID
		bobWS = bob.Dial()
		m := alice.Send(convID, "hello from a real node")
		got := bobWS.WaitForMessage(m.ID, 10*time.Second)
		chattest.Must(t, got.Body == "hello from a real node", "delivered body %q", got.Body)
		return fmt.Sprintf("message %s delivered to bob's WebSocket", m.ID)
	})

	var jwt0, data0 string
	step(t, "keys Secret exists and the server uses it", func() string {
		var staged []string
		jwt0, data0, staged = keyIDs(c.keyring())
		chattest.Must(t, jwt0 != "" && data0 != "" && len(staged) == 0, "keyring: jwt %q data %q staged %v", jwt0, data0, staged)
		kid := jwtKID(t, alice.Token)
		chattest.Must(t, kid == jwt0, "alice's token is signed with %q, the Secret's active JWT key is %q", kid, jwt0)
		m := c.metrics()
		chattest.Must(t, strings.Contains(m, `parley_keyring_seals{kid="`+data0+`"}`), "no parley_keyring_seals for the Secret's data key %s", data0)
		return fmt.Sprintf("chat-keys: jwt %s, data %s; tokens carry kid %s; parley_keyring_seals{kid=%q} present", jwt0, data0, kid, data0)
	})

	step(t, "rotate-keys-now: staged keys reach the pod, then become active", func() string {
		start := time.Now()
		kc(t, "-n", ns, "annotate", "--overwrite", "chatcluster", "chat", fmt.Sprintf("chat.parley.dev/rotate-keys-now=%d", start.Unix()))
		var staged []string
		eventually(t, 30*time.Second, "staged keys in the Secret", func() string {
			if _, _, staged = keyIDs(c.keyring()); len(staged) != 2 {
				return fmt.Sprintf("staged %v", staged)
			}
			return ""
		})
		tSecret := time.Since(start)
		eventually(t, 90*time.Second, "the pod reloading the staged keys", func() string {
			if reloadedWith(c.logs(), staged...) {
				return ""
			}
			return "no 'keyring reloaded' log line naming " + strings.Join(staged, ", ")
		})
		tPod := time.Since(start)
		var jwt1, data1 string
		// The CRD's minimum window (2m), then the operator reads the pod's /keyringz.
		eventually(t, 3*time.Minute, "staged keys promoted in the Secret", func() string {
			if jwt1, data1, _ = keyIDs(c.keyring()); jwt1 == jwt0 || data1 == data0 {
				return fmt.Sprintf("active jwt %s data %s", jwt1, data1)
			}
			return ""
		})
		tActive := time.Since(start)
		re := regexp.MustCompile(`jwt_active["=:]+` + regexp.QuoteMeta(jwt1))
		eventually(t, 90*time.Second, "the pod reloading the promoted keys", func() string {
			for _, line := range strings.Split(c.logs(), "\n") {
				if strings.Contains(line, "keyring reloaded") && re.MatchString(line) {
					return ""
				}
			}
			return "no reload with jwt_active " + jwt1
		})
		tPodActive := time.Since(start)
		// The server keeps working: old tokens verify with the retired key, new ones carry the new kid,
		// new messages are sealed with the new data key and still delivered.
		chattest.Must(t, alice.Do("GET", "/api/v1/me", nil).Status == http.StatusOK, "alice's pre-rotation token refused")
		carol := c.api.Register("carol")
		chattest.Must(t, jwtKID(t, carol.Token) == jwt1, "new token kid %s, want %s", jwtKID(t, carol.Token), jwt1)
		m := alice.Send(convID, "after rotation")
		chattest.Must(t, bobWS.WaitForMessage(m.ID, 10*time.Second).Body == "after rotation", "body after rotation")
		chattest.Must(t, strings.Contains(c.metrics(), `parley_keyring_seals{kid="`+data1+`"}`), "no seals with the new data key %s", data1)
		status := c.get("{.status.keys.activeJWTKeyID}")
		return fmt.Sprintf("staged in Secret %.1fs, reloaded by the pod %.1fs, promoted %.1fs, pod on new keys %.1fs after the annotation; "+
			"old token still accepted, new token kid %s, message sealed with %s delivered; status.keys.activeJWTKeyID=%s",
			tSecret.Seconds(), tPod.Seconds(), tActive.Seconds(), tPodActive.Seconds(), jwt1, data1, status)
	})

	step(t, "kubectl scale 0 then 1 (scale subresource)", func() string {
		kc(t, "-n", ns, "scale", "chatcluster", "chat", "--replicas=0")
		d0 := eventually(t, 90*time.Second, "no chat server pods", func() string {
			if p := c.pods(); p != "" {
				return p
			}
			if r := kc(t, "-n", ns, "get", "deploy", "chat", "-o", "jsonpath={.spec.replicas}"); r != "0" {
				return "deployment replicas " + r
			}
			return ""
		})
		at0 := c.get(`Ready={.status.conditions[?(@.type=="Ready")].status}/{.status.conditions[?(@.type=="Ready")].reason} ` +
			`Available={.status.conditions[?(@.type=="Available")].status}/{.status.conditions[?(@.type=="Available")].reason}`)
		kc(t, "-n", ns, "scale", "chatcluster", "chat", "--replicas=1")
		d1 := c.waitReady(3 * time.Minute)
		c.connect()
		// Same SQLite volume: the accounts and the history survived the pod.
		a := c.api.Login("alice")
		h := a.History(convID, 0)
		chattest.Must(t, len(h) == 2 && h[0].Body == "hello from a real node" && h[1].Body == "after rotation", "history after restart: %+v", h)
		return fmt.Sprintf("0 pods %.1fs after scale 0 (status then: %s); Ready with 1 ready pod %.1fs after scale 1; "+
			"alice logs in again, history (2 messages, old and new data key) intact", d0.Seconds(), at0, d1.Seconds())
	})

	step(t, "spec change (maxMessageChars) rolls the pod", func() string {
		before := c.pods()
		kc(t, "-n", ns, "patch", "chatcluster", "chat", "--type=merge", "-p", `{"spec":{"server":{"maxMessageChars":100}}}`)
		d := c.waitReady(3 * time.Minute)
		after := c.pods()
		chattest.Must(t, after != before, "pod not replaced: %s", after)
		cm := kc(t, "-n", ns, "get", "configmap", "chat-config", "-o", "jsonpath={.data.PARLEY_MAX_MESSAGE_CHARS}")
		chattest.Must(t, cm == "100", "configmap PARLEY_MAX_MESSAGE_CHARS=%s", cm)
		c.connect()
		a := c.api.Login("alice")
		r := a.Do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"body": strings.Repeat("x", 150)})
		chattest.Must(t, r.Status >= 400 && r.Status < 500, "150-char message: %d %s", r.Status, r.Body)
		a.Send(convID, "short")
		return fmt.Sprintf("Ready at the new generation after %.1fs; pods %s -> %s; 150 chars refused (%d)", d.Seconds(), before, after, r.Status)
	})

	step(t, "delete: children garbage-collected", func() string {
		kc(t, "-n", ns, "delete", "chatcluster", "chat", "--wait=true", "--timeout=60s")
		d := eventually(t, 2*time.Minute, "children gone", func() string {
			out, _ := kubectl(t, "", "-n", ns, "get", "deploy,rs,pod,svc,configmap,secret,serviceaccount,pvc",
				"-l", "app.kubernetes.io/instance=chat", "-o", "name")
			return withoutRetainedKeys(out, "chat")
		})
		keptKeys(t, "chat")
		kc(t, "delete", "pv", ns+"-chat-data")
		return fmt.Sprintf("Deployment, ReplicaSet, Pod, Service, ConfigMap, Secrets, ServiceAccount, PVC gone %.1fs after the ChatCluster; the keys Secret kept (keyRetentionPolicy Retain), then deleted by hand", d.Seconds())
	})

	if addr := os.Getenv("PARLEY_E2E_REDIS_ADDR"); addr != "" {
		r := newChatCluster(t, "chat-redis", fmt.Sprintf("  redis:\n    external: {address: %q}\n", addr))
		step(t, "ChatCluster with Redis (external, on the bridge) Ready", func() string {
			d := r.waitReady(4 * time.Minute)
			return fmt.Sprintf("Ready=True after %.1fs; RedisReady %s", d.Seconds(), r.get(`{.status.conditions[?(@.type=="RedisReady")].reason}`))
		})
		step(t, "Redis path: delivery through the backplane", func() string {
			r.connect()
			dave, erin := r.api.Register("dave"), r.api.Register("erin")
			conv := dave.Direct(erin).ID
			ws := erin.Dial()
			m := dave.Send(conv, "via redis")
			chattest.Must(t, ws.WaitForMessage(m.ID, 10*time.Second).Body == "via redis", "body via redis")
			up := regexp.MustCompile(`(?m)^parley_backplane_up(\{[^}]*\})? 1$`).FindString(r.metrics())
			chattest.Must(t, up != "", "parley_backplane_up is not 1")
			return "delivered over WebSocket; " + up
		})
		step(t, "delete the Redis ChatCluster", func() string {
			kc(t, "-n", ns, "delete", "chatcluster", "chat-redis", "--wait=true", "--timeout=60s")
			d := eventually(t, 2*time.Minute, "children gone", func() string {
				out, _ := kubectl(t, "", "-n", ns, "get", "deploy,pod,svc,configmap,secret,pvc", "-l", "app.kubernetes.io/instance=chat-redis", "-o", "name")
				return withoutRetainedKeys(out, "chat-redis")
			})
			keptKeys(t, "chat-redis")
			kc(t, "delete", "pv", ns+"-chat-redis-data")
			return fmt.Sprintf("children gone %.1fs after the ChatCluster", d.Seconds())
		})
	}
	// The operator's managed Redis: a StatefulSet running the image (Debian's redis-server), reached
	// by the chat server as redis://<name>-redis:6379 (the node's CoreDNS, hack/cluster/Corefile, and
	// pod -> ClusterIP -> pod forwarding on the bridge).
	if img := os.Getenv("PARLEY_E2E_REDIS_IMAGE"); img != "" {
		m := newChatCluster(t, "chat-mredis", fmt.Sprintf("  redis:\n    managed: {image: %q}\n", img))
		step(t, "ChatCluster with managed Redis Ready", func() string {
			d := m.waitReady(4 * time.Minute)
			return fmt.Sprintf("Ready=True after %.1fs; RedisReady %s; redis pod %s", d.Seconds(),
				m.get(`{.status.conditions[?(@.type=="RedisReady")].status}/{.status.conditions[?(@.type=="RedisReady")].reason}`),
				kc(t, "-n", ns, "get", "pod", "chat-mredis-redis-0", "-o", `jsonpath={.status.phase}/{.status.conditions[?(@.type=="Ready")].status}`))
		})
		step(t, "managed Redis refuses unauthenticated clients (NOAUTH)", func() string {
			// From the host on the node's bridge, through the Service's
			// ClusterIP, as any pod that reaches Redis would (an exec into the
			// Redis container would authenticate: its probe's REDISCLI_AUTH).
			ip := kc(t, "-n", ns, "get", "svc", m.name+"-redis", "-o", "jsonpath={.spec.clusterIP}")
			rc := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(ip, "6379"), MaxRetries: -1})
			defer rc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errSet := rc.Set(ctx, "parley:ticket:forged", "x", time.Minute).Err()
			errPub := rc.Publish(ctx, "u:anyone", "forged").Err()
			for what, err := range map[string]error{"SET": errSet, "PUBLISH": errPub} {
				chattest.Must(t, err != nil && strings.Contains(err.Error(), "NOAUTH"),
					"unauthenticated %s through the Service: %v, want NOAUTH", what, err)
			}
			return fmt.Sprintf("SET and PUBLISH without the password via %s:6379: %v", ip, errSet)
		})
		step(t, "managed Redis: delivery through the backplane", func() string {
			m.connect()
			frank, gina := m.api.Register("frank"), m.api.Register("gina")
			conv := frank.Direct(gina).ID
			ws := gina.Dial()
			msg := frank.Send(conv, "via managed redis")
			chattest.Must(t, ws.WaitForMessage(msg.ID, 10*time.Second).Body == "via managed redis", "body via managed redis")
			up := regexp.MustCompile(`(?m)^parley_backplane_up(\{[^}]*\})? 1$`).FindString(m.metrics())
			chattest.Must(t, up != "", "parley_backplane_up is not 1")
			return "delivered over WebSocket; " + up
		})
		step(t, "delete the managed-Redis ChatCluster", func() string {
			kc(t, "-n", ns, "delete", "chatcluster", m.name, "--wait=true", "--timeout=60s")
			d := eventually(t, 2*time.Minute, "children gone", func() string {
				out, _ := kubectl(t, "", "-n", ns, "get", "statefulset,deploy,pod,svc,networkpolicy,configmap,secret,pvc", "-l", "app.kubernetes.io/instance="+m.name, "-o", "name")
				return withoutRetainedKeys(out, m.name)
			})
			keptKeys(t, m.name)
			kc(t, "delete", "pv", ns+"-"+m.name+"-data")
			return fmt.Sprintf("StatefulSet, NetworkPolicy and the rest gone %.1fs after the ChatCluster", d.Seconds())
		})
	}
}

// withoutRetainedKeys leaves out the keys Secret, which outlives its
// ChatCluster under the default keyRetentionPolicy Retain.
func withoutRetainedKeys(names, cluster string) string {
	var out []string
	for _, n := range strings.Fields(names) {
		if n != "secret/"+cluster+"-keys" {
			out = append(out, n)
		}
	}
	return strings.Join(out, "\n")
}

// keptKeys checks that the keys Secret survived the ChatCluster (Retain),
// then deletes it so the namespace is clean for the next scenario.
func keptKeys(t *testing.T, cluster string) {
	t.Helper()
	kc(t, "-n", ns, "get", "secret", cluster+"-keys", "-o", "name")
	kc(t, "-n", ns, "delete", "secret", cluster+"-keys")
}
