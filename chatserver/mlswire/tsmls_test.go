package mlswire

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Interoperability: messages the web client's MLS library (ts-mls) made,
// written by chatserver/web/test/mls-fixtures.mjs into testdata/, are
// accepted by this package, an implementation written from the RFC: key
// packages verify, Welcomes name the references this package computes,
// message headers read as the library meant, and the application message
// decrypts and its signature verifies (unprotect_test.go).
//
// make test writes fresh fixtures with the installed ts-mls into a temporary
// folder and points PARLEY_TSMLS_FIXTURES at it, so every run checks new
// keys and ciphertexts; without it the committed ones in testdata/ are read.

type tsmlsKeyPackage struct {
	Identity, SignatureKey, InitKey, EncryptionKey string
	NotBefore, NotAfter                            uint64
	LastResort                                     bool
	Ref                                            string
}

type tsmlsFile struct {
	WireFormat  uint16
	GroupID     string
	Epoch       uint64
	ContentType uint8
	KeyPackage  *tsmlsKeyPackage
	NewMembers  []string
	Plaintext   string
	Secrets     *struct {
		SenderLeaf            uint32
		ApplicationSecret     string
		ApplicationGeneration uint32
		SenderDataSecret      string
		SignatureKeys         map[string]string
		GroupContext          struct {
			Epoch                   uint64
			TreeHash                string
			ConfirmedTranscriptHash string
			Extensions              []struct {
				Type uint16
				Data string
			}
		}
	}
}

func loadTSMLS(t *testing.T) (map[string]tsmlsFile, func(string) []byte) {
	t.Helper()
	dir := os.Getenv("PARLEY_TSMLS_FIXTURES")
	if dir == "" {
		dir = "testdata"
	}
	t.Logf("ts-mls fixtures from %s", dir)
	b, err := os.ReadFile(filepath.Join(dir, "fixtures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Generator   string
		CipherSuite uint16
		Files       map[string]tsmlsFile
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.CipherSuite != 1 || len(d.Files) < 7 {
		t.Fatalf("fixtures.json: suite %d, %d files", d.CipherSuite, len(d.Files))
	}
	return d.Files, func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTSMLSKeyPackagesAndWelcomes(t *testing.T) {
	files, read := loadTSMLS(t)
	refs := map[string]bool{}
	for _, name := range []string{"keypackage.bin", "keypackage_lastresort.bin"} {
		want := files[name].KeyPackage
		kp, err := ParseKeyPackage(read(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(kp.Identity) != want.Identity || !bytes.Equal(kp.SignatureKey, b64(t, want.SignatureKey)) ||
			!bytes.Equal(kp.InitKey, b64(t, want.InitKey)) || !bytes.Equal(kp.EncryptionKey, b64(t, want.EncryptionKey)) ||
			kp.NotBefore != want.NotBefore || kp.NotAfter != want.NotAfter || kp.LastResort != want.LastResort {
			t.Fatalf("%s: decoded %+v, ts-mls says %+v", name, kp, want)
		}
		if !kp.ValidAt(time.Unix(int64(want.NotBefore)+1, 0)) {
			t.Fatalf("%s: not valid inside its lifetime", name)
		}
		// The reference this package computes is the one ts-mls computes.
		if got := hex.EncodeToString(kp.Ref()); got != want.Ref {
			t.Fatalf("%s: ref %s, ts-mls %s", name, got, want.Ref)
		}
		refs[want.Ref] = true
	}
	for _, name := range []string{"welcome.bin", "welcome2.bin"} {
		w, err := ParseWelcome(read(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(w.NewMembers) != len(files[name].NewMembers) {
			t.Fatalf("%s: %d recipients, ts-mls says %d", name, len(w.NewMembers), len(files[name].NewMembers))
		}
		for i, ref := range w.NewMembers {
			if hex.EncodeToString(ref) != files[name].NewMembers[i] || !refs[files[name].NewMembers[i]] {
				t.Fatalf("%s: recipient %x is not a fixture key package", name, ref)
			}
		}
	}
}

func TestTSMLSMessageHeaders(t *testing.T) {
	files, read := loadTSMLS(t)
	for _, name := range []string{"commit.bin", "commit_public.bin", "application.bin"} {
		want := files[name]
		m, err := ParseMessage(read(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m.WireFormat != want.WireFormat || string(m.GroupID) != want.GroupID || m.Epoch != want.Epoch || m.ContentType != want.ContentType {
			t.Fatalf("%s: read %+v, ts-mls wrote %+v", name, m, want)
		}
	}
}

func TestTSMLSApplicationMessageDecrypts(t *testing.T) {
	files, read := loadTSMLS(t)
	f := files["application.bin"]
	s := f.Secrets
	if s == nil {
		t.Fatal("fixtures.json has no secrets for application.bin")
	}
	exts := []byte{}
	for _, e := range s.GroupContext.Extensions {
		exts = binary.BigEndian.AppendUint16(exts, e.Type)
		exts = AppendVector(exts, unhex(t, e.Data))
	}
	ctx := binary.BigEndian.AppendUint16(nil, Version10)
	ctx = binary.BigEndian.AppendUint16(ctx, SuiteX25519AES128Ed25519)
	ctx = AppendVector(ctx, []byte(f.GroupID))
	ctx = binary.BigEndian.AppendUint64(ctx, s.GroupContext.Epoch)
	ctx = AppendVector(ctx, unhex(t, s.GroupContext.TreeHash))
	ctx = AppendVector(ctx, unhex(t, s.GroupContext.ConfirmedTranscriptHash))
	ctx = AppendVector(ctx, exts)
	sigKeys := map[uint32][]byte{}
	for k, v := range s.SignatureKeys {
		var leaf uint32
		if _, err := fmt.Sscan(k, &leaf); err != nil {
			t.Fatal(err)
		}
		sigKeys[leaf] = unhex(t, v)
	}
	keys := func(leaf uint32, handshake bool, g uint32) ([]byte, []byte, error) {
		if leaf != s.SenderLeaf || handshake || g < s.ApplicationGeneration {
			t.Fatalf("sender data names leaf %d (handshake %v) generation %d; the fixture has leaf %d's application ratchet", leaf, handshake, g, s.SenderLeaf)
		}
		k, n := ratchetFrom(unhex(t, s.ApplicationSecret), s.ApplicationGeneration, g)
		return k, n, nil
	}
	u, err := unprotect(read("application.bin"), keys, unhex(t, s.SenderDataSecret), ctx, sigKeys)
	if err != nil {
		t.Fatalf("ts-mls application message refused: %v", err)
	}
	if string(u.Content) != f.Plaintext || u.ContentType != ContentApplication {
		t.Fatalf("decrypted %q, ts-mls encrypted %q", u.Content, f.Plaintext)
	}
	// The signature binds the sender: under the other member's key it fails.
	swapped := map[uint32][]byte{0: sigKeys[1], 1: sigKeys[0]}
	if _, err := unprotect(read("application.bin"), keys, unhex(t, s.SenderDataSecret), ctx, swapped); err == nil {
		t.Fatal("verified under another member's key")
	}
}
