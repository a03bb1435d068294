package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var messageTests = []test{
	{"AppendMessageAssignsSeq", testAppendMessageAssignsSeq},
	{"AppendMessageIdempotent", testAppendMessageIdempotent},
	{"AppendMessageErrors", testAppendMessageErrors},
	{"AppendMessageConcurrent", testAppendMessageConcurrent},
	{"MembersVersion", testMembersVersion},
	{"AppendMessageConcurrentRetries", testAppendMessageConcurrentRetries},
	{"MessagesPagination", testMessagesPagination},
	{"MarkRead", testMarkRead},
	{"ConversationHeads", testConversationHeads},
}

func checkMessage(t *testing.T, what string, got, want store.Message) {
	t.Helper()
	if got.ConversationID != want.ConversationID || got.Seq != want.Seq || got.ID != want.ID ||
		got.SenderID != want.SenderID || got.ClientID != want.ClientID || got.BodySealed != want.BodySealed ||
		got.KeyID != want.KeyID || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func seqs(ms []store.Message) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.Seq)
	}
	return out
}

func wantSeqs(t *testing.T, what string, ms []store.Message, from, to int64) {
	t.Helper()
	want := []int64{}
	for i := from; i <= to; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(seqs(ms)) != fmt.Sprint(want) {
		t.Errorf("%s: seqs %v, want %v", what, seqs(ms), want)
	}
}

func testAppendMessageAssignsSeq(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	other := mustGroup(t, s, t0, a, b)

	for i := range 3 {
		at := t0.Add(time.Duration(i+1) * time.Minute)
		in := &store.Message{
			ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID, ClientID: fmt.Sprintf("c%d", i),
			BodySealed: fmt.Sprintf("v1.k1.body%d", i), KeyID: "k1", CreatedAt: at,
		}
		got, created, err := s.AppendMessage(ctx(t), in)
		wantNoErr(t, "AppendMessage", err)
		wantEq(t, "created", created, true)
		want := *in
		want.Seq = int64(i + 1)
		checkMessage(t, "stored", *got, want)

		c, err := s.Conversation(ctx(t), conv.ID)
		wantNoErr(t, "Conversation", err)
		wantEq(t, "LastSeq", c.LastSeq, int64(i+1))
		wantTime(t, "LastActivity", c.LastActivity, at)
	}
	// Each conversation counts on its own.
	m := mustSend(t, s, other, b, t0)
	wantEq(t, "first seq in other conversation", m.Seq, int64(1))

	// LastActivity never moves back, even for a message stamped earlier
	// (another replica's clock); the seq still advances.
	m = mustSend(t, s, conv, b, t0)
	wantEq(t, "seq of back-dated message", m.Seq, int64(4))
	c, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantTime(t, "LastActivity after back-dated message", c.LastActivity, t0.Add(3*time.Minute))

	// Without a client id there is no idempotency: two sends, two messages.
	for i := range 2 {
		_, created, err := s.AppendMessage(ctx(t), &store.Message{
			ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID, BodySealed: "x", KeyID: "k1", CreatedAt: t0.Add(time.Hour),
		})
		wantNoErr(t, fmt.Sprintf("AppendMessage without client id #%d", i), err)
		wantEq(t, "created", created, true)
	}
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 100)
	wantNoErr(t, "MessagesAfter", err)
	wantSeqs(t, "all messages", ms, 1, 6)
	wantEq(t, "empty ClientID reads back empty", ms[5].ClientID, "")
}

func testAppendMessageIdempotent(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	other := mustGroup(t, s, t0, a, b)
	first := mustSend(t, s, conv, a, t0.Add(time.Minute))

	// The retry after a lost ack carries the same client id; the server may
	// have picked a new message id and time.
	retry := &store.Message{
		ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID, ClientID: first.ClientID,
		BodySealed: "v1.k1.other", KeyID: "k2", CreatedAt: t0.Add(time.Hour),
	}
	got, created, err := s.AppendMessage(ctx(t), retry)
	wantNoErr(t, "AppendMessage retry", err)
	wantEq(t, "created on retry", created, false)
	checkMessage(t, "retry returns the original", *got, *first)

	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 100)
	wantNoErr(t, "MessagesAfter", err)
	wantSeqs(t, "messages after retry", ms, 1, 1)
	c, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "LastSeq after retry", c.LastSeq, int64(1))
	wantTime(t, "LastActivity after retry", c.LastActivity, t0.Add(time.Minute))

	// The same client id from another sender, or in another conversation, is
	// another message.
	m, created, err := s.AppendMessage(ctx(t), &store.Message{
		ConversationID: conv.ID, ID: newID("m"), SenderID: b.ID, ClientID: first.ClientID, BodySealed: "b", KeyID: "k1", CreatedAt: t0,
	})
	wantNoErr(t, "same client id, other sender", err)
	if !created || m.Seq != 2 {
		t.Errorf("other sender: created=%v seq=%d, want true 2", created, m.Seq)
	}
	m, created, err = s.AppendMessage(ctx(t), &store.Message{
		ConversationID: other.ID, ID: newID("m"), SenderID: a.ID, ClientID: first.ClientID, BodySealed: "c", KeyID: "k1", CreatedAt: t0,
	})
	wantNoErr(t, "same client id, other conversation", err)
	if !created || m.Seq != 1 {
		t.Errorf("other conversation: created=%v seq=%d, want true 1", created, m.Seq)
	}
}

