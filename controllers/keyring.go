package controllers

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/pkg/keyringfile"
)

// RotationPolicy is what drives the key schedule.
type RotationPolicy struct {
	JWTInterval       time.Duration
	DataInterval      time.Duration
	PropagationWindow time.Duration
	AccessTokenTTL    time.Duration
	// RotateNow stages a new key of each kind now unless one is already staged.
	RotateNow bool
	// Propagated reports whether every ready chat server has loaded the staged
	// key kid. It is asked only once the key's window has passed: the window
	// stays the minimum, this only holds a promotion back. Nil promotes on the
	// window alone.
	Propagated func(kid string) bool
	// AddVAPID lets a keyring without a VAPID key get one: set only once
	// every ready chat server accepts VAPID keys (an older server refuses
	// a keyring with a part it does not know).
	AddVAPID bool
}

// VAPIDRecheck is how soon a keyring without a VAPID key, whose servers do
// not all accept one yet (a rollout under way), is looked at again.
const VAPIDRecheck = time.Minute

// PropagationRecheck is how soon a promotion held back by a server that has
// not loaded the staged key is tried again.
const PropagationRecheck = 15 * time.Second

// KeyKind names a kind of key in events and metrics.
type KeyKind string

const (
	KeyKindJWT  KeyKind = "jwt"
	KeyKindData KeyKind = "data"
	// KeyKindVAPID is the Web Push application server key (RFC 8292). It is
	// not on the rotation schedule: browsers bind each push subscription to
	// it, so replacing it drops every subscription (docs/keyring.md).
	KeyKindVAPID KeyKind = "vapid"
)

// KeyEvent is something a person should see about the keyring. It names key ids
// only, never material.
type KeyEvent struct {
	Reason  Reason // ReasonKeyStaged, ReasonKeyActivated or ReasonKeyRemoved
	Kind    KeyKind
	KeyID   string
	Message string
}

// Step is the rotation step the event records, as the step label of
// parley_operator_key_rotations_total has it: staged, activated or removed.
func (e KeyEvent) Step() string {
	return strings.ToLower(strings.TrimPrefix(string(e.Reason), "Key"))
}

// RotationResult is the outcome of one step of the key schedule.
type RotationResult struct {
	File    *keyringfile.File
	Changed bool
	Events  []KeyEvent
	// NextAt is the earliest time the schedule has something to do again.
	NextAt time.Time
}

// NewKeyring returns the first keyring of a ChatCluster: a JWT key and a data
// key, active. Its VAPID key comes once the servers run and accept one
// (ensureVAPID): the image may be a release from before Web Push.
func NewKeyring(now time.Time) (*keyringfile.File, error) {
	f, err := keyringfile.New(now)
	if err != nil {
		return nil, fmt.Errorf("generate keyring: %w", err)
	}
	return f, nil
}

// ensureVAPID gives a keyring without a VAPID key one, active at once: there
// is no subscription yet that a new key could break, and a server that has
// not loaded it answers push requests "not enabled" until it does. A keyring
// that has one keeps it.
func ensureVAPID(f *keyringfile.File, now time.Time, events *[]KeyEvent) error {
	if _, ok := f.ActiveVAPID(); ok {
		return nil
	}
	v, err := keyringfile.NewVAPIDKey(now, keyringfile.StateActive)
	if err != nil {
		return err
	}
	f.VAPID = append(f.VAPID, v)
	*events = append(*events, KeyEvent{Reason: ReasonKeyActivated, Kind: KeyKindVAPID, KeyID: v.ID,
		Message: fmt.Sprintf("added VAPID key %s: the keyring had none, so Web Push was off; it is on once the servers load it", v.ID)})
	return nil
}

// Rotate advances the key schedule of a valid keyring to now. It never returns a
// keyring the chat server would refuse: each step keeps exactly one active key per
// kind. The input is not modified.
//
// The schedule, per kind:
//   - no staged key and the active key is older than its interval (or RotateNow):
//     stage a new key;
//   - a staged key older than the propagation window that every ready server has
//     loaded (p.Propagated): promote it, retire the active key;
//   - a retired JWT key, retired longer than the access-token TTL plus the window:
//     remove it (no valid token can name it). Retired data keys stay: stored rows
//     may still be sealed with them.
//
// Times come from the keyring itself (created/activated/retired), so an operator
// restarted in the middle of a rotation resumes where the keyring says it is.
func Rotate(in *keyringfile.File, now time.Time, p RotationPolicy) (RotationResult, error) {
	f := cloneKeyring(in)
	res := RotationResult{File: f}
	now = now.UTC().Truncate(time.Second)
	next := func(t time.Time) {
		if res.NextAt.IsZero() || t.Before(res.NextAt) {
			res.NextAt = t
		}
	}
	var err error
	// JWT keys first: the order of the events is part of what tests and people see.
	if f.JWT, err = rotateKind(f.JWT, jwtKind(p), now, p, &res.Events, next); err != nil {
		return RotationResult{}, err
	}
	if f.Data, err = rotateKind(f.Data, dataKind(p), now, p, &res.Events, next); err != nil {
		return RotationResult{}, err
	}
	if _, ok := f.ActiveVAPID(); !ok {
		if !p.AddVAPID {
			next(now.Add(VAPIDRecheck))
		} else if err := ensureVAPID(f, now, &res.Events); err != nil {
			return RotationResult{}, err
		}
	}
	res.Changed = len(res.Events) > 0
	if err := f.Validate(); err != nil {
		// A bug here must never reach the servers.
		return RotationResult{}, fmt.Errorf("key rotation produced an invalid keyring: %w", err)
	}
	return res, nil
}

