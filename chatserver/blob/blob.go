// Package blob is the interface of the object stores that hold attachments:
// the local filesystem (fsblob, the embedded default) and S3-compatible object
// storage (s3blob, for clusters). Both pass one conformance suite (blobtest).
//
// A store holds opaque bytes under a key. It does not encrypt: the sealed
// package writes ciphertext through it. Every engine streams: Put never needs
// the size up front nor holds the whole object in memory, and Get reads a
// byte range, so a video can be sought without reading what comes before.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"
)

// Errors every engine returns (wrapped) for the same condition, so callers
// test with errors.Is whatever the engine.
var (
	// ErrNotFound: no object under the key.
	ErrNotFound = errors.New("blob: object not found")
	// ErrTooLarge: Put read more than its limit; nothing was stored.
	ErrTooLarge = errors.New("blob: object exceeds the size limit")
	// ErrInvalidKey: the key is not one ValidateKey accepts.
	ErrInvalidKey = errors.New("blob: invalid key")
	// ErrInvalidRange: a Get whose offset lies past the object's end, or a
	// negative offset.
	ErrInvalidRange = errors.New("blob: range not satisfiable")
)

// Info describes one stored object.
type Info struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// Store is one object store. Implementations are safe for concurrent use.
type Store interface {
	// Put stores what r yields under key, replacing any object there, and
	// returns its size. It reads at most limit bytes: a reader that yields
	// more fails with ErrTooLarge and leaves no object (nor a previous one
	// touched). The object appears whole or not at all.
	Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error)

	// Get returns length bytes of the object from offset (length < 0: to the
	// end; a length past the end is cut at the end). An offset equal to the
	// size gives an empty reader; past it, ErrInvalidRange. The caller closes
	// the reader.
	Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)

	// Stat returns the object's size and modification time.
	Stat(ctx context.Context, key string) (Info, error)

	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error

	// List yields the objects whose key starts with prefix and whose
	// modification time is before before, in no particular order: what a
	// garbage collector of abandoned uploads walks. A prefix is a key prefix
	// (ValidatePrefix); "" lists everything.
	List(ctx context.Context, prefix string, before time.Time) iter.Seq2[Info, error]
}

// Key limits. A key is a path of segments joined by "/": each segment 1 to
// MaxSegment characters of [A-Za-z0-9._-], not starting with "." (so no "."
// or "..", and no clash with an engine's own temporary files), the whole at
// most MaxKey bytes. That is narrower than S3 allows on purpose: the same key
// must be a safe relative path on every filesystem, and callers build keys
// from ids, never from user-supplied file names.
const (
	MaxKey     = 512
	MaxSegment = 128
)

// ValidateKey reports whether key is a valid object key (ErrInvalidKey).
func ValidateKey(key string) error {
	if key == "" || len(key) > MaxKey {
		return fmt.Errorf("%w: length %d (1 to %d)", ErrInvalidKey, len(key), MaxKey)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w %q: %v", ErrInvalidKey, key, err)
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix can start a valid key: "" (all keys),
// or a valid key's first characters, which may end with "/" or in the middle
// of a segment.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKey {
		return fmt.Errorf("%w: prefix length %d (at most %d)", ErrInvalidKey, len(prefix), MaxKey)
	}
	segs := strings.Split(prefix, "/")
	for i, seg := range segs {
		if i == len(segs)-1 && seg == "" {
			break // "a/b/": lists under a/b
		}
		if err := validSegment(seg); err != nil {
			return fmt.Errorf("%w: prefix %q: %v", ErrInvalidKey, prefix, err)
		}
	}
	return nil
}

func validSegment(seg string) error {
	if seg == "" {
		return errors.New("empty segment")
	}
	if len(seg) > MaxSegment {
		return fmt.Errorf("segment of %d characters (at most %d)", len(seg), MaxSegment)
	}
	if seg[0] == '.' {
		return errors.New("segment starts with '.'")
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// LimitReader reads from r and fails with ErrTooLarge once it has yielded
// more than limit bytes: Put implementations wrap their source in it, so the
// engine's own copy loop stops at the limit and never stores the excess.
func LimitReader(r io.Reader, limit int64) io.Reader {
	return &limitReader{r: r, left: limit}
}

type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	// Read one byte past the limit: only a byte that is really there means
	// "too large" (a source of exactly limit bytes is fine).
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	return n, err
}
