package controllers

import (
	"bytes"
	"testing"
	"time"

	"github.com/parley-chat/parley/pkg/keyringfile"
)

var policy = RotationPolicy{
	JWTInterval:       time.Hour,
	DataInterval:      3 * time.Hour,
	PropagationWindow: 10 * time.Minute,
	AccessTokenTTL:    15 * time.Minute,
}

func counts[K any](keys []K, state func(K) string) map[string]int {
	m := map[string]int{}
	for _, k := range keys {
		m[state(k)]++
	}
	return m
}

// Walk the schedule minute by minute: every intermediate keyring is valid, and
// the transitions happen exactly when the policy says.
func TestRotateSchedule(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := NewKeyring(start)
	if err != nil {
		t.Fatal(err)
	}
	type mark struct {
		minute int
		reason Reason
		kind   KeyKind
	}
	var marks []mark
	for m := 1; m <= 4*60; m++ {
		now := start.Add(time.Duration(m) * time.Minute)
		res, err := Rotate(f, now, policy)
		if err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		b, err := res.File.Marshal()
		if err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		if _, err := keyringfile.Parse(b); err != nil {
			t.Fatalf("minute %d: the loader would refuse: %v", m, err)
		}
		if res.Changed != (len(res.Events) > 0) {
			t.Fatalf("minute %d: Changed=%v with events %v", m, res.Changed, res.Events)
		}
		if !res.NextAt.After(now) {
			t.Fatalf("minute %d: next due %v is not in the future", m, res.NextAt)
		}
		for _, e := range res.Events {
			marks = append(marks, mark{m, e.Reason, e.Kind})
		}
		f = res.File
	}
	want := []mark{
		{50, "KeyStaged", "jwt"}, {60, "KeyActivated", "jwt"}, {85, "KeyRemoved", "jwt"},
		{110, "KeyStaged", "jwt"}, {120, "KeyActivated", "jwt"}, {145, "KeyRemoved", "jwt"},
		{170, "KeyStaged", "jwt"}, {170, "KeyStaged", "data"},
		{180, "KeyActivated", "jwt"}, {180, "KeyActivated", "data"}, {205, "KeyRemoved", "jwt"},
		{230, "KeyStaged", "jwt"}, {240, "KeyActivated", "jwt"},
	}
	if len(marks) != len(want) {
		t.Fatalf("transitions %v\nwant %v", marks, want)
	}
	for i := range want {
		if marks[i] != want[i] {
			t.Errorf("transition %d = %v, want %v", i, marks[i], want[i])
		}
	}
	if c := counts(f.Data, func(k keyringfile.DataKey) string { return k.State }); c[keyringfile.StateRetired] != 1 || c[keyringfile.StateActive] != 1 {
		t.Errorf("data key states %v: retired data keys must stay", c)
	}
}

