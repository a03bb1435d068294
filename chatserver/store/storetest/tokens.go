package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var tokenTests = []test{
	{"RefreshTokenCreateAndLookup", testRefreshTokenCreateAndLookup},
	{"RotateRefreshToken", testRotateRefreshToken},
	{"RotateRefreshTokenRace", testRotateRefreshTokenRace},
	{"RevokeRefreshFamily", testRevokeRefreshFamily},
	{"RevokeUserRefreshTokens", testRevokeUserRefreshTokens},
	{"Credentials", testCredentials},
}

func newToken(u *store.User, family, parent string) *store.RefreshToken {
	id := newID("rt")
	return &store.RefreshToken{
		ID: id, UserID: u.ID, FamilyID: family, ParentID: parent, TokenHash: "sha256-" + id,
		CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour),
	}
}

func mustToken(t *testing.T, s store.Store, u *store.User, family string) *store.RefreshToken {
	t.Helper()
	tok := newToken(u, family, "")
	wantNoErr(t, "CreateRefreshToken", s.CreateRefreshToken(ctx(t), tok))
	return tok
}

func tokenByHash(t *testing.T, s store.Store, hash string) *store.RefreshToken {
	t.Helper()
	got, err := s.RefreshTokenByHash(ctx(t), hash)
	wantNoErr(t, "RefreshTokenByHash", err)
	return got
}

func testRefreshTokenCreateAndLookup(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	tok := mustToken(t, s, u, "fam1")
	got := tokenByHash(t, s, tok.TokenHash)
	wantEq(t, "ID", got.ID, tok.ID)
	wantEq(t, "UserID", got.UserID, u.ID)
	wantEq(t, "FamilyID", got.FamilyID, "fam1")
	wantEq(t, "ParentID", got.ParentID, "")
	wantEq(t, "TokenHash", got.TokenHash, tok.TokenHash)
	wantTime(t, "CreatedAt", got.CreatedAt, tok.CreatedAt)
	wantTime(t, "ExpiresAt", got.ExpiresAt, tok.ExpiresAt)
	if got.UsedAt != nil || got.RevokedAt != nil {
		t.Errorf("new token: UsedAt=%v RevokedAt=%v, want nil", got.UsedAt, got.RevokedAt)
	}

	_, err := s.RefreshTokenByHash(ctx(t), "sha256-unknown")
	wantErr(t, "RefreshTokenByHash unknown", err, store.ErrNotFound)

	dup := newToken(u, "fam2", "")
	dup.TokenHash = tok.TokenHash
	wantErr(t, "same token hash", s.CreateRefreshToken(ctx(t), dup), store.ErrConflict)
}

func testRotateRefreshToken(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	first := mustToken(t, s, u, "fam")
	now := t0.Add(time.Minute)
	second := newToken(u, "fam", first.ID)
	wantNoErr(t, "RotateRefreshToken", s.RotateRefreshToken(ctx(t), first.ID, now, second))

	old := tokenByHash(t, s, first.TokenHash)
	if old.UsedAt == nil || !old.UsedAt.Equal(now) {
		t.Errorf("rotated token UsedAt = %v, want %v", old.UsedAt, now)
	}
	next := tokenByHash(t, s, second.TokenHash)
	wantEq(t, "next ParentID", next.ParentID, first.ID)
	wantEq(t, "next FamilyID", next.FamilyID, "fam")
	if next.UsedAt != nil {
		t.Errorf("next UsedAt = %v, want nil", next.UsedAt)
	}

	// Reuse of the spent token: refused, and its would-be successor not stored.
	third := newToken(u, "fam", first.ID)
	wantErr(t, "rotate spent token", s.RotateRefreshToken(ctx(t), first.ID, now.Add(time.Minute), third), store.ErrTokenSpent)
	_, err := s.RefreshTokenByHash(ctx(t), third.TokenHash)
	wantErr(t, "successor of spent token", err, store.ErrNotFound)
	old = tokenByHash(t, s, first.TokenHash)
	if old.UsedAt == nil || !old.UsedAt.Equal(now) {
		t.Errorf("spent token UsedAt changed to %v, want %v", old.UsedAt, now)
	}

	// A revoked token cannot be rotated either.
	_, err = s.RevokeRefreshFamily(ctx(t), "fam", now)
	wantNoErr(t, "RevokeRefreshFamily", err)
	fourth := newToken(u, "fam", second.ID)
	wantErr(t, "rotate revoked token", s.RotateRefreshToken(ctx(t), second.ID, now, fourth), store.ErrTokenSpent)
	_, err = s.RefreshTokenByHash(ctx(t), fourth.TokenHash)
	wantErr(t, "successor of revoked token", err, store.ErrNotFound)

	// An unknown token is not found.
	wantErr(t, "rotate unknown token", s.RotateRefreshToken(ctx(t), "nope", now, newToken(u, "fam", "nope")), store.ErrNotFound)
}

