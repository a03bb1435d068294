package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// upload sends data as an attachment named name.
func upload(c *client, name string, data []byte) apiResp {
	return c.API.Do("POST", "/api/v1/attachments", c.Token, data, "X-Filename", url.PathEscape(name),
		"Content-Type", "text/plain") // a claim the server ignores
}

func mustUpload(t *testing.T, c *client, name string, data []byte) protocol.Attachment {
	t.Helper()
	r := upload(c, name, data)
	must(t, r.Status == 201, "upload %s: %d %s", name, r.Status, r.Body)
	var a protocol.Attachment
	r.Decode(t, &a)
	return a
}

func sendFiles(t *testing.T, c *client, convID, body string, ids ...string) protocol.Message {
	t.Helper()
	r := c.Do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]any{"body": body, "attachments": ids})
	must(t, r.Status == 201, "send with %v: %d %s", ids, r.Status, r.Body)
	var m protocol.Message
	r.Decode(t, &m)
	return m
}

// get fetches path with c's token (or none, for a signed URL) and a Range.
func get(ts *testServer, c *client, path, rng string) apiResp {
	tok := ""
	if c != nil {
		tok = c.Token
	}
	hdr := []string{}
	if rng != "" {
		hdr = append(hdr, "Range", rng)
	}
	return ts.Do("GET", path, tok, nil, hdr...)
}

