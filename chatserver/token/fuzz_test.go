package token_test

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/token"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// fuzzNow is the fuzz issuer's fixed clock: tokens issued at start stay
// valid however long the fuzzer runs.
var fuzzNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fuzzKeyring writes a keyring with fixed key material (the same in the
// fuzzing coordinator and in every worker, so a seed token signed in one
// verifies in the others) and returns it with the JWT private keys by kid.
func fuzzKeyring(tb testing.TB) (*keyring.Keyring, map[string]ed25519.PrivateKey) {
	tb.Helper()
	at := fuzzNow.Add(-time.Hour)
	seed := func(b byte) []byte {
		s := make([]byte, 32)
		for i := range s {
			s[i] = b + byte(i)
		}
		return s
	}
	f := &keyringfile.File{Version: keyringfile.Version,
		JWT: []keyringfile.JWTKey{
			{ID: "j-active", Alg: keyringfile.AlgEdDSA, State: keyringfile.StateActive, Created: at, Activated: &at, PrivateKey: seed(1)},
			{ID: "j-staged", Alg: keyringfile.AlgEdDSA, State: keyringfile.StateStaged, Created: at, PrivateKey: seed(50)},
		},
		Data: []keyringfile.DataKey{
			{ID: "d-active", Alg: keyringfile.AlgA256GCM, State: keyringfile.StateActive, Created: at, Activated: &at, Key: seed(100)},
		},
	}
	raw, err := f.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	k, err := keyring.Load(dir, keyring.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	privs := map[string]ed25519.PrivateKey{}
	for _, jk := range f.JWT {
		privs[jk.ID] = ed25519.NewKeyFromSeed(jk.PrivateKey)
	}
	return k, privs
}

// FuzzVerify feeds arbitrary strings to Issuer.Verify as access tokens.
// Properties: it never panics; it succeeds only for a token the issuer's keys
// signed, in exactly the form they signed it (the signature segment is the
// canonical encoding of the key's own signature over the first two
// segments: no other spelling of a token is accepted); and what it accepts
// is an access token with a subject and an id.
func FuzzVerify(f *testing.F) {
	keys, privs := fuzzKeyring(f)
	clock := func() time.Time { return fuzzNow }
	iss := token.NewIssuer(keys, 15*time.Minute, clock)

	good, _, err := iss.Access("u_alice", "f_family")
	if err != nil {
		f.Fatal(err)
	}
	if _, err := iss.Verify(good, token.TypeAccess); err != nil {
		f.Fatalf("a fresh token does not verify: %v", err)
	}
	f.Add(good)
	// Tokens that must fail, each for its own reason.
	claims := func(typ string, exp time.Time) *token.Claims {
		return &token.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "parley", Subject: "u_alice", ID: "j1",
			Audience: jwt.ClaimStrings{"parley-api"}, IssuedAt: jwt.NewNumericDate(fuzzNow),
			ExpiresAt: jwt.NewNumericDate(exp)}, Type: typ, IssuedMicro: fuzzNow.UnixMicro()}
	}
	sign := func(m jwt.SigningMethod, kid string, c jwt.Claims, key any) string {
		t := jwt.NewWithClaims(m, c)
		if kid != "" {
			t.Header["kid"] = kid
		}
		s, err := t.SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	valid := fuzzNow.Add(time.Minute)
	pub := privs["j-active"].Public().(ed25519.PublicKey)
	f.Add(sign(jwt.SigningMethodEdDSA, "j-staged", claims(token.TypeAccess, valid), privs["j-staged"])) // accepted: a staged key verifies
	f.Add(sign(jwt.SigningMethodEdDSA, "j-active", claims("ticket", valid), privs["j-active"]))         // wrong typ
	f.Add(sign(jwt.SigningMethodEdDSA, "j-active", claims(token.TypeAccess, fuzzNow), privs["j-active"]))
	f.Add(sign(jwt.SigningMethodEdDSA, "j-gone", claims(token.TypeAccess, valid), privs["j-active"]))
	f.Add(sign(jwt.SigningMethodHS256, "j-active", claims(token.TypeAccess, valid), []byte(pub)))
	f.Add(sign(jwt.SigningMethodNone, "j-active", claims(token.TypeAccess, valid), jwt.UnsafeAllowNoneSignatureType))
	_, other, _ := ed25519.GenerateKey(nil)
	f.Add(sign(jwt.SigningMethodEdDSA, "j-active", claims(token.TypeAccess, valid), other))
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "Bearer " + good, good[:len(good)-1]} {
		f.Add(s)
	}
	// Other spellings of a signed token (testdata/fuzz/FuzzVerify holds them for
	// one fixed token): a line break, and the spare low bits of the signature's
	// last character set (86 characters carry 512 bits: 4 are spare).
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	f.Add(good + "\n")
	f.Add(good[:len(good)-1] + string(b64[strings.IndexByte(b64, good[len(good)-1])^1]))

	f.Fuzz(func(t *testing.T, tok string) {
		c, err := iss.Verify(tok, token.TypeAccess)
		if err != nil {
			if c != nil {
				t.Fatalf("Verify(%q) returned claims with the error %v", tok, err)
			}
			return
		}
		if c.Type != token.TypeAccess || c.Subject == "" || c.ID == "" {
			t.Fatalf("Verify(%q) accepted claims %+v", tok, c)
		}
		if want, ok := canonical(tok, privs); !ok || tok != want {
			t.Fatalf("Verify accepted %q, which is not a token the issuer signed (its signed form: %q)", tok, want)
		}
	})
}

// canonical returns the token the keyring's key would have produced for
// tok's header and claims segments: those segments followed by the canonical
// encoding of that key's (deterministic) Ed25519 signature.
func canonical(tok string, privs map[string]ed25519.PrivateKey) (string, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", false
	}
	var kid string
	p := jwt.NewParser()
	t, _, err := p.ParseUnverified(tok, &jwt.RegisteredClaims{})
	if err != nil {
		return "", false
	}
	kid, _ = t.Header["kid"].(string)
	priv, ok := privs[kid]
	if !ok {
		return "", false
	}
	input := parts[0] + "." + parts[1]
	return input + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(input))), true
}
