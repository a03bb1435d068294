// Package e2e runs several real chat-server processes against real Redis and
// PostgreSQL on loopback, and breaks them: kill -9 a replica, restart Redis,
// stop PostgreSQL.
package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/keyring"
)

var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "chatserver")
	// -tags faults: tests may make a replica fail at chosen points
	// (PARLEY_FAULTS, package faults); without PARLEY_FAULTS it behaves as
	// the normal build.
	build := exec.Command("go", "build", "-tags", "faults", "-o", serverBin, "github.com/parley-chat/parley/chatserver/cmd/chatserver")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build chatserver:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

func waitHTTP(url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v", url, d)
}

// redisProc is a private redis-server that a test may stop and start again
// on the same port.
type redisProc struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisProc {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if testing.Short() {
			t.Skip("-short: a private Redis needs redis-server")
		}
		t.Fatal("redis-server not found: run `make test` (hack/install-deps.sh installs it)")
	}
	r := &redisProc{t: t, port: freePort(t), dir: t.TempDir()}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *redisProc) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisProc) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no")
	log, _ := os.Create(filepath.Join(r.dir, "redis.log"))
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatal("redis did not start")
}

func (r *redisProc) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// pgProc is a private PostgreSQL cluster a test may stop and start.
type pgProc struct {
	t   *testing.T
	bin string
	dir string
	url string
}

func runAsPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root.
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

func startPrivatePostgres(t *testing.T) *pgProc {
	t.Helper()
	bin := os.Getenv("PARLEY_TEST_POSTGRES_BIN")
	if bin == "" {
		if testing.Short() {
			t.Skip("-short: a private PostgreSQL needs PARLEY_TEST_POSTGRES_BIN")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_BIN is not set: run `make test` (hack/postgres.sh)")
	}
	dir, err := os.MkdirTemp("", "parley-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		os.Chown(dir, uid, -1)
	}
	p := &pgProc{t: t, bin: bin, dir: dir}
	port := freePort(t)
	if out, err := runAsPostgres(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "parley",
		"--auth=trust", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n", port, dir)
	f, _ := os.OpenFile(filepath.Join(dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(conf)
	f.Close()
	p.start()
	t.Cleanup(p.stop)
	p.url = fmt.Sprintf("postgres://parley@127.0.0.1:%d/postgres?sslmode=disable", port)
	return p
}

func (p *pgProc) start() {
	p.t.Helper()
	out, err := runAsPostgres(filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-l",
		filepath.Join(p.dir, "server.log"), "-w", "-t", "60", "start").CombinedOutput()
	if err != nil {
		p.t.Fatalf("pg_ctl start: %v\n%s", err, out)
	}
}

func (p *pgProc) stop() {
	runAsPostgres(filepath.Join(p.bin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-m", "immediate", "stop").Run()
}

// cluster is a set of chat-server processes sharing a store, a Redis and a keyring.
type cluster struct {
	t        *testing.T
	dbURL    string
	redisURL string
	keyDir   string
	extra    []string
}

func newCluster(t *testing.T, dbURL, redisURL string, extraEnv ...string) *cluster {
	t.Helper()
	keyDir := filepath.Join(t.TempDir(), "keys")
	if _, err := keyring.LoadOrGenerate(keyDir, keyring.Options{}); err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, dbURL: dbURL, redisURL: redisURL, keyDir: keyDir, extra: extraEnv}
}

// replica is one chat-server process.
type replica struct {
	*chattest.API
	t    *testing.T
	port int
	env  []string
	cmd  *exec.Cmd
	log  string
	dead bool
}

func (c *cluster) start(extraEnv ...string) *replica {
	c.t.Helper()
	port := freePort(c.t)
	env := append(os.Environ(),
		"PARLEY_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"PARLEY_DATA_DIR="+c.t.TempDir(),
		"PARLEY_DATABASE_URL="+c.dbURL,
		"PARLEY_KEYRING_DIR="+c.keyDir,
		"PARLEY_RATE_LOGIN=100000/1m",
		"PARLEY_RATE_MESSAGES=100000/1m",
		"PARLEY_SHUTDOWN_TIMEOUT=5s",
		"PARLEY_LOG_LEVEL=info",
		// Groups of 3 or more share one envelope per event, direct
		// conversations take the user topics: both paths in every test.
		"PARLEY_SHARED_FANOUT_MIN=3",
	)
	if c.redisURL != "" {
		env = append(env, "PARLEY_REDIS_URL="+c.redisURL)
	}
	env = append(append(env, c.extra...), extraEnv...)
	r := &replica{API: &chattest.API{T: c.t, Base: fmt.Sprintf("http://127.0.0.1:%d", port)}, t: c.t, port: port, env: env,
		log: filepath.Join(c.t.TempDir(), "server.log")}
	r.run()
	c.t.Cleanup(func() {
		r.terminate()
		if c.t.Failed() {
			b, _ := os.ReadFile(r.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			c.t.Logf("replica :%d log tail:\n%s", port, strings.Join(lines, "\n"))
		}
	})
	return r
}

func (r *replica) run() {
	r.t.Helper()
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(serverBin)
	r.cmd.Env = r.env
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.dead = false
	if err := waitHTTP(r.Base+"/healthz", 15*time.Second); err != nil {
		r.t.Fatal(err)
	}
}

// kill9 kills the process without any chance to clean up.
func (r *replica) kill9() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	r.cmd.Wait()
	r.dead = true
}

func (r *replica) terminate() {
	if r.dead || r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { r.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-done
	}
	r.dead = true
}

func (r *replica) ready() (int, string) {
	res, err := http.Get(r.Base + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1024)
	n, _ := res.Body.Read(buf)
	b.Write(buf[:n])
	return res.StatusCode, b.String()
}

var bg = context.Background()

func must(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	chattest.Must(t, ok, format, args...)
}
