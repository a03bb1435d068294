// Package sealed encrypts blobs at rest: chunked AES-256-GCM in 64 KiB
// segments over a blob.Store, written as a stream and read back by ranges.
//
// # Format (version 1)
//
//	header:  "PRLB" | version (1) | segment size (uint32) | kid length (1) | kid |
//	         salt (32) | nonce prefix (7)
//	body:    segment 0 | segment 1 | ... | segment n-1
//	segment: AES-256-GCM(plaintext of SegmentSize bytes, the last 0..SegmentSize) | tag (16)
//
// Every segment but the last holds exactly SegmentSize plaintext bytes, so a
// plaintext offset maps to a ciphertext offset by arithmetic and a Range read
// fetches only the segments that cover it. The last segment is empty only
// when the whole plaintext is.
//
// # Keys and nonces
//
// Each object gets its own AES-256 key: HKDF-SHA256 of the data key's blob
// root key (itself HKDF-SHA256 of the keyring data key, info "parley/blob/v1",
// like the MAC keys of the delivery codec: the AES data key encrypts nothing
// but message rows) with the object's random 32-byte salt and the info
// "parley/blob/v1/object" | object id. The nonce of segment i is
// prefix (7) | i (uint32) | last (1 byte): unique within the object, and the
// object key is unique to the object (fresh salt on every write, including a
// rewrite of the same id), so no (key, nonce) pair ever repeats. That is why
// blob segments do not spend the keyring's random-nonce seal budget: their
// nonces are counters under single-use keys, not random draws under a shared one.
//
// # What the associated data binds
//
// The AAD of segment i is the whole header (version, key id, segment size,
// salt, prefix), the object id, i and the last-segment flag. So a segment
// cannot be reordered (i), dropped or the object cut at a segment boundary
// (the new last segment was sealed with last = 0), extended (the old last one
// has last = 1), moved to another object (object id and key), nor the header
// edited (it is in every segment's AAD). Each such object fails with
// ErrTampered; a key id the keyring no longer holds fails with ErrUnknownKey.
package sealed

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of Open and reads. A read never returns plaintext that failed
// authentication.
var (
	// ErrMalformed: no sealed object (bad magic, unknown version, a header or
	// a length no writer makes).
	ErrMalformed = errors.New("sealed: malformed object")
	// ErrTampered: a segment failed authentication: altered, reordered,
	// truncated, extended, moved from another object, or opened with the
	// wrong object id.
	ErrTampered = errors.New("sealed: object failed authentication")
	// ErrUnknownKey: the header names a key id the keyring does not hold.
	ErrUnknownKey = errors.New("sealed: unknown key id")
)

// Format constants.
const (
	Version     = 1
	SegmentSize = 64 << 10
	TagSize     = 16
	SaltSize    = 32
	PrefixSize  = 7
	MaxKeyID    = 64
	// MaxHeader is the longest header: what Open fetches first.
	MaxHeader = 4 + 1 + 4 + 1 + MaxKeyID + SaltSize + PrefixSize

	magic = "PRLB"
	// Segment sizes a reader accepts: a writer of a later version may choose
	// another, and a hostile header must not make the reader allocate much.
	minSegment = 1 << 10
	maxSegment = 1 << 20
)

// Keys gives the per-object ciphers. The keyring implements it over its data
// keys; StaticKeys does for tests and tools.
type Keys interface {
	// ActiveDataKeyID is the data key new objects are sealed with.
	ActiveDataKeyID() string
	// ObjectCipher returns AES-256-GCM under the key HKDF-SHA256 derives from
	// data key kid's blob root key (RootKey) with salt and info. It fails
	// only when it does not hold kid.
	ObjectCipher(kid string, salt, info []byte) (cipher.AEAD, error)
}

// header is a parsed header; raw is its exact bytes (in every AAD).
type header struct {
	raw     []byte
	segSize int
	kid     string
	salt    []byte
	prefix  []byte
}

