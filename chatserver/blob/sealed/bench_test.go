package sealed

import (
	"bytes"
	"context"
	"io"
	"testing"
)

// BenchmarkSeal: the writer alone, 16 MiB into io.Discard (MiB/s of plaintext).
func BenchmarkSeal(b *testing.B) {
	keys := testKeys(b, kidA)
	data := plaintext(16 << 20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, keys, "bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen: the reader alone, 16 MiB from memory (MiB/s of plaintext).
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	keys := testKeys(b, kidA)
	s := newMemStore()
	data := plaintext(16 << 20)
	put(b, s, "o", "bench", keys, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		o, err := Open(ctx, s, "o", "bench", keys, StatStoredSize)
		if err != nil {
			b.Fatal(err)
		}
		rc, err := o.NewReader(ctx, 0, -1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
