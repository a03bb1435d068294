package server_test

import (
	"context"

	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/store/sqlstore"
)

// A sends; both of B's devices receive it, and so does A's own socket. B goes
// offline, A sends 50, B reconnects with its cursor and gets exactly those 50,
// in order. Run on both storage engines.
func TestTwoDevicesAndOfflineCatchUp(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var opts []option
			if engine == "postgres" {
				opts = append(opts, withPostgres(t))
			}
			ts := start(t, opts...)
			alice, bob := ts.Register("alice"), ts.Register("bob")
			conv := alice.Direct(bob)

			a := alice.Dial()
			b1, b2 := bob.Dial(), bob.Dial()
			a.SendMsg("r1", conv.ID, "k1", "hello both devices")
			ack := a.WaitFor("ack", 5*time.Second)
			must(t, ack.ID == "r1" && ack.Message != nil && ack.Message.Seq == 1, "ack %+v", ack)
			for i, b := range []*wsConn{b1, b2} {
				f := b.WaitFor("message", 5*time.Second)
				must(t, f.Message.ID == ack.Message.ID && f.Message.Body == "hello both devices",
					"device %d got %+v", i+1, f.Message)
			}
			cursor := ack.Message.Seq

			b1.Conn.Close()
			b2.Conn.Close()
			for i := 0; i < 50; i++ {
				a.SendMsg(fmt.Sprint("s", i), conv.ID, fmt.Sprint("k-off-", i), fmt.Sprint("missed ", i))
				must(t, a.WaitFor("ack", 5*time.Second).ID == fmt.Sprint("s", i), "ack %d", i)
			}

			b3 := bob.Dial()
			b3.Write(map[string]any{"type": "sync", "id": "sync1", "cursors": map[string]int64{conv.ID: cursor}})
			for i := 0; i < 50; i++ {
				f := b3.Next(5 * time.Second)
				if f.Type == "presence" {
					i--
					continue
				}
				must(t, f.Type == "message", "frame %d is %q, want message", i, f.Type)
				must(t, f.Message.Seq == cursor+int64(i)+1 && f.Message.Body == fmt.Sprint("missed ", i),
					"catch-up %d: seq %d body %q", i, f.Message.Seq, f.Message.Body)
			}
			synced := b3.WaitFor("synced", 5*time.Second)
			must(t, synced.Cursors[conv.ID] == cursor+50, "synced cursors %v", synced.Cursors)
			b3.Quiet("message", 300*time.Millisecond) // nothing twice
		})
	}
}

func TestWebSocketAuthentication(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")

	t.Run("ticket is single use", func(t *testing.T) {
		tk := alice.Ticket()
		w, _, err := ts.DialRaw("?ticket="+tk, nil)
		if err != nil {
			t.Fatal(err)
		}
		must(t, w.Next(5*time.Second).Type == "ready", "first use refused")
		_, res, err := ts.DialRaw("?ticket="+tk, nil)
		must(t, err != nil && res != nil && res.StatusCode == http.StatusUnauthorized, "second use: err=%v res=%v", err, res)
	})
	t.Run("ticket bought before logout-everywhere is refused", func(t *testing.T) {
		carol := ts.Register("carol")
		tk := carol.Ticket()
		must(t, carol.Do("POST", "/api/v1/auth/logout-all", nil).Status == http.StatusNoContent, "logout-all")
		_, res, err := ts.DialRaw("?ticket="+tk, nil)
		must(t, err != nil && res != nil && res.StatusCode == http.StatusUnauthorized, "stale ticket: err=%v res=%v", err, res)
	})
	t.Run("access token is not a ticket", func(t *testing.T) {
		_, res, err := ts.DialRaw("?ticket="+alice.Token, nil)
		must(t, err != nil && res.StatusCode == http.StatusUnauthorized, "access token in URL accepted")
	})
	t.Run("first-frame auth", func(t *testing.T) {
		w, _, err := ts.DialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(map[string]string{"type": "auth", "token": alice.Token})
		f := w.Next(5 * time.Second)
		must(t, f.Type == "ready" && f.UserID == alice.User.ID && f.ExpiresAt != nil, "ready %+v", f)
	})
	t.Run("first frame must authenticate", func(t *testing.T) {
		w, _, err := ts.DialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(map[string]string{"type": "send", "body": "sneaky"})
		must(t, w.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "want 1008")
	})
	t.Run("forged token in first frame", func(t *testing.T) {
		w, _, err := ts.DialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(alice.Token, ".")
		w.Write(map[string]string{"type": "auth", "token": parts[0] + "." + parts[1] + ".AAAA"})
		must(t, w.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "want 1008")
	})
}