func testAppendMessageErrors(t *testing.T, s store.Store) {
	a := mustUser(t, s, "alice")
	conv := mustGroup(t, s, t0, a)
	first := mustSend(t, s, conv, a, t0)

	_, _, err := s.AppendMessage(ctx(t), &store.Message{
		ConversationID: "nope", ID: newID("m"), SenderID: a.ID, ClientID: "x", BodySealed: "b", KeyID: "k1", CreatedAt: t0,
	})
	wantErr(t, "AppendMessage to unknown conversation", err, store.ErrNotFound)

	// A message id is globally unique: reusing one is a conflict, and the
	// failed send leaves no gap behind.
	_, _, err = s.AppendMessage(ctx(t), &store.Message{
		ConversationID: conv.ID, ID: first.ID, SenderID: a.ID, ClientID: "fresh", BodySealed: "b", KeyID: "k1", CreatedAt: t0,
	})
	wantErr(t, "AppendMessage with a taken message id", err, store.ErrConflict)
	c, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "LastSeq after failed send", c.LastSeq, int64(1))
	m := mustSend(t, s, conv, a, t0)
	wantEq(t, "seq after failed send", m.Seq, int64(2))
}

func testAppendMessageConcurrent(t *testing.T, s store.Store) {
	const senders, each = 8, 50
	users := make([]*store.User, senders)
	for i := range users {
		users[i] = mustUser(t, s, fmt.Sprintf("user%d", i))
	}
	conv := mustGroup(t, s, t0, users...)

	got := make([][]int64, senders) // seqs each sender received, in send order
	errs := make(chan error, senders*each)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Go(func() {
			<-start
			for j := range each {
				m, created, err := s.AppendMessage(ctx(t), &store.Message{
					ConversationID: conv.ID, ID: newID("m"), SenderID: u.ID, ClientID: fmt.Sprintf("c%d", j),
					BodySealed: fmt.Sprintf("v1.k1.%d.%d", i, j), KeyID: "k1", CreatedAt: t0.Add(time.Duration(j) * time.Millisecond),
				})
				if err != nil || !created {
					errs <- fmt.Errorf("sender %d message %d: created=%v err=%v", i, j, created, err)
					return
				}
				got[i] = append(got[i], m.Seq)
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	const total = senders * each
	seen := make([]bool, total+1)
	for i, ss := range got {
		for k, seq := range ss {
			if seq < 1 || seq > total || seen[seq] {
				t.Fatalf("sender %d got seq %d: out of range or duplicate", i, seq)
			}
			seen[seq] = true
			if k > 0 && seq <= ss[k-1] {
				t.Errorf("sender %d: seq %d after %d, want increasing", i, seq, ss[k-1])
			}
		}
	}
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, total+10)
	wantNoErr(t, "MessagesAfter", err)
	wantSeqs(t, "stored seqs", ms, 1, total)
	c, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "LastSeq", c.LastSeq, int64(total))
}

func testAppendMessageConcurrentRetries(t *testing.T, s store.Store) {
	a := mustUser(t, s, "alice")
	conv := mustGroup(t, s, t0, a)
	const rounds, racers = 10, 6
	for round := range rounds {
		clientID := fmt.Sprintf("retry-%d", round)
		stored := make([]*store.Message, racers)
		created := make([]bool, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				stored[i], created[i], errs[i] = s.AppendMessage(ctx(t), &store.Message{
					ConversationID: conv.ID, ID: newID("m"), SenderID: a.ID, ClientID: clientID,
					BodySealed: "v1.k1.same", KeyID: "k1", CreatedAt: t0,
				})
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("round %d racer %d: %v", round, i, errs[i])
			}
			if created[i] {
				wins++
			}
			if stored[i].ID != stored[0].ID || stored[i].Seq != int64(round+1) {
				t.Errorf("round %d racer %d: got message %s seq %d, want %s seq %d",
					round, i, stored[i].ID, stored[i].Seq, stored[0].ID, round+1)
			}
		}
		if wins != 1 {
			t.Errorf("round %d: %d sends created the message, want 1", round, wins)
		}
	}
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 100)
	wantNoErr(t, "MessagesAfter", err)
	wantSeqs(t, "stored once per client id", ms, 1, rounds)
}

