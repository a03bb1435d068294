package sealed

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/parley-chat/parley/chatserver/blob"
)

// Writer seals a stream into segments as it is written. Close seals the last
// segment; nothing is complete before it.
type Writer struct {
	dst      io.Writer
	h        *header
	objectID string
	aead     cipher.AEAD
	buf      []byte // plaintext of the segment being filled
	out      []byte // sealed segment
	aadBuf   []byte
	nonceBuf []byte
	index    uint32
	written  int64
	limit    int64 // plaintext bytes allowed; < 0: no limit
	err      error
	closed   bool
}

// NewWriter writes the header of a new object to dst and returns a writer
// that seals what it is given into dst, under the active data key of keys.
// objectID is what the object is bound to (an attachment id, not a storage
// key: a re-encrypted copy may live under another key).
func NewWriter(dst io.Writer, keys Keys, objectID string) (*Writer, error) {
	kid := keys.ActiveDataKeyID()
	salt := make([]byte, SaltSize+PrefixSize)
	if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("sealed: salt: %w", err)
	}
	raw, err := marshalHeader(SegmentSize, kid, salt[:SaltSize], salt[SaltSize:])
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(raw)
	if err != nil {
		return nil, err // cannot happen: a header just made
	}
	aead, err := keys.ObjectCipher(kid, h.salt, objectInfo(objectID))
	if err != nil {
		return nil, fmt.Errorf("sealed: active key: %w", err)
	}
	if _, err := dst.Write(raw); err != nil {
		return nil, fmt.Errorf("sealed: write header: %w", err)
	}
	return &Writer{
		dst: dst, h: h, objectID: objectID, aead: aead, limit: -1,
		buf: make([]byte, 0, SegmentSize), out: make([]byte, 0, SegmentSize+TagSize),
	}, nil
}

// KeyID is the data key the object is sealed with (to store beside it).
func (w *Writer) KeyID() string { return w.h.kid }

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("sealed: write after close")
	}
	if w.limit >= 0 && w.written+int64(len(p)) > w.limit {
		w.err = blob.ErrTooLarge
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if len(w.buf) == SegmentSize {
			// More follows, so the full segment is not the last.
			if err := w.flush(false); err != nil {
				return n, err
			}
		}
		c := copy(w.buf[len(w.buf):SegmentSize], p)
		w.buf = w.buf[:len(w.buf)+c]
		p = p[c:]
		n += c
		w.written += int64(c)
	}
	return n, nil
}

func (w *Writer) flush(last bool) error {
	if w.index == 1<<32-1 && !last {
		w.err = fmt.Errorf("sealed: object exceeds %d segments", uint64(1<<32))
		return w.err
	}
	w.nonceBuf = nonce(w.nonceBuf, w.h, w.index, last)
	w.aadBuf = aad(w.aadBuf, w.h, w.objectID, w.index, last)
	w.out = w.aead.Seal(w.out[:0], w.nonceBuf, w.buf, w.aadBuf)
	if _, err := w.dst.Write(w.out); err != nil {
		w.err = fmt.Errorf("sealed: write segment %d: %w", w.index, err)
		return w.err
	}
	w.index++
	w.buf = w.buf[:0]
	return nil
}

// Close seals the last segment. It does not close dst.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	return w.flush(true)
}

// Upload is a Writer whose output streams into a blob.Store Put. Close
// returns once the object is stored (or with why it was not); Abort gives up
// and leaves nothing.
type Upload struct {
	*Writer
	pw   *io.PipeWriter
	done chan struct{}
	size int64
	err  error
}

// Create starts storing a sealed object under key in store, bound to
// objectID, allowing at most limit plaintext bytes (more: blob.ErrTooLarge,
// and nothing is stored). Write the plaintext, then Close (or Abort).
func Create(ctx context.Context, store blob.Store, key, objectID string, keys Keys, limit int64) (*Upload, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("sealed: negative limit %d", limit)
	}
	pr, pw := io.Pipe()
	u := &Upload{pw: pw, done: make(chan struct{})}
	kid := keys.ActiveDataKeyID()
	go func() {
		defer close(u.done)
		u.size, u.err = store.Put(ctx, key, pr, CiphertextSize(limit, kid))
		// Unblock a writer still writing into a Put that gave up.
		pr.CloseWithError(fmt.Errorf("sealed: store: %w", errOr(u.err, io.ErrClosedPipe)))
	}()
	w, err := NewWriter(pw, keys, objectID)
	if err != nil {
		u.Abort(err)
		return nil, err
	}
	w.limit = limit
	u.Writer = w
	return u, nil
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// Close seals the last segment, ends the stream and waits for the store. It
// returns the stored (ciphertext) size.
func (u *Upload) Close() (StoredSize, error) {
	werr := u.Writer.Close()
	if werr != nil {
		u.pw.CloseWithError(werr)
	} else {
		u.pw.Close()
	}
	<-u.done
	if werr != nil {
		// The writer's error (the limit) says more than the store's "broken pipe".
		return 0, werr
	}
	if u.err != nil {
		return 0, u.err
	}
	return StoredSize(u.size), nil
}

// Abort stops the upload: the store's Put fails with cause and stores nothing.
func (u *Upload) Abort(cause error) {
	if cause == nil {
		cause = errors.New("sealed: upload aborted")
	}
	u.pw.CloseWithError(cause)
	<-u.done
}

// Result is what Put stored: the plaintext size (what a user sees and a
// quota counts), the stored size (what Open wants back) and the key id.
// They are different types so one cannot be passed for the other.
type Result struct {
	PlaintextSize int64
	Stored        StoredSize
	KeyID         string
}

// StoredSize is the size of a sealed object in the store, header and tags
// included: what Open takes to avoid a Stat. It is not the plaintext size,
// and its own type keeps a caller from passing one for the other.
type StoredSize int64

// StatStoredSize asks Open to Stat the object for its stored size.
const StatStoredSize StoredSize = -1

// Put seals what r yields into a new object under key: Create, copy, Close.
func Put(ctx context.Context, store blob.Store, key, objectID string, keys Keys, r io.Reader, limit int64) (Result, error) {
	u, err := Create(ctx, store, key, objectID, keys, limit)
	if err != nil {
		return Result{}, err
	}
	n, err := io.Copy(u, r)
	if err != nil {
		u.Abort(err)
		return Result{}, fmt.Errorf("sealed: put %s: %w", key, err)
	}
	stored, err := u.Close()
	if err != nil {
		return Result{}, fmt.Errorf("sealed: put %s: %w", key, err)
	}
	return Result{PlaintextSize: n, Stored: stored, KeyID: u.KeyID()}, nil
}

// Reseal copies the sealed object at srcKey into a new object at dstKey
// under the active data key, streaming (segment by segment, never the whole
// object): how key rotation re-encrypts an attachment. The caller points its
// row at dstKey (and the new key id) and then deletes srcKey; an object read
// meanwhile is still whole at srcKey. srcStored is the source's stored size
// (StatStoredSize: ask the store). It returns what was stored at dstKey.
func Reseal(ctx context.Context, store blob.Store, srcKey, dstKey, objectID string, keys Keys, srcStored StoredSize, limit int64) (Result, error) {
	src, err := Open(ctx, store, srcKey, objectID, keys, srcStored)
	if err != nil {
		return Result{}, err
	}
	rc, err := src.NewReader(ctx, 0, -1)
	if err != nil {
		return Result{}, err
	}
	defer rc.Close()
	return Put(ctx, store, dstKey, objectID, keys, rc, limit)
}
