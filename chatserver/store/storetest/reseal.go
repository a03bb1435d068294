package storetest

import (
	"testing"

	"github.com/parley-chat/parley/chatserver/store"
)

var resealTests = []test{
	{"ResealMessagesAndTitles", testReseal},
}

func testReseal(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g := mustGroup(t, s, t0, a, b) // title sealed with k1
	var ms []*store.Message
	for i := 0; i < 3; i++ {
		ms = append(ms, mustSend(t, s, g, a, t0)) // bodies sealed with k1
	}
	counts, err := s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts", err)
	wantEq(t, "rows sealed with k1 (3 bodies + 1 title)", counts["k1"], int64(4))

	got, err := s.MessagesSealedWith(ctx(t), "k1", 2)
	wantNoErr(t, "MessagesSealedWith", err)
	wantEq(t, "MessagesSealedWith limit", len(got), 2)
	none, err := s.MessagesSealedWith(ctx(t), "k2", 10)
	wantNoErr(t, "MessagesSealedWith k2", err)
	wantEq(t, "messages sealed with k2", len(none), 0)

	// Compare-and-set: a stale old value changes nothing.
	ok, err := s.ResealMessage(ctx(t), ms[0].ConversationID, ms[0].Seq, "v1.k1.stale", "v1.k2.new", "k2")
	wantNoErr(t, "ResealMessage stale", err)
	wantEq(t, "stale reseal applied", ok, false)
	for _, m := range ms {
		ok, err := s.ResealMessage(ctx(t), m.ConversationID, m.Seq, m.BodySealed, "v1.k2.re-"+m.ID, "k2")
		wantNoErr(t, "ResealMessage", err)
		wantEq(t, "reseal applied", ok, true)
	}
	after, err := s.MessagesAfter(ctx(t), g.ID, 0, 10)
	wantNoErr(t, "MessagesAfter", err)
	for i, m := range after {
		wantEq(t, "resealed body", m.BodySealed, "v1.k2.re-"+ms[i].ID)
		wantEq(t, "resealed key id", m.KeyID, "k2")
		wantEq(t, "seq kept", m.Seq, ms[i].Seq)
	}

	convs, err := s.ConversationsSealedWith(ctx(t), "k1", 10)
	wantNoErr(t, "ConversationsSealedWith", err)
	wantEq(t, "groups titled with k1", len(convs), 1)
	// LIKE wildcards in a key id match only themselves.
	wild, err := s.ConversationsSealedWith(ctx(t), "k%", 10)
	wantNoErr(t, "ConversationsSealedWith wildcard", err)
	wantEq(t, "groups matched by a wildcard key id", len(wild), 0)
	ok, err = s.ResealTitle(ctx(t), g.ID, "v1.k1.other", "v1.k2.title")
	wantNoErr(t, "ResealTitle stale", err)
	wantEq(t, "stale title reseal applied", ok, false)
	ok, err = s.ResealTitle(ctx(t), g.ID, g.TitleSealed, "v1.k2.title")
	wantNoErr(t, "ResealTitle", err)
	wantEq(t, "title reseal applied", ok, true)
	c, err := s.Conversation(ctx(t), g.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "resealed title", c.TitleSealed, "v1.k2.title")

	counts, err = s.SealedCounts(ctx(t))
	wantNoErr(t, "SealedCounts after", err)
	wantEq(t, "rows left on k1", counts["k1"], int64(0))
	wantEq(t, "rows on k2", counts["k2"], int64(4))
}