func testMessagesPagination(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a, b)
	other := mustGroup(t, s, t0, a, b)
	var sent []*store.Message
	for i := range 25 {
		from := a
		if i%3 == 0 {
			from = b
		}
		sent = append(sent, mustSend(t, s, conv, from, t0.Add(time.Duration(i)*time.Second)))
		if i%5 == 0 {
			mustSend(t, s, other, a, t0)
		}
	}

	page := func(what string, ms []store.Message, err error, from, to int64) {
		t.Helper()
		wantNoErr(t, what, err)
		wantSeqs(t, what, ms, from, to)
		for _, m := range ms {
			checkMessage(t, what, m, *sent[m.Seq-1])
		}
	}
	ms, err := s.MessagesAfter(ctx(t), conv.ID, 0, 10)
	page("After(0, 10)", ms, err, 1, 10)
	ms, err = s.MessagesAfter(ctx(t), conv.ID, 10, 10)
	page("After(10, 10)", ms, err, 11, 20)
	ms, err = s.MessagesAfter(ctx(t), conv.ID, 20, 10)
	page("After(20, 10)", ms, err, 21, 25)
	ms, err = s.MessagesAfter(ctx(t), conv.ID, 25, 10)
	page("After(25, 10)", ms, err, 1, 0)

	ms, err = s.MessagesBefore(ctx(t), conv.ID, 26, 10)
	page("Before(26, 10)", ms, err, 16, 25)
	ms, err = s.MessagesBefore(ctx(t), conv.ID, 16, 10)
	page("Before(16, 10)", ms, err, 6, 15)
	ms, err = s.MessagesBefore(ctx(t), conv.ID, 6, 10)
	page("Before(6, 10)", ms, err, 1, 5)
	ms, err = s.MessagesBefore(ctx(t), conv.ID, 1, 10)
	page("Before(1, 10)", ms, err, 1, 0)
	ms, err = s.MessagesBefore(ctx(t), conv.ID, 1000, 3)
	page("Before(1000, 3)", ms, err, 23, 25)

	ms, err = s.MessagesAfter(ctx(t), "nope", 0, 10)
	wantNoErr(t, "MessagesAfter unknown conversation", err)
	wantEq(t, "len(MessagesAfter(unknown))", len(ms), 0)
	ms, err = s.MessagesAfter(ctx(t), other.ID, 0, 100)
	wantNoErr(t, "MessagesAfter other", err)
	wantSeqs(t, "other conversation", ms, 1, 5)
}

func testMarkRead(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustGroup(t, s, t0, a, b)
	for range 5 {
		mustSend(t, s, conv, b, t0)
	}
	steps := []struct {
		seq, want int64
	}{
		{3, 3},   // raises
		{2, 3},   // never lowers
		{3, 3},   // same
		{100, 5}, // clamped to LastSeq
		{0, 5},
		{-1, 5},
	}
	for _, st := range steps {
		got, err := s.MarkRead(ctx(t), conv.ID, a.ID, st.seq)
		wantNoErr(t, fmt.Sprintf("MarkRead(%d)", st.seq), err)
		wantEq(t, fmt.Sprintf("MarkRead(%d)", st.seq), got, st.want)
	}
	m, err := s.Member(ctx(t), conv.ID, a.ID)
	wantNoErr(t, "Member", err)
	wantEq(t, "Member.ReadSeq", m.ReadSeq, int64(5))
	m, err = s.Member(ctx(t), conv.ID, b.ID)
	wantNoErr(t, "Member bob", err)
	wantEq(t, "the sender's ReadSeq follows their own messages", m.ReadSeq, int64(5))

	// After new messages the clamp moves with LastSeq.
	mustSend(t, s, conv, b, t0)
	got, err := s.MarkRead(ctx(t), conv.ID, a.ID, 100)
	wantNoErr(t, "MarkRead after new message", err)
	wantEq(t, "MarkRead after new message", got, int64(6))

	_, err = s.MarkRead(ctx(t), conv.ID, c.ID, 1)
	wantErr(t, "MarkRead non-member", err, store.ErrNotFound)
	_, err = s.MarkRead(ctx(t), "nope", a.ID, 1)
	wantErr(t, "MarkRead unknown conversation", err, store.ErrNotFound)

	// Racing readers: the result is the highest, whatever the order.
	conv2 := mustGroup(t, s, t0, a, b)
	for range 20 {
		mustSend(t, s, conv2, b, t0)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := s.MarkRead(ctx(t), conv2.ID, a.ID, int64(i+1)); err != nil {
				t.Errorf("MarkRead(%d): %v", i+1, err)
			}
		})
	}
	wg.Wait()
	m, err = s.Member(ctx(t), conv2.ID, a.ID)
	wantNoErr(t, "Member after racing reads", err)
	wantEq(t, "ReadSeq after racing reads", m.ReadSeq, int64(20))
}

