package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/presence"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
)

const maxBody = 20

// fixture is a messaging.Service on a fresh SQLite store with a real
// keyring, and an event sink in place of package delivery.
type fixture struct {
	svc     *messaging.Service
	db      *sqlstore.DB
	events  *sink
	metrics *metrics.Metrics
	// clock, when set, is the service's time (tests of windows and expiry).
	clock atomic.Pointer[time.Time]
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	db, err := sqlstore.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "parley.db"), sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := keyring.LoadOrGenerate(t.TempDir(), keyring.Options{Reserver: db})
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	f := &fixture{db: db, events: &sink{}, metrics: metrics.New()}
	f.svc = messaging.New(messaging.Config{Store: db, Keys: keys, Events: f.events, Presence: presence.NewMemory(nil),
		Audit: audit.New(db, log, nil), Logger: log, MaxBodyChars: maxBody, Metrics: f.metrics,
		Now: func() time.Time {
			if c := f.clock.Load(); c != nil {
				return *c
			}
			return time.Now()
		}})
	return f
}

// another returns a second Service on the fixture's store (another replica,
// or other settings), with its own keyring, events and presence; edit
// changes its Config.
func (f *fixture) another(t *testing.T, edit func(*messaging.Config)) *messaging.Service {
	t.Helper()
	keys, err := keyring.LoadOrGenerate(t.TempDir(), keyring.Options{Reserver: f.db})
	if err != nil {
		t.Fatal(err)
	}
	c := messaging.Config{Store: f.db, Keys: keys, Events: &sink{}, Presence: presence.NewMemory(nil),
		Audit: audit.New(f.db, slog.New(slog.DiscardHandler), nil), Logger: slog.New(slog.DiscardHandler), MaxBodyChars: maxBody}
	if edit != nil {
		edit(&c)
	}
	return messaging.New(c)
}

func (f *fixture) user(t *testing.T, name string) string {
	t.Helper()
	u := &store.User{ID: "u_" + name, Username: name, Email: name + "@example.test", DisplayName: name,
		PasswordHash: "unused", CreatedAt: time.Now().UTC()}
	if err := f.db.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", name, err)
	}
	return u.ID
}

// group creates a group owned by owner and forgets the events it caused.
func (f *fixture) group(t *testing.T, owner string, members ...string) string {
	t.Helper()
	c, err := f.svc.CreateGroup(t.Context(), owner, "the group", members)
	if err != nil {
		t.Fatalf("CreateGroup: %v", err)
	}
	f.events.take()
	return c.ID
}

func (f *fixture) send(t *testing.T, from, conv, body string) *protocol.Message {
	t.Helper()
	m, created, err := f.svc.Send(t.Context(), from, conv, "", body)
	if err != nil || !created {
		t.Fatalf("Send(%q): created=%v err=%v", body, created, err)
	}
	return m
}

// sink records the events the service emits.
type sink struct {
	mu     sync.Mutex
	events []delivery.Event
}

func (s *sink) Publish(_ context.Context, e delivery.Event) {
	e.To = slices.Clone(e.To)
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
}

// take returns the events so far and forgets them.
func (s *sink) take() []delivery.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.events
	s.events = nil
	return out
}

func sorted(ids ...string) []string { return slices.Sorted(slices.Values(ids)) }

