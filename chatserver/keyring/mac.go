package keyring

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
)

// macInfo separates the MAC keys from any other use of the data keys.
const macInfo = "parley/mac/v1"

// deriveMACKey derives a 32-byte HMAC-SHA256 key from a data key with HKDF:
// what crosses Redis (backplane envelopes, WebSocket tickets) is
// authenticated with keys only the servers hold, rotated with the data keys,
// and never with the AES key itself.
func deriveMACKey(dataKey []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, dataKey, nil, macInfo, 32)
}

// MAC authenticates parts with the active data key's MAC key and returns
// that key's id with the tag. Each part is length-prefixed, so the parts'
// boundaries are authenticated too.
func (k *Keyring) MAC(parts ...[]byte) (kid string, tag []byte) {
	dk := k.cur.Load().dataActive
	return dk.id, sum(dk.mac, parts)
}

// VerifyMAC reports whether tag authenticates parts under data key kid's MAC
// key (any key still in the keyring: a replica may sign with a key another
// has just promoted).
func (k *Keyring) VerifyMAC(kid string, tag []byte, parts ...[]byte) bool {
	dk, ok := k.cur.Load().data[kid]
	if !ok {
		return false
	}
	return hmac.Equal(tag, sum(dk.mac, parts))
}

func sum(key []byte, parts [][]byte) []byte {
	var h hash.Hash = hmac.New(sha256.New, key)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}
