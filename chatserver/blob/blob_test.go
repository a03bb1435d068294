package blob_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/blobtest"
)

func TestValidateKey(t *testing.T) {
	for _, k := range []string{"a", "att/01J9/v1", "x.y_z-0", strings.Repeat("s", blob.MaxSegment), "a/b..c"} {
		if err := blob.ValidateKey(k); err != nil {
			t.Errorf("ValidateKey(%q): %v", k, err)
		}
	}
	for _, k := range blobtest.BadKeys {
		if err := blob.ValidateKey(k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q): %v, want ErrInvalidKey", k, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, p := range []string{"", "a", "a/", "a/b", "att/01J"} {
		if err := blob.ValidatePrefix(p); err != nil {
			t.Errorf("ValidatePrefix(%q): %v", p, err)
		}
	}
	for _, p := range []string{"/", "../", "a//", "a/../", ".x", "a\x00", `a\`, strings.Repeat("a", blob.MaxKey+1)} {
		if err := blob.ValidatePrefix(p); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("ValidatePrefix(%q): %v, want ErrInvalidKey", p, err)
		}
	}
}

func TestLimitReader(t *testing.T) {
	for _, tc := range []struct {
		n, limit int
		tooLarge bool
	}{{0, 0, false}, {1, 0, true}, {10, 10, false}, {11, 10, true}, {1 << 20, 1<<20 - 1, true}} {
		b, err := io.ReadAll(blob.LimitReader(strings.NewReader(strings.Repeat("x", tc.n)), int64(tc.limit)))
		if tc.tooLarge != errors.Is(err, blob.ErrTooLarge) {
			t.Errorf("%d bytes, limit %d: %v", tc.n, tc.limit, err)
		}
		if !tc.tooLarge && (err != nil || len(b) != tc.n) {
			t.Errorf("%d bytes, limit %d: read %d, %v", tc.n, tc.limit, len(b), err)
		}
	}
}
