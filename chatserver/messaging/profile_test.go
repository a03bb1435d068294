package messaging_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// A display name change goes to everyone sharing a conversation with the
// user and to the user's own sessions, as one "user" frame without email.
func TestSetDisplayNameTellsPeers(t *testing.T) {
	f := newFixture(t)
	alice, bob, dave := f.user(t, "alice"), f.user(t, "bob"), f.user(t, "dave")
	f.user(t, "carol") // shares nothing with alice: not told
	f.group(t, alice, bob)
	f.group(t, dave, alice, bob)

	u, err := f.svc.SetDisplayName(t.Context(), alice, " Alice L. ")
	if err != nil {
		t.Fatal(err)
	}
	if u.DisplayName != "Alice L." || u.Email != "alice@example.test" {
		t.Errorf("answer %+v, want the trimmed name with email", u)
	}
	ev := f.events.take()
	if len(ev) != 1 {
		t.Fatalf("%d events, want one: %+v", len(ev), ev)
	}
	wantTo(t, "user frame", ev[0], alice, bob, dave)
	uf, ok := ev[0].Frame.(protocol.UserFrame)
	if !ok || uf.User == nil || uf.User.ID != alice || uf.User.DisplayName != "Alice L." || uf.User.Email != "" {
		t.Errorf("frame %#v, want a user frame of alice's public view", ev[0].Frame)
	}

	_, err = f.svc.SetDisplayName(t.Context(), alice, strings.Repeat("x", 65))
	wantCode(t, "65 characters", err, "invalid_request")
	wantNoEvents(t, "a refused change", f.events)
}

// An admin may rename a group like its owner; every member is told.
func TestRenameGroupByAdmin(t *testing.T) {
	f := newFixture(t)
	owner, admin, member := f.user(t, "owner"), f.user(t, "admin"), f.user(t, "member")
	g := f.group(t, owner, admin, member)
	if err := f.db.SetMemberRole(t.Context(), g, admin, store.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	c, err := f.svc.RenameGroup(t.Context(), admin, g, "Renamed")
	if err != nil {
		t.Fatalf("admin rename: %v", err)
	}
	if c.Title != "Renamed" {
		t.Errorf("title %q", c.Title)
	}
	told := []string{}
	for _, e := range f.events.take() {
		cf, ok := e.Frame.(protocol.ConversationFrame)
		if !ok || cf.Conversation.Title != "Renamed" || len(e.To) != 1 {
			t.Errorf("event %+v, want a conversation frame with the new title to one member", e)
			continue
		}
		told = append(told, e.To[0])
	}
	if got, want := sorted(told...), sorted(owner, admin, member); !slices.Equal(got, want) {
		t.Errorf("told %v, want %v", got, want)
	}
	_, err = f.svc.RenameGroup(t.Context(), member, g, "Mine")
	wantCode(t, "plain member", err, "forbidden")
	wantNoEvents(t, "a refused rename", f.events)
}
