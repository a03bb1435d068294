package sealed

import (
	"bytes"
	"context"
	"io"
	"iter"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
)

// memStore is a blob.Store in memory, for the fuzz target and for tests
// that edit stored bytes. It passes the conformance suite, so what the
// sealed tests see is what the real engines do.
type memStore struct {
	mu   sync.Mutex
	objs map[string]memObj
	gets int // Get calls, to check a range costs one
}

type memObj struct {
	data []byte
	mod  time.Time
}

func newMemStore() *memStore { return &memStore{objs: map[string]memObj{}} }

func (m *memStore) Put(ctx context.Context, key string, r io.Reader, limit int64) (int64, error) {
	if err := blob.ValidateKey(key); err != nil {
		return 0, err
	}
	if limit < 0 {
		return 0, io.ErrShortWrite
	}
	b, err := io.ReadAll(blob.LimitReader(r, limit))
	if err != nil {
		return 0, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = memObj{b, time.Now()}
	return int64(len(b)), nil
}

func (m *memStore) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	if err := blob.ValidateKey(key); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	o, ok := m.objs[key]
	if !ok {
		return nil, blob.ErrNotFound
	}
	if off < 0 || off > int64(len(o.data)) {
		return nil, blob.ErrInvalidRange
	}
	end := int64(len(o.data))
	if length >= 0 && length < end-off {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

func (m *memStore) Stat(ctx context.Context, key string) (blob.Info, error) {
	if err := blob.ValidateKey(key); err != nil {
		return blob.Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.objs[key]
	if !ok {
		return blob.Info{}, blob.ErrNotFound
	}
	return blob.Info{Key: key, Size: int64(len(o.data)), ModTime: o.mod}, nil
}

func (m *memStore) Delete(ctx context.Context, key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.objs, key)
	return nil
}

func (m *memStore) List(ctx context.Context, prefix string, before time.Time) iter.Seq2[blob.Info, error] {
	return func(yield func(blob.Info, error) bool) {
		if err := blob.ValidatePrefix(prefix); err != nil {
			yield(blob.Info{}, err)
			return
		}
		m.mu.Lock()
		var out []blob.Info
		for k, o := range m.objs {
			if strings.HasPrefix(k, prefix) && o.mod.Before(before) {
				out = append(out, blob.Info{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
			}
		}
		m.mu.Unlock()
		for _, i := range out {
			if !yield(i, nil) {
				return
			}
		}
	}
}

func (m *memStore) raw(key string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.objs[key].data)
}

func (m *memStore) setRaw(key string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[key] = memObj{bytes.Clone(b), time.Now()}
}

func TestMemStoreConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newMemStore() })
}