func testConversationHeads(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	busy, quiet := mustGroup(t, s, t0, a, b), mustGroup(t, s, t0, a, b)
	for i := range 3 {
		_, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: busy.ID, ID: newID("m"), SenderID: a.ID,
			ClientID: fmt.Sprintf("h%d", i), BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
		wantNoErr(t, "AppendMessage", err)
	}
	got, err := s.ConversationHeads(ctx(t), []string{busy.ID, quiet.ID, "missing"})
	wantNoErr(t, "ConversationHeads", err)
	if len(got) != 2 || got[busy.ID] != 3 || got[quiet.ID] != 0 {
		t.Errorf("ConversationHeads = %v, want %s:3 %s:0 and nothing for missing", got, busy.ID, quiet.ID)
	}
	none, err := s.ConversationHeads(ctx(t), nil)
	wantNoErr(t, "ConversationHeads(nil)", err)
	if len(none) != 0 {
		t.Errorf("ConversationHeads(nil) = %v, want empty", none)
	}
}

// The membership version: raised by every add and remove (not by a failed
// one), read with the members in one snapshot, and returned by a send as it
// stood at the send's seq; a send from someone who is not (or no longer) a
// member stores nothing.
func testMembersVersion(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustGroup(t, s, t0, a, b)
	members, v0, err := s.MembersVersioned(ctx(t), conv.ID)
	wantNoErr(t, "MembersVersioned", err)
	wantEq(t, "members", len(members), 2)
	m := mustSend(t, s, conv, a, t0)
	wantEq(t, "MembersVersion of a send", m.MembersVersion, v0)

	_, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: c.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantErr(t, "send by a non-member", err, store.ErrNotFound)

	wantNoErr(t, "AddMember", s.AddMember(ctx(t), store.Member{ConversationID: conv.ID, UserID: c.ID, Role: store.RoleMember, JoinedAt: t0}))
	wantErr(t, "AddMember again", s.AddMember(ctx(t), store.Member{ConversationID: conv.ID, UserID: c.ID, Role: store.RoleMember, JoinedAt: t0}), store.ErrConflict)
	members, v1, err := s.MembersVersioned(ctx(t), conv.ID)
	wantNoErr(t, "MembersVersioned after add", err)
	wantEq(t, "members after add", len(members), 3)
	wantEq(t, "version after one add (the failed one rolled back)", v1, v0+1)
	carolsMsg := mustSend(t, s, conv, c, t0)
	wantEq(t, "MembersVersion after add", carolsMsg.MembersVersion, v1)
	retry, created, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: c.ID,
		ClientID: carolsMsg.ClientID, BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantNoErr(t, "retry by a member", err)
	wantEq(t, "retry created", created, false)
	wantEq(t, "retry MembersVersion", retry.MembersVersion, v1)

	wantNoErr(t, "RemoveMember", s.RemoveMember(ctx(t), conv.ID, c.ID))
	wantErr(t, "RemoveMember again", s.RemoveMember(ctx(t), conv.ID, c.ID), store.ErrNotFound)
	members, v2, err := s.MembersVersioned(ctx(t), conv.ID)
	wantNoErr(t, "MembersVersioned after remove", err)
	wantEq(t, "members after remove", len(members), 2)
	wantEq(t, "version after one remove", v2, v1+1)
	_, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: c.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantErr(t, "send by a removed member", err, store.ErrNotFound)
	// Nor is a retry of what she sent while a member answered.
	_, _, err = s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: newID("m"), SenderID: c.ID,
		ClientID: carolsMsg.ClientID, BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	wantErr(t, "retry by a removed member", err, store.ErrNotFound)
	got, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "LastSeq (the refused sends took none)", got.LastSeq, int64(2))
	m = mustSend(t, s, conv, b, t0)
	wantEq(t, "MembersVersion after remove", m.MembersVersion, v2)
	wantEq(t, "seq", m.Seq, int64(3))
}
