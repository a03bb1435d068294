// Package fsblob stores blobs as files under one folder: the embedded default
// (make run, SQLite, a single replica or a ReadWriteMany volume).
//
// Keys map to relative paths (blob.ValidateKey keeps them to safe names), and
// every access goes through an os.Root, so even a symbolic link planted in the
// folder cannot lead outside it. A Put writes a temporary file beside its
// target, syncs it, renames it into place and syncs the folder: a reader sees
// the old object or the new one, never a part, and a crash loses at most an
// upload whose Put had not returned.
package fsblob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
)

// tempPrefix names the temporary files of uploads in progress. Keys cannot
// start a segment with ".", so no key names one.
const tempPrefix = ".upload-"

// Store is a blob.Store on a local folder.
type Store struct {
	root *os.Root
}

var _ blob.Store = (*Store)(nil)

// Open opens (creating it, mode 0700, when missing) the folder dir as a store.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("fsblob: create %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("fsblob: open %s: %w", dir, err)
	}
	return &Store{root: root}, nil
}

// Close releases the folder.
func (s *Store) Close() error { return s.root.Close() }

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error) {
	if err := blob.ValidateKey(key); err != nil {
		return 0, err
	}
	if limit < 0 {
		return 0, fmt.Errorf("fsblob: put %s: negative limit %d", key, limit)
	}
	dir := path.Dir(key)
	if dir != "." {
		if err := s.root.MkdirAll(dir, 0o700); err != nil {
			return 0, fmt.Errorf("fsblob: put %s: %w", key, err)
		}
	}
	tmp, f, err := s.createTemp(dir)
	if err != nil {
		return 0, fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			s.root.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, blob.LimitReader(ctxReader{ctx, r}, limit))
	if err != nil {
		return 0, fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	// Sync before the rename: otherwise a crash can leave the new name
	// pointing at a file whose data never reached the disk.
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsblob: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	if err := s.root.Rename(tmp, key); err != nil {
		return 0, fmt.Errorf("fsblob: put %s: %w", key, err)
	}
	done = true
	// The rename itself is durable only once the folder is synced.
	if err := s.syncDir(dir); err != nil {
		return 0, fmt.Errorf("fsblob: put %s: sync folder: %w", key, err)
	}
	return n, nil
}

func (s *Store) createTemp(dir string) (string, *os.File, error) {
	for range 10 {
		var b [8]byte
		rand.Read(b[:])
		name := path.Join(dir, tempPrefix+hex.EncodeToString(b[:]))
		f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
	return "", nil, errors.New("no free temporary name")
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := s.root.Open(key)
	if err != nil {
		return nil, s.mapErr("get", key, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fsblob: get %s: %w", key, err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("fsblob: get %s: %w", key, blob.ErrNotFound)
	}
	if offset < 0 || offset > st.Size() {
		f.Close()
		return nil, fmt.Errorf("fsblob: get %s at %d of %d bytes: %w", key, offset, st.Size(), blob.ErrInvalidRange)
	}
	n := st.Size() - offset
	if length >= 0 && length < n {
		n = length
	}
	return &section{SectionReader: io.NewSectionReader(f, offset, n), f: f}, nil
}

type section struct {
	*io.SectionReader
	f *os.File
}

func (s *section) Close() error { return s.f.Close() }

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	st, err := s.root.Stat(key)
	if err != nil {
		return blob.Info{}, s.mapErr("stat", key, err)
	}
	if !st.Mode().IsRegular() {
		return blob.Info{}, fmt.Errorf("fsblob: stat %s: %w", key, blob.ErrNotFound)
	}
	return blob.Info{Key: key, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements blob.Store. Folders left empty stay: removing them would
// race with a Put creating a file in them, and they cost nothing.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	st, err := s.root.Lstat(key)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	if st.IsDir() {
		// A key that is a folder of other keys is no object.
		return nil
	}
	if err := s.root.Remove(key); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fsblob: delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Store. Temporary files of uploads in progress are not
// listed (see RemoveStaleUploads).
func (s *Store) List(ctx context.Context, prefix string, before time.Time) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		if err := blob.ValidatePrefix(prefix); err != nil {
			yield(blob.Info{}, err)
			return
		}
		s.walk(ctx, prefix, func(p string, d fs.DirEntry) bool {
			if strings.HasPrefix(d.Name(), ".") || !strings.HasPrefix(p, prefix) || !d.Type().IsRegular() {
				return true
			}
			st, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return true // deleted while listing
			}
			if err != nil {
				return yield(blob.Info{}, fmt.Errorf("fsblob: list: %w", err))
			}
			if !st.ModTime().Before(before) {
				return true
			}
			return yield(blob.Info{Key: p, Size: st.Size(), ModTime: st.ModTime()}, nil)
		}, yield)
	}
}

// walk calls fn for every file under the folder that can hold keys starting
// with prefix, until fn returns false. Errors go to yield.
func (s *Store) walk(ctx context.Context, prefix string, fn func(p string, d fs.DirEntry) bool, yield func(blob.Info, error) bool) {
	// Start at the deepest folder the prefix names entirely ("a/b/c" starts
	// in a/b), so a listing of one upload's prefix does not walk the store.
	start := "."
	if i := strings.LastIndexByte(prefix, '/'); i > 0 {
		start = prefix[:i]
	}
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // the start folder does not exist, or went away
			}
			return err
		}
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if d.IsDir() {
			if p != start && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !fn(p, d) {
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		yield(blob.Info{}, fmt.Errorf("fsblob: list: %w", err))
	}
}

// RemoveStaleUploads removes temporary files that uploads interrupted by a
// crash left behind, older than before (a Put in progress keeps writing its
// file, so a generous age never removes a live one). It returns how many it
// removed. The garbage collector calls it beside its List sweep.
func (s *Store) RemoveStaleUploads(ctx context.Context, before time.Time) (int, error) {
	removed := 0
	var firstErr error
	s.walk(ctx, "", func(p string, d fs.DirEntry) bool {
		if !strings.HasPrefix(d.Name(), tempPrefix) {
			return true
		}
		st, err := d.Info()
		if err != nil || !st.ModTime().Before(before) {
			return true
		}
		if err := s.root.Remove(p); err == nil {
			removed++
		} else if !errors.Is(err, fs.ErrNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("fsblob: remove stale upload %s: %w", p, err)
		}
		return true
	}, func(_ blob.Info, err error) bool {
		if firstErr == nil {
			firstErr = err
		}
		return false
	})
	return removed, firstErr
}

func (s *Store) mapErr(op, key string, err error) error {
	// ENOTDIR: a key whose parent is a file ("a" exists, "a/b" asked for).
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return fmt.Errorf("fsblob: %s %s: %w", op, key, blob.ErrNotFound)
	}
	return fmt.Errorf("fsblob: %s %s: %w", op, key, err)
}

// ctxReader stops a copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
