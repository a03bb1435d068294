package storetest

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var conversationTests = []test{
	{"CreateConversationAndGet", testCreateConversationAndGet},
	{"DirectConversations", testDirectConversations},
	{"ConversationNotFound", testConversationNotFound},
	{"AddRemoveMember", testAddRemoveMember},
	{"ListConversations", testListConversations},
	{"ConversationPeers", testConversationPeers},
}

func testCreateConversationAndGet(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustGroup(t, s, t0, a, b, c)

	got, err := s.Conversation(ctx(t), conv.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "ID", got.ID, conv.ID)
	wantEq(t, "Kind", got.Kind, store.KindGroup)
	wantEq(t, "TitleSealed", got.TitleSealed, conv.TitleSealed)
	wantEq(t, "DirectKey", got.DirectKey, "")
	wantEq(t, "CreatedBy", got.CreatedBy, a.ID)
	wantTime(t, "CreatedAt", got.CreatedAt, t0)
	wantEq(t, "LastSeq", got.LastSeq, int64(0))
	wantTime(t, "LastActivity", got.LastActivity, t0)

	ms, err := s.Members(ctx(t), conv.ID)
	wantNoErr(t, "Members", err)
	roles := map[string]string{}
	for _, m := range ms {
		roles[m.UserID] = m.Role
		wantEq(t, "member ConversationID", m.ConversationID, conv.ID)
		wantTime(t, "member JoinedAt", m.JoinedAt, t0)
		wantEq(t, "member ReadSeq", m.ReadSeq, int64(0))
	}
	if len(ms) != 3 || roles[a.ID] != store.RoleOwner || roles[b.ID] != store.RoleMember || roles[c.ID] != store.RoleMember {
		t.Errorf("Members = %+v, want alice owner, bob and carol members", ms)
	}

	m, err := s.Member(ctx(t), conv.ID, b.ID)
	wantNoErr(t, "Member", err)
	wantEq(t, "Member.Role", m.Role, store.RoleMember)
	wantEq(t, "Member.UserID", m.UserID, b.ID)

	// Two groups never collide on their (empty) direct key.
	mustGroup(t, s, t0, a, b)
	mustGroup(t, s, t0, a, b)
}

func testDirectConversations(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	direct := func(x, y *store.User) (*store.Conversation, []store.Member) {
		lo, hi := min(x.ID, y.ID), max(x.ID, y.ID)
		conv := &store.Conversation{
			ID: newID("c"), Kind: store.KindDirect, DirectKey: lo + ":" + hi,
			CreatedBy: x.ID, CreatedAt: t0,
		}
		return conv, []store.Member{
			{UserID: x.ID, Role: store.RoleMember, JoinedAt: t0},
			{UserID: y.ID, Role: store.RoleMember, JoinedAt: t0},
		}
	}
	ab, abMembers := direct(a, b)
	wantNoErr(t, "CreateConversation direct", s.CreateConversation(ctx(t), ab, abMembers))

	got, err := s.ConversationByDirectKey(ctx(t), ab.DirectKey)
	wantNoErr(t, "ConversationByDirectKey", err)
	wantEq(t, "ID", got.ID, ab.ID)
	wantEq(t, "Kind", got.Kind, store.KindDirect)
	wantEq(t, "DirectKey", got.DirectKey, ab.DirectKey)
	// LastActivity defaults to CreatedAt.
	wantTime(t, "LastActivity", got.LastActivity, t0)
	// Members' ConversationID comes from the conversation.
	m, err := s.Member(ctx(t), ab.ID, b.ID)
	wantNoErr(t, "Member of direct", err)
	wantEq(t, "Member.ConversationID", m.ConversationID, ab.ID)

	// The same pair again, in either order: conflict, and nothing stored.
	ba, baMembers := direct(b, a)
	wantErr(t, "second direct for the pair", s.CreateConversation(ctx(t), ba, baMembers), store.ErrConflict)
	_, err = s.Conversation(ctx(t), ba.ID)
	wantErr(t, "refused conversation", err, store.ErrNotFound)
	ms, err := s.Members(ctx(t), ba.ID)
	wantNoErr(t, "Members of refused conversation", err)
	wantEq(t, "members of refused conversation", len(ms), 0)

	// Another pair is fine.
	ac, acMembers := direct(a, c)
	wantNoErr(t, "CreateConversation other pair", s.CreateConversation(ctx(t), ac, acMembers))

	_, err = s.ConversationByDirectKey(ctx(t), b.ID+":"+c.ID)
	wantErr(t, "ConversationByDirectKey unknown", err, store.ErrNotFound)
	_, err = s.ConversationByDirectKey(ctx(t), "")
	wantErr(t, "ConversationByDirectKey empty", err, store.ErrNotFound)
}