func marshalHeader(segSize int, kid string, salt, prefix []byte) ([]byte, error) {
	if kid == "" || len(kid) > MaxKeyID {
		return nil, fmt.Errorf("sealed: key id of %d bytes (1 to %d)", len(kid), MaxKeyID)
	}
	b := make([]byte, 0, MaxHeader)
	b = append(b, magic...)
	b = append(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(segSize))
	b = append(b, byte(len(kid)))
	b = append(b, kid...)
	b = append(b, salt...)
	b = append(b, prefix...)
	return b, nil
}

// parseHeader reads the header at the start of b (b may hold more).
func parseHeader(b []byte) (*header, error) {
	const fixed = 4 + 1 + 4 + 1
	if len(b) < fixed || string(b[:4]) != magic {
		return nil, fmt.Errorf("%w: no sealed-object header", ErrMalformed)
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, b[4])
	}
	seg := binary.BigEndian.Uint32(b[5:9])
	if seg < minSegment || seg > maxSegment {
		return nil, fmt.Errorf("%w: segment size %d", ErrMalformed, seg)
	}
	kl := int(b[9])
	if kl == 0 || kl > MaxKeyID {
		return nil, fmt.Errorf("%w: key id length %d", ErrMalformed, kl)
	}
	n := fixed + kl + SaltSize + PrefixSize
	if len(b) < n {
		return nil, fmt.Errorf("%w: header cut short", ErrMalformed)
	}
	h := &header{raw: b[:n:n], segSize: int(seg), kid: string(b[fixed : fixed+kl])}
	h.salt = b[fixed+kl : fixed+kl+SaltSize]
	h.prefix = b[fixed+kl+SaltSize : n]
	return h, nil
}

// objectInfo is the HKDF info of an object key.
func objectInfo(objectID string) []byte {
	return append([]byte("parley/blob/v1/object\x00"), objectID...)
}

// aad is the associated data of segment i.
func aad(buf []byte, h *header, objectID string, i uint32, last bool) []byte {
	buf = buf[:0]
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(h.raw)))
	buf = append(buf, h.raw...)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(objectID)))
	buf = append(buf, objectID...)
	buf = binary.BigEndian.AppendUint32(buf, i)
	return append(buf, lastByte(last))
}

func nonce(buf []byte, h *header, i uint32, last bool) []byte {
	buf = append(buf[:0], h.prefix...)
	buf = binary.BigEndian.AppendUint32(buf, i)
	return append(buf, lastByte(last))
}

func lastByte(last bool) byte {
	if last {
		return 1
	}
	return 0
}

// CiphertextSize is the stored size of a plaintext of n bytes with key id
// kid (for a limit on the stored object, or a quota).
func CiphertextSize(n int64, kid string) int64 {
	segs := (n + SegmentSize - 1) / SegmentSize
	if segs == 0 {
		segs = 1
	}
	return int64(10+len(kid)+SaltSize+PrefixSize) + n + segs*TagSize
}

// plaintextLayout checks a body of bodyLen ciphertext bytes and returns its
// number of segments and plaintext size.
func plaintextLayout(bodyLen int64, segSize int) (segs, size int64, err error) {
	full := int64(segSize + TagSize)
	if bodyLen < TagSize {
		return 0, 0, fmt.Errorf("%w: body of %d bytes", ErrTampered, bodyLen)
	}
	segs = (bodyLen + full - 1) / full
	lastLen := bodyLen - (segs-1)*full
	if lastLen < TagSize || lastLen == TagSize && segs > 1 {
		// A cut that leaves a stump of a segment, or an empty last segment
		// after full ones: no writer makes either.
		return 0, 0, fmt.Errorf("%w: body of %d bytes", ErrTampered, bodyLen)
	}
	if segs > 1<<32 {
		return 0, 0, fmt.Errorf("%w: %d segments", ErrMalformed, segs)
	}
	return segs, bodyLen - segs*TagSize, nil
}
