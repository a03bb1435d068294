package server_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// setAvatar uploads data as c's profile photo.
func setAvatar(c *client, data []byte) apiResp {
	return c.API.Do("PUT", "/api/v1/me/avatar", c.Token, data, "Content-Type", "image/png") // a claim the server ignores
}

func mustSetAvatar(t *testing.T, c *client, data []byte) protocol.User {
	t.Helper()
	r := setAvatar(c, data)
	must(t, r.Status == 200, "set avatar: %d %s", r.Status, r.Body)
	var u protocol.User
	r.Decode(t, &u)
	must(t, u.ID == c.User.ID && u.Avatar != "" && u.Email != "", "set avatar answer %+v", u)
	return u
}

// avatarKeys lists the profile photos in the server's blob store.
func avatarKeys(t *testing.T, ts *testServer) []string {
	t.Helper()
	var out []string
	for _, k := range blobKeys(t, ts) {
		if strings.HasPrefix(k, "p/") {
			out = append(out, k)
		}
	}
	return out
}

// jpegSegments lists the markers of a JPEG's segments before its first scan.
func jpegSegments(t *testing.T, b []byte) []byte {
	t.Helper()
	must(t, len(b) > 4 && b[0] == 0xFF && b[1] == 0xD8, "not a JPEG")
	var markers []byte
	for i := 2; i+4 <= len(b); {
		must(t, b[i] == 0xFF, "no marker at %d", i)
		m := b[i+1]
		markers = append(markers, m)
		if m == 0xDA { // start of scan: entropy-coded data follows
			return markers
		}
		i += 2 + int(b[i+2])<<8 + int(b[i+3])
	}
	t.Fatal("JPEG without a scan")
	return nil
}

// stripes is a w×h PNG: left third red, middle green, right third blue.
func stripes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0, 200, 0, 255}
			if x < w/3 {
				c = color.RGBA{200, 0, 0, 255}
			} else if x >= w-w/3 {
				c = color.RGBA{0, 0, 200, 255}
			}
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	must(t, png.Encode(&buf, img) == nil, "encode png")
	return buf.Bytes()
}

