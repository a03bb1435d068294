package s3blob

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
	"github.com/parley-chat/parley/chatserver/blob/fsblob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
)

// BenchmarkBlob measures upload and download of one 16 MiB object, raw and
// sealed, against the S3 server of PARLEY_TEST_S3_* (make s3-up) and the
// filesystem engine: MiB/s of plaintext. Raw is the server's own speed; the
// difference is the cost of encryption.
func BenchmarkBlob(b *testing.B) {
	const size = 16 << 20
	data := blobtest.Bytes(16, size)
	keys, err := sealed.NewStaticKeys("d-bench", map[string][]byte{"d-bench": bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		b.Fatal(err)
	}
	stores := map[string]blob.Store{}
	if os.Getenv("PARLEY_TEST_S3_ENDPOINT") != "" {
		stores["s3"] = testStore(b, testConfig(b))
	}
	fs, err := fsblob.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	stores["fs"] = fs
	ctx := context.Background()
	for _, engine := range []string{"s3", "fs"} {
		s, ok := stores[engine]
		if !ok {
			continue
		}
		ns := blobtest.Namespace(b)
		b.Cleanup(func() { blobtest.DeleteAll(b, s, ns+"/") })
		b.Run(engine+"/raw/put", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := s.Put(ctx, ns+"/raw", bytes.NewReader(data), size); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(engine+"/raw/get", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				rc, err := s.Get(ctx, ns+"/raw", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatal(n, err)
				}
				rc.Close()
			}
		})
		b.Run(engine+"/sealed/put", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if _, err := sealed.Put(ctx, s, ns+"/sealed", "att-bench", keys, bytes.NewReader(data), size); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(engine+"/sealed/get", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				o, err := sealed.Open(ctx, s, ns+"/sealed", "att-bench", keys, sealed.StatStoredSize)
				if err != nil {
					b.Fatal(err)
				}
				rc, err := o.NewReader(ctx, 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if n, err := io.Copy(io.Discard, rc); err != nil || n != size {
					b.Fatal(n, err)
				}
				rc.Close()
			}
		})
	}
}
