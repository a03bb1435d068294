// Package s3blob stores blobs in an S3-compatible object store (AWS S3,
// MinIO, Ceph RGW, SeaweedFS, versitygw, ...) through minio-go: the engine of
// clusters, where replicas share no disk.
//
// A Put streams: it reads up to SinglePutMax bytes; an object that ends
// there goes up in one PUT, a longer one as a multipart upload of PartSize
// parts, so an upload holds at most about SinglePutMax + PartSize in memory
// whatever its size, and needs no size up front. A failed multipart upload is
// aborted, so neither a too-large object nor a broken stream leaves parts
// behind (a crash can: a bucket lifecycle rule that aborts incomplete
// multipart uploads after a day is the operator's safety net).
package s3blob

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/parley-chat/parley/chatserver/blob"
)

// Defaults of Config.
const (
	// DefaultSinglePutMax: objects up to this size (thumbnails, voice notes,
	// most images) cost one request instead of three.
	DefaultSinglePutMax = 1 << 20
	// DefaultPartSize: above S3's 5 MiB minimum part; 10,000 parts make
	// objects up to 80 GiB, far past any attachment limit.
	DefaultPartSize = 8 << 20
)

// Config says where the bucket is and how to reach it. Its LogValue and
// String leave the credentials out, so it can be logged whole.
type Config struct {
	// Endpoint is host[:port], or a URL whose scheme (http or https)
	// decides TLS, e.g. "http://127.0.0.1:7070".
	Endpoint string
	Bucket   string
	Region   string // "" lets the client ask the server
	// AccessKey and SecretKey are static credentials. Both empty: the
	// client's default chain (AWS_* environment, IAM role / IRSA).
	AccessKey string
	SecretKey string
	// Insecure uses plain HTTP when Endpoint has no scheme (local servers).
	Insecure bool
	// PathStyle addresses the bucket in the path (http://host/bucket/key)
	// rather than as a subdomain: what local servers and most self-hosted
	// ones need.
	PathStyle bool
	// SinglePutMax and PartSize: see the package comment; 0 is the default.
	SinglePutMax int
	PartSize     uint64
	// CAFile is a PEM bundle of certificate authorities trusted for the
	// endpoint's TLS certificate, on top of the system's: for a self-hosted
	// server with a private CA. It concerns this client only; the rest of the
	// process keeps the system roots.
	CAFile string
	// Transport replaces the HTTP transport (tests); with CAFile it must be
	// nil.
	Transport http.RoundTripper
}

// ConfigFromEnv reads PREFIX_ENDPOINT, PREFIX_BUCKET, PREFIX_REGION,
// PREFIX_ACCESS_KEY, PREFIX_SECRET_KEY, PREFIX_PATH_STYLE ("1" or "true")
// and PREFIX_CA_FILE. Credentials come from the environment (a Kubernetes
// Secret), never from a flag, where ps would show them; the CA file sits
// with them, as the operator mounts it from a Secret too.
func ConfigFromEnv(prefix string) Config {
	ps := strings.ToLower(os.Getenv(prefix + "_PATH_STYLE"))
	return Config{
		Endpoint:  os.Getenv(prefix + "_ENDPOINT"),
		Bucket:    os.Getenv(prefix + "_BUCKET"),
		Region:    os.Getenv(prefix + "_REGION"),
		AccessKey: os.Getenv(prefix + "_ACCESS_KEY"),
		SecretKey: os.Getenv(prefix + "_SECRET_KEY"),
		PathStyle: ps == "1" || ps == "true",
		CAFile:    os.Getenv(prefix + "_CA_FILE"),
	}
}

// LogValue implements slog.LogValuer without the credentials.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", c.Endpoint),
		slog.String("bucket", c.Bucket),
		slog.String("region", c.Region),
		slog.Bool("path_style", c.PathStyle),
		slog.String("ca_file", c.CAFile),
		slog.Bool("static_credentials", c.AccessKey != ""),
	)
}

// String describes the configuration without the credentials.
func (c Config) String() string {
	return fmt.Sprintf("s3blob.Config{Endpoint:%q Bucket:%q Region:%q PathStyle:%v CAFile:%q StaticCredentials:%v}",
		c.Endpoint, c.Bucket, c.Region, c.PathStyle, c.CAFile, c.AccessKey != "")
}

// GoString keeps %#v from printing the secret too.
func (c Config) GoString() string { return c.String() }

// Store is a blob.Store on one S3 bucket.
type Store struct {
	core         minio.Core
	bucket       string
	singlePutMax int
	partSize     uint64
}

var _ blob.Store = (*Store)(nil)

