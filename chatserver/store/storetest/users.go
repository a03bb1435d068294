package storetest

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var userTests = []test{
	{"CreateUserAndLookups", testCreateUserAndLookups},
	{"CreateUserConflicts", testCreateUserConflicts},
	{"UserNotFound", testUserNotFound},
	{"UsersByIDs", testUsersByIDs},
	{"SearchUsers", testSearchUsers},
	{"UpdatePassword", testUpdatePassword},
	{"SetTokensValidAfter", testSetTokensValidAfter},
}

func checkUser(t *testing.T, got *store.User, want *store.User) {
	t.Helper()
	wantEq(t, "ID", got.ID, want.ID)
	wantEq(t, "Username", got.Username, want.Username)
	wantEq(t, "Email", got.Email, want.Email)
	wantEq(t, "DisplayName", got.DisplayName, want.DisplayName)
	wantEq(t, "PasswordHash", got.PasswordHash, want.PasswordHash)
	wantTime(t, "CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTime(t, "TokensValidAfter", got.TokensValidAfter, want.TokensValidAfter)
}

func testCreateUserAndLookups(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	mustUser(t, s, "bob")

	got, err := s.UserByID(ctx(t), u.ID)
	wantNoErr(t, "UserByID", err)
	checkUser(t, got, u)
	got, err = s.UserByEmail(ctx(t), u.Email)
	wantNoErr(t, "UserByEmail", err)
	checkUser(t, got, u)
	got, err = s.UserByUsername(ctx(t), u.Username)
	wantNoErr(t, "UserByUsername", err)
	checkUser(t, got, u)

	// A zero TokensValidAfter round-trips as zero.
	z := &store.User{ID: newID("u"), Username: "zed", Email: "zed@example.test", PasswordHash: "h", CreatedAt: t0}
	wantNoErr(t, "CreateUser zero times", s.CreateUser(ctx(t), z))
	got, err = s.UserByID(ctx(t), z.ID)
	wantNoErr(t, "UserByID", err)
	if !got.TokensValidAfter.IsZero() {
		t.Errorf("zero TokensValidAfter read back as %v", got.TokensValidAfter)
	}
}

func testCreateUserConflicts(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	dupName := &store.User{ID: newID("u"), Username: "alice", Email: "other@example.test", PasswordHash: "h", CreatedAt: t0}
	wantErr(t, "same username", s.CreateUser(ctx(t), dupName), store.ErrConflict)
	dupEmail := &store.User{ID: newID("u"), Username: "alice2", Email: u.Email, PasswordHash: "h", CreatedAt: t0}
	wantErr(t, "same email", s.CreateUser(ctx(t), dupEmail), store.ErrConflict)
	dupID := &store.User{ID: u.ID, Username: "alice3", Email: "a3@example.test", PasswordHash: "h", CreatedAt: t0}
	wantErr(t, "same id", s.CreateUser(ctx(t), dupID), store.ErrConflict)

	// Nothing of the refused users was stored.
	for _, name := range []string{"alice2", "alice3"} {
		_, err := s.UserByUsername(ctx(t), name)
		wantErr(t, "refused user "+name, err, store.ErrNotFound)
	}
	got, err := s.UserByID(ctx(t), u.ID)
	wantNoErr(t, "UserByID", err)
	checkUser(t, got, u)
}

func testUserNotFound(t *testing.T, s store.Store) {
	mustUser(t, s, "alice")
	_, err := s.UserByID(ctx(t), "nope")
	wantErr(t, "UserByID", err, store.ErrNotFound)
	_, err = s.UserByEmail(ctx(t), "nope@example.test")
	wantErr(t, "UserByEmail", err, store.ErrNotFound)
	_, err = s.UserByUsername(ctx(t), "nope")
	wantErr(t, "UserByUsername", err, store.ErrNotFound)
}

func testUsersByIDs(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	got, err := s.UsersByIDs(ctx(t), []string{c.ID, "missing", a.ID, c.ID})
	wantNoErr(t, "UsersByIDs", err)
	ids := map[string]bool{}
	for _, u := range got {
		ids[u.ID] = true
		if u.ID == a.ID {
			checkUser(t, &u, a)
		}
	}
	if len(got) != 2 || !ids[a.ID] || !ids[c.ID] || ids[b.ID] {
		t.Errorf("UsersByIDs returned %d users %v, want alice and carol once each", len(got), ids)
	}
	got, err = s.UsersByIDs(ctx(t), nil)
	wantNoErr(t, "UsersByIDs(nil)", err)
	wantEq(t, "len(UsersByIDs(nil))", len(got), 0)
}

func testSearchUsers(t *testing.T, s store.Store) {
	for _, n := range []string{"anna", "annabel", "ann_x", "annex", "bob", "zoe"} {
		mustUser(t, s, n)
	}
	names := func(us []store.User) []string {
		out := []string{}
		for _, u := range us {
			out = append(out, u.Username)
		}
		return out
	}
	got, err := s.SearchUsers(ctx(t), "ann", 10)
	wantNoErr(t, "SearchUsers", err)
	wantStrings(t, `SearchUsers("ann")`, names(got), []string{"ann_x", "anna", "annabel", "annex"})

	got, err = s.SearchUsers(ctx(t), "ann", 2)
	wantNoErr(t, "SearchUsers limit", err)
	wantStrings(t, `SearchUsers("ann", 2)`, names(got), []string{"ann_x", "anna"})

	// LIKE wildcards in the query are literal.
	got, err = s.SearchUsers(ctx(t), "ann_", 10)
	wantNoErr(t, "SearchUsers wildcard", err)
	wantStrings(t, `SearchUsers("ann_")`, names(got), []string{"ann_x"})
	got, err = s.SearchUsers(ctx(t), "%", 10)
	wantNoErr(t, "SearchUsers percent", err)
	wantStrings(t, `SearchUsers("%")`, names(got), []string{})

	// An exact email finds its user; a partial one does not.
	got, err = s.SearchUsers(ctx(t), "zoe@example.test", 10)
	wantNoErr(t, "SearchUsers email", err)
	wantStrings(t, "SearchUsers(email)", names(got), []string{"zoe"})
	got, err = s.SearchUsers(ctx(t), "zoe@example", 10)
	wantNoErr(t, "SearchUsers partial email", err)
	wantStrings(t, "SearchUsers(partial email)", names(got), []string{})

	got, err = s.SearchUsers(ctx(t), "nobody", 10)
	wantNoErr(t, "SearchUsers none", err)
	wantEq(t, "len(SearchUsers(nobody))", len(got), 0)
}

func testUpdatePassword(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	other := mustUser(t, s, "bob")
	later := t0.Add(48 * time.Hour)
	wantNoErr(t, "UpdatePassword", s.UpdatePassword(ctx(t), u.ID, "$argon2id$new", later))
	got, err := s.UserByID(ctx(t), u.ID)
	wantNoErr(t, "UserByID", err)
	wantEq(t, "PasswordHash", got.PasswordHash, "$argon2id$new")
	wantTime(t, "TokensValidAfter", got.TokensValidAfter, later)
	// Other users are untouched.
	got, err = s.UserByID(ctx(t), other.ID)
	wantNoErr(t, "UserByID other", err)
	checkUser(t, got, other)

	wantErr(t, "UpdatePassword unknown", s.UpdatePassword(ctx(t), "nope", "h", later), store.ErrNotFound)
}

func testSetTokensValidAfter(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	later := t0.Add(72*time.Hour + 123*time.Microsecond)
	wantNoErr(t, "SetTokensValidAfter", s.SetTokensValidAfter(ctx(t), u.ID, later))
	got, err := s.UserByID(ctx(t), u.ID)
	wantNoErr(t, "UserByID", err)
	wantTime(t, "TokensValidAfter", got.TokensValidAfter, later)
	wantEq(t, "PasswordHash unchanged", got.PasswordHash, u.PasswordHash)
	wantErr(t, "SetTokensValidAfter unknown", s.SetTokensValidAfter(ctx(t), "nope", later), store.ErrNotFound)
}
