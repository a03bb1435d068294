package token_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/token"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newKeys(t *testing.T) *keyring.Keyring {
	t.Helper()
	k, err := keyring.LoadOrGenerate(filepath.Join(t.TempDir(), "k"), keyring.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAccessTokenLifetimeHasNoLeeway(t *testing.T) {
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	iss := token.NewIssuer(newKeys(t), 15*time.Minute, c.now)
	tok, exp, err := iss.Access("u1", "f1")
	if err != nil {
		t.Fatal(err)
	}
	if want := c.t.Add(15 * time.Minute); !exp.Equal(want) {
		t.Fatalf("expiry %v, want %v", exp, want)
	}
	c.t = exp.Add(-time.Second)
	claims, err := iss.Verify(tok, token.TypeAccess)
	if err != nil {
		t.Fatalf("valid one second before expiry: %v", err)
	}
	if claims.Subject != "u1" || claims.SessionID != "f1" || claims.ID == "" {
		t.Fatalf("claims %+v", claims)
	}
	c.t = exp.Add(time.Second)
	if _, err := iss.Verify(tok, token.TypeAccess); err == nil {
		t.Fatal("a token expired by one second was accepted")
	}
}

func TestWrongIssuerAudienceOrMissingExpiryRefused(t *testing.T) {
	keys := newKeys(t)
	iss := token.NewIssuer(keys, time.Minute, nil)
	now := time.Now()
	base := func() token.Claims {
		return token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "parley", Subject: "u1", ID: "j",
			Audience: jwt.ClaimStrings{"parley-api"}, IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute))}, Type: token.TypeAccess, IssuedMicro: now.UnixMicro()}
	}
	good := base()
	if tok, _ := keys.SignJWT(&good); mustVerify(iss, tok) != nil {
		t.Fatal("control token refused")
	}
	mut := map[string]func(*token.Claims){
		"wrong issuer":     func(c *token.Claims) { c.Issuer = "evil" },
		"wrong audience":   func(c *token.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} },
		"no expiry":        func(c *token.Claims) { c.ExpiresAt = nil },
		"issued in future": func(c *token.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) },
		"no subject":       func(c *token.Claims) { c.Subject = "" },
		"wrong type claim": func(c *token.Claims) { c.Type = "refresh" },
	}
	for name, m := range mut {
		c := base()
		m(&c)
		tok, err := keys.SignJWT(&c)
		if err != nil {
			t.Fatal(err)
		}
		if mustVerify(iss, tok) == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func mustVerify(iss *token.Issuer, tok string) error {
	_, err := iss.Verify(tok, token.TypeAccess)
	return err
}
