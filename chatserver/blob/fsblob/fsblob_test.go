package fsblob

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
)

func open(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		return open(t, t.TempDir())
	})
}

// files lists every file and folder under dir (relative paths).
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		if rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// Bad keys create nothing, inside the store or beside it.
func TestBadKeysTouchNothing(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s := open(t, dir)
	ctx := context.Background()
	for _, key := range append(blobtest.BadKeys, "../outside", "a/../../outside", parent+"/outside") {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), 10); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("put %q: %v", key, err)
		}
	}
	if got := files(t, parent); len(got) != 1 || got[0] != "store" {
		t.Fatalf("files after bad puts: %q", got)
	}
}

// A symbolic link planted in the folder does not lead reads or writes out of it.
func TestSymlinkDoesNotEscape(t *testing.T) {
	parent := t.TempDir()
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(outside, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "store")
	s := open(t, dir)
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.Get(ctx, "link/secret", 0, -1); err == nil {
		t.Fatal("read through a symbolic link out of the store")
	}
	if _, err := s.Put(ctx, "link/planted", strings.NewReader("x"), 10); err == nil {
		t.Fatal("wrote through a symbolic link out of the store")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a file appeared outside the store: %v", err)
	}
}

// A refused or failed Put leaves no temporary file; an interrupted one (a
// crash) is swept by RemoveStaleUploads once old, and never listed.
func TestTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir)
	ctx := context.Background()
	if _, err := s.Put(ctx, "a/b", bytes.NewReader(make([]byte, 100)), 10); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatal(err)
	}
	if got := files(t, dir); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after a refused put: %q", got)
	}
	// What a crash mid-upload leaves.
	stale := filepath.Join(dir, "a", tempPrefix+"0123")
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "a", tempPrefix+"4567")
	if err := os.WriteFile(fresh, []byte("in progress"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	for info, err := range s.List(ctx, "", time.Now().Add(time.Hour)) {
		t.Fatalf("listed %+v %v: temporary files are no objects", info, err)
	}
	n, err := s.RemoveStaleUploads(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("RemoveStaleUploads: %d, %v", n, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the stale upload is still there")
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("an upload in progress was removed")
	}
}

// Objects are private to the server's user.
func TestModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	s := open(t, dir)
	if _, err := s.Put(context.Background(), "x/y", strings.NewReader("data"), 10); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]fs.FileMode{dir: 0o700, filepath.Join(dir, "x"): 0o700, filepath.Join(dir, "x", "y"): 0o600} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
}