func wantTo(t *testing.T, what string, e delivery.Event, ids ...string) {
	t.Helper()
	if got := sorted(e.To...); !slices.Equal(got, sorted(ids...)) {
		t.Errorf("%s went to %q, want %q", what, got, sorted(ids...))
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !apperr.Is(err, code) {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

func wantNoEvents(t *testing.T, what string, s *sink) {
	t.Helper()
	if ev := s.take(); len(ev) != 0 {
		t.Errorf("%s emitted %d events: %+v", what, len(ev), ev)
	}
}

func TestSend(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	conv := f.group(t, alice, bob, carol)

	m, created, err := f.svc.Send(t.Context(), alice, conv, "cl-1", "hello, bob")
	if err != nil || !created {
		t.Fatalf("Send: created=%v err=%v", created, err)
	}
	if m.Seq != 1 || m.Body != "hello, bob" || m.SenderID != alice || m.ClientID != "cl-1" || m.ConversationID != conv {
		t.Errorf("Send returned %+v", m)
	}

	ev := f.events.take()
	if len(ev) != 1 {
		t.Fatalf("Send emitted %d events, want 1", len(ev))
	}
	e := ev[0]
	wantTo(t, "the message", e, alice, bob, carol) // the sender's other devices too
	if e.Conversation != conv || e.Seq != 1 || !e.Stored.Equal(m.CreatedAt) {
		t.Errorf("event placed at %q seq %d stored %v, want %q seq 1 stored %v", e.Conversation, e.Seq, e.Stored, conv, m.CreatedAt)
	}
	if fr, ok := e.Frame.(protocol.MessageFrame); !ok || fr.Message == nil || !reflect.DeepEqual(*fr.Message, *m) {
		t.Errorf("event frame %#v, want a message frame with the sent message", e.Frame)
	}

	// Stored sealed: the row read back has no plaintext, and names its key.
	rows, err := f.db.MessagesAfter(t.Context(), conv, 0, 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("stored rows: %d, %v", len(rows), err)
	}
	if r := rows[0]; strings.Contains(r.BodySealed, "hello") || r.BodySealed == "" || r.KeyID == "" ||
		keyring.KeyID(r.BodySealed) != r.KeyID || r.ID != m.ID || r.Seq != 1 {
		t.Errorf("stored row %+v: want a sealed body (no plaintext) under its key id", r)
	}
	c, err := f.db.Conversation(t.Context(), conv)
	if err != nil || c.TitleSealed == "" || strings.Contains(c.TitleSealed, "the group") {
		t.Errorf("stored title %q (%v): want it sealed", c.TitleSealed, err)
	}

	// The next message takes the next seq.
	if m2 := f.send(t, bob, conv, "hi alice"); m2.Seq != 2 {
		t.Errorf("second message seq %d, want 2", m2.Seq)
	}
	if ev := f.events.take(); len(ev) != 1 || ev[0].Seq != 2 {
		t.Errorf("second message events %+v, want one at seq 2", ev)
	}
}

func TestSendRetry(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, alice, bob)
	first, _, err := f.svc.Send(t.Context(), alice, conv, "cl-retry", "once")
	if err != nil {
		t.Fatal(err)
	}
	f.events.take()

	// The same clientId returns the stored message (even with another body:
	// the first one counts) and stores nothing new.
	again, created, err := f.svc.Send(t.Context(), alice, conv, "cl-retry", "once, again")
	if err != nil || created {
		t.Fatalf("retry: created=%v err=%v, want the stored message", created, err)
	}
	if !reflect.DeepEqual(*again, *first) {
		t.Errorf("retry returned %+v, want %+v", again, first)
	}
	if rows, _ := f.db.MessagesAfter(t.Context(), conv, 0, 10); len(rows) != 1 {
		t.Errorf("%d messages stored after a retry, want 1", len(rows))
	}
	retryEvents := f.events.take()

	// Issue 9: a retry publishes again (the first attempt may have died
	// between storing and publishing; clients de-duplicate by id). Flip this
	// sub-test if that decision changes.
	t.Run("RetryPublishesAgain", func(t *testing.T) {
		if len(retryEvents) != 1 {
			t.Fatalf("retry emitted %d events, want 1", len(retryEvents))
		}
		e := retryEvents[0]
		wantTo(t, "the retried message", e, alice, bob)
		fr, ok := e.Frame.(protocol.MessageFrame)
		if !ok || fr.Message == nil || fr.Message.ID != first.ID || e.Seq != first.Seq || e.Conversation != conv {
			t.Errorf("retry event %+v, want the stored message %s at seq %d", e, first.ID, first.Seq)
		}
	})

	// Another sender may use the same clientId: it is unique per sender.
	if _, created, err := f.svc.Send(t.Context(), bob, conv, "cl-retry", "mine"); err != nil || !created {
		t.Errorf("another sender's message with the same clientId: created=%v err=%v", created, err)
	}
}

func TestSendRefused(t *testing.T) {
	f := newFixture(t)
	alice, bob, eve := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "eve")
	conv := f.group(t, alice, bob)

	_, _, err := f.svc.Send(t.Context(), eve, conv, "", "let me in")
	wantCode(t, "non-member", err, apperr.NotFound)
	_, _, err = f.svc.Send(t.Context(), alice, "c_does_not_exist", "", "anyone?")
	wantCode(t, "unknown conversation", err, apperr.NotFound)

	for _, tc := range []struct {
		name, clientID, body, code string
	}{
		{"empty", "", "", apperr.MessageEmpty},
		{"blank", "", " \t\n ", apperr.MessageEmpty},
		{"too long", "", strings.Repeat("a", maxBody+1), apperr.MessageTooLong},
		{"too many characters", "", strings.Repeat("é", maxBody+1), apperr.MessageTooLong},
		{"invalid UTF-8", "", "caf\xe9", apperr.InvalidRequest},
		{"bad clientId", "no spaces allowed", "hello", apperr.InvalidRequest},
	} {
		_, _, err := f.svc.Send(t.Context(), alice, conv, tc.clientID, tc.body)
		wantCode(t, tc.name, err, tc.code)
	}
	wantNoEvents(t, "refused sends", f.events)
	if rows, _ := f.db.MessagesAfter(t.Context(), conv, 0, 10); len(rows) != 0 {
		t.Errorf("refused sends stored %d messages", len(rows))
	}

	// The limit counts characters, not bytes.
	if m := f.send(t, alice, conv, strings.Repeat("é", maxBody)); m.Body != strings.Repeat("é", maxBody) {
		t.Errorf("body of %d two-byte characters came back as %q", maxBody, m.Body)
	}
}

func TestMarkRead(t *testing.T) {
	f := newFixture(t)
	alice, bob, eve := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "eve")
	conv := f.group(t, alice, bob)
	f.send(t, alice, conv, "one")
	f.send(t, alice, conv, "two")
	f.events.take()

	read, err := f.svc.MarkRead(t.Context(), bob, conv, 2)
	if err != nil || read != 2 {
		t.Fatalf("MarkRead: %d, %v", read, err)
	}
	ev := f.events.take()
	if len(ev) != 1 {
		t.Fatalf("MarkRead emitted %d events, want 1", len(ev))
	}
	wantTo(t, "the read marker", ev[0], alice, bob) // the reader's other devices too
	if fr, ok := ev[0].Frame.(protocol.ReadFrame); !ok || fr != (protocol.ReadFrame{ConversationID: conv, UserID: bob, Seq: 2}) {
		t.Errorf("frame %#v, want bob's read marker at 2", ev[0].Frame)
	}
	if ev[0].Conversation != "" || ev[0].Seq != 0 {
		t.Errorf("a read marker placed in the message order: %q seq %d", ev[0].Conversation, ev[0].Seq)
	}

	// The marker never moves back; the frame carries where it stands.
	if read, err := f.svc.MarkRead(t.Context(), bob, conv, 1); err != nil || read != 2 {
		t.Errorf("MarkRead backwards: %d, %v, want 2", read, err)
	}
	if ev := f.events.take(); len(ev) != 1 || ev[0].Frame.(protocol.ReadFrame).Seq != 2 {
		t.Errorf("MarkRead backwards emitted %+v, want one frame at 2", ev)
	}

	_, err = f.svc.MarkRead(t.Context(), eve, conv, 1)
	wantCode(t, "non-member", err, apperr.NotFound)
	_, err = f.svc.MarkRead(t.Context(), bob, conv, -1)
	wantCode(t, "negative seq", err, apperr.InvalidRequest)
	wantNoEvents(t, "refused MarkRead", f.events)
}

