// Package mlswiretest builds MLS (RFC 9420) framing for the server's tests:
// KeyPackages signed like a client's, and the clear framing of commits,
// application messages and Welcomes around random ciphertext. It does no
// group cryptography: the server never does either, so its tests need
// nothing more. Bytes made here parse with package mlswire, which is itself
// tested against the MLS working group's vectors and ts-mls output.
package mlswiretest

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"time"

	"github.com/parley-chat/parley/chatserver/mlswire"
)

var vec = mlswire.AppendVector

func u16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func u64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return b
}

func signWithLabel(key ed25519.PrivateKey, label string, content []byte) []byte {
	in := vec(nil, []byte("MLS 1.0 "+label))
	in = vec(in, content)
	return ed25519.Sign(key, in)
}

// KeyPackageOptions shape a KeyPackage; zero values give a valid one.
type KeyPackageOptions struct {
	CipherSuite uint16 // 0 = 1
	NotBefore   time.Time
	NotAfter    time.Time // zero: NotBefore + 90 days
	LastResort  bool
	// SignWith signs with another key than the one the leaf names (a
	// forged package).
	SignWith ed25519.PrivateKey
}

// KeyPackage returns an MLSMessage(mls_key_package) for identity signed by
// key, and its KeyPackageRef.
func KeyPackage(key ed25519.PrivateKey, identity string, o KeyPackageOptions) (msg, ref []byte) {
	suite := o.CipherSuite
	if suite == 0 {
		suite = mlswire.SuiteX25519AES128Ed25519
	}
	nb := o.NotBefore
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour)
	}
	na := o.NotAfter
	if na.IsZero() {
		na = nb.Add(90 * 24 * time.Hour)
	}
	signer := key
	if o.SignWith != nil {
		signer = o.SignWith
	}
	// LeafNode (source key_package).
	leaf := vec(nil, random(32))                       // encryption_key
	leaf = vec(leaf, key.Public().(ed25519.PublicKey)) // signature_key
	leaf = vec(u16(leaf, mlswire.CredentialBasic), []byte(identity))
	leaf = vec(leaf, []byte{0, 1})                          // versions: mls10
	leaf = vec(leaf, u16(nil, suite))                       // cipher_suites
	leaf = vec(leaf, u16(nil, mlswire.ExtensionLastResort)) // extensions
	leaf = vec(leaf, nil)                                   // proposals
	leaf = vec(leaf, []byte{0, 1})                          // credentials: basic
	leaf = append(leaf, 1)                                  // leaf_node_source key_package
	leaf = u64(u64(leaf, uint64(nb.Unix())), uint64(na.Unix()))
	leaf = vec(leaf, nil) // leaf extensions
	leaf = vec(leaf, signWithLabel(signer, "LeafNodeTBS", leaf))

	kp := u16(u16(nil, mlswire.Version10), suite)
	kp = vec(kp, random(32)) // init_key
	kp = append(kp, leaf...)
	var exts []byte
	if o.LastResort {
		exts = vec(u16(exts, mlswire.ExtensionLastResort), nil)
	}
	kp = vec(kp, exts)
	kp = vec(kp, signWithLabel(signer, "KeyPackageTBS", kp))

	msg = append(u16(u16(nil, mlswire.Version10), mlswire.WireKeyPackage), kp...)
	return msg, mlswire.RefHash("MLS 1.0 KeyPackage Reference", kp)
}

// PrivateMessage returns an MLSMessage(mls_private_message) of groupID at
// epoch with the content type given (mlswire.ContentApplication or
// ContentCommit) around random "ciphertext" of n bytes.
func PrivateMessage(groupID string, epoch uint64, contentType uint8, n int) []byte {
	b := u16(u16(nil, mlswire.Version10), mlswire.WirePrivate)
	b = vec(b, []byte(groupID))
	b = u64(b, epoch)
	b = append(b, contentType)
	b = vec(b, nil)          // authenticated_data
	b = vec(b, random(32))   // encrypted_sender_data
	return vec(b, random(n)) // ciphertext
}

// Commit is PrivateMessage with content type commit and 200 bytes.
func Commit(groupID string, epoch uint64) []byte {
	return PrivateMessage(groupID, epoch, mlswire.ContentCommit, 200)
}

// Application is PrivateMessage with content type application.
func Application(groupID string, epoch uint64, n int) []byte {
	return PrivateMessage(groupID, epoch, mlswire.ContentApplication, n)
}

// Welcome returns an MLSMessage(mls_welcome) for the KeyPackageRefs given.
func Welcome(refs ...[]byte) []byte {
	b := u16(u16(nil, mlswire.Version10), mlswire.WireWelcome)
	b = u16(b, mlswire.SuiteX25519AES128Ed25519)
	var secrets []byte
	for _, r := range refs {
		secrets = vec(secrets, r)
		secrets = vec(secrets, random(32)) // kem_output
		secrets = vec(secrets, random(80)) // encrypted group secrets
	}
	b = vec(b, secrets)
	return vec(b, random(300)) // encrypted_group_info
}
