package mlswire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The vectors under testdata/mlswg are the MLS working group's
// interoperability test vectors (github.com/mlswg/mls-implementations,
// test-vectors/, commit cfd4502), cut to ciphersuite 1 and to the first 40
// entries of messages.json; see testdata/mlswg/README.md.

func loadVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "mlswg", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVarintVectors(t *testing.T) {
	var vs []struct {
		Header string `json:"vlbytes_header"`
		Length int    `json:"length"`
	}
	loadVectors(t, "deserialization.json", &vs)
	if len(vs) < 5 {
		t.Fatalf("only %d vectors", len(vs))
	}
	for _, v := range vs {
		h := unhex(t, v.Header)
		r := &reader{b: h}
		if n := r.varint("v"); r.err != nil || n != v.Length || len(r.b) != 0 {
			t.Errorf("header %s: got %d, %v, %d left; want %d", v.Header, n, r.err, len(r.b), v.Length)
		}
		if enc := appendLength(nil, v.Length); !bytes.Equal(enc, h) {
			t.Errorf("length %d encodes as %x, want %s", v.Length, enc, v.Header)
		}
	}
	for _, bad := range []string{"4005", "80000010", "c0", "40"} {
		r := &reader{b: unhex(t, bad)}
		r.varint("v")
		if !errors.Is(r.err, ErrMalformed) {
			t.Errorf("header %s accepted", bad)
		}
	}
}

func TestCryptoBasicsVectors(t *testing.T) {
	var vs []struct {
		Suite   uint16 `json:"cipher_suite"`
		RefHash struct {
			Label, Value, Out string
		} `json:"ref_hash"`
		SignWithLabel struct {
			Label, Content, Pub, Signature string
		} `json:"sign_with_label"`
	}
	loadVectors(t, "crypto-basics.json", &vs)
	if len(vs) != 1 || vs[0].Suite != 1 {
		t.Fatalf("want the one ciphersuite-1 vector, have %d", len(vs))
	}
	v := vs[0]
	if got := RefHash(v.RefHash.Label, unhex(t, v.RefHash.Value)); !bytes.Equal(got, unhex(t, v.RefHash.Out)) {
		t.Errorf("RefHash = %x, want %s", got, v.RefHash.Out)
	}
	s := v.SignWithLabel
	if !VerifyWithLabel(unhex(t, s.Pub), s.Label, unhex(t, s.Content), unhex(t, s.Signature)) {
		t.Error("SignWithLabel vector does not verify")
	}
	if VerifyWithLabel(unhex(t, s.Pub), s.Label+"x", unhex(t, s.Content), unhex(t, s.Signature)) {
		t.Error("verifies under another label")
	}
}

// welcomeVector is the shape shared by welcome.json and passive-client-*.json.
type welcomeVector struct {
	Suite      uint16 `json:"cipher_suite"`
	KeyPackage string `json:"key_package"`
	Welcome    string `json:"welcome"`
	Epochs     []struct {
		Proposals []string `json:"proposals"`
		Commit    string   `json:"commit"`
	} `json:"epochs"`
}

// checkWelcomeFor is the delivery service's routing check: the key package
// verifies, and the welcome names its reference.
func checkWelcomeFor(t *testing.T, name string, v welcomeVector) {
	t.Helper()
	kp, err := ParseKeyPackage(unhex(t, v.KeyPackage))
	if err != nil {
		t.Fatalf("%s: key package: %v", name, err)
	}
	w, err := ParseWelcome(unhex(t, v.Welcome))
	if err != nil {
		t.Fatalf("%s: welcome: %v", name, err)
	}
	found := false
	for _, ref := range w.NewMembers {
		found = found || bytes.Equal(ref, kp.Ref())
	}
	if !found {
		t.Errorf("%s: welcome names %x, not the key package's ref %x", name, w.NewMembers, kp.Ref())
	}
}

func TestWelcomeVectors(t *testing.T) {
	for _, file := range []string{"welcome.json", "passive-client-welcome.json", "passive-client-handling-commit.json"} {
		var vs []welcomeVector
		loadVectors(t, file, &vs)
		if len(vs) == 0 {
			t.Fatalf("%s: no vectors", file)
		}
		for i, v := range vs {
			checkWelcomeFor(t, file+"#"+string(rune('0'+i)), v)
		}
	}
}