func TestTyping(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol, eve := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol"), f.user(t, "eve")
	conv := f.group(t, alice, bob, carol)

	if err := f.svc.Typing(t.Context(), alice, conv); err != nil {
		t.Fatal(err)
	}
	ev := f.events.take()
	if len(ev) != 1 {
		t.Fatalf("Typing emitted %d events, want 1", len(ev))
	}
	wantTo(t, "typing", ev[0], bob, carol)
	if fr, ok := ev[0].Frame.(protocol.TypingFrame); !ok || fr != (protocol.TypingFrame{ConversationID: conv, UserID: alice}) {
		t.Errorf("frame %#v, want alice typing", ev[0].Frame)
	}

	wantCode(t, "non-member typing", f.svc.Typing(t.Context(), eve, conv), apperr.NotFound)
	wantNoEvents(t, "non-member typing", f.events)
}

// conversationFrames maps each recipient of a conversation frame to the
// conversation it was shown, and returns the recipients of removed frames.
func conversationFrames(t *testing.T, ev []delivery.Event) (shown map[string]*protocol.Conversation, removed []string) {
	t.Helper()
	shown = map[string]*protocol.Conversation{}
	for _, e := range ev {
		if len(e.To) != 1 {
			t.Errorf("a %s frame went to %q, want one user (each sees their own view)", e.Frame.FrameType(), e.To)
			continue
		}
		switch fr := e.Frame.(type) {
		case protocol.ConversationFrame:
			if _, dup := shown[e.To[0]]; dup {
				t.Errorf("%s was sent the conversation twice", e.To[0])
			}
			shown[e.To[0]] = fr.Conversation
		case protocol.RemovedFrame:
			removed = append(removed, e.To[0])
		default:
			t.Errorf("unexpected %s frame", e.Frame.FrameType())
		}
	}
	return shown, removed
}

