package messaging_test

import (
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

func (f *fixture) setClock(t time.Time) { f.clock.Store(&t) }

// oneChange checks that exactly one ordered event was published, to the
// members, at seq, and returns its frame.
func oneChange(t *testing.T, f *fixture, what, conv string, seq int64, members ...string) protocol.ServerFrame {
	t.Helper()
	ev := f.events.take()
	if len(ev) != 1 {
		t.Fatalf("%s: %d events, want 1", what, len(ev))
	}
	wantTo(t, what, ev[0], members...)
	if ev[0].Conversation != conv || ev[0].Seq != seq {
		t.Errorf("%s placed at %q seq %d, want %q seq %d", what, ev[0].Conversation, ev[0].Seq, conv, seq)
	}
	return ev[0].Frame
}

func TestEdit(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, alice, bob)
	start := time.Now().UTC()
	f.setClock(start)
	m := f.send(t, alice, conv, "helo")
	f.events.take()

	got, err := f.svc.Edit(t.Context(), alice, conv, m.ID, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != "hello" || got.EditedAt == nil || got.Seq != m.Seq {
		t.Errorf("edited view = %+v", got)
	}
	fr, ok := oneChange(t, f, "edit", conv, 2, alice, bob).(protocol.MessageEditedFrame)
	if !ok || fr.MessageID != m.ID || fr.Body != "hello" || fr.Seq != 2 {
		t.Errorf("edit frame = %#v", fr)
	}
	hist, _, err := f.svc.History(t.Context(), bob, conv, messaging.Page{})
	if err != nil || len(hist) != 1 || hist[0].Body != "hello" || hist[0].EditedAt == nil {
		t.Errorf("history after edit = %+v, %v", hist, err)
	}
	// The same text: nothing happens.
	if _, err := f.svc.Edit(t.Context(), alice, conv, m.ID, "hello"); err != nil {
		t.Fatal(err)
	}
	wantNoEvents(t, "an edit to the same text", f.events)

	_, err = f.svc.Edit(t.Context(), bob, conv, m.ID, "mine now")
	wantCode(t, "edit by someone else", err, apperr.Forbidden)
	_, err = f.svc.Edit(t.Context(), alice, conv, m.ID, "")
	wantCode(t, "empty edit", err, apperr.MessageEmpty)
	_, err = f.svc.Edit(t.Context(), alice, conv, m.ID, strings.Repeat("x", maxBody+1))
	wantCode(t, "long edit", err, apperr.MessageTooLong)
	_, err = f.svc.Edit(t.Context(), f.user(t, "eve"), conv, m.ID, "hi")
	wantCode(t, "edit by a non-member", err, apperr.NotFound)
	other := f.group(t, alice, bob)
	_, err = f.svc.Edit(t.Context(), alice, other, m.ID, "hi")
	wantCode(t, "edit naming a message of another conversation", err, apperr.NotFound)
	f.setClock(start.Add(messaging.DefaultEditWindow + time.Second))
	_, err = f.svc.Edit(t.Context(), alice, conv, m.ID, "too late")
	wantCode(t, "edit after the window", err, apperr.Forbidden)
	f.setClock(start)
	if _, err := f.svc.Delete(t.Context(), alice, conv, m.ID); err != nil {
		t.Fatal(err)
	}
	f.events.take()
	_, err = f.svc.Edit(t.Context(), alice, conv, m.ID, "back")
	wantCode(t, "edit of a deleted message", err, apperr.Conflict)
	wantNoEvents(t, "refused edits", f.events)
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	owner, admin, bob, carol := f.user(t, "owner"), f.user(t, "admin"), f.user(t, "bob"), f.user(t, "carol")
	conv := f.group(t, owner, admin, bob, carol)
	if _, err := f.db.MarkRead(t.Context(), conv, admin, 0); err != nil {
		t.Fatal(err)
	}
	// Make admin an admin directly in the store (no promotion use case yet).
	if err := f.db.RemoveMember(t.Context(), conv, admin); err != nil {
		t.Fatal(err)
	}
	if err := f.db.AddMember(t.Context(), store.Member{ConversationID: conv, UserID: admin, Role: store.RoleAdmin, JoinedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	m1 := f.send(t, bob, conv, "one")
	m2 := f.send(t, bob, conv, "two")
	m3 := f.send(t, carol, conv, "three")
	f.events.take()

	_, err := f.svc.Delete(t.Context(), carol, conv, m1.ID)
	wantCode(t, "a member deleting another's message", err, apperr.Forbidden)
	tomb, err := f.svc.Delete(t.Context(), bob, conv, m1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tomb.Body != "" || tomb.Deleted == nil || tomb.Deleted.By != bob || tomb.Deleted.Reason != "deleted" {
		t.Errorf("tombstone view = %+v", tomb)
	}
	fr, ok := oneChange(t, f, "delete", conv, 4, owner, admin, bob, carol).(protocol.MessageDeletedFrame)
	if !ok || fr.MessageID != m1.ID || fr.DeletedBy != bob || fr.Reason != "deleted" {
		t.Errorf("delete frame = %#v", fr)
	}
	// Again: the tombstone, no event.
	if _, err := f.svc.Delete(t.Context(), bob, conv, m1.ID); err != nil {
		t.Fatal(err)
	}
	wantNoEvents(t, "a second delete", f.events)
	if _, err := f.svc.Delete(t.Context(), admin, conv, m2.ID); err != nil {
		t.Errorf("admin deleting a member's message: %v", err)
	}
	if _, err := f.svc.Delete(t.Context(), owner, conv, m3.ID); err != nil {
		t.Errorf("owner deleting a member's message: %v", err)
	}
	f.events.take()
	hist, _, err := f.svc.History(t.Context(), carol, conv, messaging.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		if m.Body != "" || m.Deleted == nil {
			t.Errorf("history shows %+v after every message was deleted", m)
		}
	}
	// Audit: one entry per deletion, naming the actor and the message.
	entries, err := f.db.AuditEntries(t.Context(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, e := range entries {
		if e.Event == "message.deleted" {
			deleted = append(deleted, e.ActorID+":"+e.Detail)
		}
	}
	if len(deleted) != 3 || !strings.Contains(deleted[0], bob+":") || !strings.Contains(deleted[0], m1.ID) {
		t.Errorf("audit message.deleted entries = %q", deleted)
	}

	// Direct conversations: only the sender.
	d, _, err := f.svc.CreateDirect(t.Context(), bob, carol)
	if err != nil {
		t.Fatal(err)
	}
	dm := f.send(t, bob, d.ID, "hi")
	_, err = f.svc.Delete(t.Context(), carol, d.ID, dm.ID)
	wantCode(t, "the other member of a direct conversation deleting", err, apperr.Forbidden)
	_, err = f.svc.Delete(t.Context(), bob, d.ID, m2.ID)
	wantCode(t, "delete naming a message of another conversation", err, apperr.NotFound)
}

func TestReact(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, alice, bob)
	m := f.send(t, alice, conv, "hi")
	f.events.take()

	v, err := f.svc.React(t.Context(), bob, conv, m.ID, "👍", true)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Reactions) != 1 || v.Reactions[0] != (protocol.Reaction{Emoji: "👍", Count: 1, Me: true}) {
		t.Errorf("reactions in bob's view = %+v", v.Reactions)
	}
	fr, ok := oneChange(t, f, "reaction", conv, 2, alice, bob).(protocol.ReactionFrame)
	if !ok || fr.Emoji != "👍" || fr.UserID != bob || !fr.Added || len(fr.Counts) != 1 || fr.Counts[0].Count != 1 {
		t.Errorf("reaction frame = %#v", fr)
	}
	if _, err := f.svc.React(t.Context(), bob, conv, m.ID, "👍", true); err != nil {
		t.Fatal(err)
	}
	wantNoEvents(t, "the same reaction again", f.events)
	hist, _, err := f.svc.History(t.Context(), alice, conv, messaging.Page{})
	if err != nil || len(hist[0].Reactions) != 1 || hist[0].Reactions[0].Me {
		t.Errorf("alice's history reactions = %+v (%v), want 👍 1 not me", hist[0].Reactions, err)
	}
	for _, bad := range []string{"", "a", "👍👍", "<b>", strings.Repeat("👍\u200d", 20) + "👍"} {
		_, err := f.svc.React(t.Context(), bob, conv, m.ID, bad, true)
		wantCode(t, "reaction "+bad, err, apperr.InvalidRequest)
	}
	// 20 distinct emoji at most.
	emoji := []rune("😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙😚🙂")
	for _, e := range emoji {
		if _, err := f.svc.React(t.Context(), alice, conv, m.ID, string(e), true); err != nil {
			t.Fatalf("reaction %d: %v", len(emoji), err)
		}
	}
	_, err = f.svc.React(t.Context(), alice, conv, m.ID, "🤗", true)
	wantCode(t, "a 21st distinct emoji", err, apperr.Conflict)
	_, err = f.svc.React(t.Context(), f.user(t, "eve"), conv, m.ID, "👍", true)
	wantCode(t, "reaction by a non-member", err, apperr.NotFound)
	if _, err := f.svc.Delete(t.Context(), alice, conv, m.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.React(t.Context(), bob, conv, m.ID, "👍", true)
	wantCode(t, "reaction on a deleted message", err, apperr.Conflict)
}

func TestReplies(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, alice, bob)
	other := f.group(t, alice, bob)
	orig := f.send(t, alice, conv, "question?")
	elsewhere := f.send(t, alice, other, "elsewhere")
	_, _, err := f.svc.SendMessage(t.Context(), bob, conv, messaging.Draft{Body: "x", ReplyTo: elsewhere.ID})
	wantCode(t, "reply to a message of another conversation", err, apperr.NotFound)
	_, _, err = f.svc.SendMessage(t.Context(), bob, conv, messaging.Draft{Body: "x", ReplyTo: "m_nope"})
	wantCode(t, "reply to an unknown message", err, apperr.NotFound)
	r, _, err := f.svc.SendMessage(t.Context(), bob, conv, messaging.Draft{Body: "answer", ReplyTo: orig.ID})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReplyTo == nil || r.ReplyTo.ID != orig.ID || r.ReplyTo.Excerpt != "question?" || r.ReplyTo.SenderID != alice {
		t.Errorf("reply view = %+v", r.ReplyTo)
	}
	quote := func() *protocol.ReplyRef {
		t.Helper()
		hist, _, err := f.svc.History(t.Context(), bob, conv, messaging.Page{})
		if err != nil {
			t.Fatal(err)
		}
		return hist[len(hist)-1].ReplyTo
	}
	if _, err := f.svc.Edit(t.Context(), alice, conv, orig.ID, "better?"); err != nil {
		t.Fatal(err)
	}
	if q := quote(); q == nil || q.Excerpt != "better?" || q.Deleted {
		t.Errorf("quote after the original's edit = %+v", q)
	}
	if _, err := f.svc.Delete(t.Context(), alice, conv, orig.ID); err != nil {
		t.Fatal(err)
	}
	if q := quote(); q == nil || q.Excerpt != "" || !q.Deleted {
		t.Errorf("quote after the original's deletion = %+v", q)
	}
}

// A device that was away catches up through one cursor: every seq once, in
// order, messages and change events, and no deleted text anywhere.
func TestSyncReplaysChanges(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.user(t, "alice"), f.user(t, "bob")
	conv := f.group(t, alice, bob)
	m1 := f.send(t, alice, conv, "secret one") // 1
	m2 := f.send(t, alice, conv, "keep")       // 2
	must := func(_ *protocol.Message, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.svc.Edit(t.Context(), alice, conv, m1.ID, "secret two"))                      // 3
	must(f.svc.React(t.Context(), bob, conv, m1.ID, "👍", true))                          // 4
	must(f.svc.React(t.Context(), bob, conv, m2.ID, "🎉", true))                          // 5
	must(f.svc.Delete(t.Context(), alice, conv, m1.ID))                                  // 6
	if _, err := f.svc.SetExpireAfter(t.Context(), alice, conv, time.Hour); err != nil { // 7
		t.Fatal(err)
	}
	must(f.svc.Edit(t.Context(), alice, conv, m2.ID, "kept")) // 8

	var frames []protocol.ServerFrame
	cursors, err := f.svc.Sync(t.Context(), bob, map[string]int64{conv: 0}, func(fr protocol.ServerFrame) error {
		frames = append(frames, fr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cursors[conv] != 8 {
		t.Errorf("cursor = %d, want 8", cursors[conv])
	}
	var kinds []string
	for i, fr := range frames {
		data, err := protocol.Encode(fr)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "secret") {
			t.Errorf("sync frame %d carries deleted text: %s", i, data)
		}
		var seq int64
		switch v := fr.(type) {
		case protocol.MessageFrame:
			seq = v.Message.Seq
		case protocol.MessageEditedFrame:
			seq = v.Seq
		case protocol.MessageDeletedFrame:
			seq = v.Seq
		case protocol.ReactionFrame:
			seq = v.Seq
		case protocol.ConversationSettingsFrame:
			seq = v.Seq
		}
		if seq != int64(i+1) {
			t.Errorf("frame %d has seq %d, want %d (in order, no gap, no duplicate)", i, seq, i+1)
		}
		kinds = append(kinds, string(fr.FrameType()))
	}
	want := "message message message_edited reaction reaction message_deleted conversation_settings message_edited"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("sync frames = %s, want %s", got, want)
	}
	if e, ok := frames[7].(protocol.MessageEditedFrame); !ok || e.Body != "kept" {
		t.Errorf("last edit frame = %#v", frames[7])
	}
	if r, ok := frames[4].(protocol.ReactionFrame); !ok || len(r.Counts) != 1 || r.Counts[0].Emoji != "🎉" {
		t.Errorf("reaction frame = %#v", frames[4])
	}
	// From a cursor in the middle.
	var n int
	if _, err := f.svc.Sync(t.Context(), bob, map[string]int64{conv: 5}, func(protocol.ServerFrame) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("sync from 5 sent %d frames, want 3", n)
	}
}

func TestExpireAfterAndPurge(t *testing.T) {
	f := newFixture(t)
	owner, bob := f.user(t, "owner"), f.user(t, "bob")
	conv := f.group(t, owner, bob)
	now := time.Now().UTC().Truncate(time.Microsecond)
	f.setClock(now)

	_, err := f.svc.SetExpireAfter(t.Context(), bob, conv, time.Hour)
	wantCode(t, "a plain member changing a group's setting", err, apperr.Forbidden)
	_, err = f.svc.SetExpireAfter(t.Context(), owner, conv, 2*time.Hour)
	wantCode(t, "an expireAfter not offered", err, apperr.InvalidRequest)
	c, err := f.svc.SetExpireAfter(t.Context(), owner, conv, time.Hour)
	if err != nil || c.ExpireAfter != 3600 {
		t.Fatalf("SetExpireAfter = %+v, %v", c, err)
	}
	fr, ok := oneChange(t, f, "setting", conv, 1, owner, bob).(protocol.ConversationSettingsFrame)
	if !ok || fr.ExpireAfter != 3600 || fr.ChangedBy != owner {
		t.Errorf("settings frame = %#v", fr)
	}
	d, _, err := f.svc.CreateDirect(t.Context(), bob, owner)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.SetExpireAfter(t.Context(), bob, d.ID, 24*time.Hour); err != nil {
		t.Errorf("either member of a direct conversation: %v", err)
	}
	f.events.take()

	m := f.send(t, bob, conv, "gone soon")
	if m.ExpiresAt == nil || !m.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want %v", m.ExpiresAt, now.Add(time.Hour))
	}
	f.events.take()
	if n, err := f.svc.PurgeExpired(t.Context(), 100); err != nil || n != 0 {
		t.Errorf("purge before expiry: %d, %v", n, err)
	}
	f.setClock(now.Add(time.Hour + time.Second))
	n, err := f.svc.PurgeExpired(t.Context(), 100)
	if err != nil || n != 1 {
		t.Fatalf("purge after expiry: %d, %v", n, err)
	}
	del, ok := oneChange(t, f, "expiry", conv, 3, owner, bob).(protocol.MessageDeletedFrame)
	if !ok || del.Reason != "expired" || del.DeletedBy != "" || del.MessageID != m.ID {
		t.Errorf("expiry frame = %#v", del)
	}
	var expired dto.Metric
	if err := f.metrics.MessagesExpired.Write(&expired); err != nil || expired.GetCounter().GetValue() != 1 {
		t.Errorf("parley_messages_expired_total = %v (%v), want 1", expired.GetCounter().GetValue(), err)
	}
	hist, _, err := f.svc.History(t.Context(), bob, conv, messaging.Page{})
	if err != nil || len(hist) != 1 || hist[0].Body != "" || hist[0].Deleted == nil || hist[0].Deleted.Reason != "expired" {
		t.Errorf("history after expiry = %+v, %v", hist, err)
	}
	if n, err := f.svc.PurgeExpired(t.Context(), 100); err != nil || n != 0 {
		t.Errorf("second purge: %d, %v", n, err)
	}
}