// blobKeys lists every object in the server's blob store.
func blobKeys(t *testing.T, ts *testServer) []string {
	t.Helper()
	var keys []string
	for info, err := range ts.srv.Blobs().List(context.Background(), "", time.Now().Add(time.Hour)) {
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, info.Key)
	}
	return keys
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// Upload, send, read, ranges at segment boundaries, access rules, signed
// URLs and deletion, on both engines.
func TestAttachmentRoundTrip(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		alice, bob, carol := registerAs(ts, "alice", "Alice"), registerAs(ts, "bob", "Bob"), registerAs(ts, "carol", "Carol")
		conv := alice.Direct(bob)
		data := pattern(3*sealed.SegmentSize + 1234)
		a := mustUpload(t, alice, "report.bin", data)
		must(t, a.Size == int64(len(data)) && a.Name == "report.bin" && a.ContentType == "application/octet-stream",
			"upload answer %+v", a)

		// Before it is sent: its uploader may fetch it, nobody else.
		must(t, get(ts, alice, "/api/v1/attachments/"+a.ID, "").Status == 200, "uploader cannot read the upload")
		must(t, get(ts, bob, "/api/v1/attachments/"+a.ID, "").Status == 404, "someone else read an unsent upload")

		m := sendFiles(t, alice, conv.ID, "", a.ID) // no text: the attachment is the message
		must(t, len(m.Attachments) == 1 && m.Attachments[0].ID == a.ID && m.Body == "", "sent message %+v", m)
		// The conversation list's last message names its files (a preview of a message without text).
		var list struct {
			Conversations []protocol.Conversation `json:"conversations"`
		}
		lr := bob.Do("GET", "/api/v1/conversations", nil)
		must(t, lr.Status == 200, "list: %d %s", lr.Status, lr.Body)
		lr.Decode(t, &list)
		must(t, len(list.Conversations) == 1 && list.Conversations[0].LastMessage != nil &&
			len(list.Conversations[0].LastMessage.Attachments) == 1 && list.Conversations[0].LastMessage.Attachments[0].Name == "report.bin",
			"list's last message: %s", lr.Body)
		hist := bob.History(conv.ID, 0)
		must(t, len(hist) == 1 && len(hist[0].Attachments) == 1 && hist[0].Attachments[0].Size == int64(len(data)),
			"bob's history %+v", hist)
		// Sent once: not again.
		r := alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]any{"body": "again", "attachments": []string{a.ID}})
		must(t, r.Status == 400 && r.Field() == "attachments", "attaching a sent upload again: %d %s", r.Status, r.Body)

		path := "/api/v1/attachments/" + a.ID
		full := get(ts, bob, path, "")
		must(t, full.Status == 200 && bytes.Equal(full.Body, data), "bob's download: %d, %d bytes", full.Status, len(full.Body))
		must(t, full.Header.Get("Content-Type") == "application/octet-stream", "type %q", full.Header.Get("Content-Type"))
		must(t, strings.HasPrefix(full.Header.Get("Content-Disposition"), "attachment;"), "disposition %q", full.Header.Get("Content-Disposition"))
		must(t, full.Header.Get("Accept-Ranges") == "bytes", "no Accept-Ranges")
		must(t, full.Header.Get("Content-Security-Policy") == "sandbox; default-src 'none'", "CSP %q", full.Header.Get("Content-Security-Policy"))

		seg := int64(sealed.SegmentSize)
		size := int64(len(data))
		for _, rg := range [][2]int64{{0, 0}, {seg - 1, seg}, {seg, 2*seg - 1}, {seg - 5, 2*seg + 5}, {2*seg - 1, 3 * seg}, {3 * seg, size - 1}, {size - 1, size - 1}} {
			r := get(ts, bob, path, fmt.Sprintf("bytes=%d-%d", rg[0], rg[1]))
			must(t, r.Status == 206 && bytes.Equal(r.Body, data[rg[0]:rg[1]+1]), "range %v: %d, %d bytes", rg, r.Status, len(r.Body))
			must(t, r.Header.Get("Content-Range") == fmt.Sprintf("bytes %d-%d/%d", rg[0], rg[1], size), "Content-Range %q", r.Header.Get("Content-Range"))
		}
		r = get(ts, bob, path, "bytes=-10")
		must(t, r.Status == 206 && bytes.Equal(r.Body, data[size-10:]), "suffix range: %d", r.Status)
		r = get(ts, bob, path, fmt.Sprintf("bytes=%d-", 2*seg))
		must(t, r.Status == 206 && bytes.Equal(r.Body, data[2*seg:]), "open range: %d", r.Status)
		r = get(ts, bob, path, fmt.Sprintf("bytes=%d-", size))
		must(t, r.Status == 416 && r.Header.Get("Content-Range") == fmt.Sprintf("bytes */%d", size), "range past the end: %d %v", r.Status, r.Header)

		// A non-member gets 404, by token and for a signed URL.
		must(t, get(ts, carol, path, "").Status == 404, "non-member read the attachment")
		must(t, carol.Do("GET", path+"/url", nil).Status == 404, "non-member got a signed URL")
		must(t, ts.Do("GET", path, "", nil).Status == 401, "anonymous download")

		// Signed URLs: bound to the user and the attachment.
		var su struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expiresAt"`
		}
		r = bob.Do("GET", path+"/url", nil)
		must(t, r.Status == 200, "url: %d %s", r.Status, r.Body)
		r.Decode(t, &su)
		must(t, !strings.Contains(su.URL, bob.Token) && time.Until(su.ExpiresAt) > 25*time.Minute, "signed URL %+v", su)
		r = get(ts, nil, su.URL, "bytes=100-199")
		must(t, r.Status == 206 && bytes.Equal(r.Body, data[100:200]), "signed URL download: %d %s", r.Status, r.Body)
		forged := strings.Replace(su.URL, "u="+bob.User.ID, "u="+carol.User.ID, 1)
		must(t, get(ts, nil, forged, "").Status == 401, "signed URL for another user")
		other := mustUpload(t, alice, "other.bin", []byte("other"))
		sendFiles(t, alice, conv.ID, "x", other.ID)
		moved := strings.Replace(su.URL, a.ID, other.ID, 1)
		must(t, get(ts, nil, moved, "").Status == 401, "signed URL moved to another attachment")
		must(t, get(ts, nil, strings.Replace(su.URL, "/"+a.ID+"?", "/"+a.ID+"/thumbnail?", 1), "").Status == 401,
			"a file URL used for the thumbnail")

		// Deleting the message deletes its blobs: downloads 404, the store is empty of it.
		keysBefore := blobKeys(t, ts)
		must(t, len(keysBefore) == 2, "blobs before deletion: %v", keysBefore)
		r = alice.Do("DELETE", "/api/v1/conversations/"+conv.ID+"/messages/"+m.ID, nil)
		must(t, r.Status == 200, "delete: %d %s", r.Status, r.Body)
		for _, k := range blobKeys(t, ts) {
			must(t, !strings.Contains(k, a.ID), "blob %s of a deleted message is still stored", k)
		}
		must(t, get(ts, bob, path, "").Status == 404, "download after deletion")
		must(t, get(ts, nil, su.URL, "").Status == 404, "signed URL after deletion")
	})
}

