package integration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/pkg/settings"
)

// The operator's S3 configuration works with the real chat server and the real
// S3 server of the tests (hack/s3-server.sh), reached over TLS with a private
// CA: the chat server is started with exactly the environment and files the
// applied Deployment gives its container (the ConfigMap by envFrom, the
// credentials resolved from their secretKeyRef, the keyring and CA Secrets
// written where their volumes are mounted; only the listen addresses and the
// mount folders are moved to this machine). It checks the bucket at start, so
// /readyz proves the endpoint, CA, bucket and credentials reached it; an
// uploaded file reads back through it. A wrong secret key in the Secret stops
// it at start with a message naming the bucket: the key in use is the Secret's.
func TestAttachmentsS3ConfigStartsTheServer(t *testing.T) {
	s3 := testS3(t)
	endpoint, bucket := s3["PARLEY_TEST_S3_ENDPOINT"], s3["PARLEY_TEST_S3_BUCKET"]
	access, secret := s3["PARLEY_TEST_S3_ACCESS_KEY"], s3["PARLEY_TEST_S3_SECRET_KEY"]
	bin := buildChatServer(t)
	caPEM, cert := testCA(t)
	front := tlsFront(t, endpoint, cert)

	f := newFixture(t)
	cc := &chatv1alpha1.ChatCluster{}
	cc.Namespace, cc.Name = f.ns, "chat"
	cc.Spec = chatv1alpha1.ChatClusterSpec{
		Replicas: ptr.To[int32](1),
		Database: chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}},
		Attachments: &chatv1alpha1.AttachmentsSpec{S3: &chatv1alpha1.S3Spec{
			Endpoint: strings.TrimPrefix(front, "https://"), Bucket: bucket, PathStyle: true,
			CredentialsSecret: &chatv1alpha1.S3CredentialsSecret{Name: "s3-creds", AccessKeyKey: "id", SecretKeyKey: "key"},
			CASecret:          &chatv1alpha1.S3CASecret{Name: "s3-ca"},
		}},
	}
	f.createSecret("s3-creds", map[string]string{"id": access, "key": secret})
	f.createSecret("s3-ca", map[string]string{"ca.crt": string(caPEM)})
	f.create(cc)
	f.reconcile("chat")

	base, stop, logs := runChatServer(t, f, bin)
	if err := waitReady(base, 30*time.Second); err != nil {
		stop()
		t.Fatalf("the chat server did not become ready: %v\n%s", err, logs())
	}
	defer stop()

	// Register, upload a file, read it back: it went to the bucket and came back.
	var sess struct {
		AccessToken string `json:"accessToken"`
	}
	call(t, base, "POST", "/api/v1/auth/register", "", "application/json",
		strings.NewReader(`{"username":"alice","email":"alice@example.com","password":"correct horse battery","displayName":"Alice","session":"body"}`), 201, &sess)
	body := bytes.Repeat([]byte("a document kept in S3\n"), 5000)
	var att struct {
		ID   string `json:"id"`
		Size int    `json:"size"`
	}
	call(t, base, "POST", "/api/v1/attachments", sess.AccessToken, "text/plain", bytes.NewReader(body), 201, &att)
	if att.ID == "" || att.Size != len(body) {
		t.Fatalf("upload answered %+v", att)
	}
	var got []byte
	call(t, base, "GET", "/api/v1/attachments/"+att.ID, sess.AccessToken, "", nil, 200, &got)
	if !bytes.Equal(got, body) {
		t.Fatalf("downloaded %d bytes, uploaded %d", len(got), len(body))
	}
	stop()

	// The Secret is what the server uses: a wrong key there stops it at start.
	f.setSecret("s3-creds", "key", "not-the-secret-key")
	f.reconcile("chat")
	_, stop2, logs2 := runChatServer(t, f, bin)
	defer stop2()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs2(), "S3 bucket "+bucket) {
		if time.Now().After(deadline) {
			t.Fatalf("the chat server with a wrong S3 secret key did not stop naming the bucket:\n%s", logs2())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Volume mode with the real chat server: the Deployment's environment points
// the fs store at the attachments claim's mount, and an uploaded file is
// stored there (sealed: its text is in no file), not on the data volume.
func TestAttachmentsVolumeConfigStartsTheServer(t *testing.T) {
	bin := buildChatServer(t)
	f := newFixture(t)
	cc := &chatv1alpha1.ChatCluster{}
	cc.Namespace, cc.Name = f.ns, "chat"
	cc.Spec = chatv1alpha1.ChatClusterSpec{
		Replicas:    ptr.To[int32](1),
		Database:    chatv1alpha1.DatabaseSpec{SQLite: &chatv1alpha1.SQLiteSpec{}},
		Attachments: &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{}},
	}
	f.create(cc)
	f.reconcile("chat")
	base, stop, logs, mounts := runChatServerMounts(t, f, bin)
	defer stop()
	if err := waitReady(base, 30*time.Second); err != nil {
		t.Fatalf("the chat server did not become ready: %v\n%s", err, logs())
	}
	var sess struct {
		AccessToken string `json:"accessToken"`
	}
	call(t, base, "POST", "/api/v1/auth/register", "", "application/json",
		strings.NewReader(`{"username":"bob","email":"bob@example.com","password":"correct horse battery","displayName":"Bob","session":"body"}`), 201, &sess)
	marker := "a note kept on the attachments volume"
	body := []byte(strings.Repeat(marker+"\n", 3000))
	var att struct {
		ID string `json:"id"`
	}
	call(t, base, "POST", "/api/v1/attachments", sess.AccessToken, "text/plain", bytes.NewReader(body), 201, &att)
	var got []byte
	call(t, base, "GET", "/api/v1/attachments/"+att.ID, sess.AccessToken, "", nil, 200, &got)
	if !bytes.Equal(got, body) {
		t.Fatalf("downloaded %d bytes, uploaded %d", len(got), len(body))
	}
	files := func(dir string) (n int, size int64, plain bool) {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			size += int64(len(b))
			plain = plain || bytes.Contains(b, []byte(marker))
			return nil
		})
		return n, size, plain
	}
	attDir := mounts["/var/lib/parley-attachments"]
	if attDir == "" {
		t.Fatalf("no mount at /var/lib/parley-attachments: %v", mounts)
	}
	n, size, plain := files(attDir)
	if n == 0 || size < int64(len(body)) {
		t.Errorf("the attachments volume holds %d files, %d bytes; uploaded %d bytes", n, size, len(body))
	}
	if plain {
		t.Error("the attachments volume holds the file's text: not sealed")
	}
	if _, err := os.Stat(filepath.Join(mounts["/var/lib/parley"], "attachments")); err == nil {
		t.Error("attachments went to the data volume too")
	}
}