func testRotateRefreshTokenRace(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	const rounds, racers = 10, 4
	for round := range rounds {
		tok := mustToken(t, s, u, newID("fam"))
		nexts := make([]*store.RefreshToken, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			nexts[i] = newToken(u, tok.FamilyID, tok.ID)
			wg.Go(func() {
				<-start
				errs[i] = s.RotateRefreshToken(ctx(t), tok.ID, t0.Add(time.Duration(i)*time.Second), nexts[i])
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		for i, err := range errs {
			_, lookupErr := s.RefreshTokenByHash(ctx(t), nexts[i].TokenHash)
			switch {
			case err == nil:
				winners++
				wantNoErr(t, "winner's token stored", lookupErr)
			case errors.Is(err, store.ErrTokenSpent):
				wantErr(t, "loser's token not stored", lookupErr, store.ErrNotFound)
			default:
				t.Fatalf("round %d racer %d: unexpected error %v", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d rotations won, want exactly 1", round, winners)
		}
	}
}

func testRevokeRefreshFamily(t *testing.T, s store.Store) {
	u := mustUser(t, s, "alice")
	a1, a2 := mustToken(t, s, u, "famA"), mustToken(t, s, u, "famA")
	a3 := newToken(u, "famA", a2.ID)
	earlier := t0.Add(time.Minute)
	a3.RevokedAt = &earlier // already revoked: keeps its time
	wantNoErr(t, "CreateRefreshToken revoked", s.CreateRefreshToken(ctx(t), a3))
	b := mustToken(t, s, u, "famB")

	now := t0.Add(time.Hour)
	n, err := s.RevokeRefreshFamily(ctx(t), "famA", now)
	wantNoErr(t, "RevokeRefreshFamily", err)
	wantEq(t, "revoked count", n, int64(2))
	for _, tok := range []*store.RefreshToken{a1, a2} {
		got := tokenByHash(t, s, tok.TokenHash)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
			t.Errorf("token %s RevokedAt = %v, want %v", tok.ID, got.RevokedAt, now)
		}
	}
	if got := tokenByHash(t, s, a3.TokenHash); got.RevokedAt == nil || !got.RevokedAt.Equal(earlier) {
		t.Errorf("already revoked token RevokedAt = %v, want %v", got.RevokedAt, earlier)
	}
	if got := tokenByHash(t, s, b.TokenHash); got.RevokedAt != nil {
		t.Errorf("other family revoked at %v", got.RevokedAt)
	}
	n, err = s.RevokeRefreshFamily(ctx(t), "famA", now.Add(time.Hour))
	wantNoErr(t, "RevokeRefreshFamily again", err)
	wantEq(t, "second revoke count", n, int64(0))
	n, err = s.RevokeRefreshFamily(ctx(t), "unknown", now)
	wantNoErr(t, "RevokeRefreshFamily unknown", err)
	wantEq(t, "unknown family count", n, int64(0))

	for fam, want := range map[string]bool{"famA": true, "famB": false, "unknown": true} {
		got, err := s.SessionRevoked(ctx(t), fam)
		wantNoErr(t, "SessionRevoked", err)
		wantEq(t, "SessionRevoked("+fam+")", got, want)
	}
}

func testRevokeUserRefreshTokens(t *testing.T, s store.Store) {
	alice, bob := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	keep := mustToken(t, s, alice, "keep")
	drop1, drop2 := mustToken(t, s, alice, "drop1"), mustToken(t, s, alice, "drop2")
	bobs := mustToken(t, s, bob, "bobfam")

	now := t0.Add(time.Hour)
	n, err := s.RevokeUserRefreshTokens(ctx(t), alice.ID, "keep", now)
	wantNoErr(t, "RevokeUserRefreshTokens", err)
	wantEq(t, "revoked count", n, int64(2))
	for _, tok := range []*store.RefreshToken{drop1, drop2} {
		if got := tokenByHash(t, s, tok.TokenHash); got.RevokedAt == nil || !got.RevokedAt.Equal(now) {
			t.Errorf("token %s RevokedAt = %v, want %v", tok.ID, got.RevokedAt, now)
		}
	}
	for _, tok := range []*store.RefreshToken{keep, bobs} {
		if got := tokenByHash(t, s, tok.TokenHash); got.RevokedAt != nil {
			t.Errorf("token %s (family %s) revoked at %v, want untouched", tok.ID, tok.FamilyID, got.RevokedAt)
		}
	}

	// With no family excepted, everything left goes.
	n, err = s.RevokeUserRefreshTokens(ctx(t), alice.ID, "", now)
	wantNoErr(t, "RevokeUserRefreshTokens all", err)
	wantEq(t, "revoked count (all)", n, int64(1))
	if got := tokenByHash(t, s, keep.TokenHash); got.RevokedAt == nil {
		t.Error("kept family not revoked by the revoke-all")
	}
	if got := tokenByHash(t, s, bobs.TokenHash); got.RevokedAt != nil {
		t.Error("another user's token was revoked")
	}
}

// Credentials: the user's TokensValidAfter and deletion and the login's
// state, as UserByID and SessionRevoked report them, in one read.
func testCredentials(t *testing.T, s store.Store) {
	alice := mustUser(t, s, "alice")
	mustToken(t, s, alice, "live")
	mustToken(t, s, alice, "ended")
	_, err := s.RevokeRefreshFamily(ctx(t), "ended", t0)
	wantNoErr(t, "RevokeRefreshFamily", err)
	for fam, ended := range map[string]bool{"live": false, "ended": true, "unknown": true} {
		c, err := s.Credentials(ctx(t), alice.ID, fam)
		wantNoErr(t, "Credentials "+fam, err)
		wantEq(t, "SessionEnded "+fam, c.SessionEnded, ended)
		wantEq(t, "Deleted "+fam, c.Deleted, false)
		wantTime(t, "TokensValidAfter "+fam, c.TokensValidAfter, alice.TokensValidAfter)
	}
	later := t0.Add(time.Hour)
	wantNoErr(t, "SetTokensValidAfter", s.SetTokensValidAfter(ctx(t), alice.ID, later))
	c, err := s.Credentials(ctx(t), alice.ID, "live")
	wantNoErr(t, "Credentials after logout everywhere", err)
	wantTime(t, "TokensValidAfter after logout everywhere", c.TokensValidAfter, later)
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), alice.ID, later))
	c, err = s.Credentials(ctx(t), alice.ID, "unknown")
	wantNoErr(t, "Credentials of a deleted user", err)
	wantEq(t, "Deleted", c.Deleted, true)
	_, err = s.Credentials(ctx(t), "u-nobody", "live")
	wantErr(t, "Credentials of an unknown user", err, store.ErrNotFound)
}