func testConversationNotFound(t *testing.T, s store.Store) {
	a := mustUser(t, s, "alice")
	conv := mustGroup(t, s, t0, a)
	_, err := s.Conversation(ctx(t), "nope")
	wantErr(t, "Conversation", err, store.ErrNotFound)
	_, err = s.Member(ctx(t), "nope", a.ID)
	wantErr(t, "Member of unknown conversation", err, store.ErrNotFound)
	_, err = s.Member(ctx(t), conv.ID, "nope")
	wantErr(t, "Member unknown user", err, store.ErrNotFound)
	ms, err := s.Members(ctx(t), "nope")
	wantNoErr(t, "Members of unknown conversation", err)
	wantEq(t, "len(Members(unknown))", len(ms), 0)
}

func testAddRemoveMember(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	conv := mustGroup(t, s, t0, a)
	_, err := s.Member(ctx(t), conv.ID, b.ID)
	wantErr(t, "Member before add", err, store.ErrNotFound)

	joined := t0.Add(time.Hour)
	wantNoErr(t, "AddMember", s.AddMember(ctx(t), store.Member{ConversationID: conv.ID, UserID: b.ID, Role: store.RoleAdmin, JoinedAt: joined}))
	m, err := s.Member(ctx(t), conv.ID, b.ID)
	wantNoErr(t, "Member after add", err)
	wantEq(t, "Role", m.Role, store.RoleAdmin)
	wantTime(t, "JoinedAt", m.JoinedAt, joined)

	err = s.AddMember(ctx(t), store.Member{ConversationID: conv.ID, UserID: b.ID, Role: store.RoleMember, JoinedAt: joined})
	wantErr(t, "AddMember twice", err, store.ErrConflict)
	m, err = s.Member(ctx(t), conv.ID, b.ID)
	wantNoErr(t, "Member after second add", err)
	wantEq(t, "Role after refused add", m.Role, store.RoleAdmin)

	err = s.AddMember(ctx(t), store.Member{ConversationID: "nope", UserID: b.ID, Role: store.RoleMember, JoinedAt: joined})
	wantErr(t, "AddMember unknown conversation", err, store.ErrNotFound)
	err = s.AddMember(ctx(t), store.Member{ConversationID: conv.ID, UserID: "nope", Role: store.RoleMember, JoinedAt: joined})
	wantErr(t, "AddMember unknown user", err, store.ErrNotFound)

	wantNoErr(t, "RemoveMember", s.RemoveMember(ctx(t), conv.ID, b.ID))
	_, err = s.Member(ctx(t), conv.ID, b.ID)
	wantErr(t, "Member after remove", err, store.ErrNotFound)
	wantErr(t, "RemoveMember twice", s.RemoveMember(ctx(t), conv.ID, b.ID), store.ErrNotFound)
	ms, err := s.Members(ctx(t), conv.ID)
	wantNoErr(t, "Members", err)
	if len(ms) != 1 || ms[0].UserID != a.ID {
		t.Errorf("Members after remove = %+v, want only alice", ms)
	}
}

