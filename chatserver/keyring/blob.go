package keyring

import (
	"crypto/cipher"
	"fmt"

	"github.com/parley-chat/parley/chatserver/blob/sealed"
)

// The keyring is the sealed.Keys of attachments: each data key has a blob root
// key (HKDF "parley/blob/v1"), from which every object gets its own key. Blob
// seals spend nothing from the data key's seal budget: their nonces are
// counters under a per-object key, not random under the data key.

var _ sealed.Keys = (*Keyring)(nil)

// ActiveDataKeyID is the data key new blobs are sealed with.
func (k *Keyring) ActiveDataKeyID() string { return k.cur.Load().dataActive.id }

// ObjectCipher returns the AEAD of one blob under data key kid (see
// sealed.Keys); a key id this keyring does not hold is ErrUnknownKey.
func (k *Keyring) ObjectCipher(kid string, salt, info []byte) (cipher.AEAD, error) {
	dk, ok := k.cur.Load().data[kid]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	return sealed.ObjectCipher(dk.blob, salt, info)
}