// keyKind is what differs between the two kinds of key; rotateKind does the rest.
type keyKind[K any] struct {
	kind     KeyKind
	title    string // "JWT key", "data key": for Event messages
	interval time.Duration
	// With removeRetired a retired key is removed retention after its retirement;
	// without it, retired keys stay until a person removes them.
	removeRetired bool
	retention     time.Duration
	// afterActivation ends the KeyActivated message: what the previous key is still for.
	afterActivation string
	afterRemoval    string
	generate        func(now time.Time, state string) (K, error)
	meta            func(k *K) keyMeta
}

// keyMeta points into one key's schedule fields, whatever its kind.
type keyMeta struct {
	id        string
	state     *string
	created   time.Time
	activated **time.Time
	retired   **time.Time
}

func jwtKind(p RotationPolicy) keyKind[keyringfile.JWTKey] {
	return keyKind[keyringfile.JWTKey]{
		kind:     KeyKindJWT,
		title:    "JWT key",
		interval: p.JWTInterval,
		// No valid access token can name a key retired longer than the token
		// lifetime, plus the window servers may take to see the retirement.
		removeRetired:   true,
		retention:       p.AccessTokenTTL + p.PropagationWindow,
		afterActivation: "the previous key verifies until tokens it signed expire",
		afterRemoval:    "every token it signed has expired",
		generate:        keyringfile.NewJWTKey,
		meta: func(k *keyringfile.JWTKey) keyMeta {
			return keyMeta{k.ID, &k.State, k.Created, &k.Activated, &k.Retired}
		},
	}
}

func dataKind(p RotationPolicy) keyKind[keyringfile.DataKey] {
	return keyKind[keyringfile.DataKey]{
		kind:     KeyKindData,
		title:    "data key",
		interval: p.DataInterval,
		// Stored rows may still be sealed with a retired data key, and the operator
		// cannot see whether any are: removal is left to a person.
		removeRetired:   false,
		afterActivation: "older keys still decrypt stored data",
		generate:        keyringfile.NewDataKey,
		meta: func(k *keyringfile.DataKey) keyMeta {
			return keyMeta{k.ID, &k.State, k.Created, &k.Activated, &k.Retired}
		},
	}
}

// rotateKind advances the schedule of one kind of key: stage, promote, remove. It
// returns the new list (keys may be modified in place: the caller passes a clone),
// appends what it did to events and reports when it is next due through next.
func rotateKind[K any](keys []K, kk keyKind[K], now time.Time, p RotationPolicy, events *[]KeyEvent, next func(time.Time)) ([]K, error) {
	emit := func(reason Reason, id, msg string) {
		*events = append(*events, KeyEvent{Reason: reason, Kind: kk.kind, KeyID: id, Message: msg})
	}
	indexOf := func(state string) int {
		return slices.IndexFunc(keys, func(k K) bool { return *kk.meta(&k).state == state })
	}

	if i := indexOf(keyringfile.StateStaged); i >= 0 {
		// Promote once every server has had the propagation window to load it
		// and reports that it has: a replica without the key would refuse the
		// tokens it signs and fail to open what it seals.
		staged := kk.meta(&keys[i])
		due := staged.created.Add(p.PropagationWindow)
		switch {
		case now.Before(due):
			next(due)
		case p.Propagated != nil && !p.Propagated(staged.id):
			next(now.Add(PropagationRecheck))
		default:
			for i := range keys {
				if m := kk.meta(&keys[i]); *m.state == keyringfile.StateActive {
					*m.state, *m.retired = keyringfile.StateRetired, ptrTime(now)
				}
			}
			*staged.state, *staged.activated = keyringfile.StateActive, ptrTime(now)
			emit(ReasonKeyActivated, staged.id, fmt.Sprintf("%s %s is now active; %s", kk.title, staged.id, kk.afterActivation))
			next(now.Add(kk.interval))
		}
	} else {
		active := kk.meta(&keys[indexOf(keyringfile.StateActive)])
		since := active.created
		if *active.activated != nil {
			since = **active.activated
		}
		// Stage early enough that the new key is active when the interval ends.
		due := since.Add(kk.interval - p.PropagationWindow)
		if p.RotateNow || !now.Before(due) {
			k, err := kk.generate(now, keyringfile.StateStaged)
			if err != nil {
				return nil, fmt.Errorf("generate %s: %w", kk.title, err)
			}
			keys = append(keys, k)
			id := kk.meta(&k).id
			emit(ReasonKeyStaged, id, fmt.Sprintf("staged %s %s; it becomes active after %s", kk.title, id, p.PropagationWindow))
			next(now.Add(p.PropagationWindow))
		} else {
			next(due)
		}
	}

	if !kk.removeRetired {
		return keys, nil
	}
	keep := keys[:0:0]
	for _, k := range keys {
		if m := kk.meta(&k); *m.state == keyringfile.StateRetired {
			retired := m.created
			if *m.retired != nil {
				retired = **m.retired
			}
			until := retired.Add(kk.retention)
			if !now.Before(until) {
				emit(ReasonKeyRemoved, m.id, fmt.Sprintf("removed retired %s %s: %s", kk.title, m.id, kk.afterRemoval))
				continue
			}
			next(until)
		}
		keep = append(keep, k)
	}
	return keep, nil
}

func ptrTime(t time.Time) *time.Time { return &t }

func cloneKeyring(in *keyringfile.File) *keyringfile.File {
	out := &keyringfile.File{Version: in.Version, JWT: slices.Clone(in.JWT), Data: slices.Clone(in.Data),
		VAPID: slices.Clone(in.VAPID)}
	return out
}
