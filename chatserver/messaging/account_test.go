package messaging_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// accountFixture: alice has more than a batch of messages in a direct
// conversation with bob, a message and reactions in a group she owns with
// bob and carol (carol an admin), and a group of her own.
type accountFixture struct {
	*fixture
	alice, bob, carol string
	direct, group     string
	solo              string
	many              int
	bobMsg, bobGroup  *protocol.Message
}

func newAccountFixture(t *testing.T) *accountFixture {
	f := &accountFixture{fixture: newFixture(t)}
	f.alice, f.bob, f.carol = f.user(t, "alice"), f.user(t, "bob"), f.user(t, "carol")
	c, _, err := f.svc.CreateDirect(t.Context(), f.alice, f.bob)
	if err != nil {
		t.Fatal(err)
	}
	f.direct = c.ID
	f.group = f.fixture.group(t, f.alice, f.bob, f.carol)
	if err := f.db.SetMemberRole(t.Context(), f.group, f.carol, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	f.solo = f.fixture.group(t, f.alice)
	f.many = messaging.AccountBatch + 3
	for i := range f.many {
		f.send(t, f.alice, f.direct, fmt.Sprintf("a%d", i))
	}
	f.bobMsg = f.send(t, f.bob, f.direct, "bob's")
	f.send(t, f.alice, f.group, "alice in group")
	f.bobGroup = f.send(t, f.bob, f.group, "bob in group")
	for _, r := range []struct{ conv, msg, user, emoji string }{
		{f.direct, f.bobMsg.ID, f.alice, "👍"}, {f.group, f.bobGroup.ID, f.alice, "🎉"}, {f.group, f.bobGroup.ID, f.carol, "🎉"},
	} {
		if _, err := f.svc.React(t.Context(), r.user, r.conv, r.msg, r.emoji, true); err != nil {
			t.Fatal(err)
		}
	}
	f.events.take()
	return f
}

func TestPurgeAccount(t *testing.T) {
	f := newAccountFixture(t)
	before, err := f.db.Conversation(t.Context(), f.direct)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.db.DeleteUser(t.Context(), f.alice, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := f.svc.PurgeAccount(t.Context(), f.alice)
	if err != nil {
		t.Fatalf("PurgeAccount: %v", err)
	}
	want := messaging.PurgeStats{Messages: f.many + 1, Reactions: 2, Groups: 1, Deleted: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}

	// Every removal is an ordered event with the next seq, to the members.
	next := map[string]int64{f.direct: before.LastSeq}
	g, _ := f.db.Conversation(t.Context(), f.group)
	next[f.group] = g.LastSeq - 2 // a deletion and a reaction removal
	kinds := map[string]int{}
	for _, e := range f.events.take() {
		switch fr := e.Frame.(type) {
		case protocol.MessageDeletedFrame:
			kinds["deleted"]++
			if fr.DeletedBy != f.alice || fr.Reason != store.EventDeleted {
				t.Errorf("deletion frame %+v", fr)
			}
		case protocol.ReactionFrame:
			kinds["reaction"]++
			if fr.Added || fr.UserID != f.alice {
				t.Errorf("reaction frame %+v", fr)
			}
		case protocol.ConversationFrame:
			kinds["conversation"]++
			continue
		default:
			t.Errorf("unexpected frame %T", e.Frame)
			continue
		}
		next[e.Conversation]++
		if e.Seq != next[e.Conversation] {
			t.Errorf("event of %s at seq %d, want %d", e.Conversation, e.Seq, next[e.Conversation])
		}
		if e.Conversation == f.direct {
			wantTo(t, "direct change", e, f.alice, f.bob)
		}
	}
	if kinds["deleted"] != f.many+1 || kinds["reaction"] != 2 || kinds["conversation"] != 2 {
		t.Errorf("frames %v", kinds)
	}
	after, _ := f.db.Conversation(t.Context(), f.direct)
	if after.LastSeq != next[f.direct] {
		t.Errorf("direct LastSeq %d, events up to %d", after.LastSeq, next[f.direct])
	}

	// Nothing of alice's is left live; bob's message stands, without her reaction.
	left, err := f.db.UserMessages(t.Context(), f.alice, "", 0, 10)
	if err != nil || len(left) != 0 {
		t.Errorf("live messages left: %d %v", len(left), err)
	}
	reacts, err := f.db.UserReactions(t.Context(), f.alice, "", "", 10)
	if err != nil || len(reacts) != 0 {
		t.Errorf("reactions left: %d %v", len(reacts), err)
	}
	hist, _, err := f.svc.History(t.Context(), f.bob, f.group, messaging.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hist {
		switch {
		case m.SenderID == f.alice && m.Deleted == nil:
			t.Errorf("alice's group message not a tombstone: %+v", m)
		case m.ID == f.bobGroup.ID && (len(m.Reactions) != 1 || m.Reactions[0].Count != 1):
			t.Errorf("bob's group message reactions %+v", m.Reactions)
		}
	}

	// Groups: carol (the admin) owns the group; alice's own group is gone.
	ms, _ := f.db.Members(t.Context(), f.group)
	if len(ms) != 2 {
		t.Fatalf("group members %+v", ms)
	}
	for _, m := range ms {
		if (m.UserID == f.carol) != (m.Role == store.RoleOwner) {
			t.Errorf("member %s has role %s; carol the admin should own it", m.UserID, m.Role)
		}
	}
	if _, err := f.db.Conversation(t.Context(), f.solo); err == nil {
		t.Error("alice's own group still exists")
	}
	// The direct conversation keeps her, as a deleted account.
	c, err := f.svc.Conversation(t.Context(), f.bob, f.direct)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if m.ID == f.alice && (m.Username != "" || m.DisplayName != store.DeletedDisplayName) {
			t.Errorf("deleted member shown as %+v", m)
		}
	}

	// Done: not to be purged again; a second run changes nothing.
	if ids, _ := f.db.AccountsToPurge(t.Context(), time.Now().Add(time.Hour), 10); len(ids) != 0 {
		t.Errorf("accounts to purge after a purge: %v", ids)
	}
	st, err = f.svc.PurgeAccount(t.Context(), f.alice)
	if err != nil || st != (messaging.PurgeStats{}) {
		t.Errorf("second purge: %+v %v", st, err)
	}
}

// A purge that did not finish in its request is finished by the background
// pass once PurgeRetryAfter has passed.
func TestPurgeDeletedAccounts(t *testing.T) {
	f := newAccountFixture(t)
	now := time.Now()
	if err := f.db.DeleteUser(t.Context(), f.alice, now); err != nil {
		t.Fatal(err)
	}
	f.setClock(now.Add(messaging.PurgeRetryAfter / 2))
	if n, err := f.svc.PurgeDeletedAccounts(t.Context(), 10); n != 0 || err != nil {
		t.Fatalf("purged %d (%v) before PurgeRetryAfter", n, err)
	}
	f.setClock(now.Add(messaging.PurgeRetryAfter + time.Second))
	if n, err := f.svc.PurgeDeletedAccounts(t.Context(), 10); n != 1 || err != nil {
		t.Fatalf("purged %d (%v), want 1", n, err)
	}
	if left, _ := f.db.UserMessages(t.Context(), f.alice, "", 0, 10); len(left) != 0 {
		t.Errorf("%d live messages left", len(left))
	}
}

func TestExport(t *testing.T) {
	f := newAccountFixture(t)
	var buf bytes.Buffer
	opened := 0
	err := f.svc.Export(t.Context(), f.alice, "192.0.2.1", func() io.Writer { opened++; return &buf })
	if err != nil || opened != 1 {
		t.Fatalf("Export: %v (opened %d)", err, opened)
	}
	if strings.Contains(buf.String(), "bob's") || strings.Contains(buf.String(), "bob in group") {
		t.Error("the export holds another person's message text")
	}
	var ex struct {
		Profile       struct{ ID, Username, Email string }
		Conversations []struct {
			ID, Kind, Title string
			Members         []struct{ ID, Username, Role string }
		}
		Messages []struct {
			ID, ConversationID, Body string
			Seq                      int64
		}
		Reactions []struct{ MessageID, Emoji string }
	}
	if err := json.Unmarshal(buf.Bytes(), &ex); err != nil {
		t.Fatalf("export is not JSON: %v", err)
	}
	if ex.Profile.ID != f.alice || ex.Profile.Email != "alice@example.test" {
		t.Errorf("profile %+v", ex.Profile)
	}
	if len(ex.Conversations) != 3 {
		t.Errorf("conversations %+v", ex.Conversations)
	}
	if len(ex.Messages) != f.many+1 {
		t.Fatalf("%d messages, want %d", len(ex.Messages), f.many+1)
	}
	seen := map[string]bool{}
	for _, m := range ex.Messages {
		if seen[m.Body] {
			t.Errorf("message %q twice", m.Body)
		}
		seen[m.Body] = true
	}
	for i := range f.many {
		if !seen[fmt.Sprintf("a%d", i)] {
			t.Errorf("message a%d missing", i)
		}
	}
	if !seen["alice in group"] || len(ex.Reactions) != 2 {
		t.Errorf("group message %v, reactions %+v", seen["alice in group"], ex.Reactions)
	}
}
