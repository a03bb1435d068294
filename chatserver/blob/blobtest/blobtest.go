// Package blobtest is the conformance suite every blob.Store engine passes:
// Run(t, newStore) from the engine's own tests.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
)

// Run runs the suite. newStore returns the store under test; it may return
// the same store to every call (a shared bucket): each subtest works under a
// key prefix of its own and lists only that.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store, ns string)
	}{
		{"RoundTrip", testRoundTrip},
		{"Overwrite", testOverwrite},
		{"LargeStreamed", testLargeStreamed},
		{"SizeLimit", testSizeLimit},
		{"FailingSource", testFailingSource},
		{"Ranges", testRanges},
		{"NotFound", testNotFound},
		{"DeleteIdempotent", testDelete},
		{"ListForGC", testList},
		{"InvalidKeys", testInvalidKeys},
		{"ConcurrentPuts", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ns := Namespace(t)
			// A shared bucket keeps no litter from earlier runs.
			t.Cleanup(func() { DeleteAll(t, s, ns+"/") })
			tc.fn(t, s, ns)
		})
	}
}

// DeleteAll deletes every object under prefix.
func DeleteAll(t testing.TB, s blob.Store, prefix string) {
	ctx := context.Background()
	for info, err := range s.List(ctx, prefix, time.Now().Add(time.Hour)) {
		if err != nil {
			t.Errorf("clean up %s: %v", prefix, err)
			return
		}
		if err := s.Delete(ctx, info.Key); err != nil {
			t.Errorf("clean up %s: %v", info.Key, err)
		}
	}
}

// Namespace returns a fresh key prefix ("bt-<random>") for one test.
func Namespace(t testing.TB) string {
	var b [6]byte
	rand.Read(b[:])
	return "bt-" + hex.EncodeToString(b[:])
}

func ctxOf(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// Bytes returns n pseudo-random bytes, the same for the same seed.
func Bytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 1})
	r.Read(b)
	return b
}

// Read returns the whole of r and closes it.
func Read(t testing.TB, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func mustPut(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	// A reader with no Len or Size method, as a request body: the engine
	// cannot learn the size up front.
	n, err := s.Put(ctxOf(t), key, onlyReader{bytes.NewReader(data)}, int64(len(data)))
	if err != nil {
		t.Fatalf("put %s (%d bytes): %v", key, len(data), err)
	}
	if n != int64(len(data)) {
		t.Fatalf("put %s: size %d, want %d", key, n, len(data))
	}
}

func mustGet(t *testing.T, s blob.Store, key string, off, length int64) []byte {
	t.Helper()
	rc, err := s.Get(ctxOf(t), key, off, length)
	if err != nil {
		t.Fatalf("get %s [%d,+%d): %v", key, off, length, err)
	}
	return Read(t, rc)
}

type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testRoundTrip(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	for i, size := range []int{0, 1, 1000, 64 << 10, 1<<20 + 7} {
		key := fmt.Sprintf("%s/obj-%d", ns, i)
		data := Bytes(uint64(i), size)
		start := time.Now()
		mustPut(t, s, key, data)
		if got := mustGet(t, s, key, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes that differ", size, len(got))
		}
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatalf("stat: %v", err)
		}
		if info.Size != int64(size) || info.Key != key {
			t.Fatalf("stat %s: %+v, want size %d", key, info, size)
		}
		// Object stores keep whole seconds; allow for that and some skew.
		if info.ModTime.Before(start.Add(-2*time.Second)) || info.ModTime.After(time.Now().Add(2*time.Second)) {
			t.Fatalf("stat %s: modification time %v, put at %v", key, info.ModTime, start)
		}
	}
}

func testOverwrite(t *testing.T, s blob.Store, ns string) {
	key := ns + "/k"
	mustPut(t, s, key, []byte("first version, longer"))
	mustPut(t, s, key, []byte("second"))
	if got := string(mustGet(t, s, key, 0, -1)); got != "second" {
		t.Fatalf("after overwrite: %q", got)
	}
}

