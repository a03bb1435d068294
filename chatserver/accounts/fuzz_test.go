package accounts_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/password"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
	"github.com/parley-chat/parley/chatserver/token"
)

// fuzzAccounts is a service on a temporary SQLite store with one signed-in
// user, whose session the fuzzed inputs must leave intact.
type fuzzAccounts struct {
	svc  *accounts.Service
	db   *sqlstore.DB
	live *accounts.Session
}

func newFuzzAccounts(tb testing.TB) *fuzzAccounts {
	tb.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	db, err := sqlstore.Open(ctx, "sqlite://"+filepath.Join(tb.TempDir(), "parley.db"), sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	keys, err := keyring.LoadOrGenerate(tb.TempDir(), keyring.Options{Reserver: db})
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := password.NewHasher(1, password.Params{MemoryKiB: 1024, Time: 1, Threads: 1}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	svc := accounts.New(accounts.Config{Store: db, Hasher: hasher, Tokens: token.NewIssuer(keys, time.Hour, nil),
		Audit: audit.New(db, log, nil), Sockets: nopSockets{}, Logger: log, RefreshTTL: 30 * 24 * time.Hour})
	live, err := svc.Register(ctx, accounts.RegisterInput{Username: "alice", Email: "alice@example.test",
		Password: "correct horse battery alice"}, accounts.Meta{})
	if err != nil {
		tb.Fatal(err)
	}
	return &fuzzAccounts{svc: svc, db: db, live: live}
}

type nopSockets struct{}

func (nopSockets) Disconnect(context.Context, string, string, string)        {}
func (nopSockets) DisconnectSession(context.Context, string, string, string) {}

// checkLive fails unless the signed-in session is untouched: its refresh
// token neither used nor revoked, its access token still accepted.
func (f *fuzzAccounts) checkLive(t *testing.T) {
	t.Helper()
	h := sha256.Sum256([]byte(f.live.RefreshToken))
	rt, err := f.db.RefreshTokenByHash(context.Background(), hex.EncodeToString(h[:]))
	if err != nil || rt.UsedAt != nil || rt.RevokedAt != nil {
		t.Fatalf("the live refresh token was touched: %+v, %v", rt, err)
	}
	if _, err := f.svc.Authenticate(context.Background(), f.live.AccessToken); err != nil {
		t.Fatalf("the live access token is refused: %v", err)
	}
}

// mutate replaces the byte at pos (modulo the length) by c, or reports false
// when that changes nothing.
func mutate(s string, pos uint, c byte) (string, bool) {
	if s == "" {
		return "", false
	}
	i := int(pos % uint(len(s)))
	if s[i] == c {
		return "", false
	}
	return s[:i] + string([]byte{c}) + s[i+1:], true
}

// FuzzRefresh presents arbitrary strings, and the live refresh token with one
// byte changed, as refresh tokens, to Refresh and to Logout. Properties:
// Refresh always answers invalid_refresh_token (never another error, never
// a session, never a 500); Logout of an unknown token succeeds and does
// nothing; the live session is never spent nor revoked by either.
func FuzzRefresh(f *testing.F) {
	fx := newFuzzAccounts(f)
	for _, s := range []string{"", "x", "null", "rt_abc", fx.live.AccessToken,
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "\x00", "'; DROP TABLE refresh_tokens; --"} {
		f.Add(s, uint(0), byte('A'))
	}
	f.Add("", uint(42), byte('_'))
	f.Fuzz(func(t *testing.T, secret string, pos uint, c byte) {
		ctx := context.Background()
		tries := []string{secret}
		if m, ok := mutate(fx.live.RefreshToken, pos, c); ok {
			tries = append(tries, m)
		}
		for _, s := range tries {
			if s == fx.live.RefreshToken {
				continue
			}
			sess, err := fx.svc.Refresh(ctx, s, accounts.Meta{})
			if sess != nil || !apperr.Is(err, apperr.InvalidRefreshToken) {
				t.Fatalf("Refresh(%q) = %v, %v; want invalid_refresh_token", s, sess, err)
			}
			if err := fx.svc.Logout(ctx, s, accounts.Meta{}); err != nil {
				t.Fatalf("Logout(%q): %v", s, err)
			}
		}
		fx.checkLive(t)
	})
}

// FuzzAuthenticate presents arbitrary strings, and the live access token with
// one byte changed, as access tokens. Properties: Authenticate answers
// unauthorized (never another error, never a principal) for everything but
// the live token itself, which keeps working.
func FuzzAuthenticate(f *testing.F) {
	fx := newFuzzAccounts(f)
	for _, s := range []string{"", "x.y.z", fx.live.RefreshToken, fx.live.AccessToken, fx.live.AccessToken + "\n"} {
		f.Add(s, uint(0), byte('A'))
	}
	f.Add("", uint(len(fx.live.AccessToken)-1), byte('B'))
	f.Fuzz(func(t *testing.T, tok string, pos uint, c byte) {
		tries := []string{tok}
		if m, ok := mutate(fx.live.AccessToken, pos, c); ok {
			tries = append(tries, m)
		}
		for _, s := range tries {
			if s == fx.live.AccessToken {
				continue
			}
			p, err := fx.svc.Authenticate(context.Background(), s)
			if p != nil || !apperr.Is(err, apperr.Unauthorized) {
				t.Fatalf("Authenticate(%q) = %+v, %v; want unauthorized", s, p, err)
			}
		}
		fx.checkLive(t)
	})
}