func keys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func memberIDs(c *protocol.Conversation) []string {
	var out []string
	for _, m := range c.Members {
		out = append(out, m.ID)
	}
	return sorted(out...)
}

func TestGroupMembershipEvents(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol, dave := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol"), f.user(t, "dave")

	// Created: every member but the creator (who has the answer) is told.
	c, err := f.svc.CreateGroup(t.Context(), alice, "  Plans  ", []string{bob, carol, alice, ""})
	if err != nil {
		t.Fatal(err)
	}
	if c.Title != "Plans" || !slices.Equal(memberIDs(c), sorted(alice, bob, carol)) {
		t.Errorf("created %q with members %q", c.Title, memberIDs(c))
	}
	shown, removed := conversationFrames(t, f.events.take())
	if !slices.Equal(keys(shown), sorted(bob, carol)) || len(removed) != 0 {
		t.Errorf("CreateGroup told %q (removed %q), want bob and carol", keys(shown), removed)
	}
	for id, v := range shown {
		if v.ID != c.ID || v.Title != "Plans" || !slices.Equal(memberIDs(v), sorted(alice, bob, carol)) {
			t.Errorf("%s was shown %+v", id, v)
		}
	}

	// Added: everyone, the new member included, sees the new member list.
	if _, err := f.svc.AddMember(t.Context(), alice, c.ID, dave); err != nil {
		t.Fatal(err)
	}
	shown, removed = conversationFrames(t, f.events.take())
	if !slices.Equal(keys(shown), sorted(alice, bob, carol, dave)) || len(removed) != 0 {
		t.Errorf("AddMember told %q (removed %q), want all four members", keys(shown), removed)
	}
	for id, v := range shown {
		if !slices.Equal(memberIDs(v), sorted(alice, bob, carol, dave)) {
			t.Errorf("%s was shown members %q", id, memberIDs(v))
		}
	}

	// Removed: the removed member gets a removed frame only; the rest the
	// new member list.
	if err := f.svc.RemoveMember(t.Context(), alice, c.ID, carol); err != nil {
		t.Fatal(err)
	}
	shown, removed = conversationFrames(t, f.events.take())
	if !slices.Equal(removed, []string{carol}) || !slices.Equal(keys(shown), sorted(alice, bob, dave)) {
		t.Errorf("RemoveMember: removed frames to %q, conversation frames to %q; want carol, and the other three", removed, keys(shown))
	}
	for id, v := range shown {
		if !slices.Equal(memberIDs(v), sorted(alice, bob, dave)) {
			t.Errorf("%s was shown members %q", id, memberIDs(v))
		}
	}

	// Leaving is removing oneself.
	if err := f.svc.RemoveMember(t.Context(), dave, c.ID, dave); err != nil {
		t.Fatal(err)
	}
	shown, removed = conversationFrames(t, f.events.take())
	if !slices.Equal(removed, []string{dave}) || !slices.Equal(keys(shown), sorted(alice, bob)) {
		t.Errorf("leaving: removed frames to %q, conversation frames to %q", removed, keys(shown))
	}

	// Refused changes tell no one.
	_, err = f.svc.AddMember(t.Context(), bob, c.ID, carol)
	wantCode(t, "a plain member adding", err, apperr.Forbidden)
	wantCode(t, "removing the owner", f.svc.RemoveMember(t.Context(), bob, c.ID, alice), apperr.Forbidden)
	_, err = f.svc.AddMember(t.Context(), carol, c.ID, carol)
	wantCode(t, "a former member adding", err, apperr.NotFound)
	_, err = f.svc.AddMember(t.Context(), alice, c.ID, bob)
	wantCode(t, "adding a member twice", err, apperr.Conflict)
	wantNoEvents(t, "refused membership changes", f.events)
}

