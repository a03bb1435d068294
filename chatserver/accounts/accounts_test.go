package accounts_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/password"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
	"github.com/parley-chat/parley/chatserver/token"
)

const refreshTTL = 30 * 24 * time.Hour

// cheap keeps argon2id fast in tests; the cost parameters are not what is
// tested here.
var cheap = password.Params{MemoryKiB: 1024, Time: 1, Threads: 1}

type fixture struct {
	svc     *accounts.Service
	sockets *disconnector
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	db, err := sqlstore.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "parley.db"), sqlstore.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	keys, err := keyring.LoadOrGenerate(t.TempDir(), keyring.Options{Reserver: db})
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	hasher, err := password.NewHasher(2, cheap, nil)
	if err != nil {
		t.Fatal(err)
	}
	sockets := &disconnector{}
	svc := accounts.New(accounts.Config{Store: db, Hasher: hasher, Tokens: token.NewIssuer(keys, 15*time.Minute, nil),
		Audit: audit.New(db, log, nil), Sockets: sockets, Logger: log, RefreshTTL: refreshTTL})
	return &fixture{svc: svc, sockets: sockets}
}

func pw(name string) string { return "correct horse battery " + name }

func (f *fixture) register(t *testing.T, name string) *accounts.Session {
	t.Helper()
	s, err := f.svc.Register(t.Context(), accounts.RegisterInput{Username: name, Email: name + "@example.test",
		Password: pw(name), DisplayName: "The " + name}, accounts.Meta{IP: "192.0.2.1"})
	if err != nil {
		t.Fatalf("Register(%s): %v", name, err)
	}
	return s
}

func (f *fixture) login(t *testing.T, name string) *accounts.Session {
	t.Helper()
	s, err := f.svc.Login(t.Context(), name, pw(name), accounts.Meta{})
	if err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	return s
}

// disconnector records Disconnect calls.
type disconnector struct {
	mu    sync.Mutex
	calls []disconnect
}

type disconnect struct{ user, except, only, reason string }

func (d *disconnector) Disconnect(_ context.Context, userID, exceptSession, reason string) {
	d.mu.Lock()
	d.calls = append(d.calls, disconnect{user: userID, except: exceptSession, reason: reason})
	d.mu.Unlock()
}

func (d *disconnector) DisconnectSession(_ context.Context, userID, session, reason string) {
	d.mu.Lock()
	d.calls = append(d.calls, disconnect{user: userID, only: session, reason: reason})
	d.mu.Unlock()
}