func TestRotateNowStagesOnceAndDoesNotSkipWindow(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := NewKeyring(start)
	if err != nil {
		t.Fatal(err)
	}
	p := policy
	p.RotateNow = true
	res, err := Rotate(f, start.Add(time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	if c := counts(res.File.JWT, func(k keyringfile.JWTKey) string { return k.State }); c[keyringfile.StateStaged] != 1 || c[keyringfile.StateActive] != 1 {
		t.Fatalf("jwt states after rotate-now %v", c)
	}
	// Asking again while a key is staged does not stack a second staged key.
	again, err := Rotate(res.File, start.Add(2*time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	if again.Changed {
		t.Errorf("second rotate-now during a rotation changed the keyring: %v", again.Events)
	}
	if f.JWT[0].State != keyringfile.StateActive || len(f.JWT) != 1 {
		t.Error("Rotate modified its input")
	}
}

func TestKeyEventStepIsTheMetricsLabel(t *testing.T) {
	for reason, want := range map[Reason]string{ReasonKeyStaged: "staged", ReasonKeyActivated: "activated", ReasonKeyRemoved: "removed"} {
		if got := (KeyEvent{Reason: reason}).Step(); got != want {
			t.Errorf("Step of %s = %q, want %q", reason, got, want)
		}
	}
}

// A staged key past its window is promoted only once Propagated says every
// ready server has it; until then Rotate asks to be called again soon. The
// other kind is not held back.
func TestRotateHoldsPromotionUntilPropagated(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := NewKeyring(start)
	if err != nil {
		t.Fatal(err)
	}
	p := policy
	p.RotateNow = true
	staged, err := Rotate(f, start, p)
	if err != nil {
		t.Fatal(err)
	}
	var jwtID, dataID string
	for _, k := range staged.File.JWT {
		if k.State == keyringfile.StateStaged {
			jwtID = k.ID
		}
	}
	for _, k := range staged.File.Data {
		if k.State == keyringfile.StateStaged {
			dataID = k.ID
		}
	}
	p.RotateNow = false
	asked := map[string]int{}
	p.Propagated = func(kid string) bool {
		asked[kid]++
		return kid == dataID // the JWT key has not reached every server yet
	}
	after := start.Add(p.PropagationWindow + time.Minute)
	res, err := Rotate(staged.File, after, p)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := res.File.ActiveJWT(); a.ID == jwtID {
		t.Fatal("the JWT key was promoted although a server has not loaded it")
	}
	if a, _ := res.File.ActiveData(); a.ID != dataID {
		t.Fatalf("the data key %s, loaded everywhere, was not promoted (active %s)", dataID, a.ID)
	}
	if want := after.Add(PropagationRecheck); !res.NextAt.Equal(want) {
		t.Errorf("NextAt = %v, want a re-check at %v", res.NextAt, want)
	}
	if asked[jwtID] == 0 {
		t.Error("Propagated was not asked about the JWT key")
	}

	// Before the window nobody is asked: the wall clock stays the minimum.
	asked = map[string]int{}
	p.Propagated = func(kid string) bool { asked[kid]++; return true }
	early, err := Rotate(staged.File, start.Add(p.PropagationWindow-time.Second), p)
	if err != nil {
		t.Fatal(err)
	}
	if early.Changed || len(asked) > 0 {
		t.Errorf("before the window: changed=%v, asked %v", early.Changed, asked)
	}
	done, err := Rotate(res.File, after.Add(PropagationRecheck), p)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := done.File.ActiveJWT(); a.ID != jwtID {
		t.Errorf("once loaded everywhere the JWT key %s is still not active (%s)", jwtID, a.ID)
	}
}

// The VAPID key is not on the schedule. A keyring without one gets one, once,
// with an event, but only when the servers accept it (AddVAPID); then every
// rotation step carries it unchanged (a new one would drop every push
// subscription).
func TestVAPIDKeyAddedWhenAcceptedThenKeptThroughRotation(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f, err := NewKeyring(start) // the image may be a release from before Web Push
	if err != nil {
		t.Fatal(err)
	}
	if len(f.VAPID) != 0 {
		t.Fatalf("new keyring: VAPID keys %v before any server said it accepts them", f.VAPID)
	}
	res, err := Rotate(f, start.Add(time.Minute), policy)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.File.VAPID) != 0 || res.Changed || res.NextAt.After(start.Add(time.Minute+VAPIDRecheck)) {
		t.Fatalf("servers not accepting: VAPID %v, changed %v, next %v", res.File.VAPID, res.Changed, res.NextAt)
	}
	accepting := policy
	accepting.AddVAPID = true
	res, err = Rotate(f, start.Add(2*time.Minute), accepting)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := res.File.ActiveVAPID()
	if !ok || !res.Changed || len(res.Events) != 1 || res.Events[0].Kind != KeyKindVAPID || res.Events[0].KeyID != v.ID {
		t.Fatalf("servers accepting: changed %v, events %+v, VAPID %v", res.Changed, res.Events, res.File.VAPID)
	}
	if len(f.VAPID) != 0 {
		t.Fatal("Rotate modified its input")
	}
	f = res.File
	for m := 3; m <= 4*60; m++ {
		p := policy
		p.AddVAPID = m%2 == 0 // either way: it has one
		res, err := Rotate(f, start.Add(time.Duration(m)*time.Minute), p)
		if err != nil {
			t.Fatalf("minute %d: %v", m, err)
		}
		for _, e := range res.Events {
			if e.Kind == KeyKindVAPID {
				t.Fatalf("minute %d: VAPID event %+v", m, e)
			}
		}
		f = res.File
	}
	if got, _ := f.ActiveVAPID(); len(f.VAPID) != 1 || got.ID != v.ID || !bytes.Equal(got.PrivateKey, v.PrivateKey) {
		t.Fatalf("after 4 hours of rotation: VAPID %v, want %s unchanged", f.VAPID, v.ID)
	}
}
