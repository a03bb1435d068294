package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// Account deletion and export (docs/api.md, "Delete my account").
var accountTests = []test{
	{"DeleteUser", testDeleteUser},
	{"AccountsToPurge", testAccountsToPurge},
	{"SetMemberRoleAndDeleteConversation", testSetMemberRoleAndDeleteConversation},
	{"SetConversationTitle", testSetConversationTitle},
	{"UserMessages", testUserMessages},
	{"UserReactions", testUserReactions},
}

func testDeleteUser(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	tok := mustToken(t, s, a, "f1")
	other := mustToken(t, s, b, "f2")
	at := t0.Add(time.Minute)
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), a.ID, at))

	got, err := s.UserByID(ctx(t), a.ID)
	wantNoErr(t, "UserByID of a deleted account", err)
	wantEq(t, "username", got.Username, "deleted:"+a.ID)
	wantEq(t, "email", got.Email, "deleted:"+a.ID)
	wantEq(t, "display name", got.DisplayName, store.DeletedDisplayName)
	wantEq(t, "password hash", got.PasswordHash, "")
	wantTime(t, "tokens valid after", got.TokensValidAfter, at)
	if got.DeletedAt == nil {
		t.Fatal("DeletedAt not set")
	}
	wantTime(t, "deleted at", *got.DeletedAt, at)
	users, err := s.UsersByIDs(ctx(t), []string{a.ID})
	wantNoErr(t, "UsersByIDs", err)
	wantEq(t, "UsersByIDs returns the deleted account", len(users) == 1 && users[0].DeletedAt != nil, true)
	live, err := s.UserByID(ctx(t), b.ID)
	wantNoErr(t, "UserByID bob", err)
	wantEq(t, "a live account has no DeletedAt", live.DeletedAt == nil, true)

	_, err = s.UserByUsername(ctx(t), "deleted:"+a.ID)
	wantErr(t, "UserByUsername of a deleted account", err, store.ErrNotFound)
	_, err = s.UserByEmail(ctx(t), "deleted:"+a.ID)
	wantErr(t, "UserByEmail of a deleted account", err, store.ErrNotFound)
	found, err := s.SearchUsers(ctx(t), "deleted", 10)
	wantNoErr(t, "SearchUsers", err)
	wantEq(t, "search finds deleted accounts", len(found), 0)

	_, err = s.RefreshTokenByHash(ctx(t), tok.TokenHash)
	wantErr(t, "refresh token of a deleted account", err, store.ErrNotFound)
	ended, err := s.SessionRevoked(ctx(t), "f1")
	wantNoErr(t, "SessionRevoked", err)
	wantEq(t, "session of a deleted account ended", ended, true)
	_, err = s.RefreshTokenByHash(ctx(t), other.TokenHash)
	wantNoErr(t, "another user's refresh token stays", err)

	// The username and email are free again.
	again := mustUser(t, s, "alice")
	byName, err := s.UserByUsername(ctx(t), "alice")
	wantNoErr(t, "UserByUsername of the new alice", err)
	wantEq(t, "the new alice", byName.ID, again.ID)

	wantErr(t, "DeleteUser twice", s.DeleteUser(ctx(t), a.ID, at), store.ErrNotFound)
	wantErr(t, "DeleteUser unknown", s.DeleteUser(ctx(t), "u_nobody", at), store.ErrNotFound)
}

