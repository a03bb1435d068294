package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// activeIDs reads the active key ids from the server's keyring file.
func activeIDs(t *testing.T, ts *testServer) (string, string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(ts.cfg.KeyringDir, keyringfile.FileName))
	if err != nil {
		t.Fatal(err)
	}
	f, err := keyringfile.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	j, _ := f.ActiveJWT()
	d, _ := f.ActiveData()
	return j.ID, d.ID
}

func getKeyringz(t *testing.T, url string) (int, keyring.Loaded, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	var l keyring.Loaded
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("GET %s: %v in %s", url, err, body)
		}
	}
	return res.StatusCode, l, string(body)
}

// GET /keyringz on the metrics listener reports the loaded keyring (ids, kinds,
// states, digest) for the operator; it stays off the public API port.
func TestKeyringzOnTheMetricsListener(t *testing.T) {
	ts := start(t, withArgs("-metrics-addr", "127.0.0.1:0"))
	code, l, body := getKeyringz(t, "http://"+ts.srv.MetricsAddr()+"/keyringz")
	must(t, code == http.StatusOK, "metrics listener /keyringz: %d %s", code, body)
	jwtKID, dataKID := activeIDs(t, ts)
	must(t, len(l.Keys) == 2 && l.Has(jwtKID) && l.Has(dataKID) && l.Digest == keyring.Digest(l.Keys),
		"keyringz %s, want the active keys %s and %s and their digest", body, jwtKID, dataKID)
	for _, k := range l.Keys {
		must(t, k.State == "active" && (k.Kind == "jwt" || k.Kind == "data"), "key %+v", k)
	}
	// The operator adds a VAPID key to a keyring only once every server says it loads one.
	must(t, slices.Contains(l.Accepts, keyring.AcceptsVAPID), "keyringz accepts %v, want %q", l.Accepts, keyring.AcceptsVAPID)
	must(t, !strings.Contains(body, "privateKey") && !strings.Contains(body, "seed"), "keyringz shows key material: %s", body)
	must(t, !strings.Contains(body, "privateKey") && !strings.Contains(body, `"key"`), "keyringz names key material: %s", body)
	m := string(ts.Do("GET", "/metrics", "", nil).Body)
	must(t, !strings.Contains(m, "parley_"), "metrics on the API port")
	res, err := http.Get("http://" + ts.srv.MetricsAddr() + "/metrics")
	must(t, err == nil && res.StatusCode == http.StatusOK, "metrics: %v", err)
	mb, _ := io.ReadAll(res.Body)
	res.Body.Close()
	must(t, strings.Contains(string(mb), `parley_keyring_loaded_info{digest="`+l.Digest+`"} 1`), "no parley_keyring_loaded_info for %s", l.Digest)

	// The public port does not answer it (the path falls through to the web client).
	r := ts.Do("GET", "/keyringz", "", nil)
	must(t, !strings.Contains(string(r.Body), jwtKID), "the API port reports the keyring: %d %s", r.Status, r.Body)
}

// Without a metrics listener /keyringz is where /metrics is: on the API port.
func TestKeyringzBesideMetricsOnTheAPIPort(t *testing.T) {
	ts := start(t)
	code, l, body := getKeyringz(t, ts.Base+"/keyringz")
	jwtKID, _ := activeIDs(t, ts)
	must(t, code == http.StatusOK && l.Has(jwtKID), "API port /keyringz: %d %s", code, body)
}
