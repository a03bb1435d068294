// Package password hashes and checks passwords: argon2id with OWASP's
// parameters, run in a bounded pool so a login flood cannot starve the rest of
// the server, and the OWASP ASVS length rules with a common-password list.
//
// common-passwords.txt holds the 10,000 most common passwords of 8 or more
// characters from SecLists' "10 million password list" (OWASP SecLists,
// CC BY-SA 3.0), lower-cased.
package password

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/parley-chat/parley/chatserver/metrics"
)

// Length rules (characters, i.e. Unicode code points).
const (
	MinLength = 8
	MaxLength = 128
)

// Policy errors.
var (
	ErrTooShort = fmt.Errorf("password must be at least %d characters", MinLength)
	ErrTooLong  = fmt.Errorf("password must be at most %d characters", MaxLength)
	ErrCommon   = errors.New("password is too common; choose another")
	// ErrMalformedHash: a stored hash this package cannot read.
	ErrMalformedHash = errors.New("password: malformed hash")
)

//go:embed common-passwords.txt
var commonList string

var common = sync.OnceValue(func() map[string]struct{} {
	m := make(map[string]struct{}, 10000)
	sc := bufio.NewScanner(strings.NewReader(commonList))
	for sc.Scan() {
		m[sc.Text()] = struct{}{}
	}
	return m
})

// Check applies the password rules: length only, no composition rules, and
// not on the common list (compared case-insensitively).
func Check(pw string) error {
	n := utf8.RuneCountInString(pw)
	if n < MinLength {
		return ErrTooShort
	}
	if n > MaxLength {
		return ErrTooLong
	}
	if _, bad := common()[strings.ToLower(pw)]; bad {
		return ErrCommon
	}
	return nil
}

// Params are argon2id cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
}

// OWASP is the OWASP Password Storage Cheat Sheet's argon2id minimum:
// m=19 MiB, t=2, p=1.
var OWASP = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Hasher hashes and verifies passwords on at most Workers goroutines at once.
type Hasher struct {
	params  Params
	sem     chan struct{}
	metrics *metrics.Metrics
	dummy   string // a hash to verify against for unknown accounts
}

// NewHasher returns a Hasher with a pool of workers (at least 1).
func NewHasher(workers int, p Params, m *metrics.Metrics) (*Hasher, error) {
	if workers < 1 {
		workers = 1
	}
	h := &Hasher{params: p, sem: make(chan struct{}, workers), metrics: metrics.OrNew(m)}
	d, err := h.hash([]byte("parley-dummy-password"))
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

func (h *Hasher) acquire(ctx context.Context) error {
	start := time.Now()
	select {
	case h.sem <- struct{}{}:
		h.metrics.PasswordHashWait.Observe(time.Since(start).Seconds())
		return nil
	case <-ctx.Done():
		return fmt.Errorf("password: waiting for a hashing worker: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.sem }

// Hash returns a PHC-format argon2id hash of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return h.hash([]byte(pw))
}

func (h *Hasher) hash(pw []byte) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password: salt: %w", err)
	}
	key := argon2.IDKey(pw, salt, h.params.Time, h.params.MemoryKiB, h.params.Threads, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded, in constant time. The parameters
// come from the stored hash, so older hashes keep verifying after a change.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.MemoryKiB, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// VerifyDummy spends the time of a real verification and returns false: used
// for unknown accounts so that timing does not reveal which accounts exist.
func (h *Hasher) VerifyDummy(ctx context.Context, pw string) {
	_, _ = h.Verify(ctx, pw, h.dummy)
}

// NeedsRehash reports whether encoded was made with other parameters.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decode(encoded)
	return err != nil || p != h.params
}

func decode(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) == 0 {
		return Params{}, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}
