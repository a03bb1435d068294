package backplane_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/backplane/backplanetest"
)

func TestMemory(t *testing.T) {
	backplanetest.Run(t, func(t *testing.T) backplane.Backplane {
		bp := backplane.NewMemory()
		t.Cleanup(func() { bp.Close() })
		return bp
	})
}

// TestRedis runs the suite on a private redis-server, which the outage test
// stops and starts again on the same port (a shared server cannot be
// stopped). Every backplane has its own client, as replicas do.
func TestRedis(t *testing.T) {
	srv := startRedis(t)
	backplanetest.Run(t, func(t *testing.T) backplane.Backplane {
		c := redis.NewClient(&redis.Options{Addr: srv.addr()})
		bp := backplane.NewRedis(c, backplane.RedisOptions{})
		t.Cleanup(func() {
			if err := bp.Close(); err != nil {
				t.Logf("Close: %v", err) // a subscription connection the outage broke
			}
			c.Close()
		})
		return bp
	}, backplanetest.Replicas(), backplanetest.Outage(func(*testing.T) { srv.stop() }, srv.start))
}

// redisProc is a private redis-server a test may stop and start again on the
// same port.
type redisProc struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisProc {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the Redis backplane tests need a redis-server")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server not found: run `make test` (hack/install-deps.sh installs it)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := &redisProc{port: port, dir: t.TempDir()}
	r.start(t)
	t.Cleanup(r.stop)
	return r
}

func (r *redisProc) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

func (r *redisProc) start(t *testing.T) {
	t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no")
	log, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", r.addr()); err == nil {
			c.Close()
			return
		}
	}
	logText, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
	t.Fatalf("redis-server did not listen on %s within 5s:\n%s", r.addr(), logText)
}

// stop kills the server at once, as a crash would.
func (r *redisProc) stop() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}