// testJPEG is a small JPEG with an EXIF segment holding a GPS block, a
// maker string and orientation 6 (rotate 90°), and a comment.
func testJPEG(t *testing.T, w, h int) ([]byte, string) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 4), 200, 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	const secret = "GPS 48.8584N 2.2945E SECRET-HOME"
	// TIFF, big-endian: IFD0 with Orientation=6 and a GPS IFD pointer; the
	// GPS IFD holds GPSLatitudeRef 'N' and an ASCII tag with the secret.
	var tiff bytes.Buffer
	be := binary.BigEndian
	tiff.WriteString("MM\x00\x2A")
	binary.Write(&tiff, be, uint32(8))
	binary.Write(&tiff, be, uint16(2))
	binary.Write(&tiff, be, []uint16{0x0112, 3})
	binary.Write(&tiff, be, uint32(1))
	binary.Write(&tiff, be, []uint16{6, 0})
	gpsOff := uint32(8 + 2 + 2*12 + 4)
	binary.Write(&tiff, be, []uint16{0x8825, 4})
	binary.Write(&tiff, be, uint32(1))
	binary.Write(&tiff, be, gpsOff)
	binary.Write(&tiff, be, uint32(0))
	strOff := gpsOff + 2 + 2*12 + 4
	binary.Write(&tiff, be, uint16(2))
	binary.Write(&tiff, be, []uint16{0x0001, 2})
	binary.Write(&tiff, be, uint32(2))
	tiff.WriteString("N\x00\x00\x00")
	binary.Write(&tiff, be, []uint16{0x001B, 2}) // GPSProcessingMethod, as ASCII here
	binary.Write(&tiff, be, uint32(len(secret)+1))
	binary.Write(&tiff, be, strOff)
	binary.Write(&tiff, be, uint32(0))
	tiff.WriteString(secret + "\x00")
	app1 := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, byte((len(app1) + 2) >> 8), byte(len(app1) + 2)}
	seg = append(seg, app1...)
	com := []byte("COMMENT " + secret)
	seg = append(seg, 0xFF, 0xFE, byte((len(com)+2)>>8), byte(len(com)+2))
	seg = append(seg, com...)
	out := append([]byte{0xFF, 0xD8}, seg...)
	out = append(out, raw[2:]...)
	return out, secret
}

// pngHeader is a PNG signature and an IHDR chunk claiming w×h pixels, then
// a few bytes: no image data to speak of.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 0, 17)
	ihdr = append(ihdr, "IHDR"...)
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 6, 0, 0, 0) // 8-bit RGBA
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
	return append(b, make([]byte, 64)...)
}

