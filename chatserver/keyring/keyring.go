// Package keyring is the only package that touches key material. It loads the
// keyring document (docs/keyring.md) from a folder, reloads it when it changes,
// seals and opens private text with AES-256-GCM, and signs and verifies JWTs
// with Ed25519 keys whose algorithm is pinned.
package keyring

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// Errors returned by Open and Load.
var (
	ErrMalformed  = errors.New("keyring: malformed ciphertext")
	ErrUnknownKey = errors.New("keyring: unknown key id")
	ErrTampered   = errors.New("keyring: ciphertext failed authentication")
)

// RotationWarnSeals is where a data key is reported as due for rotation, far
// below the 2^32 random-nonce limit of NIST SP 800-38D.
const RotationWarnSeals = 1 << 30

// sealBlock is how many seals a process reserves in the store at a time. A
// crash wastes at most one block: the persisted count only over-counts.
const sealBlock = 1024

// SealReserver persists seal counts (store.Store implements it).
type SealReserver interface {
	ReserveSeals(ctx context.Context, keyID string, n int64) (int64, error)
}

type jwtKey struct {
	id    string
	state string
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
}

type dataKey struct {
	id    string
	state string
	aead  cipher.AEAD
	mac   []byte // HMAC-SHA256 key derived from the data key (mac.go)
	blob  []byte // root of the per-object keys of sealed blobs (blob.go)
}

// set is one immutable, validated keyring.
type set struct {
	digest     [32]byte
	jwt        map[string]*jwtKey
	jwtActive  *jwtKey
	data       map[string]*dataKey
	dataActive *dataKey
	vapid      *VAPID // nil: no active VAPID key, push disabled
}

// budget tracks seals done against the reserved, persisted count of one key.
type budget struct {
	mu       sync.Mutex
	reserved int64 // seals this process may still do before reserving again
}

// Keyring holds the current key set. It is safe for concurrent use.
type Keyring struct {
	dir     string
	cur     atomic.Pointer[set]
	log     *slog.Logger
	metrics *metrics.Metrics

	reserver SealReserver
	budgetMu sync.Mutex
	budgets  map[string]*budget
}

// Options configure a Keyring.
type Options struct {
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	Reserver SealReserver // nil: seal counts are not persisted (tests of pure logic)
}

// Load reads dir/keyring.json.
func Load(dir string, opts Options) (*Keyring, error) {
	k := &Keyring{dir: dir, log: opts.Logger, metrics: metrics.OrNew(opts.Metrics), reserver: opts.Reserver, budgets: map[string]*budget{}}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	raw, err := os.ReadFile(filepath.Join(dir, keyringfile.FileName))
	if err != nil {
		return nil, fmt.Errorf("keyring: read: %w", err)
	}
	s, err := build(raw)
	if err != nil {
		return nil, err
	}
	k.cur.Store(s)
	k.reportLoaded(s)
	k.log.Info("keyring loaded", "jwt_active", s.jwtActive.id, "data_active", s.dataActive.id,
		"jwt_keys", ids(s.jwt), "data_keys", ids(s.data), "vapid_active", s.vapidID())
	if s.vapid == nil {
		k.log.Warn("the keyring has no active VAPID key: Web Push notifications are disabled " +
			"(add one to the keyring, see docs/keyring.md; everything else works)")
	}
	return k, nil
}

// LoadOrGenerate loads dir/keyring.json, first generating one (one active key
// of each kind, file mode 0600) when the folder has none. For the embedded default.
func LoadOrGenerate(dir string, opts Options) (*Keyring, error) {
	path := filepath.Join(dir, keyringfile.FileName)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := generate(dir); err != nil {
			return nil, err
		}
		if opts.Logger != nil {
			opts.Logger.Info("keyring generated", "path", path)
		}
	}
	return Load(dir, opts)
}

func generate(dir string) error {
	now := time.Now().UTC()
	jk, err := keyringfile.NewJWTKey(now, keyringfile.StateActive)
	if err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	dk, err := keyringfile.NewDataKey(now, keyringfile.StateActive)
	if err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	vk, err := keyringfile.NewVAPIDKey(now, keyringfile.StateActive)
	if err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	f := &keyringfile.File{Version: 1, JWT: []keyringfile.JWTKey{jk}, Data: []keyringfile.DataKey{dk},
		VAPID: []keyringfile.VAPIDKey{vk}}
	raw, err := f.Marshal()
	if err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".keyring-*.json")
	if err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(raw); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: generate: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("keyring: generate: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	// Link, not rename: a concurrent first start must not replace a keyring
	// another process already uses.
	if err := os.Link(tmp.Name(), filepath.Join(dir, keyringfile.FileName)); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("keyring: generate: %w", err)
	}
	return nil
}

