package mlswire

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: no input makes a decoder panic or read past its input, and
// what one accepts is self-consistent (a key package's Raw parses again to
// the same reference).
func FuzzParse(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "mlswg", "messages.json"))
	if err != nil {
		f.Fatal(err)
	}
	var vs []map[string]string
	if err := json.Unmarshal(b, &vs); err != nil {
		f.Fatal(err)
	}
	for _, v := range vs[:5] {
		for _, k := range []string{"mls_key_package", "mls_welcome", "public_message_commit", "public_message_proposal", "private_message"} {
			if s, err := hex.DecodeString(v[k]); err == nil {
				f.Add(s)
			}
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if kp, err := ParseKeyPackage(in); err == nil {
			again, err := ParseKeyPackage(kp.Raw)
			if err != nil || string(again.Ref()) != string(kp.Ref()) {
				t.Fatalf("accepted key package does not parse again: %v", err)
			}
		}
		_, _ = ParseMessage(in)
		_, _ = ParseWelcome(in)
	})
}
