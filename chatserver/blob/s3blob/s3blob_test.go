package s3blob

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
)

// testConfig is the S3 server hack/s3-server.sh started (make test starts it:
// make s3-up). The full tier fails without one; -short (the fast tier, on
// machines without services) skips.
func testConfig(t testing.TB) Config {
	t.Helper()
	cfg := ConfigFromEnv("PARLEY_TEST_S3")
	cfg.PathStyle = true
	if cfg.Endpoint == "" || cfg.Bucket == "" || cfg.AccessKey == "" || cfg.SecretKey == "" {
		if testing.Short() {
			t.Skip("S3 tests need PARLEY_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY and _SECRET_KEY; skipped in -short mode")
		}
		t.Fatal("PARLEY_TEST_S3_ENDPOINT, _BUCKET, _ACCESS_KEY or _SECRET_KEY is not set: run `make test`, which starts " +
			"an S3 server, or `make s3-up` and `set -a; . tmp/s3/env; set +a`")
	}
	return cfg
}

func testStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Check(ctx); err != nil {
		t.Fatalf("the S3 server of PARLEY_TEST_S3_ENDPOINT does not answer (make s3-up starts it): %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t)
	// Small parts, so the 20 MiB object and the too-large ones go through
	// several parts of a multipart upload (S3's minimum part is 5 MiB).
	cfg.PartSize = 5 << 20
	s := testStore(t, cfg)
	blobtest.Run(t, func(t *testing.T) blob.Store { return s })
}

// The default settings: objects up to SinglePutMax in one PUT, larger ones
// in 8 MiB parts.
func TestConformanceDefaults(t *testing.T) {
	s := testStore(t, testConfig(t))
	blobtest.Run(t, func(t *testing.T) blob.Store { return s })
}

func TestCheckRefusesMissingBucketAndBadCredentials(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	missing := cfg
	missing.Bucket = "no-such-bucket-" + strings.ToLower(blobtest.Namespace(t))
	s, err := New(missing)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("check of a missing bucket: %v", err)
	}
	wrong := cfg
	wrong.SecretKey = "not-the-secret"
	s, err = New(wrong)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err == nil {
		t.Fatal("check with a wrong secret key passed")
	}
	if _, err := s.Put(ctx, "k", strings.NewReader("x"), 10); err == nil || errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("put with a wrong secret key: %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string // "" = valid
	}{
		{Config{Endpoint: "http://127.0.0.1:9000", Bucket: "b"}, ""},
		{Config{Endpoint: "s3.example.com", Bucket: "b", AccessKey: "a", SecretKey: "s"}, ""},
		{Config{Endpoint: "ftp://x", Bucket: "b"}, "scheme"},
		{Config{Endpoint: "http://x/path", Bucket: "b"}, "only scheme"},
		{Config{Endpoint: "http://u:p@x", Bucket: "b"}, "only scheme"},
		{Config{Endpoint: "", Bucket: "b"}, "no endpoint"},
		{Config{Endpoint: "x", Bucket: ""}, "no bucket"},
		{Config{Endpoint: "x", Bucket: "b", AccessKey: "a"}, "secret key"},
	} {
		_, err := New(tc.cfg)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("New(%v): %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// The configuration can be logged whole: the secret never shows.
func TestConfigNeverPrintsCredentials(t *testing.T) {
	cfg := Config{Endpoint: "http://x", Bucket: "b", AccessKey: "AKIDVISIBLE", SecretKey: "s3cr3t-value"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("blob store", "s3", cfg)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("blob store", "s3", cfg)
	fmt.Fprintf(&b, "%v %+v %#v %s", cfg, cfg, cfg, cfg)
	for _, secret := range []string{"s3cr3t-value", "AKIDVISIBLE"} {
		if strings.Contains(b.String(), secret) {
			t.Fatalf("a credential was printed: %s", b.String())
		}
	}
	if !strings.Contains(b.String(), "static_credentials=true") {
		t.Fatalf("the log does not say credentials are set: %s", b.String())
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv("X_S3_ENDPOINT", "https://s3.example.com")
	t.Setenv("X_S3_BUCKET", "att")
	t.Setenv("X_S3_REGION", "eu-west-1")
	t.Setenv("X_S3_ACCESS_KEY", "a")
	t.Setenv("X_S3_SECRET_KEY", "s")
	t.Setenv("X_S3_PATH_STYLE", "true")
	got := ConfigFromEnv("X_S3")
	want := Config{Endpoint: "https://s3.example.com", Bucket: "att", Region: "eu-west-1", AccessKey: "a", SecretKey: "s", PathStyle: true}
	if got != want {
		t.Fatalf("ConfigFromEnv: %v", got)
	}
}

// A multipart upload refused at the size limit, or broken by its source, is
// aborted: no parts stay in the bucket (they would cost storage unseen).
func TestAbortedUploadsLeaveNoParts(t *testing.T) {
	cfg := testConfig(t)
	cfg.PartSize = 5 << 20
	s := testStore(t, cfg)
	ctx := context.Background()
	key := blobtest.Namespace(t) + "/too-large"
	big := strings.NewReader(strings.Repeat("x", 12<<20))
	if _, err := s.Put(ctx, key, big, 11<<20); !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("put 12 MiB with an 11 MiB limit: %v", err)
	}
	if _, err := s.Put(ctx, key, &failAfter{left: 7 << 20}, 100<<20); err == nil {
		t.Fatal("put from a broken source succeeded")
	}
	if n := incompleteUploads(t, s, cfg.Bucket, key); n != 0 {
		t.Fatalf("%d incomplete multipart uploads of %s stayed", n, key)
	}
	// The listing does see one left open, so the check above can fail.
	probe := key + "-probe"
	id, err := s.core.NewMultipartUpload(ctx, cfg.Bucket, probe, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.core.AbortMultipartUpload(ctx, cfg.Bucket, probe, id)
	if n := incompleteUploads(t, s, cfg.Bucket, probe); n != 1 {
		t.Fatalf("an open multipart upload listed %d times", n)
	}
}

func incompleteUploads(t *testing.T, s *Store, bucket, key string) int {
	n := 0
	for u := range s.core.Client.ListIncompleteUploads(context.Background(), bucket, key, true) {
		if u.Err != nil {
			t.Fatalf("list incomplete uploads: %v", u.Err)
		}
		if u.Key == key {
			n++
		}
	}
	return n
}

type failAfter struct{ left int }

func (f *failAfter) Read(p []byte) (int, error) {
	if f.left == 0 {
		return 0, errors.New("connection reset")
	}
	n := min(len(p), f.left)
	f.left -= n
	return n, nil
}