func TestCommitVectorsAreOrderedByEpoch(t *testing.T) {
	var vs []welcomeVector
	loadVectors(t, "passive-client-handling-commit.json", &vs)
	commits := 0
	for _, v := range vs {
		var epoch uint64
		var group []byte
		for i, e := range v.Epochs {
			m, err := ParseMessage(unhex(t, e.Commit))
			if err != nil {
				t.Fatalf("epoch %d commit: %v", i, err)
			}
			if m.ContentType != ContentCommit {
				t.Fatalf("epoch %d: content type %d", i, m.ContentType)
			}
			if i > 0 && (m.Epoch != epoch+1 || !bytes.Equal(m.GroupID, group)) {
				t.Fatalf("epoch %d: commit at epoch %d of group %x after %d of %x", i, m.Epoch, m.GroupID, epoch, group)
			}
			epoch, group = m.Epoch, m.GroupID
			commits++
			for _, p := range e.Proposals {
				pm, err := ParseMessage(unhex(t, p))
				if err != nil {
					t.Fatalf("epoch %d proposal: %v", i, err)
				}
				if pm.ContentType != ContentProposal || pm.Epoch != m.Epoch {
					t.Fatalf("epoch %d proposal: type %d epoch %d", i, pm.ContentType, pm.Epoch)
				}
			}
		}
	}
	if commits < 3 {
		t.Fatalf("only %d commits checked", commits)
	}
}

func TestMessagesVectors(t *testing.T) {
	var vs []map[string]string
	loadVectors(t, "messages.json", &vs)
	want := map[string]uint8{
		"public_message_application": ContentApplication,
		"public_message_proposal":    ContentProposal,
		"public_message_commit":      ContentCommit,
		"private_message":            0, // any
	}
	for i, v := range vs {
		for field, ct := range want {
			m, err := ParseMessage(unhex(t, v[field]))
			if err != nil {
				t.Fatalf("#%d %s: %v", i, field, err)
			}
			if ct != 0 && m.ContentType != ct {
				t.Errorf("#%d %s: content type %d", i, field, m.ContentType)
			}
		}
		if _, err := ParseWelcome(unhex(t, v["mls_welcome"])); err != nil && !isSuiteRefusal(err) {
			t.Errorf("#%d welcome: %v", i, err)
		}
		if _, _, _, _, _, err := decodeKeyPackage(unhex(t, v["mls_key_package"])); err != nil {
			t.Errorf("#%d key package: %v", i, err)
		}
		// A public message truncated anywhere, or with a byte appended, is refused.
		b := unhex(t, v["public_message_commit"])
		for n := 0; n < len(b); n += 1 + len(b)/50 {
			if _, err := ParseMessage(b[:n]); err == nil {
				t.Fatalf("#%d: commit truncated to %d bytes accepted", i, n)
			}
		}
		if _, err := ParseMessage(append(append([]byte{}, b...), 0)); err == nil {
			t.Fatalf("#%d: commit with a trailing byte accepted", i)
		}
	}
}

func isSuiteRefusal(err error) bool {
	return err != nil && !errors.Is(err, ErrMalformed)
}

func TestKeyPackageRefusals(t *testing.T) {
	var vs []welcomeVector
	loadVectors(t, "welcome.json", &vs)
	good := unhex(t, vs[0].KeyPackage)
	if _, err := ParseKeyPackage(good); err != nil {
		t.Fatal(err)
	}
	// Any single flipped byte is refused: it breaks a signature or the framing.
	for i := 4; i < len(good); i++ {
		b := append([]byte{}, good...)
		b[i] ^= 0x01
		if _, err := ParseKeyPackage(b); err == nil {
			t.Fatalf("byte %d flipped: accepted", i)
		}
	}
	for n := 0; n < len(good); n++ {
		if _, err := ParseKeyPackage(good[:n]); err == nil {
			t.Fatalf("truncated to %d: accepted", n)
		}
	}
}
