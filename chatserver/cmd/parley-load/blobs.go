package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/chatserver/blob/s3blob"
)

// The blobs mode measures attachment throughput: files uploaded through the
// first target (POST /api/v1/attachments: sniffed, sealed in 64 KiB
// AES-256-GCM segments, stored in the server's S3 bucket) and downloaded
// whole through the last one, against the same S3 server's own PUT and GET
// of objects of the same size, from this process, with the same client
// library the server uses (minio-go, through s3blob) and the same
// concurrency. The phases alternate (raw PUT, upload, raw GET, download) and
// run -rounds times; the report keeps every round.

// blobOptions are the -blob-* flags.
type blobOptions struct {
	files, mib, concurrency, rounds int
	s3Env                           string
}

// blobPhase is one timed phase.
type blobPhase struct {
	Name      string             `json:"name"` // raw-put, upload, raw-get, download
	Round     int                `json:"round"`
	Files     int                `json:"files"`
	MiB       float64            `json:"mib"`
	Seconds   float64            `json:"seconds"`
	MiBPerSec float64            `json:"mibPerSecond"`
	CPU       map[string]float64 `json:"cpuSeconds"` // CPU time used during the phase, per process
}

// blobStats is the blobs section of the report.
type blobStats struct {
	FileMiB     int         `json:"fileMiB"`
	Files       int         `json:"files"`
	Concurrency int         `json:"concurrency"`
	S3Endpoint  string      `json:"s3Endpoint"`
	Phases      []blobPhase `json:"phases"`
}

func runBlobs(ctx context.Context, o *options, bo blobOptions, apis []*api, u *user, errs *errorCounts) (*blobStats, error) {
	cfg := s3blob.ConfigFromEnv(bo.s3Env)
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, fmt.Errorf("-mode blobs: %s_ENDPOINT and %s_BUCKET are not set (make s3-up writes tmp/s3/env)", bo.s3Env, bo.s3Env)
	}
	if _, err := checkLoopback(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("-mode blobs: S3 endpoint: %w", err)
	}
	cfg.PathStyle = true
	raw, err := s3blob.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("-mode blobs: %w", err)
	}
	size := int64(bo.mib) << 20
	data := make([]byte, size) // random: neither the server nor S3 can compress it
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	up, down := apis[0], apis[len(apis)-1]
	// Uploads stream large bodies: the shared client's 30 s timeout is per
	// request, which a slow S3 may exceed at high concurrency.
	hc := &http.Client{Transport: up.hc.Transport, Timeout: 5 * time.Minute}
	watch := []*watched{}
	for i, pid := range o.serverPIDs {
		watch = append(watch, &watched{Name: fmt.Sprintf("server%d", i+1), PID: pid})
	}
	watch = append(watch, o.watch...)
	st := &blobStats{FileMiB: bo.mib, Files: bo.files, Concurrency: bo.concurrency, S3Endpoint: cfg.Endpoint}
	phase := func(name string, round int, f func(ctx context.Context, i int) error) error {
		startCPU(watch)
		self0, t0 := selfCPU(), time.Now()
		cpu0 := map[string]float64{}
		for _, w := range watch {
			cpu0[w.Name] = w.cpu0
		}
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			firstErr error
		)
		next := make(chan int)
		for range bo.concurrency {
			wg.Go(func() {
				for i := range next {
					if err := f(ctx, i); err != nil {
						errs.addErr(name, err)
						mu.Lock()
						if firstErr == nil {
							firstErr = fmt.Errorf("%s %d: %w", name, i, err)
						}
						mu.Unlock()
					}
				}
			})
		}
		for i := range bo.files {
			select {
			case next <- i:
			case <-ctx.Done():
			}
		}
		close(next)
		wg.Wait()
		secs := time.Since(t0).Seconds()
		p := blobPhase{Name: name, Round: round, Files: bo.files, MiB: float64(bo.files * bo.mib), Seconds: secs,
			CPU: map[string]float64{"parley-load": selfCPU() - self0}}
		p.MiBPerSec = p.MiB / secs
		for _, w := range watch {
			if c, err := cpuSeconds(w.PID, w.children); err == nil {
				p.CPU[w.Name] = c - cpu0[w.Name]
			}
		}
		st.Phases = append(st.Phases, p)
		if firstErr != nil {
			return firstErr
		}
		return ctx.Err()
	}
	prefix := "bench/" + strings.ToLower(rand.Text()[:10]) + "/"
	defer func() {
		for i := range bo.files {
			_ = raw.Delete(context.WithoutCancel(ctx), fmt.Sprintf("%s%d", prefix, i))
		}
	}()
	for round := 1; round <= bo.rounds; round++ {
		ids := make([]string, bo.files)
		steps := []struct {
			name string
			f    func(ctx context.Context, i int) error
		}{
			{"raw-put", func(ctx context.Context, i int) error {
				_, err := raw.Put(ctx, fmt.Sprintf("%s%d", prefix, i), bytes.NewReader(data), size)
				return err
			}},
			{"upload", func(ctx context.Context, i int) error {
				id, err := uploadAttachment(ctx, hc, up.base, u.AccessToken, fmt.Sprintf("bench-%d.bin", i), data)
				ids[i] = id
				return err
			}},
			{"raw-get", func(ctx context.Context, i int) error {
				rc, err := raw.Get(ctx, fmt.Sprintf("%s%d", prefix, i), 0, -1)
				if err != nil {
					return err
				}
				defer rc.Close()
				return checkBody(rc, size, sum)
			}},
			{"download", func(ctx context.Context, i int) error {
				return downloadAttachment(ctx, hc, down.base, u.AccessToken, ids[i], size, sum)
			}},
		}
		for _, s := range steps {
			if err := phase(s.name, round, s.f); err != nil {
				return st, err
			}
		}
		// Uploads count against the account's quota: delete them for the
		// next round (DELETE of an upload not yet sent).
		for _, id := range ids {
			if id != "" {
				_ = up.call(ctx, "DELETE", "/api/v1/attachments/"+id, u.AccessToken, nil, nil)
			}
		}
	}
	return st, nil
}

func uploadAttachment(ctx context.Context, hc *http.Client, base, token, name string, data []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/api/v1/attachments", bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("X-Filename", name)
	res, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("upload: HTTP %d %.200s", res.StatusCode, body)
	}
	var a struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
		return "", fmt.Errorf("upload: answer %.200s: %v", body, err)
	}
	if a.Size != int64(len(data)) {
		return a.ID, fmt.Errorf("upload: server stored %d bytes of %d", a.Size, len(data))
	}
	return a.ID, nil
}

func downloadAttachment(ctx context.Context, hc *http.Client, base, token, id string, size int64, sum [32]byte) error {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/attachments/"+id, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("download %s: HTTP %d", id, res.StatusCode)
	}
	return checkBody(res.Body, size, sum)
}

// checkBody reads r whole: the bytes must be the ones sent, or the figure
// would measure something else.
func checkBody(r io.Reader, size int64, sum [32]byte) error {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	if n != size || !bytes.Equal(h.Sum(nil), sum[:]) {
		return errors.New("read back bytes that differ from the ones written")
	}
	return nil
}