// Profile photos (issue 12) on both engines: set, announced by the "user"
// frame, served to any signed-in user as a 256×256 JPEG without metadata,
// cached by version; replaced and removed with their blobs; bombs, non-images
// and oversized uploads refused storing nothing; exported; gone with the account.
func TestAvatar(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		alice, bob, carol := registerAs(ts, "alice", "Alice"), registerAs(ts, "bob", "Bob"), registerAs(ts, "carol", "Carol")
		conv := alice.Direct(bob)
		bobWS, carolWS := bob.Dial(), carol.Dial()
		path := "/api/v1/users/" + alice.User.ID + "/avatar"
		must(t, get(ts, bob, path, "").Code() == "not_found", "photo before there is one")

		// A JPEG carrying EXIF GPS, a comment and orientation 6.
		jpg, secret := testJPEG(t, 64, 32)
		me := mustSetAvatar(t, alice, jpg)
		f := bobWS.WaitFor("user", 5*time.Second)
		must(t, f.User != nil && f.User.ID == alice.User.ID && f.User.Avatar == me.Avatar && f.User.DisplayName == "Alice",
			"bob's user frame %s", f.Raw)
		carolWS.Quiet("user", 300*time.Millisecond) // shares no conversation with alice

		// Anyone signed in may fetch it, carol included.
		for _, c := range []*client{bob, carol, alice} {
			r := get(ts, c, path, "")
			must(t, r.Status == 200 && r.Header.Get("Content-Type") == "image/jpeg", "%s fetches the photo: %d %s", c.User.Username, r.Status, r.Body)
			must(t, r.Header.Get("X-Content-Type-Options") == "nosniff", "nosniff %q", r.Header.Get("X-Content-Type-Options"))
			must(t, r.Header.Get("ETag") == `"`+me.Avatar+`"`, "ETag %q, version %q", r.Header.Get("ETag"), me.Avatar)
			must(t, r.Header.Get("Cache-Control") == "private, max-age=60", "Cache-Control %q", r.Header.Get("Cache-Control"))
			img, err := jpeg.Decode(bytes.NewReader(r.Body))
			must(t, err == nil && img.Bounds().Dx() == 256 && img.Bounds().Dy() == 256, "served photo: %v %v", err, img.Bounds())
			for _, m := range jpegSegments(t, r.Body) {
				must(t, m != 0xE1 && m != 0xFE, "served photo carries segment %#x", m)
			}
			must(t, !bytes.Contains(r.Body, []byte(secret)) && !bytes.Contains(r.Body, []byte("Exif")), "metadata served")
		}
		must(t, ts.Do("GET", path, "", nil).Status == 401, "anonymous photo fetch")
		r := get(ts, bob, path+"?v="+me.Avatar, "")
		must(t, r.Status == 200 && r.Header.Get("Cache-Control") == "private, max-age=31536000, immutable", "versioned fetch: %d %q", r.Status, r.Header.Get("Cache-Control"))
		r = ts.Do("GET", path, bob.Token, nil, "If-None-Match", `"`+me.Avatar+`"`)
		must(t, r.Status == 304 && len(r.Body) == 0, "revalidation: %d", r.Status)

		// Every user view carries the version: me, members, search.
		var got protocol.User
		alice.Do("GET", "/api/v1/me", nil).Decode(t, &got)
		must(t, got.Avatar == me.Avatar, "GET /me avatar %q", got.Avatar)
		var c protocol.Conversation
		bob.Do("GET", "/api/v1/conversations/"+conv.ID, nil).Decode(t, &c)
		must(t, slices.ContainsFunc(c.Members, func(m protocol.Member) bool { return m.ID == alice.User.ID && m.Avatar == me.Avatar }),
			"members %+v", c.Members)
		var found struct{ Users []protocol.User }
		carol.Do("GET", "/api/v1/users?q=alice", nil).Decode(t, &found)
		must(t, len(found.Users) == 1 && found.Users[0].Avatar == me.Avatar, "search %+v", found.Users)
		keys := avatarKeys(t, ts)
		must(t, len(keys) == 1, "photo blobs %v", keys)

		// Replacing: a new version, the old blob gone; a centred square crop.
		me2 := mustSetAvatar(t, alice, stripes(t, 300, 100))
		must(t, me2.Avatar != me.Avatar, "same version after a new photo")
		f = bobWS.WaitFor("user", 5*time.Second)
		must(t, f.User.Avatar == me2.Avatar, "frame after replacing %s", f.Raw)
		keys2 := avatarKeys(t, ts)
		must(t, len(keys2) == 1 && keys2[0] != keys[0], "photo blobs after replacing %v (before %v)", keys2, keys)
		r = get(ts, bob, path, "")
		img, err := jpeg.Decode(bytes.NewReader(r.Body))
		must(t, err == nil, "decode: %v", err)
		for _, x := range []int{2, 128, 253} { // all green: the middle third
			cr, cg, cb, _ := img.At(x, 128).RGBA()
			must(t, cr>>8 < 40 && cg>>8 > 160 && cb>>8 < 40, "pixel %d,128 = %d,%d,%d: not the centre crop", x, cr>>8, cg>>8, cb>>8)
		}
		blobsBefore := blobKeys(t, ts)

		// Refusals store nothing and change nothing.
		start := time.Now()
		r = setAvatar(alice, pngHeader(100000, 100000))
		must(t, r.Status == 413 && r.Code() == "image_too_large" && r.Field() == "file", "bomb: %d %s", r.Status, r.Body)
		must(t, time.Since(start) < 2*time.Second, "bomb refused in %s", time.Since(start))
		r = setAvatar(alice, []byte("just some text, not a picture"))
		must(t, r.Status == 400 && r.Code() == "invalid_media" && r.Field() == "file", "text: %d %s", r.Status, r.Body)
		r = setAvatar(alice, []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`))
		must(t, r.Status == 400 && r.Code() == "invalid_media", "svg: %d %s", r.Status, r.Body)
		r = setAvatar(alice, append(pngHeader(10, 10)[:40], make([]byte, 100)...))
		must(t, r.Status == 400 && r.Code() == "invalid_media", "broken png: %d %s", r.Status, r.Body)
		over := append(stripes(t, 30, 30), make([]byte, 10<<20)...)
		r = setAvatar(alice, over)
		must(t, r.Status == 413 && r.Code() == "attachment_too_large" && r.Field() == "file", "too large: %d %s", r.Status, r.Body)
		// Without a Content-Length: cut off while reading.
		req, _ := http.NewRequest("PUT", ts.Base+"/api/v1/me/avatar", io.MultiReader(bytes.NewReader(over)))
		req.Header.Set("Authorization", "Bearer "+alice.Token)
		req.ContentLength = -1
		res, err := http.DefaultClient.Do(req)
		must(t, err == nil, "chunked upload: %v", err)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		must(t, res.StatusCode == 413 && strings.Contains(string(body), "attachment_too_large"), "chunked too large: %d %s", res.StatusCode, body)
		must(t, slices.Equal(blobKeys(t, ts), blobsBefore), "refusals changed the blobs: %v, before %v", blobKeys(t, ts), blobsBefore)
		alice.Do("GET", "/api/v1/me", nil).Decode(t, &got)
		must(t, got.Avatar == me2.Avatar, "refusals changed the photo: %q", got.Avatar)

		// Export says there is one.
		var ex struct {
			Profile struct {
				Avatar *struct{ Version, Path string } `json:"avatar"`
			} `json:"profile"`
		}
		alice.Do("GET", "/api/v1/me/export", nil).Decode(t, &ex)
		must(t, ex.Profile.Avatar != nil && ex.Profile.Avatar.Version == me2.Avatar && ex.Profile.Avatar.Path == path, "export %+v", ex.Profile.Avatar)

		// Removing: announced, the blob deleted, 404 after; again is a no-op.
		r = alice.Do("DELETE", "/api/v1/me/avatar", nil)
		got = protocol.User{}
		r.Decode(t, &got)
		must(t, r.Status == 200 && got.Avatar == "" && got.ID == alice.User.ID, "remove: %d %s", r.Status, r.Body)
		f = bobWS.WaitFor("user", 5*time.Second)
		must(t, f.User.ID == alice.User.ID && f.User.Avatar == "" && !strings.Contains(string(f.Raw), `"avatar"`), "frame after removal %s", f.Raw)
		must(t, len(avatarKeys(t, ts)) == 0, "photo blobs after removal %v", avatarKeys(t, ts))
		must(t, get(ts, bob, path, "").Status == 404, "photo served after removal")
		must(t, alice.Do("DELETE", "/api/v1/me/avatar", nil).Status == 200, "removing no photo")
		bobWS.Quiet("user", 300*time.Millisecond)
		ex.Profile.Avatar = nil
		r = alice.Do("GET", "/api/v1/me/export", nil)
		r.Decode(t, &ex)
		must(t, ex.Profile.Avatar == nil && bytes.Contains(r.Body, []byte(`"avatar":null`)), "export without a photo: %s", r.Body[:min(len(r.Body), 300)])

		// Account deletion deletes the photo.
		mustSetAvatar(t, alice, jpg)
		must(t, len(avatarKeys(t, ts)) == 1, "photo blobs %v", avatarKeys(t, ts))
		r = alice.Do("DELETE", "/api/v1/me", map[string]string{"password": alice.PW})
		must(t, r.Status == 204, "delete account: %d %s", r.Status, r.Body)
		must(t, len(avatarKeys(t, ts)) == 0, "photo blobs after account deletion %v", avatarKeys(t, ts))
		must(t, get(ts, bob, path, "").Status == 404, "a deleted account's photo served")
		u, err := ts.srv.Store().UserByID(context.Background(), alice.User.ID)
		must(t, err == nil && u.Avatar == (store.Avatar{}), "deleted account's row still names a photo: %+v %v", u, err)
		c = protocol.Conversation{} // decoding into the old one would keep absent fields
		bob.Do("GET", "/api/v1/conversations/"+conv.ID, nil).Decode(t, &c)
		must(t, slices.ContainsFunc(c.Members, func(m protocol.Member) bool { return m.ID == alice.User.ID && m.Avatar == "" }),
			"members after deletion %+v", c.Members)
	})
}

// A key rotation re-encrypts profile photos like attachments: once the old
// data key is removed the photo still opens.
func TestAvatarSurvivesKeyRotation(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "keys")
	_, err := keyring.LoadOrGenerate(keyDir, keyring.Options{})
	must(t, err == nil, "keyring: %v", err)
	ts := start(t, withArgs("-keyring-dir", keyDir, "-keyring-reload", "1s", "-reseal-interval", "1s"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	me := mustSetAvatar(t, alice, stripes(t, 90, 90))
	path := "/api/v1/users/" + alice.User.ID + "/avatar"
	before := get(ts, bob, path, "")
	must(t, before.Status == 200, "photo before rotation: %d", before.Status)
	oldKeys := avatarKeys(t, ts)

	f := readKeyring(t, keyDir)
	oldData := f.Data[0].ID
	nd, _ := keyringfile.NewDataKey(time.Now(), keyringfile.StateActive)
	f.Data[0].State = keyringfile.StateRetired
	f.Data = append(f.Data, nd)
	writeKeyring(t, keyDir, f)
	deadline := time.Now().Add(20 * time.Second)
	for {
		counts, err := ts.srv.Store().SealedCounts(context.Background())
		must(t, err == nil, "counts: %v", err)
		if counts[oldData] == 0 && counts[nd.ID] == 1 {
			break
		}
		must(t, time.Now().Before(deadline), "photo still sealed with the retired key: %v", counts)
		time.Sleep(200 * time.Millisecond)
	}
	u, err := ts.srv.Store().UserByID(context.Background(), alice.User.ID)
	must(t, err == nil && u.Avatar.KeyID == nd.ID && u.Avatar.Version == me.Avatar, "after reseal %+v %v", u.Avatar, err)
	newKeys := avatarKeys(t, ts)
	must(t, len(newKeys) == 1 && newKeys[0] != oldKeys[0], "photo blobs after reseal %v (before %v)", newKeys, oldKeys)

	f.Data = f.Data[1:]
	writeKeyring(t, keyDir, f)
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(string(ts.Do("GET", "/metrics", "", nil).Body), `parley_keyring_reloads_total{result="ok"} 2`) {
		must(t, time.Now().Before(deadline), "keyring not reloaded")
		time.Sleep(100 * time.Millisecond)
	}
	after := get(ts, bob, path, "")
	must(t, after.Status == 200 && bytes.Equal(after.Body, before.Body), "photo after the old key is gone: %d", after.Status)
	must(t, after.Header.Get("ETag") == fmt.Sprintf("%q", me.Avatar), "version changed by reseal: %q", after.Header.Get("ETag"))
}
