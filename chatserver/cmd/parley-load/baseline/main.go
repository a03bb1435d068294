// Command baseline is the bare broadcast server parley-load measures Parley
// against: gorilla/websocket with one reader and one writer goroutine per
// connection, fan-out in process, and nothing else: no persistence, no
// encryption, no backplane, no real authentication. It answers the few routes
// of Parley's API (docs/api.md) that parley-load uses, with the same frame
// shapes, so the same load generator drives both. Listens on loopback only.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("baseline", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("-addr %s: loopback only", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := newServer()
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		s.closeAll()
	}()
	slog.Info("baseline broadcast server listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

type server struct {
	upgrader websocket.Upgrader
	nextID   atomic.Int64

	mu    sync.RWMutex
	users map[string]map[*bconn]struct{} // user id -> connections
	convs map[string]*bconv
}

type bconv struct {
	members []string
	seq     atomic.Int64
}

type bconn struct {
	user string
	ws   *websocket.Conn
	send chan []byte
	done chan struct{}
	once sync.Once
}

func newServer() *server {
	return &server{
		upgrader: websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{},
			Subprotocols: []string{"parley.v1"}, CheckOrigin: func(*http.Request) bool { return true }},
		users: map[string]map[*bconn]struct{}{},
		convs: map[string]*bconv{},
	}
}

func (s *server) id(prefix string) string {
	return prefix + strconv.FormatInt(s.nextID.Add(1), 36)
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/auth/register", s.register)
	mux.HandleFunc("POST /api/v1/auth/login", s.register)
	mux.HandleFunc("GET /api/v1/me", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"id": bearer(r)})
	})
	mux.HandleFunc("POST /api/v1/ws/ticket", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"ticket": bearer(r)})
	})
	mux.HandleFunc("POST /api/v1/conversations/direct", s.conversation)
	mux.HandleFunc("POST /api/v1/conversations/group", s.conversation)
	mux.HandleFunc("GET /api/v1/ws", s.serveWS)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

func bearer(r *http.Request) string {
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// register accepts anyone: the access token is the user id.
func (s *server) register(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Username string `json:"username"`
		Login    string `json:"login"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request"}})
		return
	}
	id := s.id("u")
	writeJSON(w, http.StatusCreated, map[string]any{
		"user":                 map[string]string{"id": id, "username": in.Username + in.Login},
		"accessToken":          id,
		"accessTokenExpiresAt": time.Now().Add(time.Hour).UTC(),
	})
}

func (s *server) conversation(w http.ResponseWriter, r *http.Request) {
	var in struct {
		UserID    string   `json:"userId"`
		MemberIDs []string `json:"memberIds"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]string{"code": "invalid_request"}})
		return
	}
	members := append([]string{bearer(r)}, in.MemberIDs...)
	if in.UserID != "" {
		members = append(members, in.UserID)
	}
	id := s.id("c")
	s.mu.Lock()
	s.convs[id] = &bconv{members: members}
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("ticket")
	if user == "" {
		http.Error(w, "ticket required", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(32 << 10)
	c := &bconn{user: user, ws: ws, send: make(chan []byte, 256), done: make(chan struct{})}
	s.mu.Lock()
	set := s.users[user]
	if set == nil {
		set = map[*bconn]struct{}{}
		s.users[user] = set
	}
	set[c] = struct{}{}
	s.mu.Unlock()
	go c.writeLoop()
	c.offer([]byte(`{"type":"ready","userId":"` + user + `","protocol":1}`))
	s.readLoop(c)
	s.mu.Lock()
	delete(s.users[user], c)
	if len(s.users[user]) == 0 {
		delete(s.users, user)
	}
	s.mu.Unlock()
	c.stop()
}

func (c *bconn) stop() { c.once.Do(func() { close(c.done) }) }

// offer queues a frame; a connection that cannot keep up is dropped.
func (c *bconn) offer(f []byte) {
	select {
	case c.send <- f:
	case <-c.done:
	default:
		c.stop()
	}
}

func (c *bconn) writeLoop() {
	defer c.ws.Close()
	for {
		select {
		case f := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, f); err != nil {
				c.stop()
				return
			}
		case <-c.done:
			return
		}
	}
}

type message struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversationId"`
	Seq            int64     `json:"seq"`
	SenderID       string    `json:"senderId"`
	ClientID       string    `json:"clientId"`
	Body           string    `json:"body"`
	CreatedAt      time.Time `json:"createdAt"`
}

func (s *server) readLoop(c *bconn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		var f struct {
			Type           string `json:"type"`
			ID             string `json:"id"`
			ConversationID string `json:"conversationId"`
			ClientID       string `json:"clientId"`
			Body           string `json:"body"`
		}
		if json.Unmarshal(data, &f) != nil || f.Type != "send" {
			continue
		}
		s.mu.RLock()
		cv := s.convs[f.ConversationID]
		s.mu.RUnlock()
		if cv == nil {
			c.offer([]byte(`{"type":"error","id":"` + f.ID + `","code":"not_found","message":"no such conversation"}`))
			continue
		}
		m := message{ID: s.id("m"), ConversationID: f.ConversationID, Seq: cv.seq.Add(1), SenderID: c.user,
			ClientID: f.ClientID, Body: f.Body, CreatedAt: time.Now().UTC()}
		frame, _ := json.Marshal(struct {
			Type    string   `json:"type"`
			Message *message `json:"message"`
		}{"message", &m})
		ack, _ := json.Marshal(struct {
			Type    string   `json:"type"`
			ID      string   `json:"id"`
			Message *message `json:"message"`
		}{"ack", f.ID, &m})
		var targets []*bconn
		s.mu.RLock()
		for _, u := range cv.members {
			for t := range s.users[u] {
				targets = append(targets, t)
			}
		}
		s.mu.RUnlock()
		for _, t := range targets {
			t.offer(frame)
		}
		c.offer(ack)
	}
}

func (s *server) closeAll() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, set := range s.users {
		for c := range set {
			c.stop()
		}
	}
}
