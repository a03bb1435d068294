package mlswire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
)

// This file is the receiving side of RFC 9420 message protection (§6.3,
// §9) for ciphersuite 1, written from the RFC in Go: enough to decrypt and
// verify a PrivateMessage given the epoch's encryption and sender-data
// secrets. The server never has those secrets, so it lives in a test: it is
// the second implementation that must accept what the client library
// (ts-mls) sends, checked first against the MLS working group's
// message-protection vectors.

const (
	nh = 32 // SHA-256
	nk = 16 // AES-128-GCM key
	nn = 12 // AES-128-GCM nonce
)

func expandWithLabel(secret []byte, label string, context []byte, length int) []byte {
	info := binary.BigEndian.AppendUint16(nil, uint16(length))
	info = AppendVector(info, []byte("MLS 1.0 "+label))
	info = AppendVector(info, context)
	out, err := hkdf.Expand(sha256.New, secret, string(info), length)
	if err != nil {
		panic(err) // only for lengths over 255*32
	}
	return out
}

func deriveTreeSecret(secret []byte, label string, generation uint32, length int) []byte {
	return expandWithLabel(secret, label, binary.BigEndian.AppendUint32(nil, generation), length)
}

// leafSecret walks the secret tree (same shape as the ratchet tree: a
// left-balanced tree over a power-of-two number of leaves) from the root to
// the leaf.
func leafSecret(encryptionSecret []byte, leaves, leaf uint32) []byte {
	width := uint32(1)
	for width < leaves {
		width <<= 1
	}
	node := width - 1 // root index in array representation
	target := 2 * leaf
	secret := encryptionSecret
	for node != target {
		level := uint32(0)
		for (node>>level)&1 == 1 {
			level++
		}
		if target < node {
			secret = expandWithLabel(secret, "tree", []byte("left"), nh)
			node ^= 1 << (level - 1)
		} else {
			secret = expandWithLabel(secret, "tree", []byte("right"), nh)
			node ^= 3 << (level - 1)
		}
	}
	return secret
}

// ratchetKey returns the key and nonce of generation g of a leaf's
// application or handshake ratchet.
func ratchetKey(encryptionSecret []byte, leaves, leaf uint32, handshake bool, g uint32) (key, nonce []byte) {
	label := "application"
	if handshake {
		label = "handshake"
	}
	return ratchetFrom(expandWithLabel(leafSecret(encryptionSecret, leaves, leaf), label, nil, nh), 0, g)
}

// ratchetFrom advances a ratchet secret of generation from to generation g.
func ratchetFrom(s []byte, from, g uint32) (key, nonce []byte) {
	for j := from; j < g; j++ {
		s = deriveTreeSecret(s, "secret", j, nh)
	}
	return deriveTreeSecret(s, "key", g, nk), deriveTreeSecret(s, "nonce", g, nn)
}

// keySource gives the content key and nonce of a sender's generation.
type keySource func(leaf uint32, handshake bool, g uint32) (key, nonce []byte, err error)

// treeKeys derives keys from the epoch's encryption secret.
func treeKeys(encryptionSecret []byte, leaves uint32) keySource {
	return func(leaf uint32, handshake bool, g uint32) ([]byte, []byte, error) {
		if leaf >= leaves {
			return nil, nil, fmt.Errorf("sender leaf %d of %d", leaf, leaves)
		}
		k, n := ratchetKey(encryptionSecret, leaves, leaf, handshake, g)
		return k, n, nil
	}
}

func gcmOpen(key, nonce, ct, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, nonce, ct, aad)
}

// groupContext encodes a GroupContext with empty extensions.
func groupContext(groupID []byte, epoch uint64, treeHash, transcript []byte) []byte {
	b := binary.BigEndian.AppendUint16(nil, Version10)
	b = binary.BigEndian.AppendUint16(b, SuiteX25519AES128Ed25519)
	b = AppendVector(b, groupID)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = AppendVector(b, treeHash)
	b = AppendVector(b, transcript)
	return AppendVector(b, nil)
}

