package accounts_test

import (
	"testing"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
)

// Deleting an account: the password is checked; then every session ends at
// once (access and refresh tokens, sockets), the login is gone and the
// username and email are free again.
func TestDeleteAccount(t *testing.T) {
	f := newFixture(t)
	s := f.register(t, "alice")
	s2 := f.login(t, "alice")
	bob := f.register(t, "bob")
	f.sockets.take()

	err := f.svc.DeleteAccount(t.Context(), s.User.ID, "not the password", accounts.Meta{})
	wantCode(t, "wrong password", err, apperr.InvalidCredentials)
	if _, err := f.svc.Authenticate(t.Context(), s.AccessToken); err != nil {
		t.Fatalf("a wrong password changed something: %v", err)
	}
	if err := f.svc.DeleteAccount(t.Context(), s.User.ID, pw("alice"), accounts.Meta{IP: "192.0.2.9"}); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	calls := f.sockets.take()
	if len(calls) != 1 || calls[0].user != s.User.ID || calls[0].except != "" || calls[0].only != "" {
		t.Errorf("sockets closed: %+v, want every one of alice's", calls)
	}
	for _, tok := range []string{s.AccessToken, s2.AccessToken} {
		_, err := f.svc.Authenticate(t.Context(), tok)
		wantCode(t, "access token after deletion", err, apperr.Unauthorized)
	}
	for _, rt := range []string{s.RefreshToken, s2.RefreshToken} {
		_, err := f.svc.Refresh(t.Context(), rt, accounts.Meta{})
		wantCode(t, "refresh after deletion", err, apperr.InvalidRefreshToken)
	}
	_, err = f.svc.Login(t.Context(), "alice", pw("alice"), accounts.Meta{})
	wantCode(t, "login by username", err, apperr.InvalidCredentials)
	_, err = f.svc.Login(t.Context(), "alice@example.test", pw("alice"), accounts.Meta{})
	wantCode(t, "login by email", err, apperr.InvalidCredentials)
	err = f.svc.DeleteAccount(t.Context(), s.User.ID, pw("alice"), accounts.Meta{})
	wantCode(t, "deleting twice", err, apperr.Unauthorized)
	found, err := f.svc.Search(t.Context(), bob.User.ID, "alice", 10)
	if err != nil || len(found) != 0 {
		t.Errorf("search after deletion: %+v %v", found, err)
	}
	if _, err := f.svc.Authenticate(t.Context(), bob.AccessToken); err != nil {
		t.Errorf("another user's session ended: %v", err)
	}
	again := f.register(t, "alice")
	if again.User.ID == s.User.ID {
		t.Error("the new alice has the deleted account's id")
	}
}
