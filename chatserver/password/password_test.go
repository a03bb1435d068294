package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestCheckFollowsASVS(t *testing.T) {
	cases := map[string]error{
		"short":                        ErrTooShort,
		"1234567":                      ErrTooShort,
		"password":                     ErrCommon,
		"correct horse battery staple": nil,
		"ñandú-über-straße":            nil,
		strings.Repeat("a", 64):        nil,
		strings.Repeat("é", 128):       nil, // 128 characters, 256 bytes
		strings.Repeat("a", 129):       ErrTooLong,
		"qwertyuiop":                   ErrCommon,
		"ILOVEYOU1":                    ErrCommon, // compared case-insensitively
		"lowercaseonlyisfine":          nil,       // no composition rules
	}
	for pw, want := range cases {
		if got := Check(pw); !errors.Is(got, want) {
			t.Errorf("Check(%q) = %v, want %v", pw, got, want)
		}
	}
	if got := Check("1234567"); got == nil || !strings.Contains(got.Error(), "8") {
		t.Errorf("too-short error should name the minimum: %v", got)
	}
}

func fastHasher(t *testing.T, workers int) *Hasher {
	t.Helper()
	h, err := NewHasher(workers, Params{MemoryKiB: 1024, Time: 1, Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHashVerify(t *testing.T) {
	h := fastHasher(t, 1)
	ctx := context.Background()
	enc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("hash %q is not PHC argon2id", enc)
	}
	if ok, err := h.Verify(ctx, "correct horse battery staple", enc); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, _ := h.Verify(ctx, "correct horse battery stapl", enc); ok {
		t.Fatal("wrong password verified")
	}
	enc2, _ := h.Hash(ctx, "correct horse battery staple")
	if enc == enc2 {
		t.Fatal("same salt used twice")
	}
	if _, err := h.Verify(ctx, "x", "$2a$12$bcrypt"); !errors.Is(err, ErrMalformedHash) {
		t.Fatalf("malformed hash: %v", err)
	}
	if !h.NeedsRehash("$argon2id$v=19$m=512,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g") || h.NeedsRehash(enc) {
		t.Fatal("NeedsRehash wrong")
	}
}

func TestOWASPParameters(t *testing.T) {
	if OWASP.MemoryKiB < 19*1024 || OWASP.Time < 2 || OWASP.Threads < 1 {
		t.Fatalf("OWASP params %+v below the cheat sheet's minimum", OWASP)
	}
}

// The pool bounds concurrent hashing: with one worker, a hash waits while
// another holds the worker, and a cancelled wait gives up.
func TestPoolIsBounded(t *testing.T) {
	h := fastHasher(t, 1)
	h.sem <- struct{}{} // occupy the only worker
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := h.Hash(ctx, "whatever-password"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash with the pool full: %v, want deadline exceeded", err)
	}
	<-h.sem
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.Hash(context.Background(), "whatever-password"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(h.sem) != 0 {
		t.Fatal("worker slots leaked")
	}
}
