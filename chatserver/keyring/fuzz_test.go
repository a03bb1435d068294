package keyring_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// fuzzFile is a keyring with fixed key material, the same in the fuzzing
// coordinator and in every worker, so that a value sealed in one opens in the
// others: an active and a retired data key, an active and a staged JWT key.
func fuzzFile() *keyringfile.File {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	material := func(b byte) []byte {
		s := make([]byte, 32)
		for i := range s {
			s[i] = b ^ byte(i*7)
		}
		return s
	}
	return &keyringfile.File{Version: keyringfile.Version,
		JWT: []keyringfile.JWTKey{
			{ID: "j-active", Alg: keyringfile.AlgEdDSA, State: keyringfile.StateActive, Created: at, Activated: &at, PrivateKey: material(1)},
			{ID: "j-staged", Alg: keyringfile.AlgEdDSA, State: keyringfile.StateStaged, Created: at, PrivateKey: material(2)},
		},
		Data: []keyringfile.DataKey{
			{ID: "d-active", Alg: keyringfile.AlgA256GCM, State: keyringfile.StateActive, Created: at, Activated: &at, Key: material(3)},
			{ID: "d-old", Alg: keyringfile.AlgA256GCM, State: keyringfile.StateRetired, Created: at, Retired: &at, Key: material(4)},
		},
	}
}

// fuzzLoad writes raw as the keyring file of a new folder and loads it.
func fuzzLoad(tb testing.TB, raw []byte) (*keyring.Keyring, error) {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	return keyring.Load(dir, keyring.Options{})
}

func fuzzKeyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	raw, err := fuzzFile().Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	k, err := fuzzLoad(tb, raw)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// fuzzSeal seals with a test-chosen nonce and data key of fuzzFile, as Seal
// does with a random one: the oracle for what Open may accept.
func fuzzSeal(tb testing.TB, kid string, nonce, aad, plaintext []byte) string {
	tb.Helper()
	var key []byte
	for _, dk := range fuzzFile().Data {
		if dk.ID == kid {
			key = dk.Key
		}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		tb.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		tb.Fatal(err)
	}
	return "v1." + kid + "." + base64.RawURLEncoding.EncodeToString(gcm.Seal(bytes.Clone(nonce), nonce, plaintext, aad))
}

// FuzzOpen opens arbitrary strings under arbitrary associated data.
// Properties: it never panics; it either fails with ErrMalformed,
// ErrUnknownKey or ErrTampered and no plaintext, or the input is exactly what
// sealing the returned plaintext under that aad, with that key and the
// nonce it carries, produces: so nothing opens unless Seal (with that aad)
// made it, and no other spelling of a sealed value opens either.
func FuzzOpen(f *testing.F) {
	k := fuzzKeyring(f)
	aad := []byte("msg|c_1|m_1")
	for _, pt := range []string{"", "a", "hi", "the secret plan", strings.Repeat("long ", 40)} {
		sealed, _, err := k.Seal(context.Background(), aad, []byte(pt))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(sealed, aad)
		f.Add(sealed, []byte("msg|c_1|m_2"))
	}
	nonce := bytes.Repeat([]byte{7}, 12)
	f.Add(fuzzSeal(f, "d-old", nonce, aad, []byte("sealed before a rotation")), aad)
	for _, s := range []string{"", "v1.", "v1..", "v1.d-active.", "v1.d-active.AAAA", "v1.d-nope.AAAA", "v2.d-active.AAAA", "hello"} {
		f.Add(s, aad)
	}

	f.Fuzz(func(t *testing.T, sealed string, aad []byte) {
		pt, err := k.Open(sealed, aad)
		if err != nil {
			if pt != nil {
				t.Fatalf("Open(%q) returned plaintext with the error %v", sealed, err)
			}
			if !errors.Is(err, keyring.ErrMalformed) && !errors.Is(err, keyring.ErrUnknownKey) && !errors.Is(err, keyring.ErrTampered) {
				t.Fatalf("Open(%q): unexpected error %v", sealed, err)
			}
			return
		}
		kid := keyring.KeyID(sealed)
		_, body, _ := strings.Cut(strings.TrimPrefix(sealed, "v1."), ".")
		raw, derr := base64.RawURLEncoding.DecodeString(body)
		if derr != nil || len(raw) < 12 {
			t.Fatalf("Open accepted %q, whose body does not decode (%v)", sealed, derr)
		}
		if want := fuzzSeal(t, kid, raw[:12], aad, pt); sealed != want {
			t.Fatalf("Open accepted %q under aad %q, but sealing its plaintext gives %q", sealed, aad, want)
		}
	})
}

