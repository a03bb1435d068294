package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var lifecycleTests = []test{
	{"EditMessage", testEditMessage},
	{"DeleteMessageRemovesCiphertext", testDeleteMessage},
	{"Reactions", testReactions},
	{"SetExpireAfter", testSetExpireAfter},
	{"ExpiredMessages", testExpiredMessages},
	{"TakeLease", testTakeLease},
	{"SummaryWithEvents", testSummaryWithEvents},
	{"ChangesShareSeqConcurrent", testChangesShareSeqConcurrent},
	{"ReplyToStored", testReplyToStored},
}

func lastSeq(t *testing.T, s store.Store, convID string) int64 {
	t.Helper()
	c, err := s.Conversation(ctx(t), convID)
	wantNoErr(t, "Conversation", err)
	return c.LastSeq
}

func eventSeqs(es []store.Event) []int64 {
	out := []int64{}
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func testEditMessage(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	other := mustGroup(t, s, t0, a, b)
	m1 := mustSend(t, s, conv, a, t0)
	at := t0.Add(time.Minute)
	got, ev, err := s.EditMessage(ctx(t), conv.ID, m1.ID, "v1.k2.edited", "k2", a.ID, at)
	wantNoErr(t, "EditMessage", err)
	wantEq(t, "edited body", got.BodySealed, "v1.k2.edited")
	wantEq(t, "edited key", got.KeyID, "k2")
	wantEq(t, "edited seq (the message keeps its seq)", got.Seq, m1.Seq)
	if got.EditedAt == nil || !got.EditedAt.Equal(at) {
		t.Errorf("EditedAt = %v, want %v", got.EditedAt, at)
	}
	if ev == nil || ev.Seq != 2 || ev.Kind != store.EventEdited || ev.MessageID != m1.ID || ev.ActorID != a.ID {
		t.Fatalf("edit event = %+v, want seq 2 edited of %s by %s", ev, m1.ID, a.ID)
	}
	m3 := mustSend(t, s, conv, b, t0.Add(2*time.Minute))
	wantEq(t, "seq after an edit event", m3.Seq, int64(3))
	wantEq(t, "LastSeq", lastSeq(t, s, conv.ID), int64(3))
	evs, err := s.EventsAfter(ctx(t), conv.ID, 0, 10)
	wantNoErr(t, "EventsAfter", err)
	wantEq(t, "events", fmt.Sprint(eventSeqs(evs)), "[2]")
	evs, err = s.EventsAfter(ctx(t), conv.ID, 2, 10)
	wantNoErr(t, "EventsAfter(2)", err)
	wantEq(t, "events after 2", len(evs), 0)
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 10)
	wantNoErr(t, "MessagesAfter", err)
	wantEq(t, "history seqs (events are not messages)", fmt.Sprint(seqs(ms)), "[1 3]")
	wantEq(t, "history shows the edit", ms[0].BodySealed, "v1.k2.edited")

	// Failures take no seq.
	_, _, err = s.EditMessage(ctx(t), other.ID, m1.ID, "v1.k2.x", "k2", a.ID, at)
	wantErr(t, "edit naming another conversation", err, store.ErrNotFound)
	_, _, err = s.EditMessage(ctx(t), conv.ID, "m_nope", "v1.k2.x", "k2", a.ID, at)
	wantErr(t, "edit of an unknown message", err, store.ErrNotFound)
	_, _, err = s.DeleteMessage(ctx(t), conv.ID, m1.ID, a.ID, store.EventDeleted, at)
	wantNoErr(t, "DeleteMessage", err)
	_, _, err = s.EditMessage(ctx(t), conv.ID, m1.ID, "v1.k2.x", "k2", a.ID, at)
	wantErr(t, "edit of a tombstone", err, store.ErrGone)
	wantEq(t, "LastSeq after failed edits", lastSeq(t, s, conv.ID), int64(4))
	wantEq(t, "other conversation untouched", lastSeq(t, s, other.ID), int64(0))
}