func testAccountsToPurge(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	wantNoErr(t, "DeleteUser b", s.DeleteUser(ctx(t), b.ID, t0.Add(2*time.Minute)))
	wantNoErr(t, "DeleteUser a", s.DeleteUser(ctx(t), a.ID, t0.Add(time.Minute)))
	_ = c
	ids, err := s.AccountsToPurge(ctx(t), t0.Add(time.Hour), 10)
	wantNoErr(t, "AccountsToPurge", err)
	wantStrings(t, "accounts to purge, oldest deletion first", ids, []string{a.ID, b.ID})
	ids, err = s.AccountsToPurge(ctx(t), t0.Add(90*time.Second), 10)
	wantNoErr(t, "AccountsToPurge before", err)
	wantStrings(t, "only those deleted before", ids, []string{a.ID})
	ids, err = s.AccountsToPurge(ctx(t), t0.Add(time.Hour), 1)
	wantNoErr(t, "AccountsToPurge limit", err)
	wantStrings(t, "limit", ids, []string{a.ID})

	wantNoErr(t, "MarkAccountPurged", s.MarkAccountPurged(ctx(t), a.ID, t0.Add(time.Hour)))
	ids, err = s.AccountsToPurge(ctx(t), t0.Add(time.Hour), 10)
	wantNoErr(t, "AccountsToPurge after", err)
	wantStrings(t, "purged accounts left out", ids, []string{b.ID})
	wantErr(t, "MarkAccountPurged of a live account", s.MarkAccountPurged(ctx(t), c.ID, t0), store.ErrNotFound)
}

func testSetMemberRoleAndDeleteConversation(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g := mustGroup(t, s, t0, a, b)
	m := mustSend(t, s, g, b, t0)
	_, err := s.SetReaction(ctx(t), g.ID, m.ID, a.ID, "👍", true, 20, t0)
	wantNoErr(t, "SetReaction", err)
	_, _, err = s.EditMessage(ctx(t), g.ID, m.ID, "v1.k1.edited", "k1", b.ID, t0)
	wantNoErr(t, "EditMessage", err)

	wantNoErr(t, "SetMemberRole", s.SetMemberRole(ctx(t), g.ID, b.ID, store.RoleOwner))
	mem, err := s.Member(ctx(t), g.ID, b.ID)
	wantNoErr(t, "Member", err)
	wantEq(t, "new role", mem.Role, store.RoleOwner)
	wantErr(t, "SetMemberRole of a non-member", s.SetMemberRole(ctx(t), g.ID, "u_nobody", store.RoleAdmin), store.ErrNotFound)

	other := mustGroup(t, s, t0, a, b)
	wantNoErr(t, "DeleteConversation", s.DeleteConversation(ctx(t), g.ID))
	_, err = s.Conversation(ctx(t), g.ID)
	wantErr(t, "Conversation after delete", err, store.ErrNotFound)
	_, err = s.MessageByID(ctx(t), g.ID, m.ID)
	wantErr(t, "message after delete", err, store.ErrNotFound)
	evs, err := s.EventsAfter(ctx(t), g.ID, 0, 10)
	wantNoErr(t, "EventsAfter", err)
	wantEq(t, "events after delete", len(evs), 0)
	rcs, err := s.ReactionCounts(ctx(t), []string{m.ID}, "")
	wantNoErr(t, "ReactionCounts", err)
	wantEq(t, "reactions after delete", len(rcs), 0)
	convs, err := s.ListConversations(ctx(t), a.ID)
	wantNoErr(t, "ListConversations", err)
	wantEq(t, "conversations left", len(convs) == 1 && convs[0].ID == other.ID, true)
	wantErr(t, "DeleteConversation twice", s.DeleteConversation(ctx(t), g.ID), store.ErrNotFound)
}

func testUserMessages(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g1, g2 := mustGroup(t, s, t0, a, b), mustGroup(t, s, t0, a, b)
	var want []string
	var gone *store.Message
	for i := range 3 {
		for _, g := range []*store.Conversation{g1, g2} {
			m := mustSend(t, s, g, a, t0.Add(time.Duration(i)*time.Second))
			mustSend(t, s, g, b, t0)
			if i == 1 && g == g1 {
				gone = m
				continue
			}
			want = append(want, g.ID+"/"+m.ID)
		}
	}
	_, _, err := s.DeleteMessage(ctx(t), g1.ID, gone.ID, a.ID, store.EventDeleted, t0)
	wantNoErr(t, "DeleteMessage", err)
	var got []string
	afterConv, afterSeq := "", int64(0)
	for range 10 {
		page, err := s.UserMessages(ctx(t), a.ID, afterConv, afterSeq, 2)
		wantNoErr(t, "UserMessages", err)
		for _, m := range page {
			wantEq(t, "sender", m.SenderID, a.ID)
			wantEq(t, "live", m.DeletedAt == nil && m.BodySealed != "", true)
			got = append(got, m.ConversationID+"/"+m.ID)
		}
		if len(page) < 2 {
			break
		}
		afterConv, afterSeq = page[len(page)-1].ConversationID, page[len(page)-1].Seq
	}
	sortByConv(want, g1.ID, g2.ID)
	wantStrings(t, "the user's live messages by conversation and seq", got, want)
	none, err := s.UserMessages(ctx(t), a.ID, "", 0, 0)
	wantNoErr(t, "UserMessages limit 0", err)
	wantEq(t, "limit 0", len(none), 0)
}

