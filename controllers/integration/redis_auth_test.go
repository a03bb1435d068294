package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/controllers"
)

const redisAuthSecret = "chat-redis-auth"

// secretEnv returns the Secret an environment variable of the container takes
// its value from, or "" when it has none.
func secretEnv(c corev1.Container, name string) (secret, key string) {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
		}
	}
	return "", ""
}

// mustNotContain fails when the JSON of obj contains secret anywhere: in args,
// env values, annotations or any other field.
func mustNotContain(t *testing.T, what string, obj any, secret string) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("%s contains the Redis password in plain text", what)
	}
}

// The managed Redis requires a password the operator generates once into a
// Secret it owns: Redis reads it from a config file mounted from that Secret, its
// probe and the chat servers take it by secretKeyRef, and it appears in no pod
// spec, ConfigMap or argument. Reconciles keep it; a person's change of it rolls
// both Redis and the chat servers (config hash); switching to external Redis
// removes the Secret.
func TestManagedRedisPasswordFromGeneratedSecret(t *testing.T) {
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	cc := f.chat("chat")

	sec := &corev1.Secret{}
	if f.absent(sec, redisAuthSecret) {
		t.Fatalf("no Secret %s after the first reconcile of a ChatCluster with managed Redis", redisAuthSecret)
	}
	pw := string(sec.Data["password"])
	if len(pw) < 32 {
		t.Fatalf("generated password has %d characters, want at least 32", len(pw))
	}
	if ref := metav1.GetControllerOf(sec); ref == nil || ref.UID != cc.UID {
		t.Errorf("Secret %s controller = %+v, want the ChatCluster", redisAuthSecret, ref)
	}

	sts := &appsv1.StatefulSet{}
	f.get(sts, "chat-redis")
	rc := sts.Spec.Template.Spec.Containers[0]
	if name, key := secretEnv(rc, "REDISCLI_AUTH"); name != redisAuthSecret || key != "password" {
		t.Errorf("redis container REDISCLI_AUTH from %q/%q, want secretKeyRef %s/password (the probe authenticates)", name, key, redisAuthSecret)
	}
	fromSecret := false
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == redisAuthSecret {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Errorf("no volume of the Redis pod comes from Secret %s: %+v", redisAuthSecret, sts.Spec.Template.Spec.Volumes)
	}
	if p := rc.ReadinessProbe; p == nil || p.Exec == nil || !strings.Contains(strings.Join(p.Exec.Command, " "), "-e") {
		t.Errorf("readiness probe %+v: redis-cli must fail on an error reply (-e), or NOAUTH would pass", p)
	}

	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	if name, key := secretEnv(dep.Spec.Template.Spec.Containers[0], "PARLEY_REDIS_PASSWORD"); name != redisAuthSecret || key != "password" {
		t.Errorf("chat server PARLEY_REDIS_PASSWORD from %q/%q, want secretKeyRef %s/password", name, key, redisAuthSecret)
	}
	cm := &corev1.ConfigMap{}
	f.get(cm, "chat-config")
	if cm.Data["PARLEY_REDIS_URL"] != "redis://chat-redis:6379/0" {
		t.Errorf("PARLEY_REDIS_URL = %q", cm.Data["PARLEY_REDIS_URL"])
	}
	mustNotContain(t, "the Redis StatefulSet", sts.Spec, pw)
	mustNotContain(t, "the chat server Deployment", dep.Spec, pw)
	mustNotContain(t, "the ConfigMap", cm.Data, pw)
	mustNotContain(t, "the ChatCluster status", f.chat("chat").Status, pw)

	// Generated once: later reconciles leave it alone.
	rv := sec.ResourceVersion
	for i := 0; i < 3; i++ {
		f.clock.Step(time.Hour)
		f.reconcile("chat")
	}
	f.get(sec, redisAuthSecret)
	if string(sec.Data["password"]) != pw || sec.ResourceVersion != rv {
		t.Fatalf("the Redis password Secret changed across reconciles (resourceVersion %s -> %s)", rv, sec.ResourceVersion)
	}

	// A person changes the password: Redis and the chat servers restart with it.
	depHash := podTemplateHash(f, "chat")
	stsHash := sts.Spec.Template.Annotations[controllers.AnnotationConfigHash]
	if stsHash == "" {
		t.Error("the Redis pod template has no config hash: a new password would not restart Redis")
	}
	f.setSecret(redisAuthSecret, "password", "rotated-by-a-person-0123456789abcdef")
	f.reconcile("chat")
	if podTemplateHash(f, "chat") == depHash {
		t.Error("the chat servers' config hash did not change with the Redis password")
	}
	f.get(sts, "chat-redis")
	if sts.Spec.Template.Annotations[controllers.AnnotationConfigHash] == stsHash {
		t.Error("the Redis config hash did not change with the Redis password")
	}
	f.get(sec, redisAuthSecret)
	if string(sec.Data["password"]) != "rotated-by-a-person-0123456789abcdef" {
		t.Error("the operator replaced a password a person set")
	}
	if !strings.Contains(string(sec.Data["redis.conf"]), "rotated-by-a-person-0123456789abcdef") {
		t.Errorf("redis.conf not derived from the new password: %q", sec.Data["redis.conf"])
	}

	// External Redis keeps its own password; the generated one goes.
	f.createSecret("ext-redis", map[string]string{"pw": "external-secret"})
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{
			Address: "redis.example.com:6380", TLS: true,
			PasswordSecretRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "ext-redis"}, Key: "pw"},
		}}
	})
	f.reconcile("chat")
	if !f.absent(&corev1.Secret{}, redisAuthSecret) {
		t.Error("the generated Redis password Secret outlived the managed Redis")
	}
	f.get(dep, "chat")
	if name, key := secretEnv(dep.Spec.Template.Spec.Containers[0], "PARLEY_REDIS_PASSWORD"); name != "ext-redis" || key != "pw" {
		t.Errorf("with external Redis PARLEY_REDIS_PASSWORD from %q/%q, want ext-redis/pw", name, key)
	}
}