func testDeleteMessage(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	m1 := mustSend(t, s, conv, a, t0)
	ev0, err := s.SetReaction(ctx(t), conv.ID, m1.ID, b.ID, "👍", true, 20, t0)
	wantNoErr(t, "SetReaction", err)
	wantEq(t, "reaction seq", ev0.Seq, int64(2))
	before, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)

	at := t0.Add(time.Minute)
	tomb, ev, err := s.DeleteMessage(ctx(t), conv.ID, m1.ID, b.ID, store.EventDeleted, at)
	wantNoErr(t, "DeleteMessage", err)
	if ev == nil || ev.Seq != 3 || ev.Kind != store.EventDeleted || ev.ActorID != b.ID || ev.MessageID != m1.ID {
		t.Fatalf("delete event = %+v", ev)
	}
	wantEq(t, "tombstone body", tomb.BodySealed, "")
	wantEq(t, "tombstone key", tomb.KeyID, "")
	wantEq(t, "tombstone seq", tomb.Seq, m1.Seq)
	wantEq(t, "tombstone sender", tomb.SenderID, a.ID)
	wantEq(t, "deleted by", tomb.DeletedBy, b.ID)
	wantEq(t, "reason", tomb.DeleteReason, store.EventDeleted)
	if tomb.DeletedAt == nil || !tomb.DeletedAt.Equal(at) {
		t.Errorf("DeletedAt = %v, want %v", tomb.DeletedAt, at)
	}
	// The row as every read path returns it holds no ciphertext.
	byID, err := s.MessageByID(ctx(t), conv.ID, m1.ID)
	wantNoErr(t, "MessageByID", err)
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 10)
	wantNoErr(t, "MessagesAfter", err)
	older, err := s.MessagesBefore(ctx(t), conv.ID, 100, 10)
	wantNoErr(t, "MessagesBefore", err)
	sum, err := s.ConversationSummary(ctx(t), a.ID, conv.ID)
	wantNoErr(t, "ConversationSummary", err)
	for what, m := range map[string]store.Message{"MessageByID": *byID, "MessagesAfter": ms[0],
		"MessagesBefore": older[0], "summary's LastMessage": *sum.LastMessage} {
		if m.BodySealed != "" || m.KeyID != "" || m.DeletedAt == nil {
			t.Errorf("%s after delete = %+v, want a tombstone without ciphertext", what, m)
		}
	}
	rc, err := s.ReactionCounts(ctx(t), []string{m1.ID}, b.ID)
	wantNoErr(t, "ReactionCounts", err)
	wantEq(t, "reactions left on a tombstone", len(rc), 0)
	after, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "sealed with k1 after delete", after["k1"], before["k1"]-1)
	if _, ok := after[""]; ok {
		t.Errorf("SealedCounts counts tombstones under an empty key: %v", after)
	}
	sealed, err := s.MessagesSealedWith(ctx(t), "", 10)
	wantNoErr(t, "MessagesSealedWith", err)
	wantEq(t, "tombstones to re-seal", len(sealed), 0)

	// Again: nothing written, the tombstone answered.
	again, ev2, err := s.DeleteMessage(ctx(t), conv.ID, m1.ID, a.ID, store.EventDeleted, at.Add(time.Minute))
	wantNoErr(t, "DeleteMessage again", err)
	if ev2 != nil {
		t.Errorf("second delete wrote event %+v", ev2)
	}
	wantEq(t, "second delete keeps the first deleter", again.DeletedBy, b.ID)
	wantEq(t, "LastSeq", lastSeq(t, s, conv.ID), int64(3))
	_, _, err = s.DeleteMessage(ctx(t), conv.ID, "m_nope", a.ID, store.EventDeleted, at)
	wantErr(t, "delete of an unknown message", err, store.ErrNotFound)
	wantEq(t, "LastSeq after a failed delete", lastSeq(t, s, conv.ID), int64(3))
	evs, err := s.EventsAfter(ctx(t), conv.ID, 0, 10)
	wantNoErr(t, "EventsAfter", err)
	wantEq(t, "events", fmt.Sprint(eventSeqs(evs)), "[2 3]")
	wantEq(t, "reaction event data", evs[0].Data, `{"emoji":"👍","added":true}`)
}

