package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/server"
)

// testServer is a real chat server on a loopback port.
type testServer struct {
	t    *testing.T
	base string
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
	url := postgresDatabase(t)
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
	ts := &testServer{t: t, base: "http://" + srv.Addr(), srv: srv, cfg: cfg}
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

// postgresDatabase creates a fresh database on the test PostgreSQL server and
// drops it after the test.
func postgresDatabase(t *testing.T) string {
	t.Helper()
	admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if admin == "" {
		if testing.Short() {
			t.Skip("-short: PostgreSQL tests need PARLEY_TEST_POSTGRES_URL")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set: run `make test`, which starts PostgreSQL (hack/postgres.sh)")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := "parley_e2e_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.Exec("DROP DATABASE " + name + " WITH (FORCE)")
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// client is one signed-in user of a test server.
type client struct {
	ts      *testServer
	user    protocol.User
	token   string
	refresh string
	pw      string
	ip      string // X-Forwarded-For, when the server trusts loopback as a proxy
}

type apiResp struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResp) code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (r apiResp) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (ts *testServer) do(method, path, tok string, body any, hdr ...string) apiResp {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return apiResp{status: res.StatusCode, header: res.Header, body: raw}
}

type session struct {
	User                 protocol.User `json:"user"`
	AccessToken          string        `json:"accessToken"`
	AccessTokenExpiresAt time.Time     `json:"accessTokenExpiresAt"`
	RefreshToken         string        `json:"refreshToken"`
}

func (ts *testServer) register(name string) *client {
	ts.t.Helper()
	pw := "pw-" + name + "-long-enough-passphrase"
	r := ts.do("POST", "/api/v1/auth/register", "", map[string]string{"username": name,
		"email": name + "@example.com", "password": pw, "displayName": strings.ToUpper(name[:1]) + name[1:], "session": "body"})
	if r.status != http.StatusCreated {
		ts.t.Fatalf("register %s: %d %s", name, r.status, r.body)
	}
	var s session
	r.decode(ts.t, &s)
	return &client{ts: ts, user: s.User, token: s.AccessToken, refresh: s.RefreshToken, pw: pw}
}

func (c *client) do(method, path string, body any) apiResp {
	c.ts.t.Helper()
	if c.ip != "" {
		return c.ts.do(method, path, c.token, body, "X-Forwarded-For", c.ip)
	}
	return c.ts.do(method, path, c.token, body)
}

func (c *client) direct(other *client) protocol.Conversation {
	c.ts.t.Helper()
	r := c.do("POST", "/api/v1/conversations/direct", map[string]string{"userId": other.user.ID})
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		c.ts.t.Fatalf("direct: %d %s", r.status, r.body)
	}
	var conv protocol.Conversation
	r.decode(c.ts.t, &conv)
	return conv
}

func (c *client) send(convID, body string) protocol.Message {
	c.ts.t.Helper()
	r := c.do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"body": body})
	if r.status != http.StatusCreated {
		c.ts.t.Fatalf("send: %d %s", r.status, r.body)
	}
	var m protocol.Message
	r.decode(c.ts.t, &m)
	return m
}

// wsConn is a WebSocket client speaking protocol v1.
type wsConn struct {
	t      *testing.T
	c      *websocket.Conn
	frames chan protocol.ServerFrame
	closed chan *websocket.CloseError
}

func (c *client) ticket() string {
	c.ts.t.Helper()
	r := c.do("POST", "/api/v1/ws/ticket", nil)
	if r.status != http.StatusOK {
		c.ts.t.Fatalf("ticket: %d %s", r.status, r.body)
	}
	var tk struct{ Ticket string }
	r.decode(c.ts.t, &tk)
	return tk.Ticket
}

func (ts *testServer) wsURL(query string) string {
	return "ws" + strings.TrimPrefix(ts.base, "http") + "/api/v1/ws" + query
}

// dial opens a WebSocket with a ticket and waits for "ready".
func (c *client) dial() *wsConn {
	c.ts.t.Helper()
	w, res, err := c.ts.dialRaw("?ticket="+url.QueryEscape(c.ticket()), nil)
	if err != nil {
		c.ts.t.Fatalf("dial: %v (%v)", err, res)
	}
	if f := w.next(5 * time.Second); f.Type != "ready" || f.UserID != c.user.ID {
		c.ts.t.Fatalf("first frame %+v, want ready for %s", f, c.user.ID)
	}
	return w
}

func (ts *testServer) dialRaw(query string, hdr http.Header) (*wsConn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{protocol.Subprotocol}}
	c, res, err := d.Dial(ts.wsURL(query), hdr)
	if err != nil {
		return nil, res, err
	}
	w := &wsConn{t: ts.t, c: c, frames: make(chan protocol.ServerFrame, 1024), closed: make(chan *websocket.CloseError, 1)}
	go w.read()
	ts.t.Cleanup(func() { c.Close() })
	return w, res, nil
}

func (w *wsConn) read() {
	for {
		_, data, err := w.c.ReadMessage()
		if err != nil {
			ce, _ := err.(*websocket.CloseError)
			w.closed <- ce
			close(w.frames)
			return
		}
		var f struct {
			protocol.ServerFrame
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			w.t.Errorf("bad frame %s", data)
			continue
		}
		sf := f.ServerFrame
		if f.Type == "error" {
			json.Unmarshal(f.Message, &sf.ErrMessage)
		} else if len(f.Message) > 0 {
			sf.Message = new(protocol.Message)
			json.Unmarshal(f.Message, sf.Message)
		}
		w.frames <- sf
	}
}

func (w *wsConn) write(v any) {
	w.t.Helper()
	if err := w.c.WriteJSON(v); err != nil {
		w.t.Fatalf("ws write: %v", err)
	}
}

// next returns the next frame, failing the test after timeout.
func (w *wsConn) next(timeout time.Duration) protocol.ServerFrame {
	w.t.Helper()
	select {
	case f, ok := <-w.frames:
		if !ok {
			w.t.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(timeout):
		w.t.Fatal("no frame within", timeout)
	}
	return protocol.ServerFrame{}
}

// waitFor skips frames until one of type typ arrives.
func (w *wsConn) waitFor(typ string, timeout time.Duration) protocol.ServerFrame {
	w.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				w.t.Fatalf("connection closed while waiting for %q", typ)
			}
			if f.Type == typ {
				return f
			}
		case <-deadline:
			w.t.Fatalf("no %q frame within %v", typ, timeout)
		}
	}
}

// quiet asserts no frame of type typ arrives within d.
func (w *wsConn) quiet(typ string, d time.Duration) {
	w.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-w.frames:
			if !ok {
				return
			}
			if f.Type == typ {
				w.t.Fatalf("unexpected %q frame: %+v", typ, f)
			}
		case <-deadline:
			return
		}
	}
}

// closedWith waits for the connection to close and returns the close code.
func (w *wsConn) closedWith(timeout time.Duration) int {
	w.t.Helper()
	select {
	case ce := <-w.closed:
		if ce == nil {
			return websocket.CloseAbnormalClosure
		}
		return ce.Code
	case <-time.After(timeout):
		w.t.Fatalf("connection still open after %v", timeout)
	}
	return 0
}

func (w *wsConn) sendMsg(id, convID, clientID, body string) {
	w.write(map[string]any{"type": "send", "id": id, "conversationId": convID, "clientId": clientID, "body": body})
}

func must(t *testing.T, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}

// sqlDB opens a SQLite database file of a stopped test server directly.
func sqlDB(t *testing.T, dsn string) (*sql.DB, error) {
	t.Helper()
	return sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite://"))
}
