package realtime

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"testing"
	"time"

	"net/http"
	"net/http/httptest"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// A connection whose queue is full is closed (1013) instead of blocking the
// publisher: delivery to everyone else goes on.
func TestSlowConsumerIsDroppedNotWaitedFor(t *testing.T) {
	m := metrics.New()
	h := &Hub{opts: Options{WriteWait: 50 * time.Millisecond, SendQueue: 2}, log: slog.New(slog.DiscardHandler), metrics: m,
		users: map[string]map[*conn]struct{}{}, codec: testCodec}
	slow, fast := testConn(h, "u1"), testConn(h, "u1")
	h.users["u1"] = map[*conn]struct{}{slow: {}, fast: {}}

	msgs, err := testCodec.Seal(delivery.Event{To: []string{"u1"}, Frame: protocol.MessageFrame{Message: &protocol.Message{}}, Stored: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	env := msgs[0].Payload
	start := time.Now()
	got := 0
	for i := 0; i < 10; i++ {
		h.HandlePublication(delivery.UserTopic("u1"), env)
		if i%2 == 1 {
			got += len(fast.take()) // the fast client's writer keeps up
		}
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
	if got != 10 {
		t.Fatalf("fast connection got %d of 10 frames", got)
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
	h := &Hub{opts: Options{WriteWait: 100 * time.Millisecond, SendQueue: 1}, log: slog.New(slog.DiscardHandler), metrics: metrics.New()}
	c := testConn(h, "u1")
	if !c.push(protocol.PongFrame{}) {
		t.Fatal("push into an empty queue failed")
	}
	go func() { time.Sleep(30 * time.Millisecond); c.take() }()
	if !c.push(protocol.PongFrame{}) {
		t.Fatal("push did not wait for room")
	}
	if c.push(protocol.PongFrame{}) {
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

// testConn is a connection with no socket: a writer is "running" (so none is
// started) and the test takes frames from the queue itself with take.
func testConn(h *Hub, userID string) *conn {
	c := &conn{hub: h, userID: userID, space: make(chan struct{}, 1), done: make(chan struct{}), ended: make(chan struct{})}
	c.writing = true
	return c
}

// take empties the queue as the writer does, and counts what it took.
func (c *conn) take() []outFrame {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	select {
	case c.space <- struct{}{}:
	default:
	}
	return q
}

func TestMemoryTicketsAreSingleUse(t *testing.T) {
	s := NewMemoryTickets()
	ctx := t.Context()
	tk := Ticket{UserID: "u1", SessionID: "f1", AccessExpires: time.Now().Add(time.Minute), Issued: time.Now()}
	if err := s.Put(ctx, ticketKey("secret"), tk, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.Take(ctx, ticketKey("secret"))
	if err != nil || got.UserID != "u1" || !got.AccessExpires.Equal(tk.AccessExpires) {
		t.Fatalf("Take = %+v, %v", got, err)
	}
	if _, err := s.Take(ctx, ticketKey("secret")); err != ErrNoTicket {
		t.Fatalf("second Take: %v, want ErrNoTicket", err)
	}
	_ = s.Put(ctx, ticketKey("short"), tk, time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	if _, err := s.Take(ctx, ticketKey("short")); err != ErrNoTicket {
		t.Fatalf("expired ticket: %v, want ErrNoTicket", err)
	}
	if ticketKey("secret") == "secret" || len(ticketKey("secret")) != 64 {
		t.Fatal("tickets must be stored by hash")
	}
}

// testAuth authenticates envelopes with one fixed HMAC key (the keyring
// derives its keys; the hub only needs a Codec).
type testAuth struct{}

func (testAuth) MAC(parts ...[]byte) (string, []byte) { return "k1", testSum(parts) }
func (testAuth) VerifyMAC(kid string, tag []byte, parts ...[]byte) bool {
	return kid == "k1" && hmac.Equal(tag, testSum(parts))
}

func testSum(parts [][]byte) []byte {
	h := hmac.New(sha256.New, []byte("test key"))
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}

var testCodec = delivery.NewCodec(testAuth{}, nil)
