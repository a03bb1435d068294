package keyring

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
)

// Kinds of key as Loaded reports them (the operator's names too).
const (
	KindJWT  = "jwt"
	KindData = "data"
)

// LoadedKey is one key of the loaded keyring, without its material.
type LoadedKey struct {
	ID    string `json:"kid"`
	Kind  string `json:"kind"`
	State string `json:"state"`
}

// Loaded is what a server reports about the keyring it uses: enough for the
// operator to know which keys every replica can verify and decrypt with before
// it promotes one, and nothing that helps an attacker.
type Loaded struct {
	// Digest is Digest(Keys): equal on two servers exactly when they hold the
	// same keys in the same states.
	Digest string      `json:"digest"`
	Keys   []LoadedKey `json:"keys"`
	// Accepts lists what this server's keyring loader understands beyond
	// JWT and data keys. The operator adds such a part to a keyring only
	// once every ready server accepts it: an older server refuses a keyring
	// with a field it does not know (and keeps its last good one, so it
	// would miss every later rotation).
	Accepts []string `json:"accepts,omitempty"`
}

// AcceptsVAPID is the Accepts entry of servers that load VAPID keys.
const AcceptsVAPID = "vapid"

// Has reports whether the keyring holds the key id, in any state: a server
// holding a key at all can verify or decrypt with it.
func (l Loaded) Has(kid string) bool {
	return slices.ContainsFunc(l.Keys, func(k LoadedKey) bool { return k.ID == kid })
}

// Digest is the hex SHA-256 of the keys' (kind, id, state), one "kind id state"
// line each, sorted. It covers what decides a server's behaviour and nothing
// derived from key material: the digest is published in metrics, and a hash of
// the file would be a fingerprint of the secret keys (and would change with
// bookkeeping timestamps that change nothing). Ids and kinds cannot contain
// spaces or newlines (docs/keyring.md), so the encoding is unambiguous.
func Digest(keys []LoadedKey) string {
	lines := make([]string, 0, len(keys))
	for _, k := range keys {
		lines = append(lines, k.Kind+" "+k.ID+" "+k.State+"\n")
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "")))
	return hex.EncodeToString(sum[:])
}

// Loaded describes the keyring in use, sorted by kind then id.
func (k *Keyring) Loaded() Loaded {
	return loadedOf(k.cur.Load())
}

func loadedOf(s *set) Loaded {
	keys := make([]LoadedKey, 0, len(s.jwt)+len(s.data))
	for id, jk := range s.jwt {
		keys = append(keys, LoadedKey{ID: id, Kind: KindJWT, State: jk.state})
	}
	for id, dk := range s.data {
		keys = append(keys, LoadedKey{ID: id, Kind: KindData, State: dk.state})
	}
	slices.SortFunc(keys, func(a, b LoadedKey) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID)) })
	return Loaded{Digest: Digest(keys), Keys: keys, Accepts: []string{AcceptsVAPID}}
}

// reportLoaded publishes the digest of the keyring just swapped in as
// parley_keyring_loaded_info{digest} 1, dropping the previous one. The server
// reloads from one goroutine (Watch), so Reset and Set never interleave.
func (k *Keyring) reportLoaded(s *set) {
	k.metrics.KeyringLoaded.Reset()
	k.metrics.KeyringLoaded.WithLabelValues(loadedOf(s).Digest).Set(1)
}