// A redis-server started with exactly the container arguments the operator
// applied (volume mounts mapped into a temporary folder, filled from the Secret as
// the kubelet would; only the port and a loopback bind changed) answers NOAUTH to
// a client without the password and PONG with it; the readiness probe command,
// with the container's environment resolved from the Secret, passes, and fails
// without it.
func TestManagedRedisRefusesUnauthenticatedClients(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server not found: run `make deps` (hack/install-deps.sh installs Debian's redis-server)")
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redis-cli not found: run `make deps`")
	}
	f := newFixture(t)
	f.create(sample(f.ns, "chat"))
	f.reconcile("chat")
	sts := &appsv1.StatefulSet{}
	f.get(sts, "chat-redis")
	secrets := map[string]*corev1.Secret{}
	sec := &corev1.Secret{}
	if !f.absent(sec, redisAuthSecret) {
		secrets[redisAuthSecret] = sec
	}
	pw := string(sec.Data["password"])

	port, stop := runContainer(t, bin, sts.Spec.Template.Spec, secrets)
	defer stop()

	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	if got := redisCmd(t, conn, rd, "PING"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Fatalf("unauthenticated PING answered %q, want -NOAUTH", got)
	}
	if got := redisCmd(t, conn, rd, "SET", "parley:ticket:forged", "x"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("unauthenticated SET of a ticket key answered %q, want -NOAUTH", got)
	}
	if got := redisCmd(t, conn, rd, "PUBLISH", "parley:u:1", "forged"); !strings.HasPrefix(got, "-NOAUTH") {
		t.Errorf("unauthenticated PUBLISH answered %q, want -NOAUTH", got)
	}
	if got := redisCmd(t, conn, rd, "AUTH", "wrong-password"); !strings.HasPrefix(got, "-WRONGPASS") {
		t.Errorf("AUTH with a wrong password answered %q", got)
	}
	if got := redisCmd(t, conn, rd, "AUTH", pw); got != "+OK" {
		t.Fatalf("AUTH with the generated password answered %q", got)
	}
	if got := redisCmd(t, conn, rd, "PING"); got != "+PONG" {
		t.Fatalf("authenticated PING answered %q", got)
	}

	// The readiness probe, as the kubelet runs it in the container.
	c := sts.Spec.Template.Spec.Containers[0]
	probe := c.ReadinessProbe.Exec.Command
	if len(probe) == 0 || filepath.Base(probe[0]) != "redis-cli" {
		t.Fatalf("readiness probe %q is not redis-cli", probe)
	}
	args := append([]string{"-p", strconv.Itoa(port)}, probe[1:]...)
	run := func(env []string) (string, error) {
		cmd := exec.Command(cli, args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			s := secrets[e.ValueFrom.SecretKeyRef.Name]
			if s == nil {
				t.Fatalf("env %s refers to Secret %s, which does not exist", e.Name, e.ValueFrom.SecretKeyRef.Name)
			}
			env = append(env, e.Name+"="+string(s.Data[e.ValueFrom.SecretKeyRef.Key]))
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		}
	}
	if out, err := run(env); err != nil || !strings.Contains(out, "PONG") {
		t.Errorf("readiness probe %q with the container's environment: %v %q, want PONG and exit 0", probe, err, out)
	}
	if out, err := run([]string{"PATH=" + os.Getenv("PATH")}); err == nil {
		t.Errorf("readiness probe %q without the password passed (%q): it would not notice a Redis it cannot use", probe, out)
	}

	// A password a person chose, with spaces, quotes and a backslash, reaches
	// redis-server intact through the derived redis.conf.
	chosen := `my "chosen" pass\word with spaces`
	f.setSecret(redisAuthSecret, "password", chosen)
	f.reconcile("chat")
	f.get(sec, redisAuthSecret)
	f.get(sts, "chat-redis")
	port2, stop2 := runContainer(t, bin, sts.Spec.Template.Spec, map[string]*corev1.Secret{redisAuthSecret: sec})
	defer stop2()
	conn2, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port2)), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	rd2 := bufio.NewReader(conn2)
	if got := redisCmd(t, conn2, rd2, "AUTH", chosen); got != "+OK" {
		t.Fatalf("AUTH with the chosen password %q answered %q (redis.conf %q)", chosen, got, sec.Data["redis.conf"])
	}
}