func testReactions(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustGroup(t, s, t0, a, b, c)
	m := mustSend(t, s, conv, a, t0)
	m2 := mustSend(t, s, conv, a, t0)
	react := func(u *store.User, emoji string, add bool, at time.Time) *store.Event {
		t.Helper()
		ev, err := s.SetReaction(ctx(t), conv.ID, m.ID, u.ID, emoji, add, 3, at)
		wantNoErr(t, fmt.Sprintf("SetReaction(%s %s %v)", u.Username, emoji, add), err)
		return ev
	}
	if ev := react(b, "👍", true, t0.Add(1*time.Second)); ev == nil || ev.Seq != 3 || ev.ActorID != b.ID {
		t.Fatalf("first reaction event = %+v", ev)
	}
	if ev := react(b, "👍", true, t0.Add(2*time.Second)); ev != nil {
		t.Errorf("the same reaction again wrote %+v", ev)
	}
	react(c, "🎉", true, t0.Add(3*time.Second))
	react(c, "👍", true, t0.Add(4*time.Second))
	react(a, "❤️", true, t0.Add(5*time.Second))
	// A fourth distinct emoji passes maxDistinct (3); an existing one does not.
	_, err := s.SetReaction(ctx(t), conv.ID, m.ID, b.ID, "😂", true, 3, t0)
	wantErr(t, "a fourth distinct emoji", err, store.ErrLimit)
	react(b, "🎉", true, t0.Add(6*time.Second))
	rc, err := s.ReactionCounts(ctx(t), []string{m.ID, m2.ID}, c.ID)
	wantNoErr(t, "ReactionCounts", err)
	wantEq(t, "counts (first-added order, me for carol)", fmt.Sprint(rc),
		fmt.Sprint([]store.ReactionCount{rcount(m.ID, "👍", 2, true), rcount(m.ID, "🎉", 2, true), rcount(m.ID, "❤️", 1, false)}))
	if ev := react(b, "👍", false, t0.Add(7*time.Second)); ev == nil || ev.Data != `{"emoji":"👍","added":false}` {
		t.Errorf("removal event = %+v", ev)
	}
	if ev := react(b, "👍", false, t0.Add(8*time.Second)); ev != nil {
		t.Errorf("removing a missing reaction wrote %+v", ev)
	}
	rc, err = s.ReactionCounts(ctx(t), []string{m.ID}, b.ID)
	wantNoErr(t, "ReactionCounts", err)
	// Order follows each emoji's oldest remaining reaction: carol's 👍 came after 🎉.
	wantEq(t, "counts after removal", fmt.Sprint(rc),
		fmt.Sprint([]store.ReactionCount{rcount(m.ID, "🎉", 2, true), rcount(m.ID, "👍", 1, false), rcount(m.ID, "❤️", 1, false)}))
	_, err = s.SetReaction(ctx(t), conv.ID, "m_nope", b.ID, "👍", true, 3, t0)
	wantErr(t, "reaction on an unknown message", err, store.ErrNotFound)
	other := mustGroup(t, s, t0, a, b)
	_, err = s.SetReaction(ctx(t), other.ID, m.ID, b.ID, "👍", true, 3, t0)
	wantErr(t, "reaction naming another conversation", err, store.ErrNotFound)
	_, _, err = s.DeleteMessage(ctx(t), conv.ID, m2.ID, a.ID, store.EventDeleted, t0)
	wantNoErr(t, "DeleteMessage", err)
	_, err = s.SetReaction(ctx(t), conv.ID, m2.ID, b.ID, "👍", true, 3, t0)
	wantErr(t, "reaction on a tombstone", err, store.ErrGone)
	// 2 messages, 6 reaction changes, 1 deletion; failures took nothing.
	wantEq(t, "LastSeq", lastSeq(t, s, conv.ID), int64(9))
}

func testSetExpireAfter(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	ev, err := s.SetExpireAfter(ctx(t), conv.ID, a.ID, time.Hour, t0)
	wantNoErr(t, "SetExpireAfter", err)
	if ev == nil || ev.Seq != 1 || ev.Kind != store.EventSettings || ev.ActorID != a.ID || ev.MessageID != "" {
		t.Fatalf("settings event = %+v", ev)
	}
	var data struct{ ExpireAfter int64 }
	wantNoErr(t, "event data", json.Unmarshal([]byte(ev.Data), &data))
	wantEq(t, "event expireAfter", data.ExpireAfter, int64(3600))
	c, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "ExpireAfter", c.ExpireAfter, time.Hour)
	sum, err := s.ConversationSummary(ctx(t), b.ID, conv.ID)
	wantNoErr(t, "ConversationSummary", err)
	wantEq(t, "summary ExpireAfter", sum.ExpireAfter, time.Hour)
	// A message stored while the setting is on expires that long after its time.
	m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantNoErr(t, "AppendMessage", err)
	if m.ExpiresAt == nil || !m.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("ExpiresAt of a message sent under expireAfter = %v, want %v", m.ExpiresAt, t0.Add(time.Hour))
	}
	if read, err := s.MessageByID(ctx(t), conv.ID, m.ID); err != nil || read.ExpiresAt == nil || !read.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("ExpiresAt read back = %+v, %v", read, err)
	}
	ev, err = s.SetExpireAfter(ctx(t), conv.ID, b.ID, time.Hour, t0)
	wantNoErr(t, "SetExpireAfter same", err)
	if ev != nil {
		t.Errorf("the same value wrote %+v", ev)
	}
	ev, err = s.SetExpireAfter(ctx(t), conv.ID, b.ID, 0, t0)
	wantNoErr(t, "SetExpireAfter off", err)
	wantEq(t, "off event seq", ev.Seq, int64(3))
	m, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantNoErr(t, "AppendMessage", err)
	if m.ExpiresAt != nil {
		t.Errorf("ExpiresAt with the setting off = %v", m.ExpiresAt)
	}
	_, err = s.SetExpireAfter(ctx(t), "c_nope", a.ID, time.Hour, t0)
	wantErr(t, "unknown conversation", err, store.ErrNotFound)
}

