package storetest

import (
	"fmt"
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
	{"SearchUsersByDisplayName", testSearchUsersByDisplayName},
	{"SearchUsersUnicode", testSearchUsersUnicode},
	{"SetDisplayName", testSetDisplayName},
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

// mustPerson creates a user with a display name of its own.
func mustPerson(t *testing.T, s store.Store, username, displayName string) *store.User {
	t.Helper()
	u := &store.User{ID: newID("u"), Username: username, Email: username + "@example.test", DisplayName: displayName,
		PasswordHash: "h", CreatedAt: t0}
	if err := s.CreateUser(ctx(t), u); err != nil {
		t.Fatalf("CreateUser(%s): %v", username, err)
	}
	return u
}

func usernames(us []store.User) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.Username)
	}
	return out
}

// search runs SearchUsers with the query folded as callers must.
func search(t *testing.T, s store.Store, q string, limit int) []string {
	t.Helper()
	got, err := s.SearchUsers(ctx(t), store.FoldName(q), limit)
	if err != nil {
		t.Fatalf("SearchUsers(%q): %v", q, err)
	}
	return usernames(got)
}

// The examples (defect 7) and the ranking: exact username, then
// username prefix, then a display-name word prefix, then a substring
// anywhere; ties by username.
func testSearchUsersByDisplayName(t *testing.T, s store.Store) {
	mustPerson(t, s, "bob", "Bob Brown")
	mustPerson(t, s, "bobby", "Robert Tables")
	mustPerson(t, s, "jim", "Jim Bobson")
	mustPerson(t, s, "kebab_fan", "Annie Kebob")
	mustPerson(t, s, "zbob", "Zed")
	mustPerson(t, s, "carol", "Carol Brownlee")
	mustPerson(t, s, "dan", "Dan Ambrown")

	cases := []struct {
		q     string
		limit int
		want  []string
	}{
		{"Bob Brown", 10, []string{"bob"}},
		{"bob brown", 10, []string{"bob"}},
		{"BROWN", 10, []string{"bob", "carol", "dan"}}, // word prefixes first, then "Ambrown"
		{"brownlee", 10, []string{"carol"}},
		{"bob", 10, []string{"bob", "bobby", "jim", "kebab_fan", "zbob"}},
		{"bob", 2, []string{"bob", "bobby"}},
		{"obb", 10, []string{"bobby"}},            // inside a username
		{"ert tab", 10, []string{"bobby"}},        // across a display name's words
		{"bob@example.test", 10, []string{"bob"}}, // an exact email
		{"bob@example", 10, []string{}},           // a partial email is not matched
		{"nobody", 10, []string{}},
		// Queries under 3 characters match the start of a username or a
		// display name only.
		{"b", 10, []string{"bob", "bobby"}},
		{"br", 10, []string{}},
		{"ca", 10, []string{"carol"}},
		{"ji", 10, []string{"jim"}},
		// FTS5 and LIKE syntax in a query is literal.
		{`"bob"`, 10, []string{}},
		{`bo"b`, 10, []string{}},
		{"bob*", 10, []string{}},
		{"NEAR(bob brown)", 10, []string{}},
		{"b_b", 10, []string{}},
		{"%ob%", 10, []string{}},
	}
	for _, c := range cases {
		wantStrings(t, fmt.Sprintf("SearchUsers(%q, %d)", c.q, c.limit), search(t, s, c.q, c.limit), c.want)
	}
	got, err := s.SearchUsers(ctx(t), "", 10)
	wantNoErr(t, "SearchUsers empty", err)
	wantEq(t, "len(SearchUsers(empty))", len(got), 0)
}

// Case-insensitive beyond ASCII: display names are folded by store.FoldName
// on every engine.
func testSearchUsersUnicode(t *testing.T, s store.Store) {
	mustPerson(t, s, "uwe", "Ärger Öztürk")
	mustPerson(t, s, "sofia", "Σοφία Παπαδοπούλου")
	mustPerson(t, s, "ivan", "Иван Петров")
	cases := []struct{ q, want string }{
		{"ÖZTÜRK", "uwe"},
		{"öztürk", "uwe"},
		{"ärger ö", "uwe"},
		{"Är", "uwe"}, // short: display-name prefix
		{"ΣΟΦΊΑ", "sofia"},
		{"παπαδ", "sofia"},
		{"ПЕТРОВ", "ivan"},
		{"иван", "ivan"},
	}
	for _, c := range cases {
		wantStrings(t, fmt.Sprintf("SearchUsers(%q)", c.q), search(t, s, c.q, 10), []string{c.want})
	}
}

func testSetDisplayName(t *testing.T, s store.Store) {
	u := mustPerson(t, s, "bob", "Bob Brown")
	other := mustPerson(t, s, "ann", "Ann Other")
	wantNoErr(t, "SetDisplayName", s.SetDisplayName(ctx(t), u.ID, "Robert Grün"))
	got, err := s.UserByID(ctx(t), u.ID)
	wantNoErr(t, "UserByID", err)
	wantEq(t, "DisplayName", got.DisplayName, "Robert Grün")
	got, err = s.UserByID(ctx(t), other.ID)
	wantNoErr(t, "UserByID other", err)
	wantEq(t, "other's DisplayName", got.DisplayName, "Ann Other")
	// The search index follows the change.
	wantStrings(t, "SearchUsers(old name)", search(t, s, "brown", 10), []string{})
	wantStrings(t, "SearchUsers(new name)", search(t, s, "GRÜN", 10), []string{"bob"})
	wantStrings(t, "SearchUsers(new name, short)", search(t, s, "ro", 10), []string{"bob"})

	wantErr(t, "SetDisplayName unknown", s.SetDisplayName(ctx(t), "nope", "x"), store.ErrNotFound)
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), other.ID, t0))
	wantErr(t, "SetDisplayName deleted", s.SetDisplayName(ctx(t), other.ID, "Back"), store.ErrNotFound)
	// A deleted account's old name no longer finds it, nor anything else.
	wantStrings(t, "SearchUsers(deleted's old name)", search(t, s, "ann other", 10), []string{})
}
