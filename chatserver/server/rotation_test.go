package server_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

func readKeyring(t *testing.T, dir string) *keyringfile.File {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, keyringfile.FileName))
	must(t, err == nil, "read keyring: %v", err)
	f, err := keyringfile.Parse(raw)
	must(t, err == nil, "parse keyring: %v", err)
	return f
}

// writeKeyring replaces the file atomically, as a Secret volume update does.
func writeKeyring(t *testing.T, dir string, f *keyringfile.File) {
	t.Helper()
	raw, err := f.Marshal()
	must(t, err == nil, "marshal: %v", err)
	tmp := filepath.Join(dir, ".next")
	must(t, os.WriteFile(tmp, raw, 0o600) == nil, "write")
	must(t, os.Rename(tmp, filepath.Join(dir, keyringfile.FileName)) == nil, "rename")
}

// A key rotation as the operator performs it, on a running server: every
// intermediate keyring is accepted, tokens and messages from before keep
// working, new data is sealed with the new key, old rows are re-encrypted in
// the background, and once the old keys are removed nothing is lost.
func TestKeyRotationOnARunningServer(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "keys")
	_, err := keyring.LoadOrGenerate(keyDir, keyring.Options{})
	must(t, err == nil, "keyring: %v", err)
	ts := start(t, withArgs("-keyring-dir", keyDir, "-keyring-reload", "1s", "-reseal-interval", "1s"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	group := alice.Group("Rotation crew", bob)
	for _, b := range []string{"one", "two", "three"} {
		alice.Send(conv.ID, b)
	}
	f := readKeyring(t, keyDir)
	oldJWT, oldData := f.JWT[0].ID, f.Data[0].ID
	must(t, jwtKID(alice.Token) == oldJWT, "tokens not signed by the active key")
	reloaded := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if strings.Contains(string(ts.Do("GET", "/metrics", "", nil).Body), want) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("server did not reach %q", want)
	}

	// 1. Stage.
	now := time.Now()
	nj, _ := keyringfile.NewJWTKey(now, keyringfile.StateStaged)
	nd, _ := keyringfile.NewDataKey(now, keyringfile.StateStaged)
	f.JWT, f.Data = append(f.JWT, nj), append(f.Data, nd)
	writeKeyring(t, keyDir, f)
	reloaded(`parley_keyring_reloads_total{result="ok"} 1`)
	m := alice.Send(conv.ID, "after staging")
	must(t, sealedWith(t, ts, conv.ID, m.Seq) == oldData, "a staged key sealed data")

	// 2. Promote.
	f.JWT[0].State, f.JWT[1].State = keyringfile.StateRetired, keyringfile.StateActive
	f.Data[0].State, f.Data[1].State = keyringfile.StateRetired, keyringfile.StateActive
	writeKeyring(t, keyDir, f)
	reloaded(`parley_keyring_reloads_total{result="ok"} 2`)
	m = alice.Send(conv.ID, "after promotion")
	must(t, sealedWith(t, ts, conv.ID, m.Seq) == nd.ID, "new data not sealed with the promoted key")
	must(t, alice.Do("GET", "/api/v1/me", nil).Status == 200, "token signed by the retired key refused")
	fresh := ts.Login("bob")
	must(t, jwtKID(fresh.Token) == nj.ID, "new tokens not signed by the promoted key")

	// 3. The background pass re-encrypts every old row.
	deadline := time.Now().Add(15 * time.Second)
	for {
		counts, err := ts.srv.Store().SealedCounts(context.Background())
		must(t, err == nil, "counts: %v", err)
		if counts[oldData] == 0 {
			break
		}
		must(t, time.Now().Before(deadline), "rows still sealed with the retired key: %v", counts)
		time.Sleep(200 * time.Millisecond)
	}
	reloaded(`parley_keyring_rows_remaining{kid="` + oldData + `"} 0`)

	// 4. Remove the old keys: old tokens stop, data stays readable.
	f.JWT, f.Data = f.JWT[1:], f.Data[1:]
	writeKeyring(t, keyDir, f)
	reloaded(`parley_keyring_reloads_total{result="ok"} 3`)
	must(t, alice.Do("GET", "/api/v1/me", nil).Status == 401, "token of a removed key still accepted")
	var h struct{ Messages []protocol.Message }
	fresh.Do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil).Decode(t, &h)
	var bodies []string
	for _, m := range h.Messages {
		must(t, !m.Undecryptable, "message %d lost in rotation", m.Seq)
		bodies = append(bodies, m.Body)
	}
	must(t, strings.Join(bodies, ",") == "one,two,three,after staging,after promotion", "bodies %v", bodies)
	var g protocol.Conversation
	fresh.Do("GET", "/api/v1/conversations/"+group.ID, nil).Decode(t, &g)
	must(t, g.Title == "Rotation crew", "group title after rotation: %q", g.Title)

	// An invalid keyring (no keys at all) is refused; the server keeps going.
	raw := []byte(`{"version":1,"jwt":[],"data":[]}`)
	must(t, os.WriteFile(filepath.Join(keyDir, keyringfile.FileName), raw, 0o600) == nil, "write")
	reloaded(`parley_keyring_reloads_total{result="error"}`)
	must(t, fresh.Do("GET", "/api/v1/me", nil).Status == 200, "server stopped accepting tokens after a bad keyring")
	must(t, fresh.Send(conv.ID, "still fine").Seq == 6, "server stopped sealing after a bad keyring")
}

func sealedWith(t *testing.T, ts *testServer, convID string, seq int64) string {
	t.Helper()
	ms, err := ts.srv.Store().MessagesAfter(context.Background(), convID, seq-1, 1)
	must(t, err == nil && len(ms) == 1, "message %d: %v", seq, err)
	return ms[0].KeyID
}

func jwtKID(tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64URL(h)
	if err != nil {
		return ""
	}
	_, rest, _ := strings.Cut(string(raw), `"kid":"`)
	kid, _, _ := strings.Cut(rest, `"`)
	return kid
}