func testExpiredMessages(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	send := func(expires *time.Time) *store.Message {
		t.Helper()
		m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID,
			BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0, ExpiresAt: expires})
		wantNoErr(t, "AppendMessage", err)
		return m
	}
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	m1 := send(at(time.Hour))
	m2 := send(at(time.Minute))
	send(nil)
	m4 := send(at(2 * time.Hour))
	stored, err := s.MessageByID(ctx(t), conv.ID, m1.ID)
	wantNoErr(t, "MessageByID", err)
	if stored.ExpiresAt == nil || !stored.ExpiresAt.Equal(*at(time.Hour)) {
		t.Errorf("ExpiresAt = %v", stored.ExpiresAt)
	}
	now := t0.Add(90 * time.Minute)
	got, err := s.ExpiredMessages(ctx(t), now, 10)
	wantNoErr(t, "ExpiredMessages", err)
	ids := []string{}
	for _, m := range got {
		ids = append(ids, m.ID)
	}
	wantStrings(t, "expired (oldest expiry first)", ids, []string{m2.ID, m1.ID})
	n, err := s.ExpiryBacklog(ctx(t), now)
	wantNoErr(t, "ExpiryBacklog", err)
	wantEq(t, "backlog", n, int64(2))
	got, err = s.ExpiredMessages(ctx(t), now, 1)
	wantNoErr(t, "ExpiredMessages limit 1", err)
	wantEq(t, "limited", len(got), 1)
	tomb, ev, err := s.DeleteMessage(ctx(t), conv.ID, m2.ID, "", store.EventExpired, now)
	wantNoErr(t, "DeleteMessage expired", err)
	wantEq(t, "expiry event kind", ev.Kind, store.EventExpired)
	wantEq(t, "expiry actor", ev.ActorID, "")
	wantEq(t, "tombstone reason", tomb.DeleteReason, store.EventExpired)
	n, err = s.ExpiryBacklog(ctx(t), now)
	wantNoErr(t, "ExpiryBacklog", err)
	wantEq(t, "backlog after a purge", n, int64(1))
	n, err = s.ExpiryBacklog(ctx(t), t0.Add(3*time.Hour))
	wantNoErr(t, "ExpiryBacklog later", err)
	wantEq(t, "backlog later", n, int64(2))
	_ = m4
}

