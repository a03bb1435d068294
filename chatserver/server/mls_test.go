package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/mlswire"
	"github.com/parley-chat/parley/chatserver/mlswire/mlswiretest"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// The MLS Delivery Service's routes and every refusal they make
// (docs/api.md, "End-to-end encrypted conversations").

const wait = 5 * time.Second

var b64 = chattest.B64

// wantErr checks an error answer's status, code and (when not "") field.
func wantErr(t *testing.T, what string, r apiResp, status int, code, field string) {
	t.Helper()
	must(t, r.Status == status && r.Code() == code && (field == "" || r.Field() == field),
		"%s: got %d %s, want %d %s (field %q)", what, r.Status, r.Body, status, code, field)
}

func TestMLSDevices(t *testing.T) {
	ts := start(t, withArgs("-max-devices", "2"))
	alice, bob, carol := ts.Register("alice"), ts.Register("bob"), ts.Register("carol")
	bob.Direct(carol) // plain: not an e2ee peer
	alice.E2EEGroup("secret", bob)
	bobWS, carolWS := bob.Dial(), carol.Dial()

	key := func() string {
		pub, _, _ := ed25519.GenerateKey(rand.Reader)
		return b64(pub)
	}
	post := func(body any) apiResp { return alice.Do("POST", "/api/v1/devices", body) }
	wantErr(t, "bad base64", post(map[string]string{"name": "x", "signatureKey": "not base64!"}), 400, "invalid_request", "signatureKey")
	wantErr(t, "short key", post(map[string]string{"name": "x", "signatureKey": b64([]byte("short"))}), 400, "invalid_request", "signatureKey")
	wantErr(t, "no name", post(map[string]string{"name": "  ", "signatureKey": key()}), 400, "invalid_request", "name")
	wantErr(t, "long name", post(map[string]string{"name": strings.Repeat("n", 65), "signatureKey": key()}), 400, "invalid_request", "name")
	wantErr(t, "unknown field", post(map[string]string{"name": "x", "signatureKey": key(), "privateKey": "no"}), 400, "invalid_request", "")

	d1 := alice.NewDevice("laptop")
	// Bob shares an e2ee conversation with Alice: he hears of her devices.
	f := bobWS.WaitFor("devices", wait)
	must(t, f.UserID == alice.User.ID, "devices frame %+v", f)
	d2 := alice.NewDevice("phone")
	wantErr(t, "past -max-devices", post(map[string]string{"name": "third", "signatureKey": key()}), 409, "conflict", "")
	wantErr(t, "a taken key", bob.Do("POST", "/api/v1/devices",
		map[string]string{"name": "x", "signatureKey": b64(d1.Key.Public().(ed25519.PublicKey))}), 409, "conflict", "signatureKey")

	// Anyone signed in reads the list (verification needs it).
	r := carol.Do("GET", "/api/v1/users/"+alice.User.ID+"/devices", nil)
	must(t, r.Status == 200, "list: %d %s", r.Status, r.Body)
	var list struct{ Devices []protocol.Device }
	r.Decode(t, &list)
	must(t, len(list.Devices) == 2 && list.Devices[0].SignatureKey != "" && list.Devices[0].Name != "", "devices %+v", list.Devices)
	wantErr(t, "devices of nobody", carol.Do("GET", "/api/v1/users/u_nobody/devices", nil), 404, "not_found", "")
	must(t, ts.Do("GET", "/api/v1/users/"+alice.User.ID+"/devices", "", nil).Status == 401, "devices without a token")

	// Only the owner deletes; then the slot is free again.
	wantErr(t, "delete another's device", bob.Do("DELETE", "/api/v1/devices/"+d1.ID, nil), 404, "not_found", "")
	must(t, alice.Do("DELETE", "/api/v1/devices/"+d2.ID, nil).Status == 204, "delete own device")
	wantErr(t, "delete twice", alice.Do("DELETE", "/api/v1/devices/"+d2.ID, nil), 404, "not_found", "")
	alice.NewDevice("tablet")
	// Carol shares only a plain conversation with nobody here: no frame.
	carolWS.Quiet("devices", 300*time.Millisecond)

	// A deleted account's devices go with it; its e2ee peers are told.
	bob.NewDevice("bob's")
	aliceWS := alice.Dial()
	r = bob.Do("DELETE", "/api/v1/me", map[string]string{"password": bob.PW})
	must(t, r.Status == 204, "delete bob: %d %s", r.Status, r.Body)
	f = aliceWS.WaitFor("devices", wait)
	must(t, f.UserID == bob.User.ID, "devices frame %+v", f)
	r = alice.Do("GET", "/api/v1/users/"+bob.User.ID+"/devices", nil)
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"devices":[]`), "a deleted account's devices: %d %s", r.Status, r.Body)
}

func TestMLSKeyPackages(t *testing.T) {
	ts := start(t, withArgs("-max-key-packages", "3"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	d := alice.NewDevice("laptop")
	other := alice.NewDevice("phone")
	path := "/api/v1/devices/" + d.ID + "/keypackages"
	up := func(c *client, kps ...[]byte) apiResp {
		var s []string
		for _, k := range kps {
			s = append(s, b64(k))
		}
		return c.Do("POST", path, map[string]any{"keyPackages": s})
	}
	good := func() []byte { m, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{}); return m }

	wantErr(t, "bad base64", alice.Do("POST", path, map[string]any{"keyPackages": []string{"%%%"}}), 400, "invalid_request", "keyPackages[0]")
	wantErr(t, "nothing", alice.Do("POST", path, map[string]any{}), 400, "invalid_request", "")
	wantErr(t, "not a key package", up(alice, []byte("hello world, not MLS")), 400, "invalid_request", "keyPackages[0]")
	suite2, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{CipherSuite: 2})
	wantErr(t, "wrong suite", up(alice, suite2), 400, "invalid_request", "keyPackages[0]")
	forged, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{SignWith: other.Key})
	wantErr(t, "bad signature", up(alice, forged), 400, "invalid_request", "keyPackages[0]")
	othersKey, _ := mlswiretest.KeyPackage(other.Key, d.Identity(), mlswiretest.KeyPackageOptions{})
	r := up(alice, good(), othersKey)
	wantErr(t, "another device's key", r, 400, "invalid_request", "keyPackages[1]")
	must(t, strings.Contains(r.Code()+string(r.Body), "another key"), "message: %s", r.Body)
	wrongID, _ := mlswiretest.KeyPackage(d.Key, bob.User.ID+":"+d.ID, mlswiretest.KeyPackageOptions{})
	wantErr(t, "wrong identity", up(alice, wrongID), 400, "invalid_request", "keyPackages[0]")
	// A real KeyPackage made by ts-mls (the web client's library) for
	// another identity and key: verified, then refused for what it names.
	tsmls, err := os.ReadFile("../mlswire/testdata/keypackage.bin")
	must(t, err == nil, "fixture: %v", err)
	wantErr(t, "ts-mls package of another device", up(alice, tsmls), 400, "invalid_request", "keyPackages[0]")
	expired, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	wantErr(t, "expired", up(alice, expired), 400, "invalid_request", "keyPackages[0]")
	future, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{NotBefore: time.Now().Add(time.Hour)})
	wantErr(t, "not yet valid", up(alice, future), 400, "invalid_request", "keyPackages[0]")
	big := make([]byte, 9<<10)
	wantErr(t, "too large", up(alice, big), 413, "request_too_large", "keyPackages[0]")
	wantErr(t, "another user's device", up(bob, good()), 404, "not_found", "")
	dup := good()
	wantErr(t, "the same package twice", up(alice, dup, dup), 400, "invalid_request", "keyPackages")

	r = up(alice, good(), good())
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"count":2`), "upload: %d %s", r.Status, r.Body)
	wantErr(t, "past -max-key-packages", up(alice, good(), good()), 409, "conflict", "")
	lr, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{LastResort: true})
	r = alice.Do("POST", path, map[string]any{"lastResort": b64(lr)})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"count":2`), "last resort: %d %s", r.Status, r.Body)
	r = alice.Do("GET", path, nil)
	must(t, r.Status == 200 && string(bytes.TrimSpace(r.Body)) == `{"count":2,"lastResort":true}`, "count: %d %s", r.Status, r.Body)
	wantErr(t, "count of another's device", bob.Do("GET", path, nil), 404, "not_found", "")
}

func TestMLSClaimAndCommit(t *testing.T) {
	ts := start(t, withArgs("-rate-key-package-claims", "8/1m"))
	alice, bob, carol, eve := ts.Register("alice"), ts.Register("bob"), ts.Register("carol"), ts.Register("eve")
	plain := alice.Group("plain", bob)
	g := alice.E2EEGroup("secret", bob)
	da, db, dc := alice.NewDevice("a"), bob.NewDevice("b"), carol.NewDevice("c")
	de := eve.NewDevice("e")
	bobRefs := db.Upload(1)
	dc.Upload(2)
	de.Upload(1)
	bobWS, carolWS := bob.Dial(), carol.Dial()

	// Claims.
	_, r := eve.Claim(g.ID, bob.User.ID)
	wantErr(t, "claim by a non-member", r, 404, "not_found", "")
	_, r = alice.Claim(plain.ID, bob.User.ID)
	wantErr(t, "claim in a plain conversation", r, 400, "invalid_request", "")
	_, r = bob.Claim(g.ID, carol.User.ID)
	wantErr(t, "a member claims someone they may not add", r, 403, "forbidden", "users")
	_, r = alice.Claim(g.ID, "u_nobody")
	wantErr(t, "claim of nobody", r, 404, "not_found", "users")
	_, r = alice.Claim(g.ID)
	wantErr(t, "claim of no one", r, 400, "invalid_request", "users")
	got, r := alice.Claim(g.ID, bob.User.ID)
	must(t, r.Status == 200 && len(got.KeyPackages) == 1 && got.KeyPackages[0].DeviceID == db.ID, "claim bob: %d %s", r.Status, r.Body)
	kp, err := base64.StdEncoding.DecodeString(got.KeyPackages[0].KeyPackage)
	must(t, err == nil, "key package base64: %v", err)
	parsed, err := mlswire.ParseKeyPackage(kp)
	must(t, err == nil && string(parsed.Identity) == db.Identity(), "claimed package: %v %+v", err, parsed)
	must(t, chattest.B64(parsed.Ref()) == chattest.B64(mustHex(t, bobRefs[0])), "claimed the uploaded package")
	again, _ := alice.Claim(g.ID, bob.User.ID)
	must(t, len(again.KeyPackages) == 0 && len(again.Missing) == 1 && again.Missing[0].DeviceID == db.ID,
		"a package went out twice: %+v", again)

	// Commits: every refusal first.
	commit := func(d *chattest.Device, body map[string]any) apiResp {
		if _, ok := body["deviceId"]; !ok {
			body["deviceId"] = d.ID
		}
		return d.C.Do("POST", "/api/v1/conversations/"+g.ID+"/mls/commit", body)
	}
	wantErr(t, "bad base64", commit(da, map[string]any{"commit": "%%%"}), 400, "invalid_request", "commit")
	wantErr(t, "not MLS", commit(da, map[string]any{"commit": b64([]byte("plain text"))}), 400, "invalid_request", "commit")
	wantErr(t, "application, not commit", commit(da, map[string]any{"commit": b64(mlswiretest.Application(g.ID, 0, 40))}), 400, "invalid_request", "commit")
	wantErr(t, "wrong group", commit(da, map[string]any{"commit": b64(mlswiretest.Commit(plain.ID, 0))}), 400, "invalid_request", "commit")
	r = commit(da, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 3))})
	wantErr(t, "future epoch", r, 409, "stale_epoch", "")
	must(t, strings.Contains(string(r.Body), `"epoch":0`), "stale_epoch names the current epoch: %s", r.Body)
	wantErr(t, "another user's device", commit(da, map[string]any{"deviceId": db.ID, "commit": b64(mlswiretest.Commit(g.ID, 0))}), 404, "not_found", "")
	wantErr(t, "no device", commit(da, map[string]any{"deviceId": "", "commit": b64(mlswiretest.Commit(g.ID, 0))}), 400, "invalid_request", "deviceId")
	wantErr(t, "non-member", commit(de, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0))}), 404, "not_found", "")
	wantErr(t, "plain conversation", alice.Do("POST", "/api/v1/conversations/"+plain.ID+"/mls/commit",
		map[string]any{"deviceId": da.ID, "commit": b64(mlswiretest.Commit(plain.ID, 0))}), 400, "invalid_request", "")
	wantErr(t, "add without welcome", commit(da, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0)), "add": []string{carol.User.ID}}), 400, "invalid_request", "welcome")
	wantErr(t, "add by a member", commit(db, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0)), "add": []string{carol.User.ID},
		"welcome": b64(mlswiretest.Welcome(mustHex(t, bobRefs[0])))}), 403, "forbidden", "add")
	wantErr(t, "welcome naming nobody", commit(da, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0)),
		"welcome": b64(mlswiretest.Welcome([]byte("0123456789abcdef0123456789abcdef")))}), 400, "invalid_request", "welcome")
	wantErr(t, "welcome not MLS", commit(da, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0)),
		"welcome": b64([]byte("nope"))}), 400, "invalid_request", "welcome")
	wantErr(t, "remove the owner", commit(db, map[string]any{"commit": b64(mlswiretest.Commit(g.ID, 0)), "remove": []string{alice.User.ID}}), 403, "forbidden", "remove")
	wantErr(t, "commit too large", commit(da, map[string]any{"commit": b64(make([]byte, 1<<20+1))}), 413, "request_too_large", "commit")
	wantErr(t, "the members endpoint refuses e2ee adds", alice.Do("POST", "/api/v1/conversations/"+g.ID+"/members",
		map[string]string{"userId": carol.User.ID}), 400, "invalid_request", "")

	// Epoch 0 -> 1: Alice's device commits Bob's device in (its Welcome).
	res, r := da.Commit(g.ID, 0, [][]byte{mustHex(t, bobRefs[0])}, nil, nil)
	must(t, r.Status == 200 && res.Epoch == 1, "commit 0: %d %s", r.Status, r.Body)
	fs := waitTypes(t, bobWS, "mls", "welcome") // unordered frames may pass ordered ones
	f := fs["mls"]
	mf, err := f.MLS()
	must(t, err == nil && mf.Seq == res.Seq && mf.Epoch == 1 && mf.DeviceID == da.ID && mf.SenderID == alice.User.ID && mf.Commit != "",
		"mls frame %s", f.Raw)
	f = fs["welcome"]
	must(t, f.ConversationID == g.ID && strings.Contains(string(f.Raw), db.ID), "welcome frame %s", f.Raw)
	ws, r := db.Welcomes()
	must(t, r.Status == 200 && len(ws) == 1 && ws[0].Seq == res.Seq && ws[0].Epoch == 1, "welcomes: %d %s", r.Status, r.Body)
	w, _ := base64.StdEncoding.DecodeString(ws[0].Welcome)
	pw, err := mlswire.ParseWelcome(w)
	must(t, err == nil && len(pw.NewMembers) == 1, "stored welcome: %v", err)
	wantErr(t, "another user's welcomes", alice.Do("GET", "/api/v1/devices/"+db.ID+"/welcomes", nil), 404, "not_found", "")
	wantErr(t, "delete another user's welcome", alice.Do("DELETE", "/api/v1/devices/"+db.ID+"/welcomes/"+g.ID, nil), 404, "not_found", "")
	must(t, bob.Do("DELETE", "/api/v1/devices/"+db.ID+"/welcomes/"+g.ID, nil).Status == 204, "delete welcome")
	wantErr(t, "delete it twice", bob.Do("DELETE", "/api/v1/devices/"+db.ID+"/welcomes/"+g.ID, nil), 404, "not_found", "")

	// The same epoch again: stale.
	_, r = db.Commit(g.ID, 0, nil, nil, nil)
	wantErr(t, "stale commit", r, 409, "stale_epoch", "")
	must(t, strings.Contains(string(r.Body), `"epoch":1`), "stale_epoch names epoch 1: %s", r.Body)

	// Epoch 1 -> 2: Alice adds Carol (both her devices' packages claimed).
	claimed, r := alice.Claim(g.ID, carol.User.ID)
	must(t, r.Status == 200 && len(claimed.KeyPackages) == 1, "claim carol: %d %s", r.Status, r.Body)
	res, r = da.Commit(g.ID, 1, claimed.Refs(t), []string{carol.User.ID}, nil)
	must(t, r.Status == 200 && res.Epoch == 2, "add carol: %d %s", r.Status, r.Body)
	f = carolWS.WaitFor("welcome", wait)
	must(t, f.ConversationID == g.ID, "carol's welcome frame %s", f.Raw)
	var conv protocol.Conversation
	r = carol.Do("GET", "/api/v1/conversations/"+g.ID, nil)
	r.Decode(t, &conv)
	must(t, r.Status == 200 && conv.E2EE && conv.MLSEpoch == 2 && len(conv.Members) == 3, "carol's view: %d %s", r.Status, r.Body)

	// Epoch 2 -> 3: Alice removes Bob; he is told, and is out.
	res, r = da.Commit(g.ID, 2, nil, nil, []string{bob.User.ID})
	must(t, r.Status == 200 && res.Epoch == 3, "remove bob: %d %s", r.Status, r.Body)
	bobWS.WaitFor("removed", wait)
	wantErr(t, "removed member claims", func() apiResp { _, r := bob.Claim(g.ID, carol.User.ID); return r }(), 404, "not_found", "")

	// The rate limit of claims (8 per minute; Alice made 3 above, her
	// refusals before the limiter do not count).
	for i := range 5 {
		_, r := alice.Claim(g.ID, carol.User.ID)
		must(t, r.Status == 200, "claim %d within the rate: %d %s", 4+i, r.Status, r.Body)
	}
	_, r = alice.Claim(g.ID, carol.User.ID)
	wantErr(t, "claims past the rate", r, 429, "rate_limited", "")
}

// waitTypes waits for one frame of each type, in any order.
func waitTypes(t *testing.T, w *wsConn, types ...string) map[string]chattest.Frame {
	t.Helper()
	out := map[string]chattest.Frame{}
	for len(out) < len(types) {
		f := w.Next(wait)
		for _, typ := range types {
			if f.Type == typ {
				if _, seen := out[typ]; !seen {
					out[typ] = f
				}
			}
		}
	}
	return out
}

// A full batch of KeyPackages (here -max-key-packages 200, ~90 KB of
// JSON) is larger than the default request limit (64 KiB): its route takes
// more, other routes do not.
func TestMLSKeyPackageBatch(t *testing.T) {
	ts := start(t, withArgs("-max-key-packages", "200"))
	alice := ts.Register("alice")
	d := alice.NewDevice("a")
	var kps []string
	for range 201 {
		m, _ := d.KeyPackage(mlswiretest.KeyPackageOptions{})
		kps = append(kps, b64(m))
	}
	path := "/api/v1/devices/" + d.ID + "/keypackages"
	wantErr(t, "201 at once", alice.Do("POST", path, map[string]any{"keyPackages": kps}), 400, "invalid_request", "keyPackages")
	body, _ := json.Marshal(map[string]any{"keyPackages": kps[:200]})
	must(t, len(body) > 64<<10, "the batch is only %d bytes", len(body))
	r := alice.Do("POST", path, body)
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"count":200`), "a full batch: %d %.200s", r.Status, r.Body)
	wantErr(t, "a large body elsewhere", alice.Do("POST", "/api/v1/devices", body), 413, "request_too_large", "")
}

