package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
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
			alice, bob := ts.register("alice"), ts.register("bob")
			conv := alice.direct(bob)

			a := alice.dial()
			b1, b2 := bob.dial(), bob.dial()
			a.sendMsg("r1", conv.ID, "k1", "hello both devices")
			ack := a.waitFor("ack", 5*time.Second)
			must(t, ack.ID == "r1" && ack.Message != nil && ack.Message.Seq == 1, "ack %+v", ack)
			for i, b := range []*wsConn{b1, b2} {
				f := b.waitFor("message", 5*time.Second)
				must(t, f.Message.ID == ack.Message.ID && f.Message.Body == "hello both devices",
					"device %d got %+v", i+1, f.Message)
			}
			cursor := ack.Message.Seq

			b1.c.Close()
			b2.c.Close()
			for i := 0; i < 50; i++ {
				a.sendMsg(fmt.Sprint("s", i), conv.ID, fmt.Sprint("k-off-", i), fmt.Sprint("missed ", i))
				must(t, a.waitFor("ack", 5*time.Second).ID == fmt.Sprint("s", i), "ack %d", i)
			}

			b3 := bob.dial()
			b3.write(map[string]any{"type": "sync", "id": "sync1", "cursors": map[string]int64{conv.ID: cursor}})
			for i := 0; i < 50; i++ {
				f := b3.next(5 * time.Second)
				if f.Type == "presence" {
					i--
					continue
				}
				must(t, f.Type == "message", "frame %d is %q, want message", i, f.Type)
				must(t, f.Message.Seq == cursor+int64(i)+1 && f.Message.Body == fmt.Sprint("missed ", i),
					"catch-up %d: seq %d body %q", i, f.Message.Seq, f.Message.Body)
			}
			synced := b3.waitFor("synced", 5*time.Second)
			must(t, synced.Cursors[conv.ID] == cursor+50, "synced cursors %v", synced.Cursors)
			b3.quiet("message", 300*time.Millisecond) // nothing twice
		})
	}
}

func TestWebSocketAuthentication(t *testing.T) {
	ts := start(t)
	alice := ts.register("alice")

	t.Run("ticket is single use", func(t *testing.T) {
		tk := alice.ticket()
		w, _, err := ts.dialRaw("?ticket="+tk, nil)
		if err != nil {
			t.Fatal(err)
		}
		must(t, w.next(5*time.Second).Type == "ready", "first use refused")
		_, res, err := ts.dialRaw("?ticket="+tk, nil)
		must(t, err != nil && res != nil && res.StatusCode == http.StatusUnauthorized, "second use: err=%v res=%v", err, res)
	})
	t.Run("access token is not a ticket", func(t *testing.T) {
		_, res, err := ts.dialRaw("?ticket="+alice.token, nil)
		must(t, err != nil && res.StatusCode == http.StatusUnauthorized, "access token in URL accepted")
	})
	t.Run("first-frame auth", func(t *testing.T) {
		w, _, err := ts.dialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.write(map[string]string{"type": "auth", "token": alice.token})
		f := w.next(5 * time.Second)
		must(t, f.Type == "ready" && f.UserID == alice.user.ID && f.ExpiresAt != nil, "ready %+v", f)
	})
	t.Run("first frame must authenticate", func(t *testing.T) {
		w, _, err := ts.dialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		w.write(map[string]string{"type": "send", "body": "sneaky"})
		must(t, w.closedWith(5*time.Second) == websocket.ClosePolicyViolation, "want 1008")
	})
	t.Run("forged token in first frame", func(t *testing.T) {
		w, _, err := ts.dialRaw("", nil)
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(alice.token, ".")
		w.write(map[string]string{"type": "auth", "token": parts[0] + "." + parts[1] + ".AAAA"})
		must(t, w.closedWith(5*time.Second) == websocket.ClosePolicyViolation, "want 1008")
	})
}

