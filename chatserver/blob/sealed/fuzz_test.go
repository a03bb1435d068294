package sealed

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
)

var farFuture = time.Now().Add(24 * time.Hour)

// FuzzSealedReader feeds arbitrary stored bytes to the reader, whole and by range.
// Properties: no panic, no allocation beyond one segment; every failure is
// one of the typed errors; and whatever is accepted decrypts to exactly what
// a writer wrote (plaintext(n) for this test's writers): forged or edited
// bytes are never returned as plaintext.
func FuzzSealedReader(f *testing.F) {
	keys := testKeys(f, kidA)
	s := newMemStore()
	for _, n := range []int{0, 1, 100, seg - 1, seg, seg + 1, 2*seg + 3} {
		put(f, s, "seed", "att-f", keys, plaintext(n))
		f.Add(s.raw("seed"), int64(0), int64(-1))
		f.Add(s.raw("seed"), int64(n/2), int64(seg))
	}
	f.Add([]byte("PRLB\x01\x00\x01\x00\x00\x0bd-2026-aaaa"), int64(0), int64(1))
	f.Fuzz(func(t *testing.T, raw []byte, off, n int64) {
		ctx := context.Background()
		s := newMemStore()
		s.setRaw("obj", raw)
		o, err := Open(ctx, s, "obj", "att-f", keys, StatStoredSize)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("open: untyped error %v", err)
			}
			return
		}
		want := plaintext(int(o.Size()))
		all, err := o.ReadAll(ctx)
		if err != nil {
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("read: untyped error %v", err)
			}
			if !bytes.HasPrefix(want, all) {
				t.Fatal("bytes returned before the error were not written by a writer")
			}
			return
		}
		if !bytes.Equal(all, want) {
			t.Fatalf("accepted %d bytes that no writer wrote", len(all))
		}
		rc, err := o.NewReader(ctx, off, n)
		if err != nil {
			if !errors.Is(err, blob.ErrInvalidRange) {
				t.Fatalf("range [%d,+%d) of %d: %v", off, n, o.Size(), err)
			}
			if off >= 0 && off <= o.Size() {
				t.Fatalf("range [%d,+%d) of %d refused", off, n, o.Size())
			}
			return
		}
		got, err := io.ReadAll(rc)
		if err != nil {
			t.Fatalf("range read of an object read whole: %v", err)
		}
		end := o.Size()
		if n >= 0 && n < end-off {
			end = off + n
		}
		if !bytes.Equal(got, all[off:end]) {
			t.Fatalf("range [%d,+%d) differs from the whole read", off, n)
		}
	})
}
