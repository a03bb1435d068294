package realtime

import (
	"log/slog"
	"testing"
	"time"

	"net/http"
	"net/http/httptest"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// A connection whose queue is full is closed (1013) instead of blocking the
// publisher: delivery to everyone else goes on.
func TestSlowConsumerIsDroppedNotWaitedFor(t *testing.T) {
	m := metrics.New()
	h := &Hub{opts: Options{WriteWait: 50 * time.Millisecond}, log: slog.New(slog.DiscardHandler), metrics: m,
		users: map[string]map[*conn]struct{}{}}
	slow := &conn{hub: h, userID: "u1", send: make(chan outFrame, 2), done: make(chan struct{})}
	fast := &conn{hub: h, userID: "u1", send: make(chan outFrame, 100), done: make(chan struct{})}
	h.users["u1"] = map[*conn]struct{}{slow: {}, fast: {}}

	env := protocol.Envelope(protocol.KindFrame, time.Now(), []byte(`{"type":"message"}`))
	start := time.Now()
	for i := 0; i < 10; i++ {
		h.Deliver("u:u1", env)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("delivery blocked for %v", d)
	}
	select {
	case <-slow.done:
	default:
		t.Fatal("slow connection not closed")
	}
	if slow.code != websocket.CloseTryAgainLater {
		t.Fatalf("slow connection closed with %d, want 1013", slow.code)
	}
	if len(fast.send) != 10 {
		t.Fatalf("fast connection got %d of 10 frames", len(fast.send))
	}
	select {
	case <-fast.done:
		t.Fatal("fast connection closed")
	default:
	}
}

// Frames answering a client's own requests wait for room instead (back-pressure
// on that client only), up to the write timeout.
func TestPushWaitsThenGivesUp(t *testing.T) {
	h := &Hub{opts: Options{WriteWait: 100 * time.Millisecond}, log: slog.New(slog.DiscardHandler)}
	c := &conn{hub: h, send: make(chan outFrame, 1), done: make(chan struct{})}
	if !c.push(protocol.ServerFrame{Type: "pong"}) {
		t.Fatal("push into an empty queue failed")
	}
	go func() { time.Sleep(30 * time.Millisecond); <-c.send }()
	if !c.push(protocol.ServerFrame{Type: "pong"}) {
		t.Fatal("push did not wait for room")
	}
	if c.push(protocol.ServerFrame{Type: "pong"}) {
		t.Fatal("push into a queue that never drains succeeded")
	}
	if c.code != websocket.CloseTryAgainLater {
		t.Fatalf("closed with %d, want 1013", c.code)
	}
}

func TestOriginAllowed(t *testing.T) {
	h := &Hub{}
	req := func(host, origin string) bool {
		r := httptestRequest(host, origin)
		return h.OriginAllowed(r)
	}
	if !req("chat.example.com", "") {
		t.Error("no Origin (not a browser) refused")
	}
	if !req("chat.example.com", "https://chat.example.com") {
		t.Error("own origin refused")
	}
	for _, o := range []string{"https://evil.example", "https://chat.example.com.evil.example", "null", "chat.example.com"} {
		if req("chat.example.com", o) {
			t.Errorf("origin %q allowed", o)
		}
	}
	h.opts.AllowedOrigins = []string{"https://app.example.com"}
	if !req("api.example.com", "https://app.example.com") || req("api.example.com", "https://api.example.com") {
		t.Error("allow-list not applied")
	}
}
func httptestRequest(host, origin string) *http.Request {
	r := httptest.NewRequest("GET", "http://"+host+"/api/v1/ws", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	return r
}
