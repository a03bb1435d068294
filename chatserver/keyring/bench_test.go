package keyring

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/pkg/keyringfile"
)

// benchKeyring loads a fresh keyring with one active key of each kind.
func benchKeyring(b *testing.B) *Keyring {
	b.Helper()
	now := time.Now()
	jk, err := keyringfile.NewJWTKey(now, keyringfile.StateActive)
	if err != nil {
		b.Fatal(err)
	}
	dk, err := keyringfile.NewDataKey(now, keyringfile.StateActive)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := (&keyringfile.File{Version: 1, JWT: []keyringfile.JWTKey{jk}, Data: []keyringfile.DataKey{dk}}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	k, err := Load(dir, Options{})
	if err != nil {
		b.Fatal(err)
	}
	return k
}

// A 200-byte message body, as messaging seals it (aad binds conversation and message).
var (
	benchBody = []byte(strings.Repeat("Lorem ipsum dolor sit amet. ", 8)[:200])
	benchAAD  = []byte("msg|c_0123456789abcdefghijklmnop|m_0123456789abcdefghijklmnop")
)

func BenchmarkSeal200(b *testing.B) {
	k := benchKeyring(b)
	ctx := context.Background()
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := k.Seal(ctx, benchAAD, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen200(b *testing.B) {
	k := benchKeyring(b)
	sealed, _, err := k.Seal(context.Background(), benchAAD, benchBody)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.Open(sealed, benchAAD); err != nil {
			b.Fatal(err)
		}
	}
}

// Seals from every P at once: contention on the keyring's shared state.
func BenchmarkSeal200Parallel(b *testing.B) {
	k := benchKeyring(b)
	ctx := context.Background()
	b.SetBytes(int64(len(benchBody)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := k.Seal(ctx, benchAAD, benchBody); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