func TestCreateDirectEvents(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	c, created, err := f.svc.CreateDirect(t.Context(), alice, bob)
	if err != nil || !created {
		t.Fatalf("CreateDirect: created=%v err=%v", created, err)
	}
	shown, _ := conversationFrames(t, f.events.take())
	if !slices.Equal(keys(shown), []string{bob}) || shown[bob].ID != c.ID {
		t.Errorf("CreateDirect told %q, want bob", keys(shown))
	}
	// Opening it again (from either side) finds it and tells no one.
	again, created, err := f.svc.CreateDirect(t.Context(), bob, alice)
	if err != nil || created || again.ID != c.ID {
		t.Errorf("CreateDirect again: %v created=%v err=%v, want the same conversation", again, created, err)
	}
	wantNoEvents(t, "opening an existing direct conversation", f.events)
}

func seqs(ms []protocol.Message) []int64 {
	var out []int64
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func TestHistory(t *testing.T) {
	f := newFixture(t)
	alice, bob, eve := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "eve")
	conv := f.group(t, alice, bob)
	for i := 1; i <= 7; i++ {
		f.send(t, alice, conv, fmt.Sprint("message ", i))
	}
	f.events.take()

	for _, tc := range []struct {
		name string
		page messaging.Page
		want []int64
		more bool
	}{
		{"newest", messaging.Page{Limit: 3}, []int64{5, 6, 7}, true},
		{"before 5", messaging.Page{Before: 5, Limit: 3}, []int64{2, 3, 4}, true},
		{"before 2", messaging.Page{Before: 2, Limit: 3}, []int64{1}, false},
		{"before 4, exactly the rest", messaging.Page{Before: 4, Limit: 3}, []int64{1, 2, 3}, false},
		{"after 0: from the first", messaging.Page{Forward: true, After: 0, Limit: 2}, []int64{1, 2}, true},
		{"after 4", messaging.Page{Forward: true, After: 4, Limit: 2}, []int64{5, 6}, true},
		{"after 5, exactly the rest", messaging.Page{Forward: true, After: 5, Limit: 2}, []int64{6, 7}, false},
		{"after the last", messaging.Page{Forward: true, After: 7, Limit: 2}, nil, false},
		{"default limit", messaging.Page{}, []int64{1, 2, 3, 4, 5, 6, 7}, false},
	} {
		got, more, err := f.svc.History(t.Context(), bob, conv, tc.page)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(seqs(got), tc.want) || more != tc.more {
			t.Errorf("%s: seqs %v more=%v, want %v more=%v", tc.name, seqs(got), more, tc.want, tc.more)
		}
		for _, m := range got {
			if m.Body != fmt.Sprint("message ", m.Seq) {
				t.Errorf("%s: seq %d has body %q", tc.name, m.Seq, m.Body)
			}
		}
	}

	_, _, err := f.svc.History(t.Context(), eve, conv, messaging.Page{Limit: 10})
	wantCode(t, "non-member", err, apperr.NotFound)
	_, _, err = f.svc.History(t.Context(), bob, conv, messaging.Page{Forward: true, Before: 5, After: 2, Limit: 10})
	wantCode(t, "before and after", err, apperr.InvalidRequest)
	_, _, err = f.svc.History(t.Context(), bob, conv, messaging.Page{Limit: messaging.MaxHistoryLimit + 1})
	wantCode(t, "limit too high", err, apperr.InvalidRequest)
	_, _, err = f.svc.History(t.Context(), bob, conv, messaging.Page{Before: -1, Limit: 10})
	wantCode(t, "negative before", err, apperr.InvalidRequest)
	wantNoEvents(t, "History", f.events)
}