// New connects to the bucket described by cfg. It makes no request: use
// Check to find out whether the bucket answers.
func New(cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("s3blob: no bucket configured")
	}
	endpoint, secure, err := parseEndpoint(cfg.Endpoint, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	var creds *credentials.Credentials
	switch {
	case cfg.AccessKey != "" && cfg.SecretKey != "":
		creds = credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	case cfg.AccessKey != "" || cfg.SecretKey != "":
		return nil, errors.New("s3blob: an access key needs its secret key and the other way round")
	default:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.IAM{},
		})
	}
	transport := cfg.Transport
	if cfg.CAFile != "" {
		if transport != nil {
			return nil, errors.New("s3blob: a CA file and a custom transport cannot go together")
		}
		if !secure {
			return nil, fmt.Errorf("s3blob: CA file %s given for a plain HTTP endpoint %q", cfg.CAFile, cfg.Endpoint)
		}
		if transport, err = caTransport(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	opts := &minio.Options{
		Creds:     creds,
		Secure:    secure,
		Region:    cfg.Region,
		Transport: transport,
	}
	if cfg.PathStyle {
		opts.BucketLookup = minio.BucketLookupPath
	}
	client, err := minio.New(endpoint, opts)
	if err != nil {
		return nil, fmt.Errorf("s3blob: %w", err)
	}
	s := &Store{core: minio.Core{Client: client}, bucket: cfg.Bucket, singlePutMax: cfg.SinglePutMax, partSize: cfg.PartSize}
	if s.singlePutMax <= 0 {
		s.singlePutMax = DefaultSinglePutMax
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	return s, nil
}

// caTransport is minio-go's default transport trusting the system roots and
// the certificates in caFile. A file without a certificate is an error: a
// typo in a mounted key would otherwise fall back to the system roots and
// fail later, at the first upload, with a less telling message.
func caTransport(caFile string) (*http.Transport, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s3blob: CA file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("s3blob: CA file %s holds no PEM certificate", caFile)
	}
	tr, err := minio.DefaultTransport(true)
	if err != nil {
		return nil, fmt.Errorf("s3blob: transport: %w", err)
	}
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.RootCAs = pool
	return tr, nil
}

func parseEndpoint(ep string, insecure bool) (hostport string, secure bool, err error) {
	if ep == "" {
		return "", false, errors.New("s3blob: no endpoint configured")
	}
	if !strings.Contains(ep, "://") {
		return ep, !insecure, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("s3blob: endpoint: %w", err)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", false, fmt.Errorf("s3blob: endpoint %q: only scheme://host[:port]", ep)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("s3blob: endpoint %q: scheme must be http or https", ep)
}

// Check reports whether the bucket exists and the credentials reach it: for
// a readiness check at start, so a typo fails loudly before the first upload.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("s3blob: bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("s3blob: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error) {
	if err := blob.ValidateKey(key); err != nil {
		return 0, err
	}
	if limit < 0 {
		return 0, fmt.Errorf("s3blob: put %s: negative limit %d", key, limit)
	}
	src := blob.LimitReader(r, limit)
	// Read the head: if the object ends within it, one PUT with its length.
	headSize := int64(s.singlePutMax)
	if limit < headSize {
		headSize = limit + 1 // enough to see that the limit is passed
	}
	head := make([]byte, headSize)
	n, err := io.ReadFull(src, head)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		info, err := s.core.Client.PutObject(ctx, s.bucket, key, bytes.NewReader(head[:n]), int64(n),
			minio.PutObjectOptions{ContentType: "application/octet-stream"})
		if err != nil {
			return 0, fmt.Errorf("s3blob: put %s: %w", key, mapErr(err))
		}
		return info.Size, nil
	case err != nil:
		return 0, fmt.Errorf("s3blob: put %s: %w", key, err)
	}
	// Longer: a multipart upload of unknown size, aborted on any error
	// (the limit's ErrTooLarge included) by minio-go.
	info, err := s.core.Client.PutObject(ctx, s.bucket, key, io.MultiReader(bytes.NewReader(head), src), -1,
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: s.partSize})
	if err != nil {
		return 0, fmt.Errorf("s3blob: put %s: %w", key, mapErr(err))
	}
	return info.Size, nil
}

// Get implements blob.Store.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3blob: get %s at %d: %w", key, offset, blob.ErrInvalidRange)
	}
	if length == 0 {
		// No Range header says "nothing": check the object and the offset.
		return s.emptyAt(ctx, key, offset)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		opts.SetRange(offset, offset+length-1)
	case offset > 0:
		opts.SetRange(offset, 0)
	}
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		var er minio.ErrorResponse
		if errors.As(err, &er) && (er.Code == "InvalidRange" || er.StatusCode == http.StatusRequestedRangeNotSatisfiable) {
			// S3 refuses a range starting at the end (and any range of an
			// empty object); blob.Store gives an empty reader there.
			return s.emptyAt(ctx, key, offset)
		}
		return nil, fmt.Errorf("s3blob: get %s: %w", key, mapErr(err))
	}
	return rc, nil
}

func (s *Store) emptyAt(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, fmt.Errorf("s3blob: get %s at %d of %d bytes: %w", key, offset, info.Size, blob.ErrInvalidRange)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// Stat implements blob.Store.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	oi, err := s.core.Client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return blob.Info{}, fmt.Errorf("s3blob: stat %s: %w", key, mapErr(err))
	}
	return blob.Info{Key: key, Size: oi.Size, ModTime: oi.LastModified}, nil
}

// Delete implements blob.Store (S3's DELETE is idempotent already).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	if err := s.core.Client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if errors.Is(mapErr(err), blob.ErrNotFound) {
			return nil
		}
		return fmt.Errorf("s3blob: delete %s: %w", key, err)
	}
	return nil
}

// List implements blob.Store.
func (s *Store) List(ctx context.Context, prefix string, before time.Time) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		if err := blob.ValidatePrefix(prefix); err != nil {
			yield(blob.Info{}, err)
			return
		}
		// The listing goroutine of minio-go stops when ctx ends: cancel it
		// when the caller stops early.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for oi := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if oi.Err != nil {
				yield(blob.Info{}, fmt.Errorf("s3blob: list %s: %w", prefix, mapErr(oi.Err)))
				return
			}
			if strings.HasSuffix(oi.Key, "/") || !oi.LastModified.Before(before) {
				continue // folder markers some servers list; young objects
			}
			if !yield(blob.Info{Key: oi.Key, Size: oi.Size, ModTime: oi.LastModified}, nil) {
				return
			}
		}
	}
}

// mapErr turns S3's "no such key" into blob.ErrNotFound, keeping the
// original's text.
func mapErr(err error) error {
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == "NoSuchKey" || er.Code == "NotFound" || er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket") {
		return fmt.Errorf("%w (%s)", blob.ErrNotFound, er.Code)
	}
	return err
}
