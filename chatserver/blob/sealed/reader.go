package sealed

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"github.com/parley-chat/parley/chatserver/blob"
)

// Object is an opened sealed object: its header read and checked against
// the keyring, its plaintext size known, ready for range reads.
type Object struct {
	store    blob.Store
	key      string
	objectID string
	h        *header
	aead     cipher.AEAD
	segs     int64 // number of segments
	size     int64 // plaintext bytes
}

// Open reads the header of the sealed object under key, bound to objectID.
// stored is the object's stored size when the caller knows it (Result.Stored,
// kept in its database row), or StatStoredSize to ask the store; never the
// plaintext size. It fails with blob.ErrNotFound, ErrMalformed,
// ErrUnknownKey, or ErrTampered for a size no writer makes.
func Open(ctx context.Context, store blob.Store, key, objectID string, keys Keys, stored StoredSize) (*Object, error) {
	ciphertextSize := int64(stored)
	if ciphertextSize < 0 {
		info, err := store.Stat(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("sealed: open %s: %w", key, err)
		}
		ciphertextSize = info.Size
	}
	rc, err := store.Get(ctx, key, 0, MaxHeader)
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w", key, err)
	}
	raw, err := io.ReadAll(io.LimitReader(rc, MaxHeader))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w", key, err)
	}
	return open(raw, ciphertextSize, objectID, keys, store, key)
}

func open(head []byte, ciphertextSize int64, objectID string, keys Keys, store blob.Store, key string) (*Object, error) {
	h, err := parseHeader(head)
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w", key, err)
	}
	// Keep a copy: head belongs to the caller.
	h, _ = parseHeader(append([]byte(nil), h.raw...))
	segs, size, err := plaintextLayout(ciphertextSize-int64(len(h.raw)), h.segSize)
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w", key, err)
	}
	aead, err := keys.ObjectCipher(h.kid, h.salt, objectInfo(objectID))
	if err != nil {
		return nil, fmt.Errorf("sealed: open %s: %w: %q", key, ErrUnknownKey, h.kid)
	}
	return &Object{store: store, key: key, objectID: objectID, h: h, aead: aead, segs: segs, size: size}, nil
}

// Size is the plaintext size.
func (o *Object) Size() int64 { return o.size }

// KeyID is the data key the object is sealed with.
func (o *Object) KeyID() string { return o.h.kid }

// NewReader returns length plaintext bytes from offset (length < 0: to the
// end; cut at the end), fetching the segments that cover them with one
// ranged Get and decrypting one segment at a time. An offset past the end
// fails with blob.ErrInvalidRange. A segment that fails authentication ends
// the read with ErrTampered, before any of its bytes are returned.
func (o *Object) NewReader(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || offset > o.size {
		return nil, fmt.Errorf("sealed: read %s at %d of %d bytes: %w", o.key, offset, o.size, blob.ErrInvalidRange)
	}
	end := o.size
	if length >= 0 && length < end-offset {
		end = offset + length
	}
	seg := int64(o.h.segSize)
	first := offset / seg
	last := first
	if end > offset {
		last = (end - 1) / seg
	}
	if o.size == 0 {
		first, last = 0, 0 // the one empty segment, still authenticated
	}
	if first >= o.segs {
		first, last = o.segs-1, o.segs-1 // offset == size at a segment boundary
	}
	full := seg + TagSize
	cOff := int64(len(o.h.raw)) + first*full
	cLen := (last - first + 1) * full // the store cuts the last one at the end
	rc, err := o.store.Get(ctx, o.key, cOff, cLen)
	if err != nil {
		return nil, fmt.Errorf("sealed: read %s: %w", o.key, err)
	}
	return &reader{
		o: o, src: rc, next: first, lastSeg: last,
		skip: offset - first*seg, left: end - offset,
		ct: make([]byte, full),
	}, nil
}

// ReadAll returns the whole plaintext of a small object (tests, thumbnails).
func (o *Object) ReadAll(ctx context.Context) ([]byte, error) {
	rc, err := o.NewReader(ctx, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

type reader struct {
	o       *Object
	src     io.ReadCloser
	next    int64 // index of the next segment to decrypt
	lastSeg int64 // last segment of the range
	skip    int64 // plaintext bytes to drop from the next segment
	left    int64 // plaintext bytes still to return
	ct      []byte
	pt      []byte // decrypted bytes not yet returned
	aadBuf  []byte
	nBuf    []byte
	err     error
}

func (r *reader) Read(p []byte) (int, error) {
	for len(r.pt) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 && r.next > r.lastSeg {
			return 0, io.EOF
		}
		if err := r.decryptNext(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.pt)
	r.pt = r.pt[n:]
	return n, nil
}

func (r *reader) decryptNext() error {
	o := r.o
	i := r.next
	isLast := i == o.segs-1
	want := len(r.ct)
	if isLast {
		want = int(o.size - i*int64(o.h.segSize) + TagSize)
	}
	if _, err := io.ReadFull(r.src, r.ct[:want]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// The object shrank since Open: a cut.
			return fmt.Errorf("sealed: read %s segment %d: %w", o.key, i, ErrTampered)
		}
		return fmt.Errorf("sealed: read %s segment %d: %w", o.key, i, err)
	}
	r.nBuf = nonce(r.nBuf, o.h, uint32(i), isLast)
	r.aadBuf = aad(r.aadBuf, o.h, o.objectID, uint32(i), isLast)
	pt, err := o.aead.Open(r.ct[:0], r.nBuf, r.ct[:want], r.aadBuf)
	if err != nil {
		return fmt.Errorf("sealed: read %s segment %d: %w", o.key, i, ErrTampered)
	}
	r.next++
	pt = pt[min(r.skip, int64(len(pt))):]
	r.skip = 0
	if int64(len(pt)) > r.left {
		pt = pt[:r.left]
	}
	r.left -= int64(len(pt))
	r.pt = pt
	return nil
}

func (r *reader) Close() error { return r.src.Close() }

// Unopenable reports whether err says the stored object can never be opened
// as it is: tampered, malformed, sealed with a key the keyring no longer
// holds, or gone. Re-encryption leaves such an object where it is (and logs
// it) instead of retrying it forever; any other error is worth a retry.
func Unopenable(err error) bool {
	return errors.Is(err, ErrTampered) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrMalformed) ||
		errors.Is(err, blob.ErrNotFound)
}
