package keyring

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/pkg/keyringfile"
)

// A keyring without a VAPID key (an older Secret) loads and reports none; a
// reload that adds one turns push on, and the public key matches the scalar.
func TestVAPIDOptionalAndReloaded(t *testing.T) {
	f := newFile(t)
	k, dir := load(t, f)
	if k.VAPID() != nil {
		t.Fatal("a keyring without a VAPID key reports one")
	}
	v, err := keyringfile.NewVAPIDKey(time.Now(), keyringfile.StateActive)
	if err != nil {
		t.Fatal(err)
	}
	f.VAPID = []keyringfile.VAPIDKey{v}
	writeFile(t, dir, f)
	if changed, err := k.Reload(); err != nil || !changed {
		t.Fatalf("Reload = %v, %v", changed, err)
	}
	got := k.VAPID()
	if got == nil || got.ID != v.ID {
		t.Fatalf("VAPID() = %v after adding %s", got, v.ID)
	}
	priv, err := ecdh.P256().NewPrivateKey(v.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.PublicKey, priv.PublicKey().Bytes()) {
		t.Fatal("public key does not belong to the private key")
	}
	raw, err := base64.RawURLEncoding.DecodeString(got.PrivateKeyForWebPush())
	if err != nil || !bytes.Equal(raw, v.PrivateKey) {
		t.Fatal("PrivateKeyForWebPush is not the scalar in base64url")
	}
	if s := fmt.Sprint(got); bytes.Contains([]byte(s), []byte(got.PrivateKeyForWebPush())) {
		t.Fatalf("String printed the private key: %s", s)
	}
	// Rotation is allowed (deliberate): a new active VAPID key replaces it.
	w, _ := keyringfile.NewVAPIDKey(time.Now(), keyringfile.StateActive)
	f.VAPID = []keyringfile.VAPIDKey{w}
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatalf("a rotated VAPID key was refused: %v", err)
	}
	if k.VAPID().ID != w.ID {
		t.Fatal("the rotated VAPID key is not active")
	}
}

// The generated keyring of a single node (make run) has a VAPID key.
func TestGeneratedKeyringHasVAPID(t *testing.T) {
	k, err := LoadOrGenerate(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := k.VAPID(); v == nil || len(v.PublicKey) != 65 {
		t.Fatalf("generated keyring: VAPID() = %v", v)
	}
}