func TestCrossOriginWebSocketRefused(t *testing.T) {
	ts := start(t)
	alice := ts.register("alice")
	_, res, err := ts.dialRaw("?ticket="+alice.ticket(), http.Header{"Origin": {"https://evil.example"}})
	must(t, err != nil && res != nil && res.StatusCode == http.StatusForbidden, "cross-origin: err=%v res=%v", err, res)

	own := http.Header{"Origin": {ts.base}}
	w, _, err := ts.dialRaw("?ticket="+alice.ticket(), own)
	must(t, err == nil, "same origin refused: %v", err)
	must(t, w.next(5*time.Second).Type == "ready", "same origin not ready")

	// With an allow-list, only listed origins pass (the server's own host too
	// only if listed).
	ts2 := start(t, withArgs("-allowed-origins", "https://chat.example.com"))
	bob := ts2.register("bob")
	_, res, err = ts2.dialRaw("?ticket="+bob.ticket(), http.Header{"Origin": {"https://chat.example.com.evil.example"}})
	must(t, err != nil && res.StatusCode == http.StatusForbidden, "look-alike origin accepted")
	w, _, err = ts2.dialRaw("?ticket="+bob.ticket(), http.Header{"Origin": {"https://chat.example.com"}})
	must(t, err == nil && w.next(5*time.Second).Type == "ready", "listed origin refused: %v", err)
}

func TestFrameLimits(t *testing.T) {
	ts := start(t, withArgs("-max-message-chars", "100", "-max-frame-bytes", "2048"))
	alice, bob := ts.register("alice"), ts.register("bob")
	conv := alice.direct(bob)
	w := alice.dial()

	w.sendMsg("empty", conv.ID, "e1", "")
	f := w.waitFor("error", 5*time.Second)
	must(t, f.ID == "empty" && f.Code == "message_empty", "empty: %+v", f)
	w.sendMsg("blank", conv.ID, "e2", " \n\t ")
	f = w.waitFor("error", 5*time.Second)
	must(t, f.ID == "blank" && f.Code == "message_empty", "blank: %+v", f)
	w.sendMsg("long", conv.ID, "e3", strings.Repeat("é", 101))
	f = w.waitFor("error", 5*time.Second)
	must(t, f.ID == "long" && f.Code == "message_too_long", "long: %+v", f)
	w.sendMsg("max", conv.ID, "e4", strings.Repeat("é", 100))
	must(t, w.waitFor("ack", 5*time.Second).ID == "max", "100 characters refused")
	w.write(map[string]string{"type": "nonsense"})
	must(t, w.waitFor("error", 5*time.Second).Code == "invalid_request", "unknown type")
	if err := w.c.WriteMessage(websocket.TextMessage, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	must(t, w.waitFor("error", 5*time.Second).Code == "invalid_request", "bad JSON")

	// Nothing invalid was stored: only the one good message.
	r := alice.do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil)
	must(t, strings.Count(string(r.body), `"seq"`) == 1, "stored: %s", r.body)

	// A frame over the limit closes the connection with 1009.
	big := fmt.Sprintf(`{"type":"send","id":"x","conversationId":%q,"body":%q}`, conv.ID, strings.Repeat("a", 3000))
	if err := w.c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	must(t, w.closedWith(5*time.Second) == websocket.CloseMessageTooBig, "oversized frame not closed with 1009")
}

func TestLogoutEverywhereClosesSockets(t *testing.T) {
	ts := start(t)
	alice := ts.register("alice")
	w1, w2 := alice.dial(), alice.dial()
	start := time.Now()
	r := alice.do("POST", "/api/v1/auth/logout-all", nil)
	must(t, r.status == http.StatusNoContent, "logout-all: %d %s", r.status, r.body)
	must(t, w1.closedWith(5*time.Second) == websocket.ClosePolicyViolation, "device 1 not closed with 1008")
	must(t, w2.closedWith(5*time.Second) == websocket.ClosePolicyViolation, "device 2 not closed with 1008")
	t.Logf("sockets closed %v after logout-all", time.Since(start))
	must(t, alice.do("GET", "/api/v1/me", nil).status == http.StatusUnauthorized, "old access token still works")
	r = ts.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": alice.refresh})
	must(t, r.status == http.StatusUnauthorized, "old refresh token still works: %d", r.status)
	_, res, err := ts.dialRaw("", nil)
	_ = res
	must(t, err == nil, "dial")
}