func TestCrossOriginWebSocketRefused(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	_, res, err := ts.DialRaw("?ticket="+alice.Ticket(), http.Header{"Origin": {"https://evil.example"}})
	must(t, err != nil && res != nil && res.StatusCode == http.StatusForbidden, "cross-origin: err=%v res=%v", err, res)

	own := http.Header{"Origin": {ts.Base}}
	w, _, err := ts.DialRaw("?ticket="+alice.Ticket(), own)
	must(t, err == nil, "same origin refused: %v", err)
	must(t, w.Next(5*time.Second).Type == "ready", "same origin not ready")

	// With an allow-list, only listed origins pass (the server's own host too
	// only if listed).
	ts2 := start(t, withArgs("-allowed-origins", "https://chat.example.com"))
	bob := ts2.Register("bob")
	_, res, err = ts2.DialRaw("?ticket="+bob.Ticket(), http.Header{"Origin": {"https://chat.example.com.evil.example"}})
	must(t, err != nil && res.StatusCode == http.StatusForbidden, "look-alike origin accepted")
	w, _, err = ts2.DialRaw("?ticket="+bob.Ticket(), http.Header{"Origin": {"https://chat.example.com"}})
	must(t, err == nil && w.Next(5*time.Second).Type == "ready", "listed origin refused: %v", err)
}

func TestFrameLimits(t *testing.T) {
	ts := start(t, withArgs("-max-message-chars", "100", "-max-frame-bytes", "2048"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	w := alice.Dial()

	w.SendMsg("empty", conv.ID, "e1", "")
	f := w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "empty" && f.Code == "message_empty", "empty: %+v", f)
	w.SendMsg("blank", conv.ID, "e2", " \n\t ")
	f = w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "blank" && f.Code == "message_empty", "blank: %+v", f)
	w.SendMsg("long", conv.ID, "e3", strings.Repeat("é", 101))
	f = w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "long" && f.Code == "message_too_long", "long: %+v", f)
	w.SendMsg("max", conv.ID, "e4", strings.Repeat("é", 100))
	must(t, w.WaitFor("ack", 5*time.Second).ID == "max", "100 characters refused")
	w.Write(map[string]string{"type": "nonsense"})
	must(t, w.WaitFor("error", 5*time.Second).Code == "invalid_request", "unknown type")
	if err := w.Conn.WriteMessage(websocket.TextMessage, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	must(t, w.WaitFor("error", 5*time.Second).Code == "invalid_request", "bad JSON")

	// Nothing invalid was stored: only the one good message.
	r := alice.Do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil)
	must(t, strings.Count(string(r.Body), `"seq"`) == 1, "stored: %s", r.Body)

	// A frame over the limit closes the connection with 1009.
	big := fmt.Sprintf(`{"type":"send","id":"x","conversationId":%q,"body":%q}`, conv.ID, strings.Repeat("a", 3000))
	if err := w.Conn.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	must(t, w.ClosedWith(5*time.Second) == websocket.CloseMessageTooBig, "oversized frame not closed with 1009")
}

func TestLogoutEverywhereClosesSockets(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	w1, w2 := alice.Dial(), alice.Dial()
	start := time.Now()
	r := alice.Do("POST", "/api/v1/auth/logout-all", nil)
	must(t, r.Status == http.StatusNoContent, "logout-all: %d %s", r.Status, r.Body)
	must(t, w1.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "device 1 not closed with 1008")
	must(t, w2.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "device 2 not closed with 1008")
	t.Logf("sockets closed %v after logout-all", time.Since(start))
	must(t, alice.Do("GET", "/api/v1/me", nil).Status == http.StatusUnauthorized, "old access token still works")
	r = ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": alice.Refresh})
	must(t, r.Status == http.StatusUnauthorized, "old refresh token still works: %d", r.Status)
	_, res, err := ts.DialRaw("", nil)
	_ = res
	must(t, err == nil, "dial")
}

func TestAccessTokenExpiryClosesSocketUnlessRenewed(t *testing.T) {
	ts := start(t, withArgs("-access-token-ttl", "2s"))
	alice := ts.Register("alice")
	w := alice.Dial()
	must(t, w.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "socket outlived its token")

	// Renewing with a fresh token before expiry keeps the socket open.
	refresh := func() string {
		r := ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": alice.Refresh})
		must(t, r.Status == http.StatusOK, "refresh %d %s", r.Status, r.Body)
		var s session
		r.Decode(t, &s)
		alice.Token, alice.Refresh = s.AccessToken, s.RefreshToken
		return s.AccessToken
	}
	refresh()
	w2 := alice.Dial()
	time.Sleep(time.Second)
	w2.Write(map[string]string{"type": "auth", "token": refresh()})
	must(t, w2.WaitFor("ready", 5*time.Second).ExpiresAt.After(time.Now().Add(time.Second)), "renewal not acknowledged")
	time.Sleep(1500 * time.Millisecond) // past the first token's expiry
	w2.Write(map[string]string{"type": "ping", "id": "p"})
	must(t, w2.WaitFor("pong", 5*time.Second).ID == "p", "renewed socket closed")
}