// generator yields n pseudo-random bytes in small reads and hashes them, so
// a large object is checked without holding it in the test either.
type generator struct {
	r    *mrand.ChaCha8
	left int
	h    interface{ Write([]byte) (int, error) }
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(len(p), g.left, 32<<10)]
	g.r.Read(p)
	g.h.Write(p)
	g.left -= len(p)
	return len(p), nil
}

func testLargeStreamed(t *testing.T, s blob.Store, ns string) {
	const size = 20 << 20
	key := ns + "/large"
	h := sha256.New()
	n, err := s.Put(ctxOf(t), key, &generator{r: mrand.NewChaCha8([32]byte{7}), left: size, h: h}, size)
	if err != nil || n != size {
		t.Fatalf("put 20 MiB: %d, %v", n, err)
	}
	want := h.Sum(nil)
	rc, err := s.Get(ctxOf(t), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h2 := sha256.New()
	got, err := io.Copy(h2, rc)
	if err != nil || got != size {
		t.Fatalf("get 20 MiB: %d bytes, %v", got, err)
	}
	if !bytes.Equal(h2.Sum(nil), want) {
		t.Fatal("20 MiB object read back differs")
	}
	// A range far into it, across where an engine's parts meet.
	off := int64(8<<20 - 100)
	r := mrand.NewChaCha8([32]byte{7})
	ref := make([]byte, off+300)
	r.Read(ref)
	if got := mustGet(t, s, key, off, 200); !bytes.Equal(got, ref[off:off+200]) {
		t.Fatal("range across 8 MiB differs")
	}
}

func testSizeLimit(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	for _, tc := range []struct {
		size  int
		limit int64
	}{{1001, 1000}, {1, 0}, {3 << 20, 2<<20 + 1}, {18 << 20, 17 << 20}} {
		key := fmt.Sprintf("%s/big-%d", ns, tc.size)
		_, err := s.Put(ctx, key, &generator{r: mrand.NewChaCha8([32]byte{1}), left: tc.size, h: io.Discard}, tc.limit)
		if !errors.Is(err, blob.ErrTooLarge) {
			t.Fatalf("put %d bytes with limit %d: %v, want ErrTooLarge", tc.size, tc.limit, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("after a refused put, stat: %v, want ErrNotFound", err)
		}
	}
	assertListed(t, s, ns+"/", nil)
	// Exactly the limit is fine.
	mustPut(t, s, ns+"/exact", Bytes(2, 1000))
	// A refused put leaves the previous object as it was.
	_, err := s.Put(ctx, ns+"/exact", bytes.NewReader(Bytes(3, 1001)), 1000)
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("overwrite too large: %v", err)
	}
	if got := mustGet(t, s, ns+"/exact", 0, -1); !bytes.Equal(got, Bytes(2, 1000)) {
		t.Fatal("a refused overwrite changed the object")
	}
	if _, err := s.Put(ctx, ns+"/neg", bytes.NewReader(nil), -1); err == nil {
		t.Fatal("negative limit accepted")
	}
}

type failingReader struct {
	left int
}

var errSource = errors.New("source broke")

func (f *failingReader) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errSource
	}
	n := min(len(p), f.left)
	clear(p[:n])
	f.left -= n
	return n, nil
}

