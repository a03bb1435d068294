// Package keyringfile defines the keyring document shared by the operator, which
// writes it into the Secret <chatcluster>-keys, and the chat server, which loads it
// from the mounted folder. The format is described in docs/keyring.md; this package
// is its single implementation: types, validation, encoding and key generation.
//
// Nothing in this package logs or formats key material.
package keyringfile

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// FileName is the name of the keyring file inside the keyring folder, and the key
// of the keyring in the Secret.
const FileName = "keyring.json"

// Version is the only document version this package reads and writes.
const Version = 1

// Key states. See docs/keyring.md for what a server does with each.
const (
	StateStaged  = "staged"
	StateActive  = "active"
	StateRetired = "retired"
)

// Algorithms, pinned per kind of key.
const (
	AlgEdDSA   = "EdDSA"   // JWT keys: Ed25519
	AlgA256GCM = "A256GCM" // data keys: AES-256-GCM
	AlgES256   = "ES256"   // VAPID keys (RFC 8292): ECDSA on P-256 with SHA-256
)

// Sizes of the key material.
const (
	JWTSeedSize = 32 // ed25519.SeedSize
	DataKeySize = 32
	// VAPIDKeySize is a P-256 private scalar, big-endian (the form browsers'
	// and Web Push libraries' tools print).
	VAPIDKeySize = 32
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// File is the keyring document.
type File struct {
	Version int       `json:"version"`
	JWT     []JWTKey  `json:"jwt"`
	Data    []DataKey `json:"data"`
	// VAPID holds the Web Push application server keys (RFC 8292). Optional:
	// a keyring written before push existed has none, and its servers run
	// with push disabled. At most one is active; it signs every push.
	// Browsers bind a subscription to the public key it was made with, so a
	// new active VAPID key invalidates every subscription (docs/keyring.md).
	VAPID []VAPIDKey `json:"vapid,omitempty"`
}

// VAPIDKey is a P-256 key that identifies this server to push services.
type VAPIDKey struct {
	ID         string     `json:"id"`
	Alg        string     `json:"alg"`
	State      string     `json:"state"`
	Created    time.Time  `json:"created"`
	Activated  *time.Time `json:"activated,omitempty"`
	Retired    *time.Time `json:"retired,omitempty"`
	PrivateKey []byte     `json:"privateKey"`
}

// String hides the key material so that a stray %v never prints it.
func (k VAPIDKey) String() string {
	return fmt.Sprintf("VAPIDKey{id=%s alg=%s state=%s}", k.ID, k.Alg, k.State)
}

// GoString hides the key material from %#v as well.
func (k VAPIDKey) GoString() string { return k.String() }

// PublicKey returns the uncompressed P-256 point (65 bytes) of the key: what
// a browser's pushManager.subscribe takes as applicationServerKey.
func (k VAPIDKey) PublicKey() ([]byte, error) {
	priv, err := ecdh.P256().NewPrivateKey(k.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("keyring: vapid key %q: %w", k.ID, err)
	}
	return priv.PublicKey().Bytes(), nil
}

// JWTKey is an Ed25519 signing key, stored as its 32-byte seed.
type JWTKey struct {
	ID         string     `json:"id"`
	Alg        string     `json:"alg"`
	State      string     `json:"state"`
	Created    time.Time  `json:"created"`
	Activated  *time.Time `json:"activated,omitempty"`
	Retired    *time.Time `json:"retired,omitempty"`
	PrivateKey []byte     `json:"privateKey"`
}

// DataKey is an AES-256-GCM key for data at rest.
type DataKey struct {
	ID        string     `json:"id"`
	Alg       string     `json:"alg"`
	State     string     `json:"state"`
	Created   time.Time  `json:"created"`
	Activated *time.Time `json:"activated,omitempty"`
	Retired   *time.Time `json:"retired,omitempty"`
	Key       []byte     `json:"key"`
}

// String hides the key material so that a stray %v never prints it.
func (k JWTKey) String() string {
	return fmt.Sprintf("JWTKey{id=%s alg=%s state=%s}", k.ID, k.Alg, k.State)
}

// GoString hides the key material from %#v as well.
func (k JWTKey) GoString() string { return k.String() }

// String hides the key material so that a stray %v never prints it.
func (k DataKey) String() string {
	return fmt.Sprintf("DataKey{id=%s alg=%s state=%s}", k.ID, k.Alg, k.State)
}

// GoString hides the key material from %#v as well.
func (k DataKey) GoString() string { return k.String() }

// Parse decodes and validates a keyring document. Unknown fields are refused so
// that a typo cannot silently drop a key attribute.
func Parse(b []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keyring: decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("keyring: decode: trailing data after the document")
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks the rules of docs/keyring.md: version 1, exactly one active key
// of each kind, ids well formed and unique across the document, the pinned
// algorithm per kind, key material of the exact size and known states.
func (f *File) Validate() error {
	if f == nil {
		return errors.New("keyring: nil document")
	}
	if f.Version != Version {
		return fmt.Errorf("keyring: version %d is not supported (want %d)", f.Version, Version)
	}
	ids := make(map[string]bool, len(f.JWT)+len(f.Data)+len(f.VAPID))
	checkCommon := func(kind, id, alg, wantAlg, state string, material []byte, size int) error {
		if !idPattern.MatchString(id) {
			return fmt.Errorf("keyring: %s key id %q must be 1-64 characters of [A-Za-z0-9._-]", kind, id)
		}
		if ids[id] {
			return fmt.Errorf("keyring: duplicate key id %q", id)
		}
		ids[id] = true
		if alg != wantAlg {
			return fmt.Errorf("keyring: %s key %q: alg %q is not accepted (want %s)", kind, id, alg, wantAlg)
		}
		switch state {
		case StateStaged, StateActive, StateRetired:
		default:
			return fmt.Errorf("keyring: %s key %q: unknown state %q", kind, id, state)
		}
		if len(material) != size {
			return fmt.Errorf("keyring: %s key %q: key material is %d bytes, want %d", kind, id, len(material), size)
		}
		return nil
	}
	active := 0
	for _, k := range f.JWT {
		if err := checkCommon("jwt", k.ID, k.Alg, AlgEdDSA, k.State, k.PrivateKey, JWTSeedSize); err != nil {
			return err
		}
		if k.State == StateActive {
			active++
		}
	}
	if active != 1 {
		return fmt.Errorf("keyring: %d active jwt keys, want exactly 1", active)
	}
	active = 0
	for _, k := range f.Data {
		if err := checkCommon("data", k.ID, k.Alg, AlgA256GCM, k.State, k.Key, DataKeySize); err != nil {
			return err
		}
		if k.State == StateActive {
			active++
		}
	}
	if active != 1 {
		return fmt.Errorf("keyring: %d active data keys, want exactly 1", active)
	}
	active = 0
	for _, k := range f.VAPID {
		if err := checkCommon("vapid", k.ID, k.Alg, AlgES256, k.State, k.PrivateKey, VAPIDKeySize); err != nil {
			return err
		}
		// The scalar must be in [1, n-1]: crypto/ecdh refuses anything else.
		if _, err := k.PublicKey(); err != nil {
			return err
		}
		if k.State == StateActive {
			active++
		}
	}
	if active > 1 {
		return fmt.Errorf("keyring: %d active vapid keys, want at most 1", active)
	}
	return nil
}

// ActiveVAPID returns the active VAPID key of a valid document; false when it
// has none (push is then disabled).
func (f *File) ActiveVAPID() (VAPIDKey, bool) {
	for _, k := range f.VAPID {
		if k.State == StateActive {
			return k, true
		}
	}
	return VAPIDKey{}, false
}

// Marshal validates the document and encodes it as indented JSON. Refusing to
// encode an invalid document keeps a writer from publishing a file every reader
// would reject.
func (f *File) Marshal() ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("keyring: encode: %w", err)
	}
	return append(b, '\n'), nil
}

