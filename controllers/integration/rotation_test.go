package integration

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// server is the chat server's side of the contract: its real keyring loader
// reading the Secret's keyring.json from a folder, as the mounted volume would.
type server struct {
	t   *testing.T
	dir string
	kr  *keyring.Keyring
}

func (s *server) load(raw []byte) {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, keyringfile.FileName), raw, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if s.kr == nil {
		kr, err := keyring.Load(s.dir, keyring.Options{})
		if err != nil {
			s.t.Fatalf("the chat server refuses the first keyring: %v", err)
		}
		s.kr = kr
		return
	}
	if _, err := s.kr.Reload(); err != nil {
		s.t.Fatalf("the chat server refuses an intermediate keyring: %v", err)
	}
}

type sealed struct{ text, ciphertext string }

func stateOf[K any](keys []K, id func(K) string, state func(K) string, want string) string {
	for _, k := range keys {
		if id(k) == want {
			return state(k)
		}
	}
	return ""
}

func jwtID(k keyringfile.JWTKey) string      { return k.ID }
func jwtState(k keyringfile.JWTKey) string   { return k.State }
func dataID(k keyringfile.DataKey) string    { return k.ID }
func dataState(k keyringfile.DataKey) string { return k.State }

// Key rotation on a schedule (fake clock) and on demand: a staged key appears
// beside the active one, is promoted only after the propagation window, exactly
// one key of each kind is active at every step, retired JWT keys leave after the
// token lifetime plus the window, retired data keys stay, and the chat server's
// loader accepts every intermediate Secret while still verifying old tokens and
// opening old ciphertexts. A restarted operator resumes a rotation in flight.
func TestKeyRotation(t *testing.T) {
	f := newFixture(t)
	cc := sample(f.ns, "chat")
	cc.Spec.Security.AccessTokenTTL = &metav1.Duration{Duration: 15 * time.Minute}
	cc.Spec.Security.KeyRotation = chatv1alpha1.KeyRotationSpec{
		JWTKeyInterval:    &metav1.Duration{Duration: time.Hour},
		DataKeyInterval:   &metav1.Duration{Duration: 2 * time.Hour},
		PropagationWindow: &metav1.Duration{Duration: 5 * time.Minute},
	}
	f.create(cc)
	f.reconcile("chat")
	cc = f.chat("chat")

	srv := &server{t: t, dir: t.TempDir()}
	kr0, sec := f.keyring(cc)
	srv.load(sec.Data[keyringfile.FileName])
	firstJWT, firstData := kr0.JWT[0].ID, kr0.Data[0].ID
	f.drainEvents()

	// Tokens and ciphertexts made along the way, checked at every later step.
	type token struct {
		kid, value string
		signedAt   time.Time
	}
	var tokens []token
	var seals []sealed
	makeArtifacts := func(now time.Time) {
		claims := jwt.RegisteredClaims{Subject: "u1", ExpiresAt: jwt.NewNumericDate(time.Now().Add(24 * time.Hour))}
		tok, err := srv.kr.SignJWT(claims)
		if err != nil {
			t.Fatal(err)
		}
		jk, _ := srv.kr.ActiveIDs()
		tokens = append(tokens, token{jk, tok, now})
		text := "message at " + now.Format(time.RFC3339)
		ct, _, err := srv.kr.Seal(ctx, []byte("msg|c1|"+text), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		seals = append(seals, sealed{text, ct})
	}
	makeArtifacts(f.clock.Now())

	stagedAt := map[string]time.Time{}
	retiredAt := map[string]time.Time{}
	var keyMaterial []string
	sawStagedBesideActive := false
	for step := 1; step <= 150; step++ {
		f.clock.Step(time.Minute)
		now := f.clock.Now()
		f.reconcile("chat")
		kr, sec := f.keyring(cc) // Parse enforces: exactly one active per kind, sizes, ids
		srv.load(sec.Data[keyringfile.FileName])
		evs := f.drainEvents()
		// No ready pod says it loads VAPID keys: none is added (propagation_test.go adds one).
		if len(kr.VAPID) != 0 {
			t.Fatalf("step %d: VAPID keys %v with no server accepting them", step, kr.VAPID)
		}

		for _, k := range kr.JWT {
			keyMaterial = append(keyMaterial, base64.StdEncoding.EncodeToString(k.PrivateKey))
			switch k.State {
			case keyringfile.StateStaged:
				if _, ok := stagedAt[k.ID]; !ok {
					stagedAt[k.ID] = now
					if !hasEvent(evs, "Normal KeyStaged") {
						t.Errorf("minute %d: JWT key %s staged without a KeyStaged event (%q)", step, k.ID, evs)
					}
				}
				sawStagedBesideActive = true
			case keyringfile.StateActive:
				if s, ok := stagedAt[k.ID]; ok && now.Sub(s) < 5*time.Minute {
					t.Errorf("minute %d: JWT key %s active %s after staging, before the 5m window", step, k.ID, now.Sub(s))
				}
			case keyringfile.StateRetired:
				if _, ok := retiredAt[k.ID]; !ok {
					retiredAt[k.ID] = now
				}
			}
		}
		for _, k := range kr.Data {
			keyMaterial = append(keyMaterial, base64.StdEncoding.EncodeToString(k.Key))
			if k.State == keyringfile.StateStaged {
				if _, ok := stagedAt[k.ID]; !ok {
					stagedAt[k.ID] = now
				}
			}
			if k.State == keyringfile.StateActive {
				if s, ok := stagedAt[k.ID]; ok && now.Sub(s) < 5*time.Minute {
					t.Errorf("minute %d: data key %s active before the window", step, k.ID)
				}
			}
		}
		// A retired JWT key stays exactly access-token TTL + window after retirement.
		for id, at := range retiredAt {
			present := slices.ContainsFunc(kr.JWT, func(k keyringfile.JWTKey) bool { return k.ID == id })
			if age := now.Sub(at); present != (age < 20*time.Minute) {
				t.Errorf("minute %d: retired JWT key %s present=%v %s after retirement (removal due at 20m)", step, id, present, age)
			}
		}
		// The server keeps working with everything still in the keyring.
		for _, tok := range tokens {
			inFile := slices.ContainsFunc(kr.JWT, func(k keyringfile.JWTKey) bool { return k.ID == tok.kid })
			err := srv.kr.ParseJWT(tok.value, &jwt.RegisteredClaims{})
			if inFile && err != nil {
				t.Errorf("minute %d: token signed by %s no longer verifies: %v", step, tok.kid, err)
			}
			if !inFile && err == nil {
				t.Errorf("minute %d: token signed by removed key %s still verifies", step, tok.kid)
			}
			if !inFile && now.Sub(tok.signedAt) < 15*time.Minute {
				t.Errorf("minute %d: key %s removed while a token it signed %s ago could be valid", step, tok.kid, now.Sub(tok.signedAt))
			}
		}
		for _, s := range seals {
			if pt, err := srv.kr.Open(s.ciphertext, []byte("msg|c1|"+s.text)); err != nil || string(pt) != s.text {
				t.Errorf("minute %d: old ciphertext no longer opens: %v", step, err)
			}
		}
		if step%10 == 0 {
			makeArtifacts(now)
		}
	}

	m := &dto.Metric{}
	if err := f.r.Metrics.Rotations.WithLabelValues("jwt", "staged").Write(m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Errorf("parley_operator_key_rotations_total{kind=jwt,step=staged} = %v, want 2", n)
	}
	if !sawStagedBesideActive {
		t.Fatal("no staged key was ever seen beside the active one")
	}
	kr, _ := f.keyring(cc)
	// Schedule: JWT staged at 55m, active at 60m, staged again at 115m, active at 120m.
	// Data: staged at 115m, active at 120m; retired data keys are kept.
	if st := stateOf(kr.Data, dataID, dataState, firstData); st != keyringfile.StateRetired {
		t.Errorf("first data key state %q at 150m, want retired (kept for stored rows)", st)
	}
	if st := stateOf(kr.JWT, jwtID, jwtState, firstJWT); st != "" {
		t.Errorf("first JWT key still present (%q) at 150m", st)
	}
	var jwtStages []time.Duration
	for id, at := range stagedAt {
		if strings.HasPrefix(id, "j-") {
			jwtStages = append(jwtStages, at.Sub(t0))
		}
	}
	slices.Sort(jwtStages)
	if !slices.Equal(jwtStages, []time.Duration{55 * time.Minute, 115 * time.Minute}) {
		t.Errorf("JWT keys staged at %v, want [55m 115m]", jwtStages)
	}
	cc = f.chat("chat")
	if a, _ := kr.ActiveJWT(); cc.Status.Keys.ActiveJWTKeyID != a.ID {
		t.Errorf("status active JWT %q, keyring %q", cc.Status.Keys.ActiveJWTKeyID, a.ID)
	}

	// Manual rotation for incident response.
	before, _ := f.keyring(cc)
	activeJWT, _ := before.ActiveJWT()
	activeData, _ := before.ActiveData()
	f.update("chat", func(cc *chatv1alpha1.ChatCluster) {
		cc.Annotations = map[string]string{chatv1alpha1.AnnotationRotateKeysNow: "incident-42"}
	})
	f.reconcile("chat")
	after, sec := f.keyring(cc)
	srv.load(sec.Data[keyringfile.FileName])
	var staged []string
	for _, k := range after.JWT {
		if k.State == keyringfile.StateStaged {
			staged = append(staged, k.ID)
		}
	}
	for _, k := range after.Data {
		if k.State == keyringfile.StateStaged {
			staged = append(staged, k.ID)
		}
	}
	if len(staged) != 2 {
		t.Fatalf("rotate-now staged %v, want one JWT and one data key", staged)
	}
	if a, _ := after.ActiveJWT(); a.ID != activeJWT.ID {
		t.Error("rotate-now promoted immediately, skipping the propagation window")
	}
	evs := f.drainEvents()
	if !hasEvent(evs, "Normal KeyStaged") {
		t.Errorf("events %q, want KeyStaged", evs)
	}
	for _, e := range evs {
		for _, m := range keyMaterial {
			if strings.Contains(e, m) {
				t.Fatal("an event contains key material")
			}
		}
	}
	// The same annotation value does not rotate again.
	f.reconcile("chat")
	again, _ := f.keyring(cc)
	if len(again.JWT) != len(after.JWT) || len(again.Data) != len(after.Data) {
		t.Error("an unchanged rotate-now annotation started another rotation")
	}

	// The operator restarts mid-rotation: a new reconciler with its own clock,
	// after the window, promotes the staged keys rather than starting over.
	restarted := f.newReconciler(clocktesting.NewFakeClock(f.clock.Now().Add(5 * time.Minute)))
	if _, err := restarted.Reconcile(ctx, reqFor(f, "chat")); err != nil {
		t.Fatal(err)
	}
	done, sec := f.keyring(cc)
	srv.load(sec.Data[keyringfile.FileName])
	a, _ := done.ActiveJWT()
	d, _ := done.ActiveData()
	if !slices.Contains(staged, a.ID) || !slices.Contains(staged, d.ID) {
		t.Errorf("after restart active keys %s/%s, want the staged %v", a.ID, d.ID, staged)
	}
	if st := stateOf(done.JWT, jwtID, jwtState, activeJWT.ID); st != keyringfile.StateRetired {
		t.Errorf("previous JWT key %s is %q, want retired", activeJWT.ID, st)
	}
	if st := stateOf(done.Data, dataID, dataState, activeData.ID); st != keyringfile.StateRetired {
		t.Errorf("previous data key %s is %q, want retired", activeData.ID, st)
	}
	for _, s := range seals {
		if _, err := srv.kr.Open(s.ciphertext, []byte("msg|c1|"+s.text)); err != nil {
			t.Errorf("after the manual rotation an old ciphertext no longer opens: %v", err)
		}
	}
	if jk, dk := srv.kr.ActiveIDs(); jk != a.ID || dk != d.ID {
		t.Errorf("server signs/seals with %s/%s, keyring says %s/%s", jk, dk, a.ID, d.ID)
	}
}