// unprotected is a decrypted, verified PrivateMessage.
type unprotected struct {
	Leaf        uint32
	Generation  uint32
	ContentType uint8
	Content     []byte // application data, or the Proposal/Commit encoding
}

// unprotect decrypts a PrivateMessage and verifies its signature with the
// sender's key (sigKeys by leaf index) over FramedContentTBS with the group
// context given.
func unprotect(msg []byte, keys keySource, senderDataSecret []byte, context []byte, sigKeys map[uint32][]byte) (*unprotected, error) {
	r := &reader{b: msg}
	if v, wf := r.u16("version"), r.u16("wire_format"); r.err == nil && (v != Version10 || wf != WirePrivate) {
		return nil, fmt.Errorf("not an mls10 private message")
	}
	pm := decodePrivate(r)
	groupID, epoch, ct, authData, encSender, ciphertext := pm.groupID, pm.epoch, pm.contentType, pm.authData, pm.encryptedSender, pm.ciphertext
	r.done("private message")
	if r.err != nil {
		return nil, r.err
	}
	// Sender data.
	sample := ciphertext
	if len(sample) > nh {
		sample = sample[:nh]
	}
	sdAAD := AppendVector(nil, groupID)
	sdAAD = binary.BigEndian.AppendUint64(sdAAD, epoch)
	sdAAD = append(sdAAD, ct)
	sd, err := gcmOpen(expandWithLabel(senderDataSecret, "key", sample, nk), expandWithLabel(senderDataSecret, "nonce", sample, nn), encSender, sdAAD)
	if err != nil {
		return nil, fmt.Errorf("sender data: %w", err)
	}
	if len(sd) != 12 {
		return nil, fmt.Errorf("sender data of %d bytes", len(sd))
	}
	out := &unprotected{Leaf: binary.BigEndian.Uint32(sd), Generation: binary.BigEndian.Uint32(sd[4:]), ContentType: ct}
	key, nonce, err := keys(out.Leaf, ct != ContentApplication, out.Generation)
	if err != nil {
		return nil, err
	}
	for i := 0; i < 4; i++ {
		nonce[i] ^= sd[8+i] // reuse guard
	}
	aad := AppendVector(nil, groupID)
	aad = binary.BigEndian.AppendUint64(aad, epoch)
	aad = append(aad, ct)
	aad = AppendVector(aad, authData)
	plain, err := gcmOpen(key, nonce, ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("content: %w", err)
	}
	// PrivateMessageContent: content, auth data, zero padding.
	p := &reader{b: plain}
	switch ct {
	case ContentApplication:
		out.Content = p.vec("application_data")
	case ContentProposal:
		start := p.b
		decodeProposal(p)
		out.Content = start[:len(start)-len(p.b)]
	case ContentCommit:
		start := p.b
		decodeCommit(p)
		out.Content = start[:len(start)-len(p.b)]
	}
	sig := p.vec("signature")
	if ct == ContentCommit {
		p.vec("confirmation_tag")
	}
	if p.err != nil {
		return nil, p.err
	}
	for _, b := range p.b {
		if b != 0 {
			return nil, fmt.Errorf("non-zero padding")
		}
	}
	// FramedContentTBS for a member sender of a private message.
	tbs := binary.BigEndian.AppendUint16(nil, Version10)
	tbs = binary.BigEndian.AppendUint16(tbs, WirePrivate)
	tbs = AppendVector(tbs, groupID)
	tbs = binary.BigEndian.AppendUint64(tbs, epoch)
	tbs = append(tbs, SenderMember)
	tbs = binary.BigEndian.AppendUint32(tbs, out.Leaf)
	tbs = AppendVector(tbs, authData)
	tbs = append(tbs, ct)
	if ct == ContentApplication {
		tbs = AppendVector(tbs, out.Content)
	} else {
		tbs = append(tbs, out.Content...)
	}
	tbs = append(tbs, context...)
	if !VerifyWithLabel(sigKeys[out.Leaf], "FramedContentTBS", tbs, sig) {
		return nil, fmt.Errorf("signature of leaf %d does not verify", out.Leaf)
	}
	return out, nil
}