func TestSync(t *testing.T) {
	f := newFixture(t)
	alice, bob, eve := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "eve")
	long := f.group(t, alice, bob)
	short := f.group(t, alice, bob)
	quiet := f.group(t, alice, bob)
	secret := f.group(t, eve)
	// More than one page of the store (MaxHistoryLimit) in one conversation.
	const n = messaging.MaxHistoryLimit + 5
	for i := 1; i <= n; i++ {
		f.send(t, alice, long, fmt.Sprint(i))
	}
	f.send(t, bob, short, "a")
	f.send(t, bob, short, "b")
	f.send(t, eve, secret, "not for bob")
	f.events.take()

	got := map[string][]int64{}
	cursors, err := f.svc.Sync(t.Context(), bob, map[string]int64{long: 3, short: 0, quiet: 0, secret: 0},
		func(f protocol.ServerFrame) error {
			m := f.(protocol.MessageFrame).Message
			got[m.ConversationID] = append(got[m.ConversationID], m.Seq)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	var want []int64
	for s := int64(4); s <= n; s++ {
		want = append(want, s)
	}
	if !slices.Equal(got[long], want) {
		t.Errorf("long conversation: %d messages emitted (%v...), want seqs 4 to %d in order", len(got[long]), got[long][:min(5, len(got[long]))], n)
	}
	if !slices.Equal(got[short], []int64{1, 2}) || len(got[quiet]) != 0 || len(got[secret]) != 0 {
		t.Errorf("emitted %v", got)
	}
	wantCursors := map[string]int64{long: n, short: 2, quiet: 0} // not a member of secret: left out
	if fmt.Sprint(cursors) != fmt.Sprint(wantCursors) {
		t.Errorf("cursors %v, want %v", cursors, wantCursors)
	}
	wantNoEvents(t, "Sync", f.events)

	// An emit error stops the sync and is returned.
	stop := errors.New("connection closed")
	calls := 0
	_, err = f.svc.Sync(t.Context(), bob, map[string]int64{long: 0}, func(protocol.ServerFrame) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Sync with a failing emit: %v after %d calls, want the emit error after 1", err, calls)
	}
	_, err = f.svc.Sync(t.Context(), bob, map[string]int64{long: -1}, func(protocol.ServerFrame) error { return nil })
	wantCode(t, "negative cursor", err, apperr.InvalidRequest)
}

// parley_members_cache_total says how the members cache served each send: a
// miss reads the list, a hit does not, and a list changed by another replica
// (a second service on the same store) is found stale and read again.
func TestMembersCacheMetric(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	g := f.group(t, alice, bob, carol)
	count := func(result string) float64 {
		return testutil.ToFloat64(f.metrics.MembersCache.WithLabelValues(result))
	}
	f.send(t, bob, g, "one")
	f.send(t, bob, g, "two")
	f.send(t, bob, g, "three")
	if count("miss") != 1 || count("hit") != 2 || count("stale") != 0 {
		t.Fatalf("miss %v, hit %v, stale %v; want 1, 2, 0", count("miss"), count("hit"), count("stale"))
	}
	other := f.another(t, nil)
	if err := other.RemoveMember(t.Context(), alice, g, carol); err != nil {
		t.Fatal(err)
	}
	f.events.take()
	f.send(t, bob, g, "four")
	if count("stale") != 1 {
		t.Errorf("stale %v after another replica removed a member, want 1", count("stale"))
	}
	for _, e := range f.events.take() {
		if slices.Contains(e.To, carol) {
			t.Errorf("the send after carol's removal went to her: %+v", e)
		}
	}
}

// -max-group-members bounds a group at creation and when members are added,
// the creator included; the refusal names the limit and changes nothing.
func TestMaxGroupMembers(t *testing.T) {
	f := newFixture(t)
	a, b, c, d := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol"), f.user(t, "dave")
	svc := f.another(t, func(c *messaging.Config) { c.MaxGroupMembers = 3 })
	_, err := svc.CreateGroup(t.Context(), a, "four", []string{b, c, d})
	wantCode(t, "a group of 4 with a limit of 3", err, apperr.InvalidRequest)
	if err == nil || !strings.Contains(err.Error(), "at most 3 members") {
		t.Errorf("refusal %q does not name the limit", err)
	}
	g, err := svc.CreateGroup(t.Context(), a, "three", []string{b, c})
	if err != nil {
		t.Fatalf("a group of 3 with a limit of 3: %v", err)
	}
	_, err = svc.AddMember(t.Context(), a, g.ID, d)
	wantCode(t, "adding a 4th member", err, apperr.InvalidRequest)
	ms, err := f.db.Members(t.Context(), g.ID)
	if err != nil || len(ms) != 3 {
		t.Errorf("after the refused add: %d members, %v; want 3", len(ms), err)
	}
}

// countingStore counts the reads a membership announcement makes.
type countingStore struct {
	*sqlstore.DB
	summaries, users atomic.Int64
}

func (c *countingStore) ConversationSummary(ctx context.Context, userID, convID string) (*store.ConversationSummary, error) {
	c.summaries.Add(1)
	return c.DB.ConversationSummary(ctx, userID, convID)
}

func (c *countingStore) MemberSummaries(ctx context.Context, convID string) ([]store.ConversationSummary, error) {
	c.summaries.Add(1)
	return c.DB.MemberSummaries(ctx, convID)
}

func (c *countingStore) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	c.users.Add(1)
	return c.DB.UsersByIDs(ctx, ids)
}