func build(raw []byte) (*set, error) {
	f, err := keyringfile.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	s := &set{digest: sha256.Sum256(raw), jwt: map[string]*jwtKey{}, data: map[string]*dataKey{}}
	for _, k := range f.JWT {
		priv := ed25519.NewKeyFromSeed(k.PrivateKey)
		jk := &jwtKey{id: k.ID, state: k.State, priv: priv, pub: priv.Public().(ed25519.PublicKey)}
		s.jwt[k.ID] = jk
		if k.State == keyringfile.StateActive {
			s.jwtActive = jk
		}
	}
	for _, k := range f.Data {
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: data key %s: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block) // 96-bit nonce, 128-bit tag
		if err != nil {
			return nil, fmt.Errorf("keyring: data key %s: %w", k.ID, err)
		}
		mac, err := deriveMACKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: data key %s: %w", k.ID, err)
		}
		blob, err := sealed.RootKey(k.Key)
		if err != nil {
			return nil, fmt.Errorf("keyring: data key %s: %w", k.ID, err)
		}
		dk := &dataKey{id: k.ID, state: k.State, aead: aead, mac: mac, blob: blob}
		s.data[k.ID] = dk
		if k.State == keyringfile.StateActive {
			s.dataActive = dk
		}
	}
	if v, ok := f.ActiveVAPID(); ok {
		pub, err := v.PublicKey()
		if err != nil {
			return nil, err
		}
		s.vapid = &VAPID{ID: v.ID, PublicKey: pub, private: bytes.Clone(v.PrivateKey)}
	}
	if s.jwtActive == nil || s.dataActive == nil {
		// Parse enforces this; a second check keeps a nil key off the hot path.
		return nil, errors.New("keyring: no active key")
	}
	return s, nil
}

// ErrForeignKeyring is returned (wrapped) by Reload for a keyring that does
// not continue the loaded one.
var ErrForeignKeyring = errors.New("keyring: the new keyring does not hold the keys in use")

// continues refuses a keyring that drops a key in use: the active JWT key
// (tokens signed a moment ago) or the active data key, or that changes any
// key's material under the same id. Rotation never does either (a key is
// retired before it is removed); a restored backup of another cluster or a
// regenerated Secret does, and loading it would make every stored message
// unreadable: the last good keyring stays until a person restarts the server
// on purpose.
func continues(old, next *set) error {
	if _, ok := next.jwt[old.jwtActive.id]; !ok {
		return fmt.Errorf("%w: active JWT key %s is missing", ErrForeignKeyring, old.jwtActive.id)
	}
	if _, ok := next.data[old.dataActive.id]; !ok {
		return fmt.Errorf("%w: active data key %s is missing", ErrForeignKeyring, old.dataActive.id)
	}
	for id, k := range next.jwt {
		if o, ok := old.jwt[id]; ok && !o.pub.Equal(k.pub) {
			return fmt.Errorf("%w: JWT key %s has other material", ErrForeignKeyring, id)
		}
	}
	for id, k := range next.data {
		if o, ok := old.data[id]; ok && !bytes.Equal(o.mac, k.mac) {
			return fmt.Errorf("%w: data key %s has other material", ErrForeignKeyring, id)
		}
	}
	return nil
}

func ids[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Reload re-reads the file and swaps it in when it changed and is valid. An
// invalid file is refused and the previous keyring stays.
func (k *Keyring) Reload() (changed bool, err error) {
	raw, err := os.ReadFile(filepath.Join(k.dir, keyringfile.FileName))
	if err != nil {
		k.countReload("error")
		return false, fmt.Errorf("keyring: reload: %w", err)
	}
	old := k.cur.Load()
	if d := sha256.Sum256(raw); bytes.Equal(d[:], old.digest[:]) {
		return false, nil
	}
	s, err := build(raw)
	if err != nil {
		k.countReload("error")
		return false, err
	}
	if err := continues(old, s); err != nil {
		k.countReload("error")
		return false, err
	}
	k.cur.Store(s)
	k.reportLoaded(s)
	k.countReload("ok")
	k.log.Info("keyring reloaded", "jwt_active", s.jwtActive.id, "data_active", s.dataActive.id,
		"jwt_keys", ids(s.jwt), "data_keys", ids(s.data), "vapid_active", s.vapidID())
	if old.vapidID() != s.vapidID() {
		// Deliberate: browsers bind subscriptions to the old public key.
		k.log.Warn("the active VAPID key changed: existing push subscriptions stop working until clients re-subscribe",
			"from", old.vapidID(), "to", s.vapidID())
	}
	return true, nil
}

func (k *Keyring) countReload(result string) {
	k.metrics.KeyringReloads.WithLabelValues(result).Inc()
}

// Watch reloads the keyring every interval until ctx ends. Polling, rather than
// file events, follows Kubernetes' atomic symlink swaps of Secret volumes.
func (k *Keyring) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := k.Reload(); err != nil {
				k.log.Error("keyring reload refused; keeping the previous keyring", "err", err)
			}
		}
	}
}

// ActiveIDs returns the ids of the active JWT and data keys.
func (k *Keyring) ActiveIDs() (jwtKID, dataKID string) {
	s := k.cur.Load()
	return s.jwtActive.id, s.dataActive.id
}
