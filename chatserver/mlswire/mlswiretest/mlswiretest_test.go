package mlswiretest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/mlswire"
)

// The builders' output parses with mlswire, and what they are told to get
// wrong is refused.
func TestBuildersParse(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	msg, ref := KeyPackage(key, "u1:d1", KeyPackageOptions{LastResort: true})
	kp, err := mlswire.ParseKeyPackage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if string(kp.Identity) != "u1:d1" || !kp.LastResort || !bytes.Equal(kp.Ref(), ref) || !kp.ValidAt(time.Now()) {
		t.Fatalf("key package %+v", kp)
	}
	if !bytes.Equal(kp.SignatureKey, key.Public().(ed25519.PublicKey)) {
		t.Fatal("signature key")
	}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	if forged, _ := KeyPackage(key, "u1:d1", KeyPackageOptions{SignWith: other}); forged != nil {
		if _, err := mlswire.ParseKeyPackage(forged); err == nil {
			t.Fatal("forged key package accepted")
		}
	}
	if wrong, _ := KeyPackage(key, "u1:d1", KeyPackageOptions{CipherSuite: 2}); wrong != nil {
		if _, err := mlswire.ParseKeyPackage(wrong); err == nil {
			t.Fatal("ciphersuite 2 accepted")
		}
	}
	m, err := mlswire.ParseMessage(Commit("conv", 7))
	if err != nil || m.Epoch != 7 || string(m.GroupID) != "conv" || m.ContentType != mlswire.ContentCommit || m.WireFormat != mlswire.WirePrivate {
		t.Fatalf("commit %+v %v", m, err)
	}
	w, err := mlswire.ParseWelcome(Welcome(ref, []byte("other")))
	if err != nil || len(w.NewMembers) != 2 || !bytes.Equal(w.NewMembers[0], ref) {
		t.Fatalf("welcome %+v %v", w, err)
	}
}