// Creating a group, adding, removing and renaming tell every member with
// their own view, read and built once for the whole group: the reads do not
// grow with the number of members (a group of 1,000 took over 30 s to create
// when each member's view was read on its own).
func TestMembershipAnnouncementsReadOnceForTheGroup(t *testing.T) {
	f := newFixture(t)
	cs := &countingStore{DB: f.db}
	events := &sink{}
	svc := f.another(t, func(c *messaging.Config) { c.Store, c.Events = cs, events })
	owner := f.user(t, "owner")
	var members []string
	for i := range 40 {
		members = append(members, f.user(t, fmt.Sprint("m", i)))
	}
	late := f.user(t, "late")
	reads := func() int64 { return cs.summaries.Swap(0) + cs.users.Swap(0) }
	frames := func() map[string]protocol.Conversation {
		got := map[string]protocol.Conversation{}
		for _, e := range events.take() {
			if cf, ok := e.Frame.(protocol.ConversationFrame); ok && len(e.To) == 1 {
				got[e.To[0]] = *cf.Conversation
			}
		}
		return got
	}

	g, err := svc.CreateGroup(t.Context(), owner, "forty", members)
	if err != nil {
		t.Fatal(err)
	}
	if n := reads(); n > 6 {
		t.Errorf("creating a group of 41 read summaries and users %d times, want a handful", n)
	}
	if got := frames(); len(got) != 40 || len(got[members[0]].Members) != 41 {
		t.Errorf("creation told %d members (first saw %d members), want 40 and 41", len(got), len(got[members[0]].Members))
	}
	// Per-member fields stay each member's own: bob's unread count after
	// a message from someone else, the sender's own is 0.
	if _, _, err := svc.Send(t.Context(), members[0], g.ID, "", "hi"); err != nil {
		t.Fatal(err)
	}
	events.take()
	reads()
	if _, err := svc.AddMember(t.Context(), owner, g.ID, late); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n > 8 {
		t.Errorf("adding a member to a group of 41 read summaries and users %d times, want a handful", n)
	}
	got := frames()
	if len(got) != 42 || got[members[1]].Unread != 1 || got[members[0]].Unread != 0 || got[late].Unread != 1 ||
		len(got[late].Members) != 42 {
		t.Errorf("add told %d members; unread: m1 %d (want 1), sender %d (want 0), newcomer %d (want 1); newcomer saw %d members",
			len(got), got[members[1]].Unread, got[members[0]].Unread, got[late].Unread, len(got[late].Members))
	}
	if err := svc.RemoveMember(t.Context(), owner, g.ID, late); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n > 6 {
		t.Errorf("removing a member read summaries and users %d times", n)
	}
	if got := frames(); len(got) != 41 {
		t.Errorf("removal told %d members, want the 41 left", len(got))
	}
	if _, err := svc.RenameGroup(t.Context(), owner, g.ID, "renamed"); err != nil {
		t.Fatal(err)
	}
	if got := frames(); len(got) != 41 || got[members[5]].Title != "renamed" {
		t.Errorf("rename told %d members", len(got))
	}
}

