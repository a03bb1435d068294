package sealed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
	"github.com/parley-chat/parley/chatserver/blob/fsblob"
)

const (
	kidA = "d-2026-aaaa"
	kidB = "d-2026-bbbb" // same length as kidA: a header edit that keeps the layout
)

func testKeys(t testing.TB, active string) *StaticKeys {
	t.Helper()
	k, err := NewStaticKeys(active, map[string][]byte{
		kidA: bytes.Repeat([]byte{0xA1}, 32),
		kidB: bytes.Repeat([]byte{0xB2}, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// plaintext is what every test object holds: deterministic by size, so the
// fuzz target can tell a forged plaintext from a written one.
func plaintext(n int) []byte { return blobtest.Bytes(uint64(n), n) }

func put(t testing.TB, s blob.Store, key, id string, keys Keys, data []byte) {
	t.Helper()
	res, err := Put(context.Background(), s, key, id, keys, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("put %d bytes: %v", len(data), err)
	}
	if res.PlaintextSize != int64(len(data)) || res.KeyID != keys.ActiveDataKeyID() ||
		int64(res.Stored) != CiphertextSize(int64(len(data)), res.KeyID) {
		t.Fatalf("put %d bytes: %+v", len(data), res)
	}
}

func readAll(t testing.TB, s blob.Store, key, id string, keys Keys) ([]byte, error) {
	t.Helper()
	o, err := Open(context.Background(), s, key, id, keys, StatStoredSize)
	if err != nil {
		return nil, err
	}
	return o.ReadAll(context.Background())
}

const seg = SegmentSize

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := fsblob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys(t, kidA)
	for _, n := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 3<<20 + 5} {
		key := fmt.Sprintf("o/%d", n)
		data := plaintext(n)
		put(t, s, key, "att-1", keys, data)
		info, err := s.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != CiphertextSize(int64(n), kidA) {
			t.Fatalf("%d bytes stored as %d, CiphertextSize says %d", n, info.Size, CiphertextSize(int64(n), kidA))
		}
		// The stored bytes are not the plaintext.
		if n >= 16 {
			rc, _ := s.Get(ctx, key, 0, -1)
			raw := blobtest.Read(t, rc)
			if bytes.Contains(raw, data[:16]) {
				t.Fatalf("%d bytes: plaintext visible in the stored object", n)
			}
		}
		o, err := Open(ctx, s, key, "att-1", keys, StatStoredSize)
		if err != nil {
			t.Fatalf("open %d bytes: %v", n, err)
		}
		if o.Size() != int64(n) || o.KeyID() != kidA {
			t.Fatalf("open: size %d key %s", o.Size(), o.KeyID())
		}
		got, err := o.ReadAll(ctx)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes, %v", n, len(got), err)
		}
		// With the size from the caller's row: no Stat, same result.
		o2, err := Open(ctx, s, key, "att-1", keys, StoredSize(info.Size))
		if err != nil || o2.Size() != int64(n) {
			t.Fatalf("open with a known size: %v", err)
		}
		// The plaintext size in its place (the mistake the types guard
		// against, forced with a conversion) is refused, not misread.
		// It fails at Open or at the first read, never yields plaintext.
		if n > 0 {
			o3, err := Open(ctx, s, key, "att-1", keys, StoredSize(n))
			if err == nil {
				_, err = o3.ReadAll(ctx)
			}
			if !errors.Is(err, ErrTampered) {
				t.Fatalf("%d bytes opened with the plaintext size as the stored size: %v", n, err)
			}
		}
	}
}

// Two writes of the same id never share a key stream: fresh salt each time.
func TestFreshSaltEveryWrite(t *testing.T) {
	s := newMemStore()
	keys := testKeys(t, kidA)
	data := plaintext(1000)
	put(t, s, "a", "same-id", keys, data)
	put(t, s, "b", "same-id", keys, data)
	a, b := s.raw("a"), s.raw("b")
	if bytes.Equal(a, b) {
		t.Fatal("two writes of the same plaintext and id are identical")
	}
	ha, _ := parseHeader(a)
	hb, _ := parseHeader(b)
	if bytes.Equal(ha.salt, hb.salt) || bytes.Equal(ha.prefix, hb.prefix) {
		t.Fatal("salt or nonce prefix repeated")
	}
}

// edits builds a stored object of 3 full segments and a short one, and
// returns its bytes, its header length and the byte range of segment i.
func fourSegments(t *testing.T, s *memStore, keys Keys, key, id string) (data, raw []byte, segRange func(i int) (int, int)) {
	t.Helper()
	data = plaintext(3*seg + 100)
	put(t, s, key, id, keys, data)
	raw = s.raw(key)
	h, err := parseHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	hl := len(h.raw)
	return data, raw, func(i int) (int, int) {
		start := hl + i*(seg+TagSize)
		return start, min(start+seg+TagSize, len(raw))
	}
}

func TestTamperingRefused(t *testing.T) {
	s := newMemStore()
	keys := testKeys(t, kidA)
	data, raw, segAt := fourSegments(t, s, keys, "orig", "att-1")
	_, otherRaw, otherSeg := fourSegments(t, s, keys, "other", "att-2")
	hl, _ := segAt(0)

	flip := func(pos int) []byte {
		b := bytes.Clone(raw)
		b[pos] ^= 0x01
		return b
	}
	cut := func(b []byte, from, to int) []byte {
		return append(bytes.Clone(b[:from]), b[to:]...)
	}
	s1, e1 := segAt(1)
	s2, e2 := segAt(2)
	s3, e3 := segAt(3)
	swapped := bytes.Clone(raw)
	copy(swapped[s1:e1], raw[s2:e2])
	copy(swapped[s2:e2], raw[s1:e1])
	moved := bytes.Clone(raw)
	o1, oe1 := otherSeg(1)
	copy(moved[s1:e1], otherRaw[o1:oe1])
	kidPos := 10 // magic, version, segment size, kid length
	otherKid := bytes.Clone(raw)
	copy(otherKid[kidPos:], kidB)
	unknownKid := bytes.Clone(raw)
	copy(unknownKid[kidPos:], "d-2026-cccc")

	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"byte flipped in segment 0", flip(hl + 5), ErrTampered},
		{"byte flipped in segment 2", flip(s2 + seg/2), ErrTampered},
		{"byte flipped in the last tag", flip(len(raw) - 1), ErrTampered},
		{"salt flipped", flip(kidPos + len(kidA) + 3), ErrTampered},
		{"nonce prefix flipped", flip(hl - 1), ErrTampered},
		{"last segment cut short", raw[:len(raw)-1], ErrTampered},
		{"last segment dropped", raw[:s3], ErrTampered},
		{"middle segment dropped", cut(raw, s1, e1), ErrTampered},
		{"segments 1 and 2 swapped", swapped, ErrTampered},
		{"segment from another object", moved, ErrTampered},
		{"segment appended", append(bytes.Clone(raw), raw[s2:e2]...), ErrTampered},
		{"last segment repeated", append(bytes.Clone(raw), raw[s3:e3]...), ErrTampered},
		{"header names another known key", otherKid, ErrTampered},
		{"header names an unknown key", unknownKid, ErrUnknownKey},
		{"version changed", func() []byte { b := bytes.Clone(raw); b[4] = 2; return b }(), ErrMalformed},
		{"magic changed", flip(0), ErrMalformed},
		{"segment size changed", flip(7), ErrTampered},       // 65536 -> 65792: other boundaries
		{"segment size out of range", flip(6), ErrMalformed}, // 65536 -> 0
		{"header only", raw[:hl], ErrTampered},
		{"empty", nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.setRaw("edited", tc.raw)
			got, err := readAll(t, s, "edited", "att-1", keys)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read: %d bytes, %v; want %v", len(got), err, tc.want)
			}
			// What a streaming read yields before the error is authentic.
			if !bytes.HasPrefix(data, got) {
				t.Fatal("bytes returned before the error are not the object's")
			}
		})
	}

	// The whole object under another attachment's id.
	if _, err := readAll(t, s, "orig", "att-2", keys); !errors.Is(err, ErrTampered) {
		t.Fatalf("opened under another id: %v", err)
	}
	// A keyring that no longer holds the object's key.
	onlyB, err := NewStaticKeys(kidB, map[string][]byte{kidB: bytes.Repeat([]byte{0xB2}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, s, "orig", "att-1", onlyB); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("read after its key was removed: %v", err)
	}
	// Same id, other material (a foreign keyring).
	foreign, _ := NewStaticKeys(kidA, map[string][]byte{kidA: bytes.Repeat([]byte{0x77}, 32)})
	if _, err := readAll(t, s, "orig", "att-1", foreign); !errors.Is(err, ErrTampered) {
		t.Fatalf("read with other key material: %v", err)
	}
	// A range read of a tampered segment fails too, without the segment's bytes.
	s.setRaw("edited", flip(s2+10))
	o, err := Open(context.Background(), s, "edited", "att-1", keys, -1)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := o.NewReader(context.Background(), 2*seg+5, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrTampered) || len(got) != 0 {
		t.Fatalf("range over a tampered segment: %d bytes, %v", len(got), err)
	}
}

