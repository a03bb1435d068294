package mlswire

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"time"
)

// Protocol constants (RFC 9420 §17 registries).
const (
	Version10 uint16 = 1

	SuiteX25519AES128Ed25519 uint16 = 1

	WirePublic     uint16 = 1
	WirePrivate    uint16 = 2
	WireWelcome    uint16 = 3
	WireGroupInfo  uint16 = 4
	WireKeyPackage uint16 = 5

	ContentApplication uint8 = 1
	ContentProposal    uint8 = 2
	ContentCommit      uint8 = 3

	CredentialBasic uint16 = 1
	CredentialX509  uint16 = 2

	// ExtensionLastResort marks a KeyPackage that may be handed out more
	// than once (draft-ietf-mls-extensions; the type ts-mls and OpenMLS use).
	ExtensionLastResort uint16 = 0x000a

	leafSourceKeyPackage uint8 = 1
	leafSourceUpdate     uint8 = 2
	leafSourceCommit     uint8 = 3

	// Sizes for ciphersuite 1: X25519 and Ed25519 public keys.
	suite1KEMKey = 32
	suite1SigKey = ed25519.PublicKeySize
)

// KeyPackage is a decoded, verified KeyPackage (RFC 9420 §10).
type KeyPackage struct {
	Version        uint16
	CipherSuite    uint16
	InitKey        []byte
	EncryptionKey  []byte
	SignatureKey   []byte
	CredentialType uint16
	Identity       []byte // the basic credential's identity
	NotBefore      uint64 // lifetime, seconds since the Unix epoch
	NotAfter       uint64
	LastResort     bool
	// Raw is the KeyPackage's encoding without an MLSMessage wrapper: what
	// its reference is computed over.
	Raw []byte
}

// ValidAt reports whether t lies within the KeyPackage's lifetime.
func (kp *KeyPackage) ValidAt(t time.Time) bool {
	s := t.Unix()
	return s >= 0 && uint64(s) >= kp.NotBefore && uint64(s) <= kp.NotAfter
}

// Ref is the KeyPackageRef (RFC 9420 §5.2): the name a Welcome gives the
// new member it is for.
func (kp *KeyPackage) Ref() []byte {
	return RefHash("MLS 1.0 KeyPackage Reference", kp.Raw)
}

// RefHash is RFC 9420's RefHash with ciphersuite 1's hash (SHA-256).
func RefHash(label string, value []byte) []byte {
	in := AppendVector(nil, []byte(label))
	in = AppendVector(in, value)
	sum := sha256.Sum256(in)
	return sum[:]
}

// VerifyWithLabel checks an Ed25519 signature made with SignWithLabel
// (RFC 9420 §5.1.2).
func VerifyWithLabel(pub []byte, label string, content, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	in := AppendVector(nil, []byte("MLS 1.0 "+label))
	in = AppendVector(in, content)
	return ed25519.Verify(ed25519.PublicKey(pub), in, sig)
}

// ParseKeyPackage decodes a KeyPackage, bare or in an MLSMessage, and checks
// what a delivery service must before handing it out: protocol version 1,
// ciphersuite 1, a basic credential, a leaf node made for a key package,
// key sizes, init key distinct from the encryption key, and both signatures
// (the leaf node's and the key package's) by the leaf's signature key. The
// lifetime is left to the caller (ValidAt): it depends on the clock.
func ParseKeyPackage(b []byte) (*KeyPackage, error) {
	kp, leafTBS, kpTBS, leafSig, kpSig, err := decodeKeyPackage(b)
	if err != nil {
		return nil, err
	}
	switch {
	case kp.Version != Version10:
		return nil, fmt.Errorf("mlswire: key package: protocol version %d, want 1 (mls10)", kp.Version)
	case kp.CipherSuite != SuiteX25519AES128Ed25519:
		return nil, fmt.Errorf("mlswire: key package: ciphersuite %d, only 1 (MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519) is accepted", kp.CipherSuite)
	case kp.CredentialType != CredentialBasic:
		return nil, fmt.Errorf("mlswire: key package: credential type %d, want basic (1)", kp.CredentialType)
	case len(kp.InitKey) != suite1KEMKey || len(kp.EncryptionKey) != suite1KEMKey:
		return nil, fmt.Errorf("mlswire: key package: init/encryption key of %d/%d bytes, want %d", len(kp.InitKey), len(kp.EncryptionKey), suite1KEMKey)
	case len(kp.SignatureKey) != suite1SigKey:
		return nil, fmt.Errorf("mlswire: key package: signature key of %d bytes, want %d", len(kp.SignatureKey), suite1SigKey)
	case string(kp.InitKey) == string(kp.EncryptionKey):
		return nil, fmt.Errorf("mlswire: key package: init key equals the leaf's encryption key")
	case kp.NotAfter < kp.NotBefore:
		return nil, fmt.Errorf("mlswire: key package: lifetime ends before it starts")
	}
	if !VerifyWithLabel(kp.SignatureKey, "LeafNodeTBS", leafTBS, leafSig) {
		return nil, fmt.Errorf("mlswire: key package: leaf node signature does not verify")
	}
	if !VerifyWithLabel(kp.SignatureKey, "KeyPackageTBS", kpTBS, kpSig) {
		return nil, fmt.Errorf("mlswire: key package: signature does not verify")
	}
	return kp, nil
}

