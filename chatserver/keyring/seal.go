package keyring

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
)

const sealPrefix = "v1."

// sealEncoding reads only the form Seal writes. The default decoder also takes
// other spellings of the same bytes (spare bits set in the last character, CR
// or LF anywhere, which Strict still skips: hence the check in Open), so one
// ciphertext would have many stored forms.
var sealEncoding = base64.RawURLEncoding.Strict()

// Seal encrypts plaintext with the active data key under associated data aad
// (which binds the ciphertext to its row) and returns
// "v1.<kid>.<base64url(nonce|ciphertext|tag)>". Every call draws a fresh
// 96-bit random nonce.
func (k *Keyring) Seal(ctx context.Context, aad, plaintext []byte) (sealed, keyID string, err error) {
	dk := k.cur.Load().dataActive
	if err := k.spend(ctx, dk.id); err != nil {
		return "", "", err
	}
	ns := dk.aead.NonceSize()
	buf := make([]byte, ns, ns+len(plaintext)+dk.aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", "", fmt.Errorf("keyring: nonce: %w", err)
	}
	buf = dk.aead.Seal(buf, buf[:ns], plaintext, aad)
	var b strings.Builder
	b.Grow(len(sealPrefix) + len(dk.id) + 1 + base64.RawURLEncoding.EncodedLen(len(buf)))
	b.WriteString(sealPrefix)
	b.WriteString(dk.id)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(buf))
	return b.String(), dk.id, nil
}

// Open decrypts a value made by Seal with the same aad. It fails with
// ErrMalformed, ErrUnknownKey or ErrTampered (wrong aad, altered or truncated
// ciphertext): never with partial plaintext.
func (k *Keyring) Open(sealed string, aad []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, ErrMalformed
	}
	kid, body, ok := strings.Cut(rest, ".")
	if !ok || kid == "" {
		return nil, ErrMalformed
	}
	dk, ok := k.cur.Load().data[kid]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	raw, err := sealEncoding.DecodeString(body)
	if err != nil || strings.ContainsAny(body, "\r\n") {
		return nil, ErrMalformed
	}
	ns := dk.aead.NonceSize()
	if len(raw) < ns+dk.aead.Overhead() {
		return nil, ErrMalformed
	}
	pt, err := dk.aead.Open(nil, raw[:ns], raw[ns:], aad)
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

// KeyID returns the key id a sealed value names, or "" when malformed.
func KeyID(sealed string) string {
	rest, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return ""
	}
	kid, _, _ := strings.Cut(rest, ".")
	return kid
}

// spend accounts for one seal with key id, reserving a new block of seals in
// the store when this process's reservation is used up.
func (k *Keyring) spend(ctx context.Context, id string) error {
	if k.reserver == nil {
		return nil
	}
	k.budgetMu.Lock()
	b, ok := k.budgets[id]
	if !ok {
		b = &budget{}
		k.budgets[id] = b
	}
	k.budgetMu.Unlock()

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.reserved == 0 {
		total, err := k.reserver.ReserveSeals(ctx, id, sealBlock)
		if err != nil {
			return fmt.Errorf("keyring: reserve seals: %w", err)
		}
		b.reserved = sealBlock
		k.metrics.KeyringSeals.WithLabelValues(id).Set(float64(total))
		if total >= RotationWarnSeals {
			k.metrics.KeyringRotationDue.WithLabelValues(id).Set(1)
			k.log.Warn("data key has done 2^30 seals: rotate it", "kid", id, "seals", total)
		}
	}
	b.reserved--
	return nil
}
