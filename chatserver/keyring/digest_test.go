package keyring

import (
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// loadedInfo returns the digest labels of parley_keyring_loaded_info with value 1.
func loadedInfo(t *testing.T, m *metrics.Metrics) []string {
	t.Helper()
	fams, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range fams {
		if f.GetName() != "parley_keyring_loaded_info" {
			continue
		}
		for _, s := range f.GetMetric() {
			if s.GetGauge().GetValue() != 1 {
				t.Errorf("parley_keyring_loaded_info series with value %v", s.GetGauge().GetValue())
			}
			for _, l := range s.GetLabel() {
				if l.GetName() == "digest" {
					out = append(out, l.GetValue())
				}
			}
		}
	}
	return out
}

// A server reports the keyring it has loaded as key ids, kinds and states and a
// digest of them, never key material; the digest follows reloads (metric too)
// and ignores what does not change what the server can do (timestamps).
func TestLoadedReportsKeyIDsAndStates(t *testing.T) {
	f := newFile(t)
	dir := t.TempDir()
	writeFile(t, dir, f)
	m := metrics.New()
	k, err := Load(dir, Options{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	l := k.Loaded()
	want := []LoadedKey{{ID: f.Data[0].ID, Kind: "data", State: "active"}, {ID: f.JWT[0].ID, Kind: "jwt", State: "active"}}
	if len(l.Keys) != 2 || l.Keys[0] != want[0] || l.Keys[1] != want[1] {
		t.Fatalf("Loaded().Keys = %+v, want %+v", l.Keys, want)
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(l.Digest) || l.Digest != Digest(l.Keys) {
		t.Fatalf("Loaded().Digest = %q, want the hex SHA-256 Digest(keys) = %q", l.Digest, Digest(l.Keys))
	}
	raw, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range [][]byte{f.JWT[0].PrivateKey, f.Data[0].Key} {
		if strings.Contains(string(raw), base64.StdEncoding.EncodeToString(secret)) {
			t.Fatal("the loaded-keyring report contains key material")
		}
	}
	if !strings.Contains(string(raw), `"kid":"`+f.JWT[0].ID+`","kind":"jwt","state":"active"`) {
		t.Errorf("JSON %s does not use the kid/kind/state field names", raw)
	}
	if got := loadedInfo(t, m); len(got) != 1 || got[0] != l.Digest {
		t.Fatalf("parley_keyring_loaded_info digests %v, want [%s]", got, l.Digest)
	}

	// Stage a key: the report names it and the metric moves to the new digest.
	sd, err := keyringfile.NewDataKey(time.Now(), keyringfile.StateStaged)
	if err != nil {
		t.Fatal(err)
	}
	f.Data = append(f.Data, sd)
	writeFile(t, dir, f)
	if _, err := k.Reload(); err != nil {
		t.Fatal(err)
	}
	staged := k.Loaded()
	if staged.Digest == l.Digest || !staged.Has(sd.ID) || l.Has(sd.ID) {
		t.Fatalf("after staging %s: %+v (before %+v)", sd.ID, staged, l)
	}
	if got := loadedInfo(t, m); len(got) != 1 || got[0] != staged.Digest {
		t.Fatalf("parley_keyring_loaded_info digests %v after reload, want only [%s]", got, staged.Digest)
	}

	// Same ids and states, other bookkeeping: same digest.
	f.Data[1].Activated = ptrTime(time.Now().Add(time.Hour))
	writeFile(t, dir, f)
	if changed, err := k.Reload(); err != nil || !changed {
		t.Fatalf("reload: changed=%v err=%v", changed, err)
	}
	if d := k.Loaded().Digest; d != staged.Digest {
		t.Errorf("a timestamp change moved the digest from %s to %s", staged.Digest, d)
	}
}

func ptrTime(t time.Time) *time.Time { return &t }

// The digest is a function of the set of (kind, id, state): order does not
// matter, each of the three does.
func TestDigestIsCanonical(t *testing.T) {
	a := []LoadedKey{{ID: "j-1", Kind: "jwt", State: "active"}, {ID: "d-1", Kind: "data", State: "active"}, {ID: "j-2", Kind: "jwt", State: "staged"}}
	b := []LoadedKey{a[2], a[0], a[1]}
	if Digest(a) != Digest(b) {
		t.Error("the digest depends on the order of the keys")
	}
	for name, other := range map[string][]LoadedKey{
		"state": {a[0], a[1], {ID: "j-2", Kind: "jwt", State: "active"}},
		"kind":  {a[0], a[1], {ID: "j-2", Kind: "data", State: "staged"}},
		"id":    {a[0], a[1], {ID: "j-3", Kind: "jwt", State: "staged"}},
		"fewer": {a[0], a[1]},
	} {
		if Digest(other) == Digest(a) {
			t.Errorf("a different %s gives the same digest", name)
		}
	}
}