func testTakeLease(t *testing.T, s store.Store) {
	ttl := time.Minute
	take := func(holder string, now time.Time) bool {
		t.Helper()
		ok, err := s.TakeLease(ctx(t), "expiry", holder, now, ttl)
		wantNoErr(t, "TakeLease", err)
		return ok
	}
	wantEq(t, "a takes a free lease", take("a", t0), true)
	wantEq(t, "b while a holds it", take("b", t0.Add(time.Second)), false)
	wantEq(t, "a renews", take("a", t0.Add(50*time.Second)), true)
	wantEq(t, "b before the renewed expiry", take("b", t0.Add(100*time.Second)), false)
	wantEq(t, "b after it expired", take("b", t0.Add(111*time.Second)), true)
	wantEq(t, "a after losing it", take("a", t0.Add(112*time.Second)), false)
	ok, err := s.TakeLease(ctx(t), "other", "a", t0, ttl)
	wantNoErr(t, "TakeLease other", err)
	wantEq(t, "leases are per name", ok, true)

	// Racing takers: exactly one wins.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for i := range 8 {
		wg.Go(func() {
			ok, err := s.TakeLease(ctx(t), "race", fmt.Sprintf("h%d", i), t0, ttl)
			if err != nil {
				t.Errorf("TakeLease: %v", err)
			}
			if ok {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wantEq(t, "racing takers that won", wins, 1)
}

func testSummaryWithEvents(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	m1 := mustSend(t, s, conv, a, t0)
	m2 := mustSend(t, s, conv, a, t0)
	_, err := s.SetReaction(ctx(t), conv.ID, m1.ID, b.ID, "👍", true, 20, t0)
	wantNoErr(t, "SetReaction", err)
	sum, err := s.ConversationSummary(ctx(t), b.ID, conv.ID)
	wantNoErr(t, "ConversationSummary", err)
	wantEq(t, "LastSeq (an event)", sum.LastSeq, int64(3))
	if sum.LastMessage == nil || sum.LastMessage.ID != m2.ID {
		t.Fatalf("LastMessage = %+v, want %s (the newest message, not the event)", sum.LastMessage, m2.ID)
	}
	wantEq(t, "unread", sum.Unread, int64(2))
	_, _, err = s.DeleteMessage(ctx(t), conv.ID, m2.ID, a.ID, store.EventDeleted, t0)
	wantNoErr(t, "DeleteMessage", err)
	list, err := s.ListConversations(ctx(t), b.ID)
	wantNoErr(t, "ListConversations", err)
	wantEq(t, "unread leaves tombstones out", list[0].Unread, int64(1))
	if list[0].LastMessage == nil || list[0].LastMessage.ID != m2.ID || list[0].LastMessage.DeletedAt == nil {
		t.Errorf("LastMessage = %+v, want the tombstone of %s", list[0].LastMessage, m2.ID)
	}
	read, err := s.MarkRead(ctx(t), conv.ID, b.ID, 100)
	wantNoErr(t, "MarkRead", err)
	wantEq(t, "read up to the last event", read, int64(4))
}

// Messages, edits, reactions and deletions from many goroutines: every seq
// from 1 to LastSeq is exactly one message or one event.
func testChangesShareSeqConcurrent(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	base := []*store.Message{}
	for range 4 {
		base = append(base, mustSend(t, s, conv, a, t0))
	}
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 5 {
				var err error
				m := base[(g+i)%len(base)]
				switch (g + i) % 4 {
				case 0:
					_, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"),
						SenderID: b.ID, BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
				case 1:
					_, _, err = s.EditMessage(ctx(t), conv.ID, m.ID, fmt.Sprintf("v1.k1.e%d-%d", g, i), "k1", a.ID, t0)
				case 2:
					_, err = s.SetReaction(ctx(t), conv.ID, m.ID, b.ID, fmt.Sprintf("e%d", g), i%2 == 0, 20, t0)
				case 3:
					if g == 5 {
						_, _, err = s.DeleteMessage(ctx(t), conv.ID, m.ID, a.ID, store.EventDeleted, t0)
					}
				}
				if err != nil && !isGone(err) {
					t.Errorf("change: %v", err)
				}
			}
		})
	}
	wg.Wait()
	last := lastSeq(t, s, conv.ID)
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 1000)
	wantNoErr(t, "MessagesAfter", err)
	evs, err := s.EventsAfter(ctx(t), conv.ID, 0, 1000)
	wantNoErr(t, "EventsAfter", err)
	all := append(seqs(ms), eventSeqs(evs)...)
	slices.Sort(all)
	want := []int64{}
	for i := int64(1); i <= last; i++ {
		want = append(want, i)
	}
	wantEq(t, "messages and events cover 1..LastSeq once", fmt.Sprint(all), fmt.Sprint(want))
}

func isGone(err error) bool { return errors.Is(err, store.ErrGone) }

func testReplyToStored(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	m1 := mustSend(t, s, conv, a, t0)
	r, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: b.ID,
		BodySealed: "v1.k1.r", KeyID: "k1", CreatedAt: t0, ReplyTo: m1.ID})
	wantNoErr(t, "AppendMessage reply", err)
	wantEq(t, "stored ReplyTo", r.ReplyTo, m1.ID)
	got, err := s.MessagesByIDs(ctx(t), conv.ID, []string{r.ID, m1.ID, "m_nope"})
	wantNoErr(t, "MessagesByIDs", err)
	wantEq(t, "MessagesByIDs", fmt.Sprint(seqs(got)), "[1 2]")
	wantEq(t, "read ReplyTo", got[1].ReplyTo, m1.ID)
	other := mustGroup(t, s, t0, a, b)
	got, err = s.MessagesByIDs(ctx(t), other.ID, []string{r.ID, m1.ID})
	wantNoErr(t, "MessagesByIDs other", err)
	wantEq(t, "messages of another conversation", len(got), 0)
	_, err = s.MessageByID(ctx(t), other.ID, m1.ID)
	wantErr(t, "MessageByID naming another conversation", err, store.ErrNotFound)
}

func rcount(msgID, emoji string, n int, me bool) store.ReactionCount {
	return store.ReactionCount{MessageID: msgID, Emoji: emoji, Count: n, Me: me}
}
