package keyring

import "encoding/base64"

// VAPID is the active Web Push application server key (RFC 8292). Push
// services check every push against the public key a browser subscribed
// with, so a different active key invalidates existing subscriptions.
type VAPID struct {
	ID        string
	PublicKey []byte // uncompressed P-256 point, 65 bytes
	private   []byte // P-256 scalar, 32 bytes
}

// PublicKeyBase64 is the public key as browsers take it
// (applicationServerKey) and as the VAPID "k" parameter carries it:
// base64url without padding.
func (v *VAPID) PublicKeyBase64() string { return base64.RawURLEncoding.EncodeToString(v.PublicKey) }

// PrivateKeyForWebPush returns the private scalar, base64url, in the form the
// Web Push library (github.com/SherClockHolmes/webpush-go) signs VAPID JWTs
// with. It is the one place key material leaves this package: the library
// signs the JWT itself and offers no signer hook. Only package push calls it,
// and never logs it.
func (v *VAPID) PrivateKeyForWebPush() string { return base64.RawURLEncoding.EncodeToString(v.private) }

// String hides the private key.
func (v *VAPID) String() string { return "VAPID{id=" + v.ID + "}" }

// VAPID returns the active VAPID key, or nil when the keyring has none (an
// older keyring: push is disabled, everything else works).
func (k *Keyring) VAPID() *VAPID { return k.cur.Load().vapid }

func (s *set) vapidID() string {
	if s.vapid == nil {
		return ""
	}
	return s.vapid.ID
}