// Commits and device changes share the per-user rate of changes
// (-rate-messages' size, a bucket apart from sends).
func TestMLSCommitRate(t *testing.T) {
	ts := start(t, withArgs("-rate-messages", "4/1m"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	g := alice.E2EEGroup("busy", bob)
	da := alice.NewDevice("a") // 1
	for e := range uint64(3) { // 2, 3, 4
		_, r := da.Commit(g.ID, e, nil, nil, nil)
		must(t, r.Status == 200, "commit %d: %d %s", e, r.Status, r.Body)
	}
	_, r := da.Commit(g.ID, 3, nil, nil, nil)
	wantErr(t, "a fifth change within the minute", r, 429, "rate_limited", "")
	key, _, _ := ed25519.GenerateKey(rand.Reader)
	wantErr(t, "a device past the rate", alice.Do("POST", "/api/v1/devices", map[string]string{"name": "x", "signatureKey": b64(key)}), 429, "rate_limited", "")
	// Sends have their own bucket.
	_, r = alice.SendCiphertext(g.ID, mlswiretest.Application(g.ID, 3, 20))
	must(t, r.Status == 201, "a send after the changes: %d %s", r.Status, r.Body)
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("not hex: %q", s)
	}
	return b
}

func TestMLSSendAndSync(t *testing.T) {
	ts := start(t, withArgs("-max-message-chars", "100"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	plain := alice.Direct(bob)
	r := alice.Do("POST", "/api/v1/conversations/direct", map[string]any{"userId": bob.User.ID, "e2ee": true})
	must(t, r.Status == 201, "e2ee direct: %d %s", r.Status, r.Body)
	var d protocol.Conversation
	r.Decode(t, &d)
	must(t, d.E2EE && d.ID != plain.ID, "the pair's e2ee direct conversation is its own: %+v", d)
	r = bob.Do("POST", "/api/v1/conversations/direct", map[string]any{"userId": alice.User.ID, "e2ee": true})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), d.ID), "found again: %d %s", r.Status, r.Body)
	da := alice.NewDevice("a")
	send := func(body map[string]any) apiResp {
		return alice.Do("POST", "/api/v1/conversations/"+d.ID+"/messages", body)
	}

	wantErr(t, "body in e2ee", send(map[string]any{"body": "hello"}), 400, "invalid_request", "body")
	wantErr(t, "body and ciphertext", send(map[string]any{"body": "x", "ciphertext": b64(mlswiretest.Application(d.ID, 0, 20))}), 400, "invalid_request", "")
	wantErr(t, "replyTo beside ciphertext", send(map[string]any{"replyTo": "m_x", "ciphertext": b64(mlswiretest.Application(d.ID, 0, 20))}), 400, "invalid_request", "")
	wantErr(t, "ciphertext in plain", alice.Do("POST", "/api/v1/conversations/"+plain.ID+"/messages",
		map[string]any{"ciphertext": b64(mlswiretest.Application(plain.ID, 0, 20))}), 400, "invalid_request", "ciphertext")
	wantErr(t, "bad base64", send(map[string]any{"ciphertext": "%%%"}), 400, "invalid_request", "ciphertext")
	wantErr(t, "wrong group", send(map[string]any{"ciphertext": b64(mlswiretest.Application(plain.ID, 0, 20))}), 400, "invalid_request", "ciphertext")
	wantErr(t, "a commit as a message", send(map[string]any{"ciphertext": b64(mlswiretest.Commit(d.ID, 0))}), 400, "invalid_request", "ciphertext")
	r = send(map[string]any{"ciphertext": b64(mlswiretest.Application(d.ID, 4, 20))})
	wantErr(t, "wrong epoch", r, 409, "stale_epoch", "")
	must(t, strings.Contains(string(r.Body), `"epoch":0`), "current epoch in %s", r.Body)
	// Limit: 4 × 100 characters + 4,096 bytes of MLS and payload overhead.
	wantErr(t, "too large", send(map[string]any{"ciphertext": b64(mlswiretest.Application(d.ID, 0, 4*100+4096))}), 413, "request_too_large", "ciphertext")

	bobWS := bob.Dial()
	ct := mlswiretest.Application(d.ID, 0, 200)
	m, r := alice.SendCiphertext(d.ID, ct)
	must(t, r.Status == 201 && m.Ciphertext == b64(ct) && m.Body == "" && m.Seq == 1, "send: %d %s", r.Status, r.Body)
	got := bobWS.WaitForMessage(m.ID, wait)
	must(t, got.Ciphertext == b64(ct), "delivered ciphertext differs")
	wantErr(t, "edit in e2ee", alice.Do("PATCH", "/api/v1/conversations/"+d.ID+"/messages/"+m.ID, map[string]string{"body": "x"}), 400, "invalid_request", "")
	wantErr(t, "react in e2ee", bob.Do("PUT", "/api/v1/conversations/"+d.ID+"/messages/"+m.ID+"/reactions/%F0%9F%91%8D", nil), 400, "invalid_request", "")

	// Over the WebSocket: an ack with the ciphertext; an old epoch is an
	// error frame with the current epoch.
	aliceWS := alice.Dial()
	ct2 := mlswiretest.Application(d.ID, 0, 50)
	aliceWS.Write(map[string]any{"type": "send", "id": "s1", "conversationId": d.ID, "ciphertext": b64(ct2)})
	f := aliceWS.WaitFor("ack", wait)
	must(t, f.Message != nil && f.Message.Ciphertext == b64(ct2), "ack %s", f.Raw)

	// A commit moves the epoch; its seq sits between the messages.
	res, r := da.Commit(d.ID, 0, nil, nil, nil)
	must(t, r.Status == 200 && res.Seq == 3 && res.Epoch == 1, "commit: %d %s", r.Status, r.Body)
	aliceWS.Write(map[string]any{"type": "send", "id": "s2", "conversationId": d.ID, "ciphertext": b64(ct2)})
	f = aliceWS.WaitFor("error", wait)
	must(t, f.ID == "s2" && f.Code == "stale_epoch" && strings.Contains(string(f.Raw), `"epoch":1`), "error frame %s", f.Raw)
	m4, r := alice.SendCiphertext(d.ID, mlswiretest.Application(d.ID, 1, 30))
	must(t, r.Status == 201 && m4.Seq == 4, "send at epoch 1: %d %s", r.Status, r.Body)
	// Deleting stays the server's: a tombstone without ciphertext.
	r = alice.Do("DELETE", "/api/v1/conversations/"+d.ID+"/messages/"+m.ID, nil)
	must(t, r.Status == 200 && !strings.Contains(string(r.Body), `"ciphertext"`), "delete: %d %s", r.Status, r.Body)

	// Sync from 0 on a new connection: message, message, commit, message,
	// deletion, by seq.
	bobWS = bob.Dial()
	bobWS.Sync("y", map[string]int64{d.ID: 0})
	var order []string
	for {
		f := bobWS.Next(wait)
		if f.Type == "synced" {
			must(t, f.Cursors[d.ID] == 5, "cursor %v", f.Cursors)
			break
		}
		switch f.Type {
		case "message", "mls", "message_deleted":
			var p struct{ Seq int64 }
			if f.Message != nil {
				p.Seq = f.Message.Seq
			} else {
				_ = json.Unmarshal(f.Raw, &p)
			}
			order = append(order, f.Type+"@"+itoa(p.Seq))
		}
	}
	want := "message@1 message@2 mls@3 message@4 message_deleted@5"
	must(t, strings.Join(order, " ") == want, "sync order %v, want %s", order, want)

	// The conversation list shows the e2ee flag and the epoch.
	var list struct{ Conversations []protocol.Conversation }
	r = bob.Do("GET", "/api/v1/conversations", nil)
	r.Decode(t, &list)
	for _, c := range list.Conversations {
		if c.ID == d.ID {
			must(t, c.E2EE && c.MLSEpoch == 1 && c.LastMessage != nil && c.LastMessage.Ciphertext != "", "list entry %+v", c)
		}
	}

	// Opaque uploads: stored as sent, no sniffing, named "encrypted".
	png := []byte("\x89PNG\r\n\x1a\n not really an image, but it would be sniffed as one")
	r = alice.API.Do("POST", "/api/v1/attachments?opaque=true", alice.Token, png, "X-Filename", "holiday.png")
	must(t, r.Status == 201, "opaque upload: %d %s", r.Status, r.Body)
	var a protocol.Attachment
	r.Decode(t, &a)
	must(t, a.Name == "encrypted" && a.ContentType == "application/octet-stream" && a.Size == int64(len(png)) &&
		a.Preview == "" && !a.Thumbnail, "opaque attachment %+v", a)
	r = alice.API.Do("POST", "/api/v1/attachments?opaque=maybe", alice.Token, png)
	wantErr(t, "opaque=maybe", r, 400, "invalid_request", "opaque")
	// The id goes beside the ciphertext so the upload is attached (kept
	// with the message, deleted with it); its key and name go inside.
	r = alice.Do("POST", "/api/v1/conversations/"+d.ID+"/messages", map[string]any{
		"ciphertext": b64(mlswiretest.Application(d.ID, 1, 80)), "attachments": []string{a.ID}})
	must(t, r.Status == 201 && strings.Contains(string(r.Body), a.ID), "send with an opaque attachment: %d %s", r.Status, r.Body)
	must(t, alice.Do("GET", "/api/v1/attachments/"+a.ID, nil).Status == 200, "the sender reads the opaque file")
	dl := bob.Do("GET", "/api/v1/attachments/"+a.ID, nil)
	must(t, dl.Status == 200 && bytes.Equal(dl.Body, png), "bob downloads the bytes as sent: %d", dl.Status)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A key rotation re-encrypts the MLS rows too (KeyPackages, commits,
// Welcomes): once the old data key is removed, all still open.
func TestMLSRowsSurviveKeyRotation(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "keys")
	_, err := keyring.LoadOrGenerate(keyDir, keyring.Options{})
	must(t, err == nil, "keyring: %v", err)
	ts := start(t, withArgs("-keyring-dir", keyDir, "-keyring-reload", "1s", "-reseal-interval", "1s"))
	alice, bob, carol := ts.Register("alice"), ts.Register("bob"), ts.Register("carol")
	g := alice.E2EEGroup("rotating", bob, carol)
	da, db, dc := alice.NewDevice("a"), bob.NewDevice("b"), carol.NewDevice("c")
	db.Upload(1)
	dc.Upload(2)
	claimed, _ := alice.Claim(g.ID, bob.User.ID)
	res, r := da.Commit(g.ID, 0, claimed.Refs(t), nil, nil)
	must(t, r.Status == 200, "commit: %d %s", r.Status, r.Body)
	ct := mlswiretest.Application(g.ID, 1, 64)
	m, _ := alice.SendCiphertext(g.ID, ct)

	f := readKeyring(t, keyDir)
	oldData := f.Data[0].ID
	nd, _ := keyringfile.NewDataKey(time.Now(), keyringfile.StateActive)
	f.Data[0].State = keyringfile.StateRetired
	f.Data = append(f.Data, nd)
	writeKeyring(t, keyDir, f)
	deadline := time.Now().Add(15 * time.Second)
	for {
		counts, err := ts.srv.Store().SealedCounts(context.Background())
		must(t, err == nil, "counts: %v", err)
		if counts[oldData] == 0 && counts[nd.ID] >= 5 { // a KeyPackage, a commit, a Welcome, the message, the title
			break
		}
		must(t, time.Now().Before(deadline), "MLS rows still sealed with the retired key: %v", counts)
		time.Sleep(200 * time.Millisecond)
	}
	f.Data = f.Data[1:]
	writeKeyring(t, keyDir, f)
	time.Sleep(1500 * time.Millisecond) // the reload interval

	ws, r := db.Welcomes()
	must(t, r.Status == 200 && len(ws) == 1 && ws[0].Seq == res.Seq, "Welcome after rotation: %d %s", r.Status, r.Body)
	got, r := alice.Claim(g.ID, carol.User.ID)
	must(t, r.Status == 200 && len(got.KeyPackages) == 1, "KeyPackage after rotation: %d %s", r.Status, r.Body)
	w := bob.Dial()
	w.Sync("s", map[string]int64{g.ID: 0})
	fr := w.WaitFor("mls", wait)
	mf, err := fr.MLS()
	must(t, err == nil && mf.Commit != "", "commit after rotation: %s", fr.Raw)
	msg := w.WaitForMessage(m.ID, wait)
	must(t, msg.Ciphertext == b64(ct), "message after rotation: %+v", msg)
}
