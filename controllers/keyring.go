package controllers

import (
	"fmt"
	"slices"
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
}

// KeyEvent is something a person should see about the keyring. It names key ids
// only, never material.
type KeyEvent struct {
	Reason  string // KeyStaged, KeyActivated, KeyRemoved
	Kind    string // jwt or data
	KeyID   string
	Message string
}

// RotationResult is the outcome of one step of the key schedule.
type RotationResult struct {
	File    *keyringfile.File
	Changed bool
	Events  []KeyEvent
	// NextAt is the earliest time the schedule has something to do again.
	NextAt time.Time
}

// NewKeyring returns the first keyring of a ChatCluster.
func NewKeyring(now time.Time) (*keyringfile.File, error) {
	f, err := keyringfile.New(now)
	if err != nil {
		return nil, fmt.Errorf("generate keyring: %w", err)
	}
	return f, nil
}

// keySlot abstracts over the two kinds of key so the schedule is written once.
type keySlot struct {
	id        string
	state     string
	created   time.Time
	activated *time.Time
	retired   *time.Time
}

func jwtSlots(f *keyringfile.File) []keySlot {
	out := make([]keySlot, len(f.JWT))
	for i, k := range f.JWT {
		out[i] = keySlot{k.ID, k.State, k.Created, k.Activated, k.Retired}
	}
	return out
}

func dataSlots(f *keyringfile.File) []keySlot {
	out := make([]keySlot, len(f.Data))
	for i, k := range f.Data {
		out[i] = keySlot{k.ID, k.State, k.Created, k.Activated, k.Retired}
	}
	return out
}

// Rotate advances the key schedule of a valid keyring to now. It never returns a
// keyring the chat server would refuse: each step keeps exactly one active key per
// kind. The input is not modified.
//
// The schedule, per kind:
//   - no staged key and the active key is older than its interval (or RotateNow):
//     stage a new key;
//   - a staged key older than the propagation window: promote it, retire the active key;
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

	// JWT keys.
	{
		slots := jwtSlots(f)
		action, idx := plan(slots, now, p.JWTInterval, p.PropagationWindow, p.RotateNow, next)
		switch action {
		case actStage:
			k, err := keyringfile.NewJWTKey(now, keyringfile.StateStaged)
			if err != nil {
				return RotationResult{}, err
			}
			f.JWT = append(f.JWT, k)
			res.Events = append(res.Events, KeyEvent{"KeyStaged", "jwt", k.ID, fmt.Sprintf("staged JWT key %s; it becomes active after %s", k.ID, p.PropagationWindow)})
			next(now.Add(p.PropagationWindow))
		case actPromote:
			for i := range f.JWT {
				if f.JWT[i].State == keyringfile.StateActive {
					f.JWT[i].State, f.JWT[i].Retired = keyringfile.StateRetired, ptrTime(now)
				}
			}
			f.JWT[idx].State, f.JWT[idx].Activated = keyringfile.StateActive, ptrTime(now)
			res.Events = append(res.Events, KeyEvent{"KeyActivated", "jwt", f.JWT[idx].ID, fmt.Sprintf("JWT key %s is now active; the previous key verifies until tokens it signed expire", f.JWT[idx].ID)})
			next(now.Add(p.JWTInterval))
			next(now.Add(p.AccessTokenTTL + p.PropagationWindow))
		}
		// Remove retired JWT keys nobody can present any more.
		keep := f.JWT[:0:0]
		for _, k := range f.JWT {
			if k.State == keyringfile.StateRetired {
				retired := k.Created
				if k.Retired != nil {
					retired = *k.Retired
				}
				until := retired.Add(p.AccessTokenTTL + p.PropagationWindow)
				if !now.Before(until) {
					res.Events = append(res.Events, KeyEvent{"KeyRemoved", "jwt", k.ID, fmt.Sprintf("removed retired JWT key %s: every token it signed has expired", k.ID)})
					continue
				}
				next(until)
			}
			keep = append(keep, k)
		}
		f.JWT = keep
	}

	// Data keys.
	{
		slots := dataSlots(f)
		action, idx := plan(slots, now, p.DataInterval, p.PropagationWindow, p.RotateNow, next)
		switch action {
		case actStage:
			k, err := keyringfile.NewDataKey(now, keyringfile.StateStaged)
			if err != nil {
				return RotationResult{}, err
			}
			f.Data = append(f.Data, k)
			res.Events = append(res.Events, KeyEvent{"KeyStaged", "data", k.ID, fmt.Sprintf("staged data key %s; it becomes active after %s", k.ID, p.PropagationWindow)})
			next(now.Add(p.PropagationWindow))
		case actPromote:
			for i := range f.Data {
				if f.Data[i].State == keyringfile.StateActive {
					f.Data[i].State, f.Data[i].Retired = keyringfile.StateRetired, ptrTime(now)
				}
			}
			f.Data[idx].State, f.Data[idx].Activated = keyringfile.StateActive, ptrTime(now)
			res.Events = append(res.Events, KeyEvent{"KeyActivated", "data", f.Data[idx].ID, fmt.Sprintf("data key %s is now active; older keys still decrypt stored data", f.Data[idx].ID)})
			next(now.Add(p.DataInterval))
		}
	}

	res.Changed = len(res.Events) > 0
	if err := f.Validate(); err != nil {
		// A bug here must never reach the servers.
		return RotationResult{}, fmt.Errorf("key rotation produced an invalid keyring: %w", err)
	}
	return res, nil
}

type action int

const (
	actNone action = iota
	actStage
	actPromote
)

// plan decides the next step for one kind of key, and reports when the schedule
// is next due through next.
func plan(slots []keySlot, now time.Time, interval, window time.Duration, rotateNow bool, next func(time.Time)) (action, int) {
	staged := slices.IndexFunc(slots, func(k keySlot) bool { return k.state == keyringfile.StateStaged })
	if staged >= 0 {
		due := slots[staged].created.Add(window)
		if !now.Before(due) {
			return actPromote, staged
		}
		next(due)
		return actNone, -1
	}
	active := slices.IndexFunc(slots, func(k keySlot) bool { return k.state == keyringfile.StateActive })
	since := slots[active].created
	if a := slots[active].activated; a != nil {
		since = *a
	}
	// Stage early enough that the new key is active when the interval ends.
	due := since.Add(interval - window)
	if rotateNow || !now.Before(due) {
		return actStage, -1
	}
	next(due)
	return actNone, -1
}

func ptrTime(t time.Time) *time.Time { return &t }

func cloneKeyring(in *keyringfile.File) *keyringfile.File {
	out := &keyringfile.File{Version: in.Version, JWT: slices.Clone(in.JWT), Data: slices.Clone(in.Data)}
	return out
}