// sortByConv orders "conv/msg" keys by conversation (stable within one).
func sortByConv(keys []string, c1, c2 string) {
	first := min(c1, c2)
	var a, b []string
	for _, k := range keys {
		if strings.HasPrefix(k, first+"/") {
			a = append(a, k)
		} else {
			b = append(b, k)
		}
	}
	copy(keys, append(a, b...))
}

func testUserReactions(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g1, g2 := mustGroup(t, s, t0, a, b), mustGroup(t, s, t0, a, b)
	m1, m2, m3 := mustSend(t, s, g1, b, t0), mustSend(t, s, g2, b, t0), mustSend(t, s, g2, a, t0)
	react := func(c *store.Conversation, m *store.Message, u *store.User, emoji string) {
		t.Helper()
		_, err := s.SetReaction(ctx(t), c.ID, m.ID, u.ID, emoji, true, 20, t0)
		wantNoErr(t, "SetReaction", err)
	}
	react(g1, m1, a, "👍")
	react(g1, m1, a, "🎉")
	react(g2, m2, a, "👍")
	react(g2, m3, a, "😀")
	react(g1, m1, b, "👍")
	_, _, err := s.DeleteMessage(ctx(t), g2.ID, m3.ID, a.ID, store.EventDeleted, t0)
	wantNoErr(t, "DeleteMessage", err)

	var got []store.Reaction
	afterMsg, afterEmoji := "", ""
	for range 10 {
		page, err := s.UserReactions(ctx(t), a.ID, afterMsg, afterEmoji, 2)
		wantNoErr(t, "UserReactions", err)
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		afterMsg, afterEmoji = page[len(page)-1].MessageID, page[len(page)-1].Emoji
	}
	wantEq(t, "reactions (a deleted message's are gone)", len(got), 3)
	seen := map[string]bool{}
	for i, r := range got {
		if i > 0 {
			p := got[i-1]
			wantEq(t, "ordered", p.MessageID < r.MessageID || (p.MessageID == r.MessageID && p.Emoji < r.Emoji), true)
		}
		want := g1.ID
		if r.MessageID == m2.ID {
			want = g2.ID
		}
		wantEq(t, "conversation of "+r.MessageID, r.ConversationID, want)
		wantTime(t, "created at", r.CreatedAt, t0)
		seen[r.MessageID+r.Emoji] = true
	}
	wantEq(t, "all of alice's", seen[m1.ID+"👍"] && seen[m1.ID+"🎉"] && seen[m2.ID+"👍"], true)
}

func testSetConversationTitle(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	g := mustGroup(t, s, t0, a, b)
	other := mustGroup(t, s, t0, b, a)
	wantNoErr(t, "SetConversationTitle", s.SetConversationTitle(ctx(t), g.ID, "v1.k.renamed"))
	got, err := s.Conversation(ctx(t), g.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "TitleSealed", got.TitleSealed, "v1.k.renamed")
	// Every member's summary shows it; another conversation is untouched.
	sum, err := s.ConversationSummary(ctx(t), b.ID, g.ID)
	wantNoErr(t, "ConversationSummary", err)
	wantEq(t, "summary TitleSealed", sum.TitleSealed, "v1.k.renamed")
	got, err = s.Conversation(ctx(t), other.ID)
	wantNoErr(t, "Conversation other", err)
	wantEq(t, "other TitleSealed", got.TitleSealed, other.TitleSealed)
	wantErr(t, "SetConversationTitle unknown", s.SetConversationTitle(ctx(t), "c_nobody", "x"), store.ErrNotFound)
}
