package avatars

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/jpeg"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob/fsblob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/chatserver/store"
)

// memStore holds users in memory: just what Service needs.
type memStore struct {
	mu    sync.Mutex
	users map[string]*store.User
}

func (m *memStore) UserByID(_ context.Context, id string) (*store.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return nil, store.ErrNotFound
	}
	c := *u
	return &c, nil
}

func (m *memStore) SetAvatar(_ context.Context, id string, next store.Avatar) (store.Avatar, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[id]
	if !ok {
		return store.Avatar{}, store.ErrNotFound
	}
	prev := u.Avatar
	u.Avatar = next
	return prev, nil
}

func (m *memStore) AvatarsSealedWith(context.Context, string, int) ([]store.User, error) {
	return nil, nil
}
func (m *memStore) ResealAvatar(context.Context, string, string, store.Avatar) (bool, error) {
	return false, nil
}

// halves is a w×h JPEG, left half red and right half blue, with an EXIF
// orientation segment when orientation > 1.
func halves(t *testing.T, w, h, orientation int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{220, 0, 0, 255}
			if x >= w/2 {
				c = color.RGBA{0, 0, 220, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	if orientation <= 1 {
		return b
	}
	seg := []byte{0xFF, 0xE1, 0, 34}
	seg = append(seg, "Exif\x00\x00MM\x00\x2A\x00\x00\x00\x08\x00\x01"...)
	seg = append(seg, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, byte(orientation), 0, 0, 0, 0, 0, 0)
	return append(append([]byte{0xFF, 0xD8}, seg...), b[2:]...)
}

func isRed(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 > 150 && g>>8 < 60 && b>>8 < 60
}

func isBlue(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r>>8 < 60 && g>>8 < 60 && b>>8 > 150
}

// Square crops the centre and turns the result upright by the EXIF
// orientation: 6 (turn 90° clockwise) puts what was left on top.
func TestSquareCropsAndTurnsUpright(t *testing.T) {
	for _, tc := range []struct {
		orientation int
		a, b        image.Point // a is red, b blue
	}{
		{1, image.Pt(20, 128), image.Pt(235, 128)},
		{6, image.Pt(128, 20), image.Pt(128, 235)},
	} {
		out, err := Square(halves(t, 640, 320, tc.orientation), "image/jpeg")
		if err != nil {
			t.Fatal(err)
		}
		img, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil || img.Bounds() != image.Rect(0, 0, Size, Size) {
			t.Fatalf("orientation %d: %v %v", tc.orientation, err, img.Bounds())
		}
		if !isRed(img.At(tc.a.X, tc.a.Y)) || !isBlue(img.At(tc.b.X, tc.b.Y)) {
			t.Errorf("orientation %d: %v at %v, %v at %v", tc.orientation, img.At(tc.a.X, tc.a.Y), tc.a, img.At(tc.b.X, tc.b.Y), tc.b)
		}
		if bytes.Contains(out, []byte("Exif")) {
			t.Errorf("orientation %d: EXIF written", tc.orientation)
		}
	}
}

// Collect deletes photo blobs older than an hour that no row names, and
// nothing else.
func TestCollectDeletesOrphans(t *testing.T) {
	ctx := context.Background()
	blobs, err := fsblob.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sealed.NewStaticKeys("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	st := &memStore{users: map[string]*store.User{"u_a": {ID: "u_a"}}}
	now := time.Now()
	s := New(Config{Store: st, Blobs: blobs, Keys: keys, MaxPixels: 50_000_000, Now: func() time.Time { return now }})
	u, err := s.Set(ctx, "u_a", bytes.NewReader(halves(t, 40, 40, 1)), -1)
	if err != nil || u.Avatar.Version == "" {
		t.Fatalf("Set: %v %+v", err, u)
	}
	for _, k := range []string{"p/u_a/orphan-1", "p/u_gone/x-1", "a/u_a/attachment"} {
		if _, err := blobs.Put(ctx, k, strings.NewReader("x"), 10); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Collect(ctx); err != nil || n != 0 {
		t.Fatalf("Collect of fresh blobs: %d %v", n, err)
	}
	now = now.Add(2 * time.Hour)
	n, err := s.Collect(ctx)
	if err != nil || n != 2 {
		t.Fatalf("Collect: %d %v", n, err)
	}
	var left []string
	for info, err := range blobs.List(ctx, "", now.Add(time.Hour)) {
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, info.Key)
	}
	if len(left) != 2 || !(left[0] == u.Avatar.BlobKey || left[1] == u.Avatar.BlobKey) {
		t.Fatalf("left %v, want the named photo and the attachment", left)
	}
	if p, err := s.Open(ctx, "u_a"); err != nil || p.Version != u.Avatar.Version {
		t.Fatalf("Open after Collect: %v", err)
	}
}