// testS3 is the S3 server of the tests: the one make test started
// (PARLEY_TEST_S3_* in the environment), else hack/s3-server.sh starts it
// (make test-operator runs without it).
func testS3(t *testing.T) map[string]string {
	t.Helper()
	keys := []string{"PARLEY_TEST_S3_ENDPOINT", "PARLEY_TEST_S3_BUCKET", "PARLEY_TEST_S3_ACCESS_KEY", "PARLEY_TEST_S3_SECRET_KEY"}
	env := map[string]string{}
	for _, k := range keys {
		env[k] = os.Getenv(k)
	}
	if env[keys[0]] != "" && env[keys[1]] != "" && env[keys[2]] != "" && env[keys[3]] != "" {
		return env
	}
	root := filepath.Join("..", "..")
	cmd := exec.Command("hack/s3-server.sh", "start")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/s3-server.sh start: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(root, "tmp", "s3", "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for _, k := range keys {
		if env[k] == "" {
			t.Fatalf("tmp/s3/env has no %s", k)
		}
	}
	return env
}

// buildChatServer builds the chat server of this tree.
func buildChatServer(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "chatserver")
	cmd := exec.Command("go", "build", "-o", out, "./chatserver/cmd/chatserver")
	cmd.Dir = filepath.Join("..", "..")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./chatserver/cmd/chatserver: %v\n%s", err, b)
	}
	return out
}

// runChatServer starts bin as the applied Deployment's container would run:
// envFrom the ConfigMap, env with secretKeyRefs resolved, Secret volumes
// written out, every mount path (also inside variable values, as in the SQLite
// URL) moved to a temporary folder, and the listen addresses on loopback ports.
func runChatServer(t *testing.T, f *fixture, bin string) (base string, stop func(), logs func() string) {
	base, stop, logs, _ = runChatServerMounts(t, f, bin)
	return base, stop, logs
}

// runChatServerMounts is runChatServer that also returns where each mount path went.
func runChatServerMounts(t *testing.T, f *fixture, bin string) (base string, stop func(), logs func() string, mounts map[string]string) {
	t.Helper()
	dep := &appsv1.Deployment{}
	f.get(dep, "chat")
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	secret := func(name string) *corev1.Secret {
		s := &corev1.Secret{}
		f.get(s, name)
		return s
	}
	root := t.TempDir()
	mounts = map[string]string{}
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s := secret(v.Secret.SecretName)
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
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	// One pass, longest path first: a relocated folder under /tmp must not
	// be relocated again by the /tmp mount.
	var pairs []string
	for _, p := range paths {
		pairs = append(pairs, p, mounts[p])
	}
	relocate := strings.NewReplacer(pairs...).Replace
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		cm := &corev1.ConfigMap{}
		f.get(cm, from.ConfigMapRef.Name)
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = string(secret(e.ValueFrom.SecretKeyRef.Name).Data[e.ValueFrom.SecretKeyRef.Key])
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		default:
			t.Fatalf("env %s: %+v", e.Name, e.ValueFrom)
		}
	}
	port, metricsPort := freePort(t), freePort(t)
	env[settings.Addr.Env] = fmt.Sprintf("127.0.0.1:%d", port)
	env[settings.MetricsAddr.Env] = fmt.Sprintf("127.0.0.1:%d", metricsPort)
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + root}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+relocate(v))
	}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	stop = func() {
		if !done {
			done = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	return fmt.Sprintf("http://127.0.0.1:%d", port), stop, out.String, mounts
}

func waitReady(base string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from /readyz in %s (last: %v)", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call makes one API request and decodes the answer into out (raw bytes for *[]byte).
func call(t *testing.T, base, method, path, token, contentType string, body io.Reader, want int, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method == "POST" && strings.HasPrefix(path, "/api/v1/attachments") {
		req.Header.Set("X-Filename", "notes.txt")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, path, err, b)
	}
}

// testCA makes a private certificate authority and a server certificate it
// signed for 127.0.0.1.
func testCA(t *testing.T) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parley operator test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "s3"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsFront serves the plain-HTTP S3 server over TLS with cert, keeping the
// Host header so SigV4 signatures made for the front are the ones checked.
func tlsFront(t *testing.T, plain string, cert tls.Certificate) string {
	t.Helper()
	u, err := url.Parse(plain)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(u))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
