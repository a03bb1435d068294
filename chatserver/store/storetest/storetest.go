// Package storetest is the conformance suite of store.Store: every engine
// runs it (see package sqlstore's tests). It checks the documented contract,
// including the concurrency guarantees, against real values.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// Run runs every conformance test as a subtest. newStore must return an
// empty store of its own for each call and close it when t ends.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// tests lists the suite; each file of the package adds its part.
var tests = concat(userTests, accountTests, tokenTests, conversationTests, messageTests, lifecycleTests, auditTests, sealTests, resealTests, attachmentTests, avatarTests, pushTests, mlsTests, miscTests)

func concat(groups ...[]test) []test {
	var all []test
	for _, g := range groups {
		all = append(all, g...)
	}
	return all
}

var miscTests = []test{
	{"Ping", func(t *testing.T, s store.Store) {
		if err := s.Ping(t.Context()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}},
}

// t0 is a base time with microseconds, which every engine keeps.
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 535897000, time.UTC)

func ctx(t *testing.T) context.Context { return t.Context() }

func newID(prefix string) string {
	return prefix + "_" + strings.ToLower(rand.Text())
}

func mustUser(t *testing.T, s store.Store, username string) *store.User {
	t.Helper()
	u := &store.User{
		ID:               newID("u"),
		Username:         username,
		Email:            username + "@example.test",
		DisplayName:      strings.ToUpper(username[:1]) + username[1:],
		PasswordHash:     "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$" + username,
		CreatedAt:        t0,
		TokensValidAfter: t0.Add(-time.Hour),
	}
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

// mustGroup creates a group conversation owned by the first user with the
// others as members.
func mustGroup(t *testing.T, s store.Store, at time.Time, users ...*store.User) *store.Conversation {
	t.Helper()
	c, ms := newGroup(at, users...)
	if err := s.CreateConversation(ctx(t), c, ms); err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	return c
}

// newGroup is a group created at at by users[0] (its owner) with users as members.
func newGroup(at time.Time, users ...*store.User) (*store.Conversation, []store.Member) {
	c := &store.Conversation{
		ID: newID("c"), Kind: store.KindGroup, TitleSealed: "v1.k1.sealed-title",
		CreatedBy: users[0].ID, CreatedAt: at, LastActivity: at,
	}
	var ms []store.Member
	for i, u := range users {
		role := store.RoleMember
		if i == 0 {
			role = store.RoleOwner
		}
		ms = append(ms, store.Member{ConversationID: c.ID, UserID: u.ID, Role: role, JoinedAt: at})
	}
	return c, ms
}

func mustSend(t *testing.T, s store.Store, c *store.Conversation, from *store.User, at time.Time) *store.Message {
	t.Helper()
	id := newID("m")
	m, created, err := s.AppendMessage(ctx(t), &store.Message{
		ConversationID: c.ID, ID: id, SenderID: from.ID, ClientID: "cl-" + id,
		BodySealed: "v1.k1.body-" + id, KeyID: "k1", CreatedAt: at,
	})
	if err != nil || !created {
		t.Fatalf("AppendMessage: created=%v err=%v", created, err)
	}
	return m
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got error %v, want %v", what, err, want)
	}
}

func wantNoErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantEq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func wantStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != len(want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

// auditHash stands in for package audit's hash: SHA-256 over the fields and
// the previous hash.
func auditHash(e *store.AuditEntry) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%d\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s",
		e.Seq, e.At.UnixMicro(), e.Event, e.ActorID, e.Subject, e.IP, e.Detail, e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}