// ActiveJWT returns the active JWT key of a valid document.
func (f *File) ActiveJWT() (JWTKey, bool) {
	for _, k := range f.JWT {
		if k.State == StateActive {
			return k, true
		}
	}
	return JWTKey{}, false
}

// ActiveData returns the active data key of a valid document.
func (f *File) ActiveData() (DataKey, bool) {
	for _, k := range f.Data {
		if k.State == StateActive {
			return k, true
		}
	}
	return DataKey{}, false
}

// New returns a valid document with one freshly generated active key of each
// required kind (JWT and data). A VAPID key is optional and added by the
// caller (NewVAPIDKey): code that copies a keyring must carry File.VAPID.
func New(now time.Time) (*File, error) {
	j, err := NewJWTKey(now, StateActive)
	if err != nil {
		return nil, err
	}
	d, err := NewDataKey(now, StateActive)
	if err != nil {
		return nil, err
	}
	return &File{Version: Version, JWT: []JWTKey{j}, Data: []DataKey{d}}, nil
}

// NewVAPIDKey generates a P-256 key with crypto/rand and a random id "v-<hex>".
// An active key gets its activation time set to now.
func NewVAPIDKey(now time.Time, state string) (VAPIDKey, error) {
	id, err := newID("v-")
	if err != nil {
		return VAPIDKey{}, err
	}
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return VAPIDKey{}, fmt.Errorf("keyring: generate vapid key: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	k := VAPIDKey{ID: id, Alg: AlgES256, State: state, Created: now, PrivateKey: priv.Bytes()}
	if state == StateActive {
		k.Activated = &now
	}
	return k, nil
}

// NewJWTKey generates an Ed25519 seed with crypto/rand and a random id "j-<hex>".
// An active key gets its activation time set to now.
func NewJWTKey(now time.Time, state string) (JWTKey, error) {
	id, err := newID("j-")
	if err != nil {
		return JWTKey{}, err
	}
	seed := make([]byte, JWTSeedSize)
	if _, err := rand.Read(seed); err != nil {
		return JWTKey{}, fmt.Errorf("keyring: generate jwt key: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	k := JWTKey{ID: id, Alg: AlgEdDSA, State: state, Created: now, PrivateKey: seed}
	if state == StateActive {
		k.Activated = &now
	}
	return k, nil
}

// NewDataKey generates a 32-byte AES key with crypto/rand and a random id "d-<hex>".
// An active key gets its activation time set to now.
func NewDataKey(now time.Time, state string) (DataKey, error) {
	id, err := newID("d-")
	if err != nil {
		return DataKey{}, err
	}
	key := make([]byte, DataKeySize)
	if _, err := rand.Read(key); err != nil {
		return DataKey{}, fmt.Errorf("keyring: generate data key: %w", err)
	}
	now = now.UTC().Truncate(time.Second)
	k := DataKey{ID: id, Alg: AlgA256GCM, State: state, Created: now, Key: key}
	if state == StateActive {
		k.Activated = &now
	}
	return k, nil
}

// newID returns prefix + 16 hex characters: 64 random bits make collisions
// between the few keys of one document practically impossible.
func newID(prefix string) (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("keyring: generate key id: %w", err)
	}
	return prefix + hex.EncodeToString(b), nil
}