// Every send is timed or counted by its failure's code, whichever transport
// called the use case (the alerts' send-error ratio reads these).
func TestSendMetrics(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	g := f.group(t, alice, bob)
	f.send(t, alice, g, "one")
	f.send(t, bob, g, "two")
	if n := testutil.CollectAndCount(f.metrics.SendDuration); n != 1 {
		t.Fatalf("send duration: %d series", n)
	}
	if got := histogramCount(t, f.metrics.SendDuration); got != 2 {
		t.Errorf("send duration observed %d sends, want 2", got)
	}
	_, _, err := f.svc.Send(t.Context(), carol, g, "", "not a member")
	wantCode(t, "a non-member's send", err, apperr.NotFound)
	_, _, err = f.svc.Send(t.Context(), alice, g, "", strings.Repeat("x", maxBody+1))
	wantCode(t, "a long send", err, apperr.MessageTooLong)
	for code, want := range map[string]float64{apperr.NotFound: 1, apperr.MessageTooLong: 1, apperr.Unavailable: 0} {
		if got := testutil.ToFloat64(f.metrics.SendFailures.WithLabelValues(code)); got != want {
			t.Errorf("send failures %s = %v, want %v", code, got, want)
		}
	}
	if got := histogramCount(t, f.metrics.SendDuration); got != 2 {
		t.Errorf("failed sends were timed: %d observations, want 2", got)
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
