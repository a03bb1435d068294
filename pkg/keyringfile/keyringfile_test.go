package keyringfile

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

func mustNew(t *testing.T) *File {
	t.Helper()
	f, err := New(t0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestRoundTrip(t *testing.T) {
	f := mustNew(t)
	staged, err := NewJWTKey(t0.Add(time.Hour), StateStaged)
	if err != nil {
		t.Fatal(err)
	}
	f.JWT = append(f.JWT, staged)
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if len(g.JWT) != 2 || len(g.Data) != 1 {
		t.Fatalf("got %d jwt / %d data keys, want 2 / 1", len(g.JWT), len(g.Data))
	}
	if !bytes.Equal(g.JWT[1].PrivateKey, staged.PrivateKey) || g.JWT[1].ID != staged.ID || g.JWT[1].State != StateStaged {
		t.Errorf("staged key did not survive the round trip")
	}
	if g.JWT[0].Activated == nil || !g.JWT[0].Activated.Equal(t0) {
		t.Errorf("activated = %v, want %v", g.JWT[0].Activated, t0)
	}
	if g.JWT[1].Activated != nil {
		t.Errorf("a staged key must not carry an activation time")
	}
	// The seed is usable as an Ed25519 key.
	priv := ed25519.NewKeyFromSeed(g.JWT[0].PrivateKey)
	sig := ed25519.Sign(priv, []byte("x"))
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte("x"), sig) {
		t.Error("seed does not produce a working Ed25519 key")
	}
}

// The documented example (docs/keyring.md) parses, with its JSON field names.
func TestParseDocumentedExample(t *testing.T) {
	seed := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))
	doc := fmt.Sprintf(`{
  "version": 1,
  "jwt": [{"id": "j-7f3a9c21", "alg": "EdDSA", "state": "active", "created": "2026-11-23T18:00:00Z", "privateKey": %q}],
  "data": [{"id": "d-0b44e810", "alg": "A256GCM", "state": "active", "created": "2026-11-23T18:00:00Z",
            "activated": "2026-11-23T18:00:00Z", "key": %q}]
}`, seed, key)
	f, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if f.JWT[0].ID != "j-7f3a9c21" || f.Data[0].Key[0] != 2 || f.Data[0].Activated == nil {
		t.Errorf("fields not decoded: %v %v", f.JWT[0], f.Data[0])
	}
}

