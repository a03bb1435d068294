package server_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/server"
)

// testServer is a real chat server on a loopback port.
type testServer struct {
	*chattest.API
	t    *testing.T
	srv  *server.Server
	cfg  *config.Config
	stop func()
}

type option func(args *[]string, env map[string]string)

func withArgs(a ...string) option {
	return func(args *[]string, _ map[string]string) { *args = append(*args, a...) }
}

// withPostgres points the server at a fresh PostgreSQL database.
func withPostgres(t *testing.T) option {
	url := chattest.PostgresDatabase(t)
	return withArgs("-database-url", url)
}

func start(t *testing.T, opts ...option) *testServer {
	t.Helper()
	args := []string{"-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-log-level", "error",
		"-rate-login", "1000/1m", "-rate-messages", "1000/1m"}
	env := map[string]string{}
	for _, o := range opts {
		o(&args, env)
	}
	cfg, err := config.Load(args, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(&testLog{t: t}, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, log, server.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var once sync.Once
	ts := &testServer{API: &chattest.API{T: t, Base: "http://" + srv.Addr()}, t: t, srv: srv, cfg: cfg}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server stopped with %v", err)
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

// testLog sends server logs to the test log (shown only on failure).
type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Aliases keep the tests short.
type (
	client  = chattest.Client
	wsConn  = chattest.WS
	session = chattest.Session
	apiResp = chattest.Resp
)

var must = chattest.Must

// sqlDB opens a SQLite database file of a stopped test server directly.
func sqlDB(t *testing.T, dsn string) (*sql.DB, error) {
	t.Helper()
	return sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
}

func base64URL(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }
