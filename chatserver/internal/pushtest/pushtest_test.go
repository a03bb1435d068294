package pushtest

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"testing"
)

func b64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8291, Appendix A: the example's user agent keys, auth secret and final
// message decrypt to its plaintext, so Decrypt implements the RFC (and a
// wrong key or auth secret fails).
func TestDecryptRFC8291Example(t *testing.T) {
	uaPriv, err := ecdh.P256().NewPrivateKey(b64(t, "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"))
	if err != nil {
		t.Fatal(err)
	}
	if got := base64.RawURLEncoding.EncodeToString(uaPriv.PublicKey().Bytes()); got !=
		"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4" {
		t.Fatalf("user agent public key %s is not the example's", got)
	}
	auth := b64(t, "BTBZMqHH6r4Tts7J_aSIgg")
	msg := b64(t, "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN")
	plain, err := Decrypt(msg, uaPriv, auth)
	if err != nil {
		t.Fatal(err)
	}
	if string(plain) != "When I grow up, I want to be a watermelon" {
		t.Fatalf("plaintext %q", plain)
	}
	// The example's header: salt, record size 4096, the sender's key.
	if !bytes.Equal(msg[:16], b64(t, "DGv6ra1nlYgDCS1FRnbzlw")) || msg[16] != 0 || msg[17] != 0 || msg[18] != 0x10 || msg[19] != 0 {
		t.Fatal("header is not the example's")
	}
	other, _ := ecdh.P256().GenerateKey(nil)
	if _, err := Decrypt(msg, other, auth); err == nil {
		t.Fatal("another private key decrypted it")
	}
	wrongAuth := bytes.Clone(auth)
	wrongAuth[0] ^= 1
	if _, err := Decrypt(msg, uaPriv, wrongAuth); err == nil {
		t.Fatal("another auth secret decrypted it")
	}
	tampered := bytes.Clone(msg)
	tampered[len(tampered)-1] ^= 1
	if _, err := Decrypt(tampered, uaPriv, auth); err == nil {
		t.Fatal("a tampered body decrypted")
	}
}