func testListConversations(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	quiet := mustGroup(t, s, t0, a, c)                   // no message
	older := mustGroup(t, s, t0, b, a)                   // activity at t0+1h
	busy := mustGroup(t, s, t0, a, b, c)                 // activity at t0+2h
	notMine := mustGroup(t, s, t0.Add(-time.Hour), b, c) // alice is not in it
	mustSend(t, s, notMine, b, t0.Add(5*time.Hour))

	mustSend(t, s, older, b, t0.Add(time.Hour))
	mustSend(t, s, busy, b, t0.Add(90*time.Minute))
	mustSend(t, s, busy, a, t0.Add(100*time.Minute)) // her own: she has read up to it
	mustSend(t, s, busy, c, t0.Add(110*time.Minute))
	last := mustSend(t, s, busy, b, t0.Add(2*time.Hour))

	list, err := s.ListConversations(ctx(t), a.ID)
	wantNoErr(t, "ListConversations", err)
	var ids []string
	for _, cs := range list {
		ids = append(ids, cs.ID)
	}
	wantStrings(t, "order", ids, []string{busy.ID, older.ID, quiet.ID})
	if len(list) != 3 {
		t.FailNow()
	}

	bs := list[0]
	wantEq(t, "busy Role", bs.Role, store.RoleOwner)
	wantEq(t, "busy LastSeq", bs.LastSeq, int64(4))
	wantTime(t, "busy LastActivity", bs.LastActivity, t0.Add(2*time.Hour))
	wantEq(t, "busy ReadSeq (raised by her own message)", bs.ReadSeq, int64(2))
	wantEq(t, "busy Unread", bs.Unread, int64(2))
	wantEq(t, "busy Kind", bs.Kind, store.KindGroup)
	wantEq(t, "busy TitleSealed", bs.TitleSealed, busy.TitleSealed)
	if bs.LastMessage == nil {
		t.Fatal("busy LastMessage is nil")
	}
	checkMessage(t, "busy LastMessage", *bs.LastMessage, *last)
	wantStrings(t, "busy MemberIDs", bs.MemberIDs, sorted(a.ID, b.ID, c.ID))
	wantEq(t, "busy Members", len(bs.Members), 3)
	for i, m := range bs.Members {
		wantEq(t, "Members order", m.UserID, bs.MemberIDs[i])
		wantEq(t, "Members conversation", m.ConversationID, bs.ID)
		if m.Role == "" || m.JoinedAt.IsZero() {
			t.Errorf("member %+v lacks role or join time", m)
		}
	}

	od := list[1]
	wantEq(t, "older Role", od.Role, store.RoleMember)
	wantEq(t, "older Unread", od.Unread, int64(1))
	wantStrings(t, "older MemberIDs", od.MemberIDs, sorted(a.ID, b.ID))

	qt := list[2]
	if qt.LastMessage != nil {
		t.Errorf("quiet LastMessage = %+v, want nil", qt.LastMessage)
	}
	wantEq(t, "quiet Unread", qt.Unread, int64(0))
	wantEq(t, "quiet LastSeq", qt.LastSeq, int64(0))
	wantStrings(t, "quiet MemberIDs", qt.MemberIDs, sorted(a.ID, c.ID))

	// One conversation alone reads the same as its row of the list.
	for _, want := range list {
		one, err := s.ConversationSummary(ctx(t), a.ID, want.ID)
		wantNoErr(t, "ConversationSummary", err)
		if !reflect.DeepEqual(*one, want) {
			t.Errorf("ConversationSummary(%s) = %+v, want %+v", want.ID, *one, want)
		}
	}
	_, err = s.ConversationSummary(ctx(t), a.ID, notMine.ID)
	wantErr(t, "ConversationSummary of a non-member", err, store.ErrNotFound)

	// Every member's view at once reads as each member's ConversationSummary.
	all, err := s.MemberSummaries(ctx(t), bs.ID)
	wantNoErr(t, "MemberSummaries", err)
	var viewers []string
	for _, got := range all {
		viewers = append(viewers, got.Viewer)
		want, err := s.ConversationSummary(ctx(t), got.Viewer, bs.ID)
		wantNoErr(t, "ConversationSummary", err)
		if !reflect.DeepEqual(got, *want) {
			t.Errorf("MemberSummaries: %s sees %+v, want %+v", got.Viewer, got, *want)
		}
	}
	wantStrings(t, "MemberSummaries viewers", viewers, sorted(a.ID, b.ID, c.ID))
	none, err := s.MemberSummaries(ctx(t), "c_nonexistent")
	wantNoErr(t, "MemberSummaries of no conversation", err)
	wantEq(t, "MemberSummaries of no conversation", len(none), 0)

	// Reading up to seq 2 leaves seq 4 (bob) unread; seq 3 (carol) is read,
	// and seq 2 is alice's own.
	_, err = s.MarkRead(ctx(t), busy.ID, a.ID, 3)
	wantNoErr(t, "MarkRead", err)
	list, err = s.ListConversations(ctx(t), a.ID)
	wantNoErr(t, "ListConversations after read", err)
	wantEq(t, "busy ReadSeq after read", list[0].ReadSeq, int64(3))
	wantEq(t, "busy Unread after read", list[0].Unread, int64(1))

	// A new message moves a conversation to the top.
	mustSend(t, s, quiet, c, t0.Add(3*time.Hour))
	list, err = s.ListConversations(ctx(t), a.ID)
	wantNoErr(t, "ListConversations after send", err)
	wantEq(t, "first after send", list[0].ID, quiet.ID)
	wantEq(t, "quiet Unread after send", list[0].Unread, int64(1))

	// Bob sees his own messages as read.
	list, err = s.ListConversations(ctx(t), b.ID)
	wantNoErr(t, "ListConversations bob", err)
	for _, cs := range list {
		if cs.ID == older.ID {
			wantEq(t, "bob's Unread in older", cs.Unread, int64(0))
		}
	}
	wantEq(t, "bob's conversation count", len(list), 3)

	list, err = s.ListConversations(ctx(t), "nobody")
	wantNoErr(t, "ListConversations nobody", err)
	wantEq(t, "len(ListConversations(nobody))", len(list), 0)
}