// FuzzOpenTampered seals a fuzzed plaintext under a fuzzed aad, then checks:
// it opens to the plaintext under that aad; it does not open under another
// aad; and it does not open with the character at pos changed: replaced by
// c, or, with xor, replaced by the base64url letter whose index differs by
// c (so the change does not depend on the random nonce, and a regression
// seed replays).
func FuzzOpenTampered(f *testing.F) {
	k := fuzzKeyring(f)
	f.Add([]byte("the secret plan"), []byte("msg|c_1|m_1"), []byte("msg|c_1|m_2"), uint(5), byte('A'), false)
	f.Add([]byte(""), []byte(""), []byte("x"), uint(0), byte('v'), false)
	f.Add([]byte("hi"), []byte("title|c_1"), []byte(""), uint(1000), byte('\n'), false)
	f.Add([]byte("ab"), []byte("aad"), []byte("aad2"), uint(1<<20), byte(3), true)
	f.Fuzz(func(t *testing.T, plaintext, aad, otherAAD []byte, pos uint, c byte, xor bool) {
		sealed, kid, err := k.Seal(context.Background(), aad, plaintext)
		if err != nil {
			t.Fatal(err)
		}
		if kid != "d-active" || keyring.KeyID(sealed) != kid {
			t.Fatalf("sealed %q with key %q, want d-active", sealed, kid)
		}
		pt, err := k.Open(sealed, aad)
		if err != nil || !bytes.Equal(pt, plaintext) {
			t.Fatalf("Open(Seal(%q)) = %q, %v", plaintext, pt, err)
		}
		if !bytes.Equal(otherAAD, aad) {
			if pt, err := k.Open(sealed, otherAAD); err == nil {
				t.Fatalf("sealed under aad %q, opened under %q to %q", aad, otherAAD, pt)
			}
		}
		i := int(pos % uint(len(sealed)))
		repl := c
		if xor {
			const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			j := strings.IndexByte(b64, sealed[i])
			if j < 0 {
				return // the "v1." prefix's dots
			}
			repl = b64[j^int(c%64)]
		}
		if sealed[i] == repl {
			return
		}
		changed := sealed[:i] + string([]byte{repl}) + sealed[i+1:]
		if pt, err := k.Open(changed, aad); err == nil {
			t.Fatalf("%q (byte %d of %q changed to %q) opened to %q", changed, i, sealed, repl, pt)
		}
	})
}

// FuzzLoad feeds arbitrary bytes to the keyring loader, at start (Load) and on
// reload (Reload, which must keep the previous keyring when it refuses).
// Properties: neither panics; the loader accepts exactly what
// keyringfile.Parse accepts; a loaded keyring's active keys are the file's,
// and they seal/open and sign/verify; a refused reload changes nothing.
func FuzzLoad(f *testing.F) {
	good, err := fuzzFile().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"version":1,"jwt":[],"data":[]}`))
	f.Add(bytes.Replace(good, []byte(`"retired"`), []byte(`"active"`), 1)) // two active data keys
	f.Add(bytes.Replace(good, []byte(`"j-staged"`), []byte(`"d-old"`), 1)) // duplicate id
	f.Add([]byte(`{}`))
	f.Add([]byte(``))

	dir := f.TempDir()
	path := filepath.Join(dir, keyringfile.FileName)
	if err := os.WriteFile(path, good, 0o600); err != nil {
		f.Fatal(err)
	}
	live, err := keyring.Load(dir, keyring.Options{})
	if err != nil {
		f.Fatal(err)
	}
	aad := []byte("msg|c_1|m_1")
	before, _, err := live.Seal(context.Background(), aad, []byte("kept"))
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, raw []byte) {
		file, perr := keyringfile.Parse(raw)
		k, lerr := fuzzLoad(t, raw)
		if (perr == nil) != (lerr == nil) {
			t.Fatalf("keyringfile.Parse: %v, but keyring.Load: %v", perr, lerr)
		}
		if lerr == nil {
			checkLoaded(t, k, file)
		}

		// Reload: from the good file to raw, and back.
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		changed, rerr := live.Reload()
		if (perr == nil) != (rerr == nil) {
			t.Fatalf("keyringfile.Parse: %v, but Reload: %v", perr, rerr)
		}
		if rerr != nil {
			if changed {
				t.Fatal("a refused reload reported a change")
			}
			if j, d := live.ActiveIDs(); j != "j-active" || d != "d-active" {
				t.Fatalf("a refused reload changed the active keys to %s, %s", j, d)
			}
			if pt, err := live.Open(before, aad); err != nil || string(pt) != "kept" {
				t.Fatalf("after a refused reload, a value sealed before does not open: %q, %v", pt, err)
			}
		} else {
			checkLoaded(t, live, file)
		}
		if err := os.WriteFile(path, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := live.Reload(); err != nil {
			t.Fatal(err)
		}
	})
}

// checkLoaded checks that k holds file's active keys and that they work.
func checkLoaded(t *testing.T, k *keyring.Keyring, file *keyringfile.File) {
	t.Helper()
	jk, _ := file.ActiveJWT()
	dk, _ := file.ActiveData()
	if j, d := k.ActiveIDs(); j != jk.ID || d != dk.ID {
		t.Fatalf("loaded active keys %s, %s; the file's are %s, %s", j, d, jk.ID, dk.ID)
	}
	aad := []byte("aad")
	sealed, kid, err := k.Seal(context.Background(), aad, []byte("x"))
	if err != nil || kid != dk.ID {
		t.Fatalf("Seal: %v (key %q, want %q)", err, kid, dk.ID)
	}
	if pt, err := k.Open(sealed, aad); err != nil || string(pt) != "x" {
		t.Fatalf("Open(Seal(x)) = %q, %v", pt, err)
	}
	tok, err := k.SignJWT(jwt.RegisteredClaims{Subject: "u_1"})
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.RegisteredClaims
	if err := k.ParseJWT(tok, &c); err != nil || c.Subject != "u_1" {
		t.Fatalf("ParseJWT(SignJWT) = %+v, %v", c, err)
	}
}