// The security tests: active content served inert, EXIF GPS gone,
// decompression bombs refused before decoding, path traversal harmless.
func TestAttachmentSecurity(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		alice, bob := registerAs(ts, "alice", "Alice"), registerAs(ts, "bob", "Bob")
		conv := alice.Direct(bob)

		// HTML and SVG: served as downloads, sandboxed, not sniffed.
		html := mustUpload(t, alice, "page.html", []byte("<!DOCTYPE html><html><script>alert(document.cookie)</script></html>"))
		svg := mustUpload(t, alice, "logo.svg", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>`))
		sendFiles(t, alice, conv.ID, "files", html.ID, svg.ID)
		must(t, html.ContentType == "text/html; charset=utf-8", "html sniffed as %q", html.ContentType)
		must(t, svg.ContentType == "text/xml; charset=utf-8", "svg sniffed as %q", svg.ContentType)
		for _, a := range []protocol.Attachment{html, svg} {
			r := get(ts, bob, "/api/v1/attachments/"+a.ID, "")
			must(t, r.Status == 200, "download %s: %d", a.Name, r.Status)
			h := r.Header
			must(t, strings.HasPrefix(h.Get("Content-Disposition"), "attachment;"), "%s disposition %q", a.Name, h.Get("Content-Disposition"))
			must(t, h.Get("Content-Security-Policy") == "sandbox; default-src 'none'", "%s CSP %q", a.Name, h.Get("Content-Security-Policy"))
			must(t, h.Get("X-Content-Type-Options") == "nosniff", "%s nosniff %q", a.Name, h.Get("X-Content-Type-Options"))
			must(t, h.Get("Content-Type") == a.ContentType, "%s served as %q", a.Name, h.Get("Content-Type"))
		}

		// EXIF GPS: stripped from what is stored and served; orientation kept.
		jpg, secret := testJPEG(t, 64, 32)
		must(t, bytes.Contains(jpg, []byte(secret)), "test JPEG lacks its secret")
		img := mustUpload(t, alice, "IMG_0001.jpg", jpg)
		must(t, img.ContentType == "image/jpeg" && img.Width == 32 && img.Height == 64 && img.Thumbnail &&
			strings.HasPrefix(img.Preview, "data:image/png;base64,"), "jpeg upload %+v", img)
		must(t, len(img.Preview) < 1200, "preview of %d bytes", len(img.Preview))
		sendFiles(t, alice, conv.ID, "", img.ID)
		r := get(ts, bob, "/api/v1/attachments/"+img.ID, "")
		must(t, r.Status == 200 && r.Header.Get("Content-Type") == "image/jpeg", "jpeg download %d %q", r.Status, r.Header.Get("Content-Type"))
		must(t, strings.HasPrefix(r.Header.Get("Content-Disposition"), "inline;"), "jpeg disposition %q", r.Header.Get("Content-Disposition"))
		must(t, !bytes.Contains(r.Body, []byte(secret)) && !bytes.Contains(r.Body, []byte("SECRET")), "GPS or comment served")
		must(t, !bytes.Contains(r.Body, []byte{0x88, 0x25}), "GPS IFD pointer tag served")
		must(t, bytes.Contains(r.Body, []byte("Exif\x00\x00MM\x00\x2A\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06")),
			"orientation not carried over")
		dec, err := jpeg.Decode(bytes.NewReader(r.Body))
		must(t, err == nil && dec.Bounds().Dx() == 64 && dec.Bounds().Dy() == 32, "served JPEG decodes: %v", err)
		th := get(ts, bob, "/api/v1/attachments/"+img.ID+"/thumbnail", "")
		must(t, th.Status == 200 && th.Header.Get("Content-Type") == "image/jpeg", "thumbnail %d", th.Status)
		tdec, err := jpeg.Decode(bytes.NewReader(th.Body))
		must(t, err == nil && tdec.Bounds().Dx() == 32 && tdec.Bounds().Dy() == 64, "thumbnail turned upright: %v %v", err, tdec.Bounds())
		must(t, !bytes.Contains(th.Body, []byte(secret)), "GPS in the thumbnail")

		// Decompression bomb: a PNG header claiming 100000×100000 pixels.
		before := len(blobKeys(t, ts))
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		start := time.Now()
		r = upload(alice, "bomb.png", pngHeader(100000, 100000))
		took := time.Since(start)
		runtime.ReadMemStats(&ms1)
		must(t, r.Status == 413 && r.Code() == "image_too_large" && r.Field() == "file", "bomb: %d %s", r.Status, r.Body)
		must(t, took < 2*time.Second, "bomb refused in %s", took)
		// Decoding would need 40 GB; the whole request allocates a few MiB.
		must(t, ms1.TotalAlloc-ms0.TotalAlloc < 64<<20, "bomb upload allocated %d bytes", ms1.TotalAlloc-ms0.TotalAlloc)
		must(t, len(blobKeys(t, ts)) == before, "a refused image left a blob")

		// Path traversal in names: a label only.
		for name, want := range map[string]string{"../../etc/passwd": "passwd", `..\..\boot.ini`: "boot.ini",
			"/": "file", "..": "file", "a\u202Egnp.exe": "agnp.exe", "report\x00.pdf": "report.pdf"} {
			a := mustUpload(t, alice, name, []byte("x"))
			must(t, a.Name == want, "name %q kept as %q, want %q", name, a.Name, want)
		}
		for _, k := range blobKeys(t, ts) {
			must(t, blob.ValidateKey(k) == nil && strings.HasPrefix(k, "a/") && !strings.Contains(k, "passwd") &&
				!strings.Contains(k, "boot"), "blob key %q", k)
		}
		if ts.cfg.AttachmentsStore == "fs" {
			filepath.WalkDir(ts.cfg.DataDir, func(p string, d fs.DirEntry, err error) error {
				must(t, err == nil && !strings.Contains(d.Name(), "passwd") && !strings.Contains(d.Name(), "boot"), "file %s", p)
				return nil
			})
			_, err := os.Stat("/etc/passwd.parley")
			must(t, os.IsNotExist(err), "something was written outside the data folder")
		}
	})
}

// oggOpus is an Ogg Opus stream of seconds seconds: an OpusHead page and a
// last page whose granule position says where the audio ends.
func oggOpus(seconds int) []byte {
	page := func(granule int64, flags byte, body []byte) []byte {
		b := []byte("OggS\x00")
		b = append(b, flags)
		b = binary.LittleEndian.AppendUint64(b, uint64(granule))
		b = append(b, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, byte(len(body)))
		return append(b, body...)
	}
	head := append([]byte("OpusHead\x01\x01"), 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0) // pre-skip 312
	out := page(0, 2, head)
	out = append(out, page(0, 0, []byte("OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"))...)
	out = append(out, page(int64(seconds)*48000+312, 4, bytes.Repeat([]byte{0xFC}, 200))...)
	return out
}

// Size limit (413, nothing stored, with and without Content-Length),
// quota, voice duration and its limit.
func TestAttachmentLimits(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			opts := []option{withArgs("-max-attachment-mib", "1", "-attachment-quota-mib", "2", "-max-voice-length", "10s")}
			if engine == "postgres" {
				opts = append(opts, withPostgres(t))
			}
			ts := start(t, opts...)
			alice := registerAs(ts, "alice", "Alice")
			over := pattern(1<<20 + 1)
			r := upload(alice, "big.bin", over)
			must(t, r.Status == 413 && r.Code() == "attachment_too_large" && r.Field() == "file", "over the limit: %d %s", r.Status, r.Body)
			// Without a Content-Length the server finds out while streaming.
			req, _ := http.NewRequest("POST", ts.Base+"/api/v1/attachments", io.MultiReader(bytes.NewReader(over)))
			req.Header.Set("Authorization", "Bearer "+alice.Token)
			req.ContentLength = -1
			res, err := http.DefaultClient.Do(req)
			must(t, err == nil, "chunked upload: %v", err)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			must(t, res.StatusCode == 413 && strings.Contains(string(body), "attachment_too_large"), "chunked over the limit: %d %s", res.StatusCode, body)
			must(t, len(blobKeys(t, ts)) == 0, "refused uploads left blobs: %v", blobKeys(t, ts))
			used, err := ts.srv.Store().AttachmentUsage(context.Background(), alice.User.ID)
			must(t, err == nil && used == 0, "usage after refusals: %d %v", used, err)

			mustUpload(t, alice, "a.bin", pattern(1<<20))
			mustUpload(t, alice, "b.bin", pattern(1<<20-10))
			r = upload(alice, "c.bin", pattern(11))
			must(t, r.Status == 413 && r.Code() == "quota_exceeded" && r.Field() == "file", "over quota: %d %s", r.Status, r.Body)
			d := mustUpload(t, alice, "d.bin", pattern(10)) // exactly the quota
			must(t, len(blobKeys(t, ts)) == 3, "blobs %v", blobKeys(t, ts))

			// Taking a file off a message before sending frees its quota at
			// once; only its uploader may, and only before it is sent.
			carol := registerAs(ts, "carol", "Carol")
			must(t, carol.Do("DELETE", "/api/v1/attachments/"+d.ID, nil).Status == 404, "someone else removed an upload")
			r = alice.Do("DELETE", "/api/v1/attachments/"+d.ID, nil)
			must(t, r.Status == 204, "remove: %d %s", r.Status, r.Body)
			must(t, len(blobKeys(t, ts)) == 2, "a removed upload's blob stays: %v", blobKeys(t, ts))
			must(t, get(ts, alice, "/api/v1/attachments/"+d.ID, "").Status == 404, "a removed upload is still served")
			must(t, alice.Do("DELETE", "/api/v1/attachments/"+d.ID, nil).Status == 404, "removed twice")
			conv := alice.Direct(carol)
			r = alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]any{"body": "x", "attachments": []string{d.ID}})
			must(t, r.Status == 400 && r.Field() == "attachments", "sent a removed upload: %d %s", r.Status, r.Body)
			e := mustUpload(t, alice, "e.bin", pattern(10)) // the quota it freed
			sendFiles(t, alice, conv.ID, "", e.ID)
			r = alice.Do("DELETE", "/api/v1/attachments/"+e.ID, nil)
			must(t, r.Status == 409 && r.Code() == "conflict", "removing a sent attachment: %d %s", r.Status, r.Body)
			must(t, get(ts, carol, "/api/v1/attachments/"+e.ID, "").Status == 200, "a refused removal deleted the file")

			bob := registerAs(ts, "bob", "Bob")
			v := mustUpload(t, bob, "voice.ogg", oggOpus(3))
			must(t, v.ContentType == "audio/ogg" && v.DurationMS == 3000, "voice note %+v", v)
			r = upload(bob, "long.ogg", oggOpus(11))
			must(t, r.Status == 413 && r.Code() == "voice_too_long", "11 s voice note: %d %s", r.Status, r.Body)
			must(t, len(blobKeys(t, ts)) == 4, "a refused voice note left a blob: %v", blobKeys(t, ts))
		})
	}
}