func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func testConversationPeers(t *testing.T, s store.Store) {
	a, b, c, d, e := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol"), mustUser(t, s, "dave"), mustUser(t, s, "erin")
	mustGroup(t, s, t0, a, b, c)
	mustGroup(t, s, t0, b, a) // bob again: listed once
	mustGroup(t, s, t0, d, e) // not alice's
	mustGroup(t, s, t0, a)    // alone

	peers, err := s.ConversationPeers(ctx(t), a.ID)
	wantNoErr(t, "ConversationPeers", err)
	slices.Sort(peers)
	wantStrings(t, "alice's peers", peers, sorted(b.ID, c.ID))

	peers, err = s.ConversationPeers(ctx(t), e.ID)
	wantNoErr(t, "ConversationPeers erin", err)
	wantStrings(t, "erin's peers", peers, []string{d.ID})

	peers, err = s.ConversationPeers(ctx(t), "nobody")
	wantNoErr(t, "ConversationPeers nobody", err)
	wantEq(t, "len(peers of nobody)", len(peers), 0)

	// Presence goes only through conversations of at most maxMembers:
	// carol shares only the 3-member group with alice, bob also a pair.
	peers, err = s.PresencePeers(ctx(t), a.ID, 3)
	wantNoErr(t, "PresencePeers 3", err)
	wantStrings(t, "alice's presence peers, groups up to 3", peers, sorted(b.ID, c.ID))
	peers, err = s.PresencePeers(ctx(t), a.ID, 2)
	wantNoErr(t, "PresencePeers 2", err)
	wantStrings(t, "alice's presence peers, conversations up to 2", peers, []string{b.ID})
	peers, err = s.PresencePeers(ctx(t), a.ID, 1)
	wantNoErr(t, "PresencePeers 1", err)
	wantEq(t, "alice's presence peers, conversations up to 1", len(peers), 0)
}
