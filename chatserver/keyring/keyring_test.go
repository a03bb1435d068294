package keyring

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/pkg/keyringfile"
)

func writeFile(t *testing.T, dir string, f *keyringfile.File) {
	t.Helper()
	raw, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newFile(t *testing.T) *keyringfile.File {
	t.Helper()
	now := time.Now()
	jk, err := keyringfile.NewJWTKey(now, keyringfile.StateActive)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := keyringfile.NewDataKey(now, keyringfile.StateActive)
	if err != nil {
		t.Fatal(err)
	}
	return &keyringfile.File{Version: 1, JWT: []keyringfile.JWTKey{jk}, Data: []keyringfile.DataKey{dk}}
}

func load(t *testing.T, f *keyringfile.File) (*Keyring, string) {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, f)
	k, err := Load(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return k, dir
}

func TestSealOpenRoundTripAndFreshNonce(t *testing.T) {
	k, _ := load(t, newFile(t))
	ctx := context.Background()
	aad := []byte("msg|c1|m1")
	a, kid, err := k.Seal(ctx, aad, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := k.Seal(ctx, aad, []byte("hello"))
	if a == b {
		t.Fatal("two seals of the same plaintext are identical: nonce reused")
	}
	if !strings.HasPrefix(a, "v1."+kid+".") || KeyID(a) != kid {
		t.Fatalf("ciphertext %q does not carry its key id %q", a, kid)
	}
	if strings.Contains(a, "hello") {
		t.Fatal("plaintext visible in ciphertext")
	}
	pt, err := k.Open(a, aad)
	if err != nil || string(pt) != "hello" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	// nonces of many seals are all distinct
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s, _, _ := k.Seal(ctx, aad, []byte("x"))
		raw, _ := base64.RawURLEncoding.DecodeString(s[strings.LastIndex(s, ".")+1:])
		n := string(raw[:12])
		if seen[n] {
			t.Fatal("nonce repeated")
		}
		seen[n] = true
	}
}

func TestOpenRefusesTamperedTruncatedMovedAndUnknown(t *testing.T) {
	k, _ := load(t, newFile(t))
	aad := []byte("msg|c1|m1")
	sealed, _, err := k.Seal(context.Background(), aad, []byte("the secret plan"))
	if err != nil {
		t.Fatal(err)
	}
	i := strings.LastIndex(sealed, ".")
	raw, _ := base64.RawURLEncoding.DecodeString(sealed[i+1:])

	flip := bytes.Clone(raw)
	flip[len(flip)/2] ^= 0x01
	tampered := sealed[:i+1] + base64.RawURLEncoding.EncodeToString(flip)
	truncated := sealed[:i+1] + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1])
	tagless := sealed[:i+1] + base64.RawURLEncoding.EncodeToString(raw[:12])

	cases := []struct {
		name   string
		sealed string
		aad    []byte
		want   error
	}{
		{"bit flipped", tampered, aad, ErrTampered},
		{"truncated by one byte", truncated, aad, ErrTampered},
		{"no tag", tagless, aad, ErrMalformed},
		{"moved to another message", sealed, []byte("msg|c1|m2"), ErrTampered},
		{"moved to another conversation", sealed, []byte("msg|c2|m1"), ErrTampered},
		{"unknown key id", "v1.d-nope." + sealed[i+1:], aad, ErrUnknownKey},
		{"not a ciphertext", "hello", aad, ErrMalformed},
		{"bad base64", sealed[:i+1] + "***", aad, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pt, err := k.Open(c.sealed, c.aad)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open error = %v, want %v", err, c.want)
			}
			if pt != nil {
				t.Fatalf("Open returned plaintext %q with an error", pt)
			}
		})
	}
}

// Rotation as the operator performs it: every intermediate file is accepted,
// and everything sealed or signed before stays readable.
func TestReloadThroughRotation(t *testing.T) {
	f := newFile(t)
	k, dir := load(t, f)
	ctx := context.Background()
	oldSealed, oldKID, _ := k.Seal(ctx, []byte("a"), []byte("old"))
	oldTok, err := k.SignJWT(jwt.MapClaims{"sub": "u1"})
	if err != nil {
		t.Fatal(err)
	}

	// 1. stage
	now := time.Now()
	sj, _ := keyringfile.NewJWTKey(now, keyringfile.StateStaged)
	sd, _ := keyringfile.NewDataKey(now, keyringfile.StateStaged)
	f.JWT = append(f.JWT, sj)
	f.Data = append(f.Data, sd)
	writeFile(t, dir, f)
	if changed, err := k.Reload(); err != nil || !changed {
		t.Fatalf("stage reload: changed=%v err=%v", changed, err)
	}
	if _, d := k.ActiveIDs(); d != oldKID {
		t.Fatal("a staged key must not become active")
	}
	// a token signed by the staged key (as another replica that already
	// promoted would) verifies here
	stagedTok := signWith(t, sj)
	if err := k.ParseJWT(stagedTok, &jwt.MapClaims{}); err != nil {
		t.Fatalf("staged key must verify: %v", err)
	}

	// 2. promote
	f.JWT[0].State, f.JWT[1].State = keyringfile.StateRetired, keyringfile.StateActive
	f.Data[0].State, f.Data[1].State = keyringfile.StateRetired, keyringfile.StateActive
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	newSealed, newKID, _ := k.Seal(ctx, []byte("a"), []byte("new"))
	if newKID != sd.ID {
		t.Fatalf("after promotion seals use %s, want %s", newKID, sd.ID)
	}
	if pt, err := k.Open(oldSealed, []byte("a")); err != nil || string(pt) != "old" {
		t.Fatalf("old ciphertext after promotion: %q %v", pt, err)
	}
	if err := k.ParseJWT(oldTok, &jwt.MapClaims{}); err != nil {
		t.Fatalf("retired key must still verify: %v", err)
	}

	// 3. remove the retired JWT key: its tokens are refused now
	f.JWT = f.JWT[1:]
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := k.ParseJWT(oldTok, &jwt.MapClaims{}); err == nil {
		t.Fatal("token of a removed key verified")
	}
	if pt, err := k.Open(newSealed, []byte("a")); err != nil || string(pt) != "new" {
		t.Fatal(err)
	}

	// an invalid file (two active data keys) is refused; the keyring stays
	raw := twoActiveDataKeys(t, f)
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Reload(); err == nil || !strings.Contains(err.Error(), "active") {
		t.Fatalf("a keyring with two active data keys: err = %v, want a refusal naming the active keys", err)
	}
	if _, d := k.ActiveIDs(); d != sd.ID {
		t.Fatal("refused reload replaced the keyring")
	}
	if pt, err := k.Open(oldSealed, []byte("a")); err != nil || string(pt) != "old" {
		t.Fatal("keyring unusable after a refused reload")
	}
}