// runContainer runs a pod's first container's command on this machine: each
// volume mount path is mapped to a temporary folder (Secret volumes get the
// Secret's keys as files), the value of --port becomes a free loopback port and
// --bind 127.0.0.1 is added so the server is never reachable from elsewhere.
func runContainer(t *testing.T, bin string, pod corev1.PodSpec, secrets map[string]*corev1.Secret) (int, func()) {
	t.Helper()
	c := pod.Containers[0]
	root := t.TempDir()
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s := secrets[v.Secret.SecretName]
			if s == nil {
				t.Fatalf("volume %s mounts Secret %s, which does not exist", v.Name, v.Secret.SecretName)
			}
			files := map[string]string{}
			for k := range s.Data {
				files[k] = k
			}
			if len(v.Secret.Items) > 0 {
				files = map[string]string{}
				for _, it := range v.Secret.Items {
					files[it.Key] = it.Path
				}
			}
			for k, p := range files {
				if err := os.WriteFile(filepath.Join(dir, p), s.Data[k], 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		mounts[m.MountPath] = dir
	}
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 || filepath.Base(argv[0]) != filepath.Base(bin) {
		t.Fatalf("container runs %q, not %s", argv, filepath.Base(bin))
	}
	port := freePort(t)
	args := make([]string, 0, len(argv)+2)
	for i, a := range argv[1:] {
		if argv[i] == "--port" { // argv[i] precedes argv[1:][i]
			a = strconv.Itoa(port)
		}
		best := ""
		for mp := range mounts {
			if (a == mp || strings.HasPrefix(a, mp+"/")) && len(mp) > len(best) {
				best = mp
			}
		}
		if best != "" {
			a = mounts[best] + strings.TrimPrefix(a, best)
		}
		args = append(args, a)
	}
	args = append(args, "--bind", "127.0.0.1")
	cmd := exec.Command(bin, args...)
	log, err := os.Create(filepath.Join(root, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s %q: %v", bin, args, err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			return port, stop
		}
		if time.Now().After(deadline) {
			stop()
			out, _ := os.ReadFile(filepath.Join(root, "redis.log"))
			t.Fatalf("redis-server %q did not listen on %d: %s", args, port, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// redisCmd sends one command in RESP and returns the first line of the reply.
func redisCmd(t *testing.T, conn net.Conn, rd *bufio.Reader, args ...string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("read reply to %s: %v", args[0], err)
	}
	return strings.TrimRight(line, "\r\n")
}