// decodeKeyPackage decodes without checking; it returns the signed parts.
func decodeKeyPackage(b []byte) (kp *KeyPackage, leafTBS, kpTBS, leafSig, kpSig []byte, err error) {
	r := &reader{b: b}
	if len(b) >= 4 && b[0] == 0 && b[1] == 1 && b[2] == 0 && b[3] == byte(WireKeyPackage) {
		// An MLSMessage: version mls10, wire format mls_key_package. A bare
		// KeyPackage starts with version 1 and a ciphersuite, and suite 5 is
		// not one this package accepts, so the two cannot be confused here.
		r.take(4, "MLSMessage header")
	}
	start := r.b
	kp = &KeyPackage{}
	kp.Version = r.u16("key package version")
	kp.CipherSuite = r.u16("key package ciphersuite")
	kp.InitKey = r.vec("init_key")
	var leaf leafNode
	leafTBS, leafSig = leaf.decode(r)
	exts := r.sub("key package extensions")
	for exts.err == nil && len(exts.b) > 0 {
		t := exts.u16("extension type")
		exts.vec("extension data")
		if t == ExtensionLastResort {
			kp.LastResort = true
		}
	}
	if exts.err != nil && r.err == nil {
		r.err = exts.err
	}
	kpTBS = start[:len(start)-len(r.b)]
	kpSig = r.vec("key package signature")
	raw := start[:len(start)-len(r.b)]
	r.done("key package")
	if r.err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("key package: %w", r.err)
	}
	if leaf.source != leafSourceKeyPackage {
		return nil, nil, nil, nil, nil, fmt.Errorf("key package: %w: leaf node source %d, want key_package (1)", ErrMalformed, leaf.source)
	}
	kp.EncryptionKey = leaf.encryptionKey
	kp.SignatureKey = leaf.signatureKey
	kp.CredentialType = leaf.credentialType
	kp.Identity = leaf.identity
	kp.NotBefore, kp.NotAfter = leaf.notBefore, leaf.notAfter
	kp.Raw = raw
	return kp, leafTBS, kpTBS, leafSig, kpSig, nil
}

// leafNode is the part of a LeafNode (RFC 9420 §7.2) the server reads.
type leafNode struct {
	encryptionKey, signatureKey []byte
	credentialType              uint16
	identity                    []byte
	source                      uint8
	notBefore, notAfter         uint64
}

// decode reads a LeafNode and returns its to-be-signed prefix and signature.
// For a key_package source the LeafNodeTBS is exactly that prefix; for the
// others it also names the group and leaf, which this package never checks.
func (l *leafNode) decode(r *reader) (tbs, sig []byte) {
	start := r.b
	l.encryptionKey = r.vec("leaf encryption_key")
	l.signatureKey = r.vec("leaf signature_key")
	l.credentialType, l.identity = decodeCredential(r)
	// Capabilities: versions, cipher_suites, extensions, proposals,
	// credentials: each a vector of uint16.
	for _, what := range []string{"capabilities versions", "capabilities cipher_suites", "capabilities extensions", "capabilities proposals", "capabilities credentials"} {
		v := r.vec(what)
		if r.err == nil && len(v)%2 != 0 {
			r.fail("%s: odd length %d", what, len(v))
		}
	}
	l.source = r.u8("leaf_node_source")
	switch l.source {
	case leafSourceKeyPackage:
		l.notBefore = r.u64("lifetime not_before")
		l.notAfter = r.u64("lifetime not_after")
	case leafSourceUpdate:
	case leafSourceCommit:
		r.vec("parent_hash")
	default:
		r.fail("leaf_node_source %d", l.source)
	}
	r.each("leaf extensions", func(e *reader) {
		e.u16("extension type")
		e.vec("extension data")
	})
	tbs = start[:len(start)-len(r.b)]
	sig = r.vec("leaf signature")
	return tbs, sig
}

// decodeCredential reads a Credential (RFC 9420 §5.3).
func decodeCredential(r *reader) (typ uint16, identity []byte) {
	typ = r.u16("credential type")
	switch typ {
	case CredentialBasic:
		identity = r.vec("basic identity")
	case CredentialX509:
		r.each("x509 certificates", func(c *reader) { c.vec("certificate") })
	default:
		r.fail("credential type %d", typ)
	}
	return typ, identity
}