// twoActiveDataKeys returns f's JSON with its retired data key turned active
// (Marshal validates, so the broken document is made by editing the text).
func twoActiveDataKeys(t *testing.T, f *keyringfile.File) []byte {
	t.Helper()
	raw, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range doc["data"].([]any) {
		k.(map[string]any)["state"] = keyringfile.StateActive
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func signWith(t *testing.T, k keyringfile.JWTKey) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "u1"})
	tok.Header["kid"] = k.ID
	s, err := tok.SignedString(ed25519.NewKeyFromSeed(k.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseJWTRefusesForgedTokens(t *testing.T) {
	f := newFile(t)
	k, _ := load(t, f)
	pub := ed25519.NewKeyFromSeed(f.JWT[0].PrivateKey).Public().(ed25519.PublicKey)

	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "u1"})
	none.Header["kid"] = f.JWT[0].ID
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)

	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "u1"})
	hs.Header["kid"] = f.JWT[0].ID
	hsTok, _ := hs.SignedString([]byte(pub)) // the classic public-key-as-HMAC-secret forgery

	stranger, _ := keyringfile.NewJWTKey(time.Now(), keyringfile.StateActive)
	strangerTok := signWith(t, stranger) // well-formed, but its kid is not in our keyring

	impostor := stranger
	impostor.ID = f.JWT[0].ID // our kid, someone else's key
	impostorTok := signWith(t, impostor)

	good, err := k.SignJWT(jwt.MapClaims{"sub": "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := k.ParseJWT(good, &jwt.MapClaims{}); err != nil {
		t.Fatalf("a good token was refused: %v", err)
	}
	for name, tok := range map[string]string{"alg none": noneTok, "HS256 with public key": hsTok,
		"unknown kid": strangerTok, "wrong key for kid": impostorTok} {
		if err := k.ParseJWT(tok, &jwt.MapClaims{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

type countingReserver struct {
	mu    sync.Mutex
	total map[string]int64
	calls int
}

func (c *countingReserver) ReserveSeals(_ context.Context, kid string, n int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.total[kid] += n
	return c.total[kid], nil
}

func TestSealsAreReservedInBlocks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, newFile(t))
	r := &countingReserver{total: map[string]int64{}}
	k, err := Load(dir, Options{Reserver: r})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < sealBlock+1; i++ {
		if _, _, err := k.Seal(context.Background(), nil, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	_, kid := k.ActiveIDs()
	if r.calls != 2 || r.total[kid] != 2*sealBlock {
		t.Fatalf("after %d seals: %d reservations, total %d; want 2 and %d", sealBlock+1, r.calls, r.total[kid], 2*sealBlock)
	}
}

func TestLoadOrGenerateKeepsTheKeyring(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keyring")
	k1, err := LoadOrGenerate(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, keyringfile.FileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated keyring mode %v, err %v; want 0600", st.Mode().Perm(), err)
	}
	sealed, _, _ := k1.Seal(context.Background(), nil, []byte("kept"))
	k2, err := LoadOrGenerate(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := k2.Open(sealed, nil); err != nil || string(pt) != "kept" {
		t.Fatal("a second start generated a new keyring instead of loading the first")
	}
}

// A keyring that does not continue the loaded one (another cluster's backup,
// a regenerated Secret) is refused on reload: the server keeps opening what
// it stored instead of silently switching to keys that cannot.
func TestReloadRefusesAForeignKeyring(t *testing.T) {
	f := newFile(t)
	k, dir := load(t, f)
	ctx := context.Background()
	sealed, _, err := k.Seal(ctx, []byte("aad"), []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, newFile(t)) // fresh keys, none of the old ones
	if _, err := k.Reload(); !errors.Is(err, ErrForeignKeyring) {
		t.Fatalf("Reload of a foreign keyring: %v, want ErrForeignKeyring", err)
	}
	same := *f
	same.Data = append([]keyringfile.DataKey(nil), f.Data...)
	same.Data[0].Key = make([]byte, len(f.Data[0].Key)) // same id, other material
	writeFile(t, dir, &same)
	if _, err := k.Reload(); !errors.Is(err, ErrForeignKeyring) {
		t.Fatalf("Reload with a key's material changed: %v, want ErrForeignKeyring", err)
	}
	if pt, err := k.Open(sealed, []byte("aad")); err != nil || string(pt) != "kept" {
		t.Fatalf("after refused reloads: %q, %v", pt, err)
	}
}