func (d *disconnector) take() []disconnect {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.calls
	d.calls = nil
	return out
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if !apperr.Is(err, code) {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// wantAuth checks that s's access token authenticates as its user and family.
func (f *fixture) wantAuth(t *testing.T, what string, s *accounts.Session) {
	t.Helper()
	p, err := f.svc.Authenticate(t.Context(), s.AccessToken)
	if err != nil {
		t.Errorf("%s: access token refused: %v", what, err)
		return
	}
	if p.UserID != s.User.ID || p.SessionID != s.FamilyID {
		t.Errorf("%s: authenticated as %+v, want user %s session %s", what, p, s.User.ID, s.FamilyID)
	}
}

func (f *fixture) wantAuthRefused(t *testing.T, what string, s *accounts.Session) {
	t.Helper()
	_, err := f.svc.Authenticate(t.Context(), s.AccessToken)
	wantCode(t, what+": access token", err, apperr.Unauthorized)
}

func (f *fixture) wantRefreshRefused(t *testing.T, what, secret string) {
	t.Helper()
	_, err := f.svc.Refresh(t.Context(), secret, accounts.Meta{})
	wantCode(t, what+": refresh", err, apperr.InvalidRefreshToken)
}

func TestRegisterLoginRefresh(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	s, err := f.svc.Register(t.Context(), accounts.RegisterInput{Username: " Alice ", Email: " Alice@Example.TEST",
		Password: pw("alice")}, accounts.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	u := s.User
	if u.ID == "" || u.Username != "alice" || u.Email != "alice@example.test" || u.DisplayName != "alice" {
		t.Errorf("registered %+v, want normalised username and email, display name defaulting to the username", u)
	}
	if s.AccessToken == "" || s.RefreshToken == "" || s.FamilyID == "" {
		t.Errorf("session %+v lacks a token or family", s)
	}
	if exp := before.Add(refreshTTL); s.RefreshExpiresAt.Before(exp.Add(-time.Minute)) || s.RefreshExpiresAt.After(exp.Add(time.Minute)) {
		t.Errorf("refresh token expires %v, want about %v", s.RefreshExpiresAt, exp)
	}
	f.wantAuth(t, "registered", s)

	for _, tc := range []struct {
		name string
		in   accounts.RegisterInput
		code string
	}{
		{"username taken", accounts.RegisterInput{Username: "ALICE", Email: "other@example.test", Password: pw("x")}, apperr.Conflict},
		{"email taken", accounts.RegisterInput{Username: "other", Email: "alice@example.test", Password: pw("x")}, apperr.Conflict},
		{"weak password", accounts.RegisterInput{Username: "weak", Email: "weak@example.test", Password: "short"}, apperr.WeakPassword},
		{"bad username", accounts.RegisterInput{Username: "a b", Email: "ab@example.test", Password: pw("x")}, apperr.InvalidRequest},
		{"bad email", accounts.RegisterInput{Username: "nomail", Email: "not-an-address", Password: pw("x")}, apperr.InvalidRequest},
	} {
		_, err := f.svc.Register(t.Context(), tc.in, accounts.Meta{})
		wantCode(t, tc.name, err, tc.code)
	}

	// Login by username or email, in any case: a new session (family).
	for _, login := range []string{"alice", "ALICE@example.test"} {
		l, err := f.svc.Login(t.Context(), login, pw("alice"), accounts.Meta{})
		if err != nil {
			t.Fatalf("Login(%s): %v", login, err)
		}
		if l.User != u || l.FamilyID == s.FamilyID {
			t.Errorf("Login(%s): %+v, want alice in a new family", login, l)
		}
		f.wantAuth(t, "logged in", l)
	}
	_, err = f.svc.Login(t.Context(), "alice", "wrong password entirely", accounts.Meta{})
	wantCode(t, "wrong password", err, apperr.InvalidCredentials)
	_, err = f.svc.Login(t.Context(), "nobody", pw("alice"), accounts.Meta{})
	wantCode(t, "unknown account", err, apperr.InvalidCredentials)

	// Refresh rotates: a new refresh token in the same family, each usable once.
	r1, err := f.svc.Refresh(t.Context(), s.RefreshToken, accounts.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	if r1.FamilyID != s.FamilyID || r1.RefreshToken == s.RefreshToken || r1.User != u {
		t.Errorf("refreshed %+v, want a new refresh token in family %s", r1, s.FamilyID)
	}
	f.wantAuth(t, "refreshed", r1)
	r2, err := f.svc.Refresh(t.Context(), r1.RefreshToken, accounts.Meta{})
	if err != nil || r2.FamilyID != s.FamilyID || r2.RefreshToken == r1.RefreshToken {
		t.Errorf("second refresh: %+v, %v", r2, err)
	}
	f.wantRefreshRefused(t, "unknown token", "not-a-token")
	f.wantRefreshRefused(t, "no token", "")
	if got := f.sockets.take(); len(got) != 0 {
		t.Errorf("register, login and refresh closed sockets: %+v", got)
	}
}

// A spent refresh token presented again means someone holds a copy: the
// whole family ends (the newest token too); other families are untouched.
func TestRefreshReuseRevokesFamily(t *testing.T) {
	f := newFixture(t)
	s := f.register(t, "alice")
	other := f.login(t, "alice")
	r1, err := f.svc.Refresh(t.Context(), s.RefreshToken, accounts.Meta{})
	if err != nil {
		t.Fatal(err)
	}

	f.sockets.take()
	_, err = f.svc.Refresh(t.Context(), s.RefreshToken, accounts.Meta{})
	wantCode(t, "reused token", err, apperr.TokenReused)
	f.wantRefreshRefused(t, "the family's newest token after reuse", r1.RefreshToken)
	// The family's access tokens stop working at once (not at their
	// expiry), on every replica, and its sockets close.
	f.wantAuthRefused(t, "the family's newest access token after reuse", r1)
	wantCode(t, "a ticket of the family", f.svc.StillValid(t.Context(), s.User.ID, s.FamilyID, time.Now()), apperr.Unauthorized)
	if got := f.sockets.take(); len(got) != 1 || got[0].only != s.FamilyID {
		t.Errorf("Disconnect calls %+v, want the revoked session's sockets closed", got)
	}
	f.wantAuth(t, "another login of the same user", other)
	_, err = f.svc.Refresh(t.Context(), s.RefreshToken, accounts.Meta{})
	if !apperr.Is(err, apperr.TokenReused) && !apperr.Is(err, apperr.InvalidRefreshToken) {
		t.Errorf("the reused token again: %v", err)
	}

	if _, err := f.svc.Refresh(t.Context(), other.RefreshToken, accounts.Meta{}); err != nil {
		t.Errorf("another family's refresh after the reuse: %v", err)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	s := f.register(t, "alice")
	other := f.login(t, "alice")
	if err := f.svc.Logout(t.Context(), s.RefreshToken, accounts.Meta{}); err != nil {
		t.Fatal(err)
	}
	f.wantRefreshRefused(t, "logged out", s.RefreshToken)
	f.wantAuthRefused(t, "the logged-out session's access token", s)
	if got := f.sockets.take(); len(got) != 1 || got[0].only != s.FamilyID || got[0].user != s.User.ID {
		t.Errorf("Disconnect calls %+v, want the logged-out session's sockets closed", got)
	}
	f.wantAuth(t, "the other session", other)
	if _, err := f.svc.Refresh(t.Context(), other.RefreshToken, accounts.Meta{}); err != nil {
		t.Errorf("the other session after logging one out: %v", err)
	}
	for _, secret := range []string{"", "not-a-token", s.RefreshToken} {
		if err := f.svc.Logout(t.Context(), secret, accounts.Meta{}); err != nil {
			t.Errorf("Logout(%q): %v, want nil (logging out always succeeds)", secret, err)
		}
	}
}

func TestLogoutAll(t *testing.T) {
	f := newFixture(t)
	s1 := f.register(t, "alice")
	issued := time.Now() // a ticket's issue time; the store keeps microseconds, so well before the logout
	s2 := f.login(t, "alice")
	bob := f.register(t, "bob")

	if err := f.svc.LogoutAll(t.Context(), s1.User.ID, accounts.Meta{}); err != nil {
		t.Fatal(err)
	}
	// Every socket of the user closes, on every replica: no session spared.
	if got := f.sockets.take(); len(got) != 1 || got[0].user != s1.User.ID || got[0].except != "" {
		t.Errorf("Disconnect calls %+v, want one for alice sparing no session", got)
	}
	for i, s := range []*accounts.Session{s1, s2} {
		f.wantRefreshRefused(t, "session "+string(rune('1'+i)), s.RefreshToken)
		f.wantAuthRefused(t, "session "+string(rune('1'+i)), s)
	}
	wantCode(t, "a ticket issued before", f.svc.StillValid(t.Context(), s1.User.ID, s1.FamilyID, issued), apperr.Unauthorized)

	f.wantAuth(t, "another user", bob)
	n := f.login(t, "alice")
	f.wantAuth(t, "signing in again", n)
	if err := f.svc.StillValid(t.Context(), s1.User.ID, n.FamilyID, time.Now()); err != nil {
		t.Errorf("a ticket issued after: %v", err)
	}
}

func TestChangePassword(t *testing.T) {
	f := newFixture(t)
	mine := f.register(t, "alice")
	other := f.login(t, "alice")
	id := mine.User.ID
	next := "a brand new passphrase"

	_, err := f.svc.ChangePassword(t.Context(), id, mine.FamilyID, "not the password", next, accounts.Meta{})
	wantCode(t, "wrong current password", err, apperr.InvalidCredentials)
	_, err = f.svc.ChangePassword(t.Context(), id, mine.FamilyID, pw("alice"), "short", accounts.Meta{})
	wantCode(t, "weak new password", err, apperr.WeakPassword)
	if got := f.sockets.take(); len(got) != 0 {
		t.Errorf("refused changes closed sockets: %+v", got)
	}

	s, err := f.svc.ChangePassword(t.Context(), id, mine.FamilyID, pw("alice"), next, accounts.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	// The caller's own sockets stay open (they renew in-band with the new
	// token); every other session's close.
	if got := f.sockets.take(); len(got) != 1 || got[0].user != id || got[0].except != mine.FamilyID {
		t.Errorf("Disconnect calls %+v, want one for alice sparing session %s", got, mine.FamilyID)
	}
	f.wantAuth(t, "the new session", s)
	if _, err := f.svc.Refresh(t.Context(), s.RefreshToken, accounts.Meta{}); err != nil {
		t.Errorf("refreshing the new session: %v", err)
	}
	for _, old := range []*accounts.Session{mine, other} {
		f.wantRefreshRefused(t, "a session from before", old.RefreshToken)
		f.wantAuthRefused(t, "a session from before", old)
	}
	_, err = f.svc.Login(t.Context(), "alice", pw("alice"), accounts.Meta{})
	wantCode(t, "the old password", err, apperr.InvalidCredentials)
	if _, err := f.svc.Login(t.Context(), "alice", next, accounts.Meta{}); err != nil {
		t.Errorf("the new password: %v", err)
	}
}

func TestMeAndSearch(t *testing.T) {
	f := newFixture(t)
	alice := f.register(t, "alice").User
	albert := f.register(t, "albert").User
	bob := f.register(t, "bob").User
	public := func(u protocol.User) protocol.User { u.Email = ""; return u }

	me, err := f.svc.Me(t.Context(), alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if me != alice || me.Email != "alice@example.test" || me.DisplayName != "The alice" {
		t.Errorf("Me = %+v, want alice with her email", me)
	}
	_, err = f.svc.Me(t.Context(), "u_gone")
	wantCode(t, "Me of an unknown user", err, apperr.NotFound)

	search := func(self, q string) []protocol.User {
		t.Helper()
		got, err := f.svc.Search(t.Context(), self, q, 10)
		if err != nil {
			t.Fatalf("Search(%q): %v", q, err)
		}
		slices.SortFunc(got, func(a, b protocol.User) int { return strings.Compare(a.Username, b.Username) })
		return got
	}
	// Never the searcher; never an email.
	if got := search(alice.ID, "al"); !slices.Equal(got, []protocol.User{public(albert)}) {
		t.Errorf("alice searching al: %+v, want albert only, without email", got)
	}
	if got := search(bob.ID, " AL "); !slices.Equal(got, []protocol.User{public(albert), public(alice)}) {
		t.Errorf("bob searching AL: %+v, want albert and alice, without email", got)
	}
	if got := search(alice.ID, "bob@example.test"); !slices.Equal(got, []protocol.User{public(bob)}) {
		t.Errorf("searching bob's email: %+v, want bob without email", got)
	}
	if got := search(alice.ID, "alice@example.test"); len(got) != 0 {
		t.Errorf("searching one's own email: %+v, want nobody", got)
	}
	_, err = f.svc.Search(t.Context(), alice.ID, "  ", 10)
	wantCode(t, "empty query", err, apperr.InvalidRequest)

	// The searcher does not take a place in the limit.
	if got, err := f.svc.Search(t.Context(), alice.ID, "al", 1); err != nil || len(got) != 1 || got[0].ID != albert.ID {
		t.Errorf("Search limit 1 by alice: %+v, %v, want albert", got, err)
	}
}
