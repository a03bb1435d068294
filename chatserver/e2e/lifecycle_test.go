package e2e

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// lifecycleFrame holds the fields of the ordered frames (docs/api.md).
type lifecycleFrame struct {
	Type      string            `json:"type"`
	Seq       int64             `json:"seq"`
	MessageID string            `json:"messageId"`
	Reason    string            `json:"reason"`
	Body      string            `json:"body"`
	Message   *protocol.Message `json:"message"`
}

func (f lifecycleFrame) seq() int64 {
	if f.Type == "message" && f.Message != nil {
		return f.Message.Seq
	}
	return f.Seq
}

// waitOrdered returns the next ordered frame (message or change event) of w.
func waitOrdered(t *testing.T, w *chattest.WS) (lifecycleFrame, []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		f := w.Next(time.Until(deadline))
		switch f.Type {
		case "message", "message_edited", "message_deleted", "reaction", "conversation_settings":
			var lf lifecycleFrame
			if err := json.Unmarshal(f.Raw, &lf); err != nil {
				t.Fatalf("decode %s: %v", f.Raw, err)
			}
			return lf, f.Raw
		case "resync", "synced":
			t.Fatalf("unexpected %s frame %s", f.Type, f.Raw)
		}
	}
	t.Fatal("no ordered frame within 15s")
	return lifecycleFrame{}, nil
}

// expiredTotal reads parley_messages_expired_total from a replica's /metrics.
func expiredTotal(t *testing.T, r *replica) int {
	t.Helper()
	n, ok := metricSample(t, r, "parley_messages_expired_total")
	if !ok {
		t.Fatal("no parley_messages_expired_total in /metrics")
	}
	return int(n)
}

// Edits, deletions, reactions, a setting change and expiries made through
// one replica are seen live, in seq order, by a member on the other; a
// device that was away catches up exactly through one cursor; expiry is
// done by one replica although both run the purger.
func TestLifecycleAcrossReplicas(t *testing.T) {
	dbURL := chattest.PostgresDatabase(t)
	redis := startRedis(t)
	c := newCluster(t, dbURL, redis.url(), "PARLEY_EXPIRY_INTERVAL=200ms", "PARLEY_POSITION_INTERVAL=500ms")
	r1, r2 := c.start(), c.start()
	alice := r1.Register("alice")
	bobR2 := r1.Register("bob").On(r2.API)
	g := alice.Group("lifecycle", bobR2)
	path := "/api/v1/conversations/" + g.ID + "/messages/"

	live := bobR2.Dial()
	live.Sync("s0", map[string]int64{g.ID: 0})
	live.WaitFor("synced", 5*time.Second)
	var seen []lifecycleFrame
	expect := func(typ string) lifecycleFrame {
		t.Helper()
		f, raw := waitOrdered(t, live)
		must(t, f.Type == typ, "live frame %s, want %s", raw, typ)
		must(t, f.seq() == int64(len(seen))+1, "live frame %s has seq %d, want %d", raw, f.seq(), len(seen)+1)
		must(t, !strings.Contains(string(raw), "e2e secret"), "live frame carries deleted text after delete: %s", raw)
		seen = append(seen, f)
		return f
	}

	m1 := alice.Send(g.ID, "first") // 1
	expect("message")
	m2 := alice.Send(g.ID, "second") // 2
	expect("message")
	cursor := int64(2) // bob's other device stops here

	r := alice.Do("PATCH", path+m1.ID, map[string]string{"body": "first, edited"}) // 3
	must(t, r.Status == 200, "edit: %d %s", r.Status, r.Body)
	must(t, expect("message_edited").Body == "first, edited", "edit frame")
	r = alice.Do("PUT", path+m2.ID+"/reactions/"+url.PathEscape("👍"), nil) // 4
	must(t, r.Status == 200, "react: %d %s", r.Status, r.Body)
	expect("reaction")
	secret := alice.Send(g.ID, "e2e secret") // 5
	f, raw := waitOrdered(t, live)
	must(t, f.Type == "message" && f.seq() == 5, "frame %s", raw)
	seen = append(seen, f)
	r = alice.Do("DELETE", path+secret.ID, nil) // 6
	must(t, r.Status == 200, "delete: %d %s", r.Status, r.Body)
	must(t, expect("message_deleted").Reason == "deleted", "delete frame")
	r = alice.Do("PUT", "/api/v1/conversations/"+g.ID+"/settings", map[string]any{"expireAfter": 3600}) // 7
	must(t, r.Status == 200, "settings: %d %s", r.Status, r.Body)
	expect("conversation_settings")

	// 20 disappearing messages (8..27); their expiry is moved into the
	// past in the database, as if the hour had passed.
	const n = 20
	for i := range n {
		m := alice.Send(g.ID, fmt.Sprint("vanishing ", i))
		must(t, m.ExpiresAt != nil, "message %d has no expiresAt", i)
		expect("message")
	}
	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("UPDATE messages SET expires_at = 1 WHERE conversation_id = $1 AND expires_at IS NOT NULL", g.ID); err != nil {
		t.Fatal(err)
	}
	for range n { // 28..47
		must(t, expect("message_deleted").Reason == "expired", "expiry frame")
	}
	last := int64(len(seen))

	// Expiry happened once: one event per message, counted by one replica.
	var events, distinct int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT message_id) FROM conversation_events
		WHERE conversation_id = $1 AND kind = 'expired'`, g.ID).Scan(&events, &distinct); err != nil {
		t.Fatal(err)
	}
	must(t, events == n && distinct == n, "expired events %d for %d messages, want %d each", events, distinct, n)
	e1, e2 := expiredTotal(t, r1), expiredTotal(t, r2)
	must(t, e1+e2 == n && (e1 == 0 || e2 == 0), "parley_messages_expired_total: %d on one replica, %d on the other; want %d on exactly one", e1, e2, n)

	// The device that was away, on the other replica: one cursor, every
	// seq after it once, in order, nothing deleted.
	away := bobR2.On(r1.API).Dial()
	away.Sync("s1", map[string]int64{g.ID: cursor})
	for want := cursor + 1; want <= last; want++ {
		f, raw := waitOrdered(t, away)
		must(t, f.seq() == want, "catch-up frame %s has seq %d, want %d", raw, f.seq(), want)
		must(t, !strings.Contains(string(raw), "e2e secret") && !strings.Contains(string(raw), "vanishing"),
			"catch-up frame carries deleted text: %s", raw)
		must(t, f.Type == seen[want-1].Type, "catch-up frame %d is %s, live was %s", want, f.Type, seen[want-1].Type)
	}
	synced := away.WaitFor("synced", 5*time.Second)
	must(t, synced.Cursors[g.ID] == last, "synced %v, want %d", synced.Cursors, last)
	away.Quiet("message", 300*time.Millisecond)

	// History on either replica: tombstones only for what was deleted.
	for _, h := range alice.On(r2.API).History(g.ID, 0) {
		if (h.ID == secret.ID && h.Deleted == nil) || strings.HasPrefix(h.Body, "vanishing") || strings.Contains(h.Body, "secret") {
			t.Errorf("history shows deleted content: %+v", h)
		}
		if h.Deleted != nil {
			must(t, h.Body == "", "tombstone with a body %+v", h)
		}
	}
}