func testFailingSource(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	for _, size := range []int{10, 10 << 20} {
		key := fmt.Sprintf("%s/broken-%d", ns, size)
		_, err := s.Put(ctx, key, &failingReader{left: size}, 100<<20)
		if !errors.Is(err, errSource) {
			t.Fatalf("put from a source failing after %d bytes: %v, want the source's error", size, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("after a failed put, stat: %v, want ErrNotFound", err)
		}
	}
	assertListed(t, s, ns+"/", nil)
}

func testRanges(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	data := Bytes(4, 1000)
	key := ns + "/r"
	mustPut(t, s, key, data)
	for _, tc := range []struct {
		off, length int64
		want        []byte
	}{
		{0, 10, data[:10]},        // start
		{500, 100, data[500:600]}, // middle
		{990, -1, data[990:]},     // to the end
		{990, 100, data[990:]},    // cut at the end
		{999, 1, data[999:]},      // last byte
		{0, 1000, data},           // exactly all
		{0, -1, data},             // all
		{1000, -1, nil},           // at the end: empty
		{1000, 5, nil},            // at the end: empty
		{10, 0, nil},              // zero length
	} {
		got := mustGet(t, s, key, tc.off, tc.length)
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("range [%d,+%d): %d bytes, want %d", tc.off, tc.length, len(got), len(tc.want))
		}
	}
	for _, off := range []int64{1001, 5000, -1} {
		if rc, err := s.Get(ctx, key, off, 1); !errors.Is(err, blob.ErrInvalidRange) {
			if err == nil {
				rc.Close()
			}
			t.Fatalf("range at %d of 1000: %v, want ErrInvalidRange", off, err)
		}
	}
	// An empty object: from 0 empty, past 0 refused.
	mustPut(t, s, ns+"/empty", nil)
	if got := mustGet(t, s, ns+"/empty", 0, 10); len(got) != 0 {
		t.Fatalf("range of an empty object: %d bytes", len(got))
	}
	if _, err := s.Get(ctx, ns+"/empty", 1, -1); !errors.Is(err, blob.ErrInvalidRange) {
		t.Fatalf("range past an empty object: %v", err)
	}
}

func testNotFound(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	mustPut(t, s, ns+"/file", []byte("x"))
	for _, key := range []string{ns + "/missing", ns + "/file/below", ns} {
		if _, err := s.Get(ctx, key, 0, -1); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("get %s: %v, want ErrNotFound", key, err)
		}
		if _, err := s.Get(ctx, key, 5, 10); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("ranged get %s: %v, want ErrNotFound", key, err)
		}
		if _, err := s.Get(ctx, key, 0, 0); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("empty get %s: %v, want ErrNotFound", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("stat %s: %v, want ErrNotFound", key, err)
		}
	}
}

func testDelete(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	key := ns + "/d"
	mustPut(t, s, key, []byte("gone soon"))
	mustPut(t, s, ns+"/keep", []byte("stays"))
	for i := range 2 {
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete #%d: %v", i+1, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("after delete: stat %v", err)
		}
	}
	if err := s.Delete(ctx, ns+"/never/was"); err != nil {
		t.Fatalf("delete of a key never stored: %v", err)
	}
	if got := string(mustGet(t, s, ns+"/keep", 0, -1)); got != "stays" {
		t.Fatalf("a neighbour of the deleted key: %q", got)
	}
	assertListed(t, s, ns+"/", []string{ns + "/keep"})
}

func listed(t *testing.T, s blob.Store, prefix string, before time.Time) []string {
	t.Helper()
	var keys []string
	for info, err := range s.List(ctxOf(t), prefix, before) {
		if err != nil {
			t.Fatalf("list %q: %v", prefix, err)
		}
		if !info.ModTime.Before(before) {
			t.Fatalf("list %q before %v yielded %s of %v", prefix, before, info.Key, info.ModTime)
		}
		keys = append(keys, info.Key)
	}
	slices.Sort(keys)
	return keys
}

func assertListed(t *testing.T, s blob.Store, prefix string, want []string) {
	t.Helper()
	got := listed(t, s, prefix, time.Now().Add(time.Hour))
	if !slices.Equal(got, want) {
		t.Fatalf("list %q: %q, want %q", prefix, got, want)
	}
}

