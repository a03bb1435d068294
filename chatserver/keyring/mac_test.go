package keyring

import (
	"testing"
)

func TestMACVerifiesOnlyWhatWasSigned(t *testing.T) {
	k, _ := load(t, newFile(t))
	kid, tag := k.MAC([]byte("u:alice"), []byte("payload"))
	if !k.VerifyMAC(kid, tag, []byte("u:alice"), []byte("payload")) {
		t.Fatal("a tag the keyring made does not verify")
	}
	for name, ok := range map[string]bool{
		"other topic":     k.VerifyMAC(kid, tag, []byte("u:bob"), []byte("payload")),
		"other payload":   k.VerifyMAC(kid, tag, []byte("u:alice"), []byte("payloaD")),
		"moved boundary":  k.VerifyMAC(kid, tag, []byte("u:alicep"), []byte("ayload")),
		"unknown kid":     k.VerifyMAC("nope", tag, []byte("u:alice"), []byte("payload")),
		"truncated tag":   k.VerifyMAC(kid, tag[:31], []byte("u:alice"), []byte("payload")),
		"flipped tag bit": k.VerifyMAC(kid, append([]byte{tag[0] ^ 1}, tag[1:]...), []byte("u:alice"), []byte("payload")),
	} {
		if ok {
			t.Errorf("%s: verified", name)
		}
	}
}