func TestValidateRejects(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(f *File)
		want   string
	}{
		{"version", func(f *File) { f.Version = 2 }, "version 2"},
		{"no active jwt", func(f *File) { f.JWT[0].State = StateStaged }, "0 active jwt keys"},
		{"two active data", func(f *File) {
			k := f.Data[0]
			k.ID = "d-other"
			f.Data = append(f.Data, k)
		}, "2 active data keys"},
		{"duplicate id across kinds", func(f *File) { f.Data[0].ID = f.JWT[0].ID }, "duplicate key id"},
		{"bad id", func(f *File) { f.JWT[0].ID = "has space" }, "must be 1-64 characters"},
		{"long id", func(f *File) { f.JWT[0].ID = strings.Repeat("a", 65) }, "must be 1-64 characters"},
		{"empty id", func(f *File) { f.Data[0].ID = "" }, "must be 1-64 characters"},
		{"jwt alg", func(f *File) { f.JWT[0].Alg = "HS256" }, `alg "HS256" is not accepted`},
		{"data alg", func(f *File) { f.Data[0].Alg = AlgEdDSA }, "is not accepted"},
		{"short seed", func(f *File) { f.JWT[0].PrivateKey = f.JWT[0].PrivateKey[:31] }, "31 bytes, want 32"},
		{"long data key", func(f *File) { f.Data[0].Key = append(f.Data[0].Key, 0) }, "33 bytes, want 32"},
		{"state", func(f *File) { f.Data[0].State = "revoked" }, `unknown state "revoked"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustNew(t)
			tc.mutate(f)
			err := f.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
			if _, err := f.Marshal(); err == nil {
				t.Fatal("Marshal accepted an invalid document")
			}
		})
	}
}

func TestParseRejectsMalformedJSON(t *testing.T) {
	good, err := mustNew(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"unknown field": strings.Replace(string(good), `"version": 1`, `"version": 1, "extra": true`, 1),
		"trailing":      string(good) + "{}",
		"not json":      "version: 1",
		"bad base64":    strings.Replace(string(good), `"privateKey": "`, `"privateKey": "!!`, 1),
	} {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}

func TestGeneratedKeysAreDistinctAndHidden(t *testing.T) {
	a, err := NewDataKey(t0, StateStaged)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDataKey(t0, StateStaged)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == b.ID || bytes.Equal(a.Key, b.Key) {
		t.Fatal("two generated keys share an id or material")
	}
	if !idPattern.MatchString(a.ID) {
		t.Fatalf("generated id %q does not match the id rule", a.ID)
	}
	j, err := NewJWTKey(t0, StateActive)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v", j), fmt.Sprintf("%#v", j), fmt.Sprintf("%+v", a)} {
		if strings.Contains(s, base64.StdEncoding.EncodeToString(a.Key)) ||
			strings.Contains(s, base64.StdEncoding.EncodeToString(j.PrivateKey)) ||
			strings.Contains(s, fmt.Sprint(a.Key)) || strings.Contains(s, fmt.Sprint(j.PrivateKey)) {
			t.Fatalf("formatting printed key material: %s", s)
		}
	}
}

func TestVAPIDKey(t *testing.T) {
	f := mustNew(t)
	if _, ok := f.ActiveVAPID(); ok {
		t.Fatal("a document without VAPID keys reports an active one")
	}
	v, err := NewVAPIDKey(t0, StateActive)
	if err != nil {
		t.Fatal(err)
	}
	f.VAPID = []VAPIDKey{v}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := g.ActiveVAPID()
	if !ok || got.ID != v.ID || !bytes.Equal(got.PrivateKey, v.PrivateKey) || got.Alg != AlgES256 {
		t.Fatalf("VAPID key did not survive the round trip: %v", got)
	}
	pub, err := got.PublicKey()
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key = %x, %v; want a 65-byte uncompressed point", pub, err)
	}
	for _, s := range []string{fmt.Sprint(v), fmt.Sprintf("%#v", v), fmt.Sprintf("%+v", v)} {
		if strings.Contains(s, base64.StdEncoding.EncodeToString(v.PrivateKey)) || strings.Contains(s, fmt.Sprint(v.PrivateKey)) {
			t.Fatalf("formatting printed key material: %s", s)
		}
	}

	cases := []struct {
		name   string
		mutate func(f *File)
		want   string
	}{
		{"alg", func(f *File) { f.VAPID[0].Alg = AlgEdDSA }, "is not accepted"},
		{"short", func(f *File) { f.VAPID[0].PrivateKey = f.VAPID[0].PrivateKey[:31] }, "31 bytes, want 32"},
		{"zero scalar", func(f *File) { f.VAPID[0].PrivateKey = make([]byte, 32) }, "vapid key"},
		{"scalar past the order", func(f *File) { f.VAPID[0].PrivateKey = bytes.Repeat([]byte{0xff}, 32) }, "vapid key"},
		{"two active", func(f *File) {
			k, _ := NewVAPIDKey(t0, StateActive)
			f.VAPID = append(f.VAPID, k)
		}, "2 active vapid keys"},
		{"id shared with a data key", func(f *File) { f.VAPID[0].ID = f.Data[0].ID }, "duplicate key id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := Parse(b)
			tc.mutate(f)
			if err := f.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A retired or staged VAPID key alone is valid: push is off until one is active.
	f2, _ := Parse(b)
	f2.VAPID[0].State = StateRetired
	if err := f2.Validate(); err != nil {
		t.Fatalf("a document with only a retired VAPID key: %v", err)
	}
}