func TestAccessTokenExpiryClosesSocketUnlessRenewed(t *testing.T) {
	ts := start(t, withArgs("-access-token-ttl", "2s"))
	alice := ts.register("alice")
	w := alice.dial()
	must(t, w.closedWith(5*time.Second) == websocket.ClosePolicyViolation, "socket outlived its token")

	// Renewing with a fresh token before expiry keeps the socket open.
	refresh := func() string {
		r := ts.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": alice.refresh})
		must(t, r.status == http.StatusOK, "refresh %d %s", r.status, r.body)
		var s session
		r.decode(t, &s)
		alice.token, alice.refresh = s.AccessToken, s.RefreshToken
		return s.AccessToken
	}
	refresh()
	w2 := alice.dial()
	time.Sleep(time.Second)
	w2.write(map[string]string{"type": "auth", "token": refresh()})
	must(t, w2.waitFor("ready", 5*time.Second).ExpiresAt.After(time.Now().Add(time.Second)), "renewal not acknowledged")
	time.Sleep(1500 * time.Millisecond) // past the first token's expiry
	w2.write(map[string]string{"type": "ping", "id": "p"})
	must(t, w2.waitFor("pong", 5*time.Second).ID == "p", "renewed socket closed")
}

func TestConnectionLimit(t *testing.T) {
	ts := start(t, withArgs("-max-connections", "2"))
	alice := ts.register("alice")
	alice.dial()
	alice.dial()
	w, _, err := ts.dialRaw("?ticket="+alice.ticket(), nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, w.closedWith(5*time.Second) == websocket.CloseTryAgainLater, "third connection not refused with 1013")
}

func TestTypingPresenceAndReadReceipts(t *testing.T) {
	ts := start(t)
	alice, bob := ts.register("alice"), ts.register("bob")
	conv := alice.direct(bob)
	a := alice.dial()
	b := bob.dial()
	p := a.waitFor("presence", 5*time.Second)
	must(t, p.UserID == bob.user.ID && p.Status == "online", "presence %+v", p)

	b.write(map[string]string{"type": "typing", "conversationId": conv.ID})
	f := a.waitFor("typing", 5*time.Second)
	must(t, f.UserID == bob.user.ID && f.ConversationID == conv.ID, "typing %+v", f)
	b.quiet("typing", 200*time.Millisecond) // not echoed to the typist

	for i := 0; i < 3; i++ {
		alice.send(conv.ID, fmt.Sprint("m", i))
	}
	var list struct {
		Conversations []struct{ Unread, LastSeq int64 }
	}
	bob.do("GET", "/api/v1/conversations", nil).decode(t, &list)
	must(t, list.Conversations[0].Unread == 3, "unread %+v", list)
	b.write(map[string]any{"type": "read", "conversationId": conv.ID, "seq": 3})
	rf := a.waitFor("read", 5*time.Second)
	must(t, rf.UserID == bob.user.ID && rf.Seq == 3, "read receipt %+v", rf)
	bob.do("GET", "/api/v1/conversations", nil).decode(t, &list)
	must(t, list.Conversations[0].Unread == 0, "unread after read %+v", list)

	b.c.Close()
	p = a.waitFor("presence", 5*time.Second)
	must(t, p.UserID == bob.user.ID && p.Status == "offline" && p.LastSeen != nil, "offline presence %+v", p)
}

// On shutdown every client is told to reconnect elsewhere (1001) and the
// process exits within its deadline.
func TestGracefulShutdownTellsClientsToReconnect(t *testing.T) {
	ts := start(t, withArgs("-shutdown-timeout", "5s"))
	alice := ts.register("alice")
	w1, w2 := alice.dial(), alice.dial()
	stopped := make(chan struct{})
	begin := time.Now()
	go func() { ts.stop(); close(stopped) }()
	must(t, w1.closedWith(5*time.Second) == websocket.CloseGoingAway, "device 1: want 1001")
	must(t, w2.closedWith(5*time.Second) == websocket.CloseGoingAway, "device 2: want 1001")
	select {
	case <-stopped:
		t.Logf("stopped in %v", time.Since(begin))
	case <-time.After(6 * time.Second):
		t.Fatal("server did not stop within its shutdown timeout")
	}
}