func TestMessageProtectionVectors(t *testing.T) {
	var vs []map[string]any
	loadVectors(t, "message-protection.json", &vs)
	if len(vs) != 1 {
		t.Fatalf("%d vectors", len(vs))
	}
	v := vs[0]
	h := func(k string) []byte { return unhex(t, v[k].(string)) }
	ctx := groupContext(h("group_id"), uint64(v["epoch"].(float64)), h("tree_hash"), h("confirmed_transcript_hash"))
	keys := map[uint32][]byte{1: h("signature_pub")}
	for _, c := range []struct {
		msg, want string
		ct        uint8
	}{{"application_priv", "application", ContentApplication}, {"proposal_priv", "proposal", ContentProposal}, {"commit_priv", "commit", ContentCommit}} {
		u, err := unprotect(h(c.msg), treeKeys(h("encryption_secret"), 2), h("sender_data_secret"), ctx, keys)
		if err != nil {
			t.Fatalf("%s: %v", c.msg, err)
		}
		if u.Leaf != 1 || u.ContentType != c.ct || !bytes.Equal(u.Content, h(c.want)) {
			t.Fatalf("%s: leaf %d type %d content %x", c.msg, u.Leaf, u.ContentType, u.Content)
		}
		// Another signature key, or another group context, is refused.
		if _, err := unprotect(h(c.msg), treeKeys(h("encryption_secret"), 2), h("sender_data_secret"), ctx, map[uint32][]byte{1: h("membership_key")}); err == nil {
			t.Fatalf("%s: verified with the wrong key", c.msg)
		}
		if _, err := unprotect(h(c.msg), treeKeys(h("encryption_secret"), 2), h("sender_data_secret"), groupContext(h("group_id"), 1, nil, nil), keys); err == nil {
			t.Fatalf("%s: verified under another group context", c.msg)
		}
	}
}

func TestSecretTreeVectors(t *testing.T) {
	var vs []struct {
		EncryptionSecret string `json:"encryption_secret"`
		SenderData       struct {
			Secret     string `json:"sender_data_secret"`
			Ciphertext string
			Key, Nonce string
		} `json:"sender_data"`
		Leaves [][]struct {
			Generation       uint32
			HandshakeKey     string `json:"handshake_key"`
			HandshakeNonce   string `json:"handshake_nonce"`
			ApplicationKey   string `json:"application_key"`
			ApplicationNonce string `json:"application_nonce"`
		}
	}
	loadVectors(t, "secret-tree.json", &vs)
	checked := 0
	for _, v := range vs {
		sample := unhex(t, v.SenderData.Ciphertext)[:nh]
		secret := unhex(t, v.SenderData.Secret)
		if k := expandWithLabel(secret, "key", sample, nk); !bytes.Equal(k, unhex(t, v.SenderData.Key)) {
			t.Errorf("sender data key %x", k)
		}
		if n := expandWithLabel(secret, "nonce", sample, nn); !bytes.Equal(n, unhex(t, v.SenderData.Nonce)) {
			t.Errorf("sender data nonce %x", n)
		}
		for i, gens := range v.Leaves {
			for _, g := range gens {
				hk, hn := ratchetKey(unhex(t, v.EncryptionSecret), uint32(len(v.Leaves)), uint32(i), true, g.Generation)
				ak, an := ratchetKey(unhex(t, v.EncryptionSecret), uint32(len(v.Leaves)), uint32(i), false, g.Generation)
				if !bytes.Equal(hk, unhex(t, g.HandshakeKey)) || !bytes.Equal(hn, unhex(t, g.HandshakeNonce)) ||
					!bytes.Equal(ak, unhex(t, g.ApplicationKey)) || !bytes.Equal(an, unhex(t, g.ApplicationNonce)) {
					t.Fatalf("%d leaves, leaf %d, generation %d: keys differ", len(v.Leaves), i, g.Generation)
				}
				checked++
			}
		}
	}
	if checked < 40 {
		t.Fatalf("only %d keys checked", checked)
	}
}