func testList(t *testing.T, s blob.Store, ns string) {
	old := []string{ns + "/up/a/1", ns + "/up/a/2", ns + "/up/b/1", ns + "/upper"}
	for _, k := range old {
		mustPut(t, s, k, []byte(k))
	}
	mustPut(t, s, ns+"-other/1", []byte("another namespace"))
	t.Cleanup(func() { s.Delete(context.Background(), ns+"-other/1") })
	// Stores keep modification times in whole seconds: leave more than
	// one between the old objects, the cut and the new one.
	time.Sleep(1100 * time.Millisecond)
	cut := time.Now()
	time.Sleep(1100 * time.Millisecond)
	mustPut(t, s, ns+"/up/a/new", []byte("young"))

	later := time.Now().Add(time.Hour)
	all := append(slices.Clone(old), ns+"/up/a/new")
	slices.Sort(all)
	if got := listed(t, s, ns+"/", later); !slices.Equal(got, all) {
		t.Fatalf("list all: %q", got)
	}
	if got := listed(t, s, ns+"/up/a/", later); !slices.Equal(got, []string{ns + "/up/a/1", ns + "/up/a/2", ns + "/up/a/new"}) {
		t.Fatalf("list up/a/: %q", got)
	}
	// A prefix ending inside a segment matches like S3's.
	if got := listed(t, s, ns+"/up", later); len(got) != 5 {
		t.Fatalf("list %q: %q, want 5 keys", ns+"/up", got)
	}
	if got := listed(t, s, ns+"/up/", cut); !slices.Equal(got, old[:3]) {
		t.Fatalf("list older than the cut: %q, want %q", got, old[:3])
	}
	if got := listed(t, s, ns+"/", cut.Add(-time.Hour)); len(got) != 0 {
		t.Fatalf("list older than an hour before: %q", got)
	}
	if got := listed(t, s, ns+"/none/", later); len(got) != 0 {
		t.Fatalf("list an empty prefix: %q", got)
	}
	// Stopping early is allowed.
	for range s.List(ctxOf(t), ns+"/", later) {
		break
	}
	for _, bad := range []string{"../", "/abs", "a//", "a/../b"} {
		var err error
		for _, e := range s.List(ctxOf(t), bad, later) {
			err = e
		}
		if !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("list %q: %v, want ErrInvalidKey", bad, err)
		}
	}
}

// BadKeys are keys every engine refuses.
var BadKeys = []string{
	"", "/", "/abs/path", "../escape", "a/../../escape", "a/./b", "a//b", "a/", ".hidden",
	"a/.upload-x", "..", ".", "nul\x00byte", `back\slash`, `..\escape`, "sp ace", "new\nline",
	"q?uery", "p%2e%2e", "ü", strings.Repeat("a", blob.MaxSegment+1),
	strings.Repeat("abcdefgh/", blob.MaxKey/9+1) + "x",
}

func testInvalidKeys(t *testing.T, s blob.Store, ns string) {
	ctx := ctxOf(t)
	for _, key := range BadKeys {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), 10); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("put %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Get(ctx, key, 0, -1); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("get %q: %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("stat %q: %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Fatalf("delete %q: %v, want ErrInvalidKey", key, err)
		}
	}
	// The longest keys allowed work.
	long := ns + "/" + strings.Repeat("s", blob.MaxSegment)
	mustPut(t, s, long, []byte("long"))
	seg := strings.Repeat("x", 100)
	deep := ns
	for len(deep)+len(seg)+1 <= blob.MaxKey {
		deep += "/" + seg
	}
	mustPut(t, s, deep, []byte("deep"))
	if string(mustGet(t, s, deep, 0, -1)) != "deep" {
		t.Fatal("a key of the longest length reads back wrong")
	}
}

func testConcurrent(t *testing.T, s blob.Store, ns string) {
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			data := Bytes(uint64(100+i), 100<<10+i)
			key := fmt.Sprintf("%s/c/%02d", ns, i)
			if _, err := s.Put(ctxOf(t), key, bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent put: %v", err)
	}
	for i := range n {
		if got := mustGet(t, s, fmt.Sprintf("%s/c/%02d", ns, i), 0, -1); !bytes.Equal(got, Bytes(uint64(100+i), 100<<10+i)) {
			t.Fatalf("object %d differs after concurrent puts", i)
		}
	}
	if got := listed(t, s, ns+"/c/", time.Now().Add(time.Hour)); len(got) != n {
		t.Fatalf("listed %d of %d objects", len(got), n)
	}
}
