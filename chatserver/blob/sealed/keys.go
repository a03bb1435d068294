package sealed

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// rootInfo separates the blob root keys from every other use of the data
// keys (the MAC keys use "parley/mac/v1").
const rootInfo = "parley/blob/v1"

// RootKey derives the 32-byte blob root key of a keyring data key.
func RootKey(dataKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, nil, rootInfo, 32)
}

// ObjectCipher is the AES-256-GCM of one object under a blob root key: what
// an implementation of Keys returns.
func ObjectCipher(rootKey, salt, info []byte) (cipher.AEAD, error) {
	k, err := hkdf.Key(sha256.New, rootKey, salt, string(info), 32)
	if err != nil {
		return nil, fmt.Errorf("sealed: derive object key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	return cipher.NewGCM(block)
}

// StaticKeys implements Keys over data keys held in memory: for tests,
// benchmarks and offline tools. The server uses the keyring.
type StaticKeys struct {
	active string
	roots  map[string][]byte
}

// NewStaticKeys returns Keys over dataKeys (kid -> 32-byte data key) with
// active the key new objects are sealed with.
func NewStaticKeys(active string, dataKeys map[string][]byte) (*StaticKeys, error) {
	if _, ok := dataKeys[active]; !ok {
		return nil, fmt.Errorf("sealed: active key %q is not among the keys", active)
	}
	s := &StaticKeys{active: active, roots: map[string][]byte{}}
	for kid, k := range dataKeys {
		if len(k) != 32 {
			return nil, fmt.Errorf("sealed: data key %q has %d bytes, want 32", kid, len(k))
		}
		r, err := RootKey(k)
		if err != nil {
			return nil, err
		}
		s.roots[kid] = r
	}
	return s, nil
}

// ActiveDataKeyID implements Keys.
func (s *StaticKeys) ActiveDataKeyID() string { return s.active }

// ObjectCipher implements Keys.
func (s *StaticKeys) ObjectCipher(kid string, salt, info []byte) (cipher.AEAD, error) {
	r, ok := s.roots[kid]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	return ObjectCipher(r, salt, info)
}
