package realtime

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// countingConn counts the writes that reach the socket.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// Frames written between begin and flush reach the socket in one write and
// arrive whole and in order; a ping sent during the batch goes with it;
// outside a batch every frame is its own write; a batch larger than
// maxBatchBytes is written in parts.
func TestBatchConnWritesQueuedFramesTogether(t *testing.T) {
	type side struct {
		ws  *websocket.Conn
		out *countingConn
		bc  *batchConn
	}
	got := make(chan side, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj := &hijacker{ResponseWriter: w}
		ws, err := up.Upgrade(hj, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		cc := &countingConn{Conn: hj.conn.Conn}
		hj.conn.Conn = cc
		got <- side{ws, cc, hj.conn}
	}))
	defer srv.Close()
	client, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pings := make(chan struct{}, 1)
	client.SetPingHandler(func(string) error { pings <- struct{}{}; return nil })
	s := <-got
	defer s.ws.Close()

	read := func(n int, prefix string) {
		t.Helper()
		_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
		for i := range n {
			_, p, err := client.ReadMessage()
			if err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			if want := fmt.Sprintf("%s%d", prefix, i); !strings.HasPrefix(string(p), want+"|") {
				t.Fatalf("frame %d = %.20q…, want %q", i, p, want)
			}
		}
	}

	s.bc.begin()
	for i := range 50 {
		if err := s.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("a%d|%s", i, strings.Repeat("x", 200)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := s.out.writes.Load(); n != 0 {
		t.Fatalf("%d writes reached the socket during the batch, want 0", n)
	}
	if err := s.bc.flush(); err != nil {
		t.Fatal(err)
	}
	if n := s.out.writes.Swap(0); n != 1 {
		t.Errorf("a batch of 50 frames and a ping took %d writes, want 1", n)
	}
	read(50, "a")

	for i := range 3 {
		if err := s.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("b%d|", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.out.writes.Swap(0); n != 3 {
		t.Errorf("3 frames outside a batch took %d writes, want 3", n)
	}
	read(3, "b") // the client handles the ping on its way to these
	select {
	case <-pings:
	default:
		t.Error("the ping sent during the batch did not arrive")
	}

	// 40 frames of 4 KiB: 160 KiB goes out in parts of maxBatchBytes.
	s.bc.begin()
	done := make(chan struct{})
	go func() { defer close(done); read(40, "c") }()
	for i := range 40 {
		if err := s.ws.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf("c%d|%s", i, strings.Repeat("y", 4096)))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.bc.flush(); err != nil {
		t.Fatal(err)
	}
	<-done
	if n := s.out.writes.Load(); n < 2 || n > 4 {
		t.Errorf("160 KiB in one batch took %d writes, want 3 (parts of %d bytes)", n, maxBatchBytes)
	}
}