func TestConnectionLimit(t *testing.T) {
	ts := start(t, withArgs("-max-connections", "2"))
	alice := ts.Register("alice")
	alice.Dial()
	alice.Dial()
	w, _, err := ts.DialRaw("?ticket="+alice.Ticket(), nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.ClosedWith(5*time.Second) == websocket.CloseTryAgainLater, "third connection not refused with 1013")
}

func TestTypingPresenceAndReadReceipts(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	a := alice.Dial()
	b := bob.Dial()
	p := a.WaitFor("presence", 5*time.Second)
	must(t, p.UserID == bob.User.ID && p.Status == "online", "presence %+v", p)

	b.Write(map[string]string{"type": "typing", "conversationId": conv.ID})
	f := a.WaitFor("typing", 5*time.Second)
	must(t, f.UserID == bob.User.ID && f.ConversationID == conv.ID, "typing %+v", f)
	b.Quiet("typing", 200*time.Millisecond) // not echoed to the typist

	for i := 0; i < 3; i++ {
		alice.Send(conv.ID, fmt.Sprint("m", i))
	}
	var list struct {
		Conversations []struct{ Unread, LastSeq int64 }
	}
	bob.Do("GET", "/api/v1/conversations", nil).Decode(t, &list)
	must(t, list.Conversations[0].Unread == 3, "unread %+v", list)
	b.Write(map[string]any{"type": "read", "conversationId": conv.ID, "seq": 3})
	rf := a.WaitFor("read", 5*time.Second)
	must(t, rf.UserID == bob.User.ID && rf.Seq == 3, "read receipt %+v", rf)
	bob.Do("GET", "/api/v1/conversations", nil).Decode(t, &list)
	must(t, list.Conversations[0].Unread == 0, "unread after read %+v", list)
	// After a reload Alice still sees how far Bob has read ("seen").
	var mine struct {
		Conversations []struct {
			Members []struct {
				ID      string
				ReadSeq int64
			}
		}
	}
	alice.Do("GET", "/api/v1/conversations", nil).Decode(t, &mine)
	for _, m := range mine.Conversations[0].Members {
		if m.ID == bob.User.ID {
			must(t, m.ReadSeq == 3, "bob's read marker as alice sees it: %d", m.ReadSeq)
		}
	}

	b.Conn.Close()
	p = a.WaitFor("presence", 5*time.Second)
	must(t, p.UserID == bob.User.ID && p.Status == "offline" && p.LastSeen != nil, "offline presence %+v", p)
}

// On shutdown every client is told to reconnect elsewhere (1001) and the
// process exits within its deadline.
func TestGracefulShutdownTellsClientsToReconnect(t *testing.T) {
	ts := start(t, withArgs("-shutdown-timeout", "5s"))
	alice := ts.Register("alice")
	w1, w2 := alice.Dial(), alice.Dial()
	stopped := make(chan struct{})
	begin := time.Now()
	go func() { ts.stop(); close(stopped) }()
	must(t, w1.ClosedWith(5*time.Second) == websocket.CloseGoingAway, "device 1: want 1001")
	must(t, w2.ClosedWith(5*time.Second) == websocket.CloseGoingAway, "device 2: want 1001")
	select {
	case <-stopped:
		t.Logf("stopped in %v", time.Since(begin))
	case <-time.After(6 * time.Second):
		t.Fatal("server did not stop within its shutdown timeout")
	}
}

// A send that is in flight when shutdown begins is either stored and acked,
// or not stored at all: never stored without its ack (the client would
// retry it anyway with the same clientId, but it should not have to).
func TestShutdownAcksWhatItStored(t *testing.T) {
	for i := 0; i < 5; i++ {
		ts := start(t, withArgs("-shutdown-timeout", "5s"))
		alice, bob := ts.Register("alice"), ts.Register("bob")
		conv := alice.Direct(bob)
		w := alice.Dial()
		w.SendMsg("inflight", conv.ID, "inflight", "sent as the server stops")
		go ts.stop()
		acked := false
		for f := range w.Frames {
			if f.Type == "ack" && f.ID == "inflight" {
				acked = true
			}
		}
		code := w.ClosedWith(5 * time.Second)
		must(t, code == websocket.CloseGoingAway, "round %d: closed with %d, not 1001", i, code)
		ts.stop()
		db, err := sqlstore.Open(context.Background(), ts.cfg.DatabaseURL, sqlstore.Options{})
		must(t, err == nil, "reopen: %v", err)
		ms, err := db.MessagesAfter(context.Background(), conv.ID, 0, 10)
		db.Close()
		must(t, err == nil, "messages: %v", err)
		must(t, len(ms) == 0 || acked, "round %d: message stored but never acked", i)
		t.Logf("round %d: stored=%d acked=%v", i, len(ms), acked)
	}
}