func TestRanges(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	keys := testKeys(t, kidA)
	data, _, _ := fourSegments(t, s, keys, "r", "att-r")
	size := int64(len(data))
	o, err := Open(ctx, s, "r", "att-r", keys, -1)
	if err != nil {
		t.Fatal(err)
	}
	offsets := []int64{0, 1, seg - 1, seg, seg + 1, 2*seg - 1, 2 * seg, 3 * seg, size - 1, size}
	lengths := []int64{0, 1, 2, seg - 1, seg, seg + 1, 2*seg + 3, -1}
	for _, off := range offsets {
		for _, n := range lengths {
			end := size
			if n >= 0 && off+n < size {
				end = off + n
			}
			want := data[off:end]
			before := s.gets
			rc, err := o.NewReader(ctx, off, n)
			if err != nil {
				t.Fatalf("range [%d,+%d): %v", off, n, err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("range [%d,+%d): %d bytes (want %d), %v", off, n, len(got), len(want), err)
			}
			if s.gets-before != 1 {
				t.Fatalf("range [%d,+%d) took %d Gets, want 1", off, n, s.gets-before)
			}
		}
	}
	for _, off := range []int64{-1, size + 1} {
		if _, err := o.NewReader(ctx, off, 1); !errors.Is(err, blob.ErrInvalidRange) {
			t.Fatalf("range at %d of %d: %v", off, size, err)
		}
	}
}

// A range fetches only the ciphertext of the segments that cover it.
func TestRangeFetchesCoveringSegments(t *testing.T) {
	ctx := context.Background()
	s := &countingStore{Store: newMemStore()}
	keys := testKeys(t, kidA)
	data := plaintext(10 * seg)
	put(t, s, "big", "att", keys, data)
	o, err := Open(ctx, s, "big", "att", keys, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ off, n, segs int64 }{
		{5*seg + 10, 100, 1},
		{5*seg - 1, 2, 2},
		{0, 3 * seg, 3},
		{9 * seg, -1, 1},
	} {
		s.read = 0
		rc, err := o.NewReader(ctx, tc.off, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		got := blobtest.Read(t, rc)
		end := int64(len(data))
		if tc.n >= 0 {
			end = tc.off + tc.n
		}
		if !bytes.Equal(got, data[tc.off:end]) {
			t.Fatalf("range [%d,+%d) differs", tc.off, tc.n)
		}
		if s.read != tc.segs*(seg+TagSize) {
			t.Fatalf("range [%d,+%d) fetched %d bytes, want %d segments (%d)", tc.off, tc.n, s.read, tc.segs, tc.segs*(seg+TagSize))
		}
	}
}

type countingStore struct {
	blob.Store
	read int64
}

func (c *countingStore) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := c.Store.Get(ctx, key, off, n)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	c.read += int64(len(b))
	return io.NopCloser(bytes.NewReader(b)), nil
}

func TestLimit(t *testing.T) {
	ctx := context.Background()
	s, err := fsblob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys := testKeys(t, kidA)
	for _, n := range []int{seg + 1, 10 * seg} {
		_, err := Put(ctx, s, "x", "att", keys, bytes.NewReader(plaintext(n)), seg)
		if !errors.Is(err, blob.ErrTooLarge) {
			t.Fatalf("%d bytes with a limit of %d: %v", n, seg, err)
		}
		if _, err := s.Stat(ctx, "x"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("a refused upload left an object: %v", err)
		}
	}
	put(t, s, "x", "att", keys, plaintext(seg)) // exactly the limit
	// An upload given up halfway leaves nothing.
	u, err := Create(ctx, s, "y", "att", keys, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Write(plaintext(3 * seg)); err != nil {
		t.Fatal(err)
	}
	u.Abort(errors.New("client went away"))
	if _, err := s.Stat(ctx, "y"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("an aborted upload left an object: %v", err)
	}
	for info, err := range s.List(ctx, "", farFuture) {
		if err != nil || info.Key != "x" {
			t.Fatalf("listing after refused uploads: %+v %v", info, err)
		}
	}
}

// Rotation: objects sealed with a retired key stay readable while the
// keyring holds it; Reseal moves one to the active key.
func TestRotationAndReseal(t *testing.T) {
	ctx := context.Background()
	s := newMemStore()
	data := plaintext(2*seg + 7)
	put(t, s, "att/1", "att-1", testKeys(t, kidA), data)
	rotated := testKeys(t, kidB) // B active, A retired
	got, err := readAll(t, s, "att/1", "att-1", rotated)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read under the retired key: %v", err)
	}
	res, err := Reseal(ctx, s, "att/1", "att/1.r1", "att-1", rotated, StatStoredSize, 1<<30)
	if err != nil || res.KeyID != kidB || res.PlaintextSize != int64(len(data)) {
		t.Fatalf("reseal: %+v, %v", res, err)
	}
	onlyB, _ := NewStaticKeys(kidB, map[string][]byte{kidB: bytes.Repeat([]byte{0xB2}, 32)})
	got, err = readAll(t, s, "att/1.r1", "att-1", onlyB)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read the resealed copy once A is gone: %v", err)
	}
	// A tampered source is not resealed into a valid object.
	raw := s.raw("att/1")
	raw[len(raw)-20] ^= 1
	s.setRaw("att/2", raw)
	if _, err := Reseal(ctx, s, "att/2", "att/2.r1", "att-1", rotated, StatStoredSize, 1<<30); !errors.Is(err, ErrTampered) {
		t.Fatalf("reseal of a tampered object: %v", err)
	}
	if _, err := s.Stat(ctx, "att/2.r1"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatal("a failed reseal left an object")
	}
}

func TestStaticKeys(t *testing.T) {
	if _, err := NewStaticKeys("x", map[string][]byte{"y": make([]byte, 32)}); err == nil {
		t.Fatal("active key missing accepted")
	}
	if _, err := NewStaticKeys("x", map[string][]byte{"x": make([]byte, 16)}); err == nil {
		t.Fatal("16-byte data key accepted")
	}
	// The blob root key is neither the data key nor the MAC key (another info).
	dk := bytes.Repeat([]byte{1}, 32)
	r, _ := RootKey(dk)
	if bytes.Equal(r, dk) {
		t.Fatal("root key equals the data key")
	}
}

// Re-encryption skips what can never open and retries the rest.
func TestUnopenable(t *testing.T) {
	for _, err := range []error{ErrTampered, ErrUnknownKey, ErrMalformed, blob.ErrNotFound, fmt.Errorf("open a/1: %w", ErrTampered)} {
		if !Unopenable(err) {
			t.Errorf("Unopenable(%v) = false", err)
		}
	}
	for _, err := range []error{nil, context.DeadlineExceeded, errors.New("connection reset"), blob.ErrTooLarge} {
		if Unopenable(err) {
			t.Errorf("Unopenable(%v) = true", err)
		}
	}
}
