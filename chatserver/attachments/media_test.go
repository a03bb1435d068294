package attachments

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"testing"
	"time"
)

// el is one EBML element with a known size.
func el(id uint32, body []byte) []byte {
	var out []byte
	for _, b := range []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)} {
		if len(out) == 0 && b == 0 {
			continue
		}
		out = append(out, b)
	}
	// 8-byte size: 0x01 then 7 bytes.
	out = append(out, 0x01)
	var sz [8]byte
	binary.BigEndian.PutUint64(sz[:], uint64(len(body)))
	out = append(out, sz[1:]...)
	return append(out, body...)
}

// unknown is an element of unknown size (what a live recorder writes).
func unknown(id uint32) []byte {
	b := []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	return append(b, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
}

func uintEl(id uint32, v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return el(id, b[:])
}

func block(rel int16) []byte {
	body := []byte{0x81, byte(uint16(rel) >> 8), byte(rel), 0x80, 1, 2, 3, 4}
	return el(idSimpleBlock, body)
}

// recorderWebM is shaped like Chromium's MediaRecorder output: unknown-size
// Segment and Clusters, no Duration; the last block is at 30.5 s.
func recorderWebM(trackType uint64, withDuration float64) []byte {
	var w []byte
	w = append(w, el(idEBML, append(el(0x4282, []byte("webm")), uintEl(0x4287, 4)...))...)
	w = append(w, unknown(idSegment)...)
	info := uintEl(idScale, 1_000_000)
	if withDuration > 0 {
		var d [8]byte
		binary.BigEndian.PutUint64(d[:], math.Float64bits(withDuration))
		info = append(info, el(idDuration, d[:])...)
	}
	w = append(w, el(idInfo, info)...)
	w = append(w, el(idTracks, el(idTrackEntry, append(uintEl(0xD7, 1), uintEl(idTrackType, trackType)...)))...)
	w = append(w, unknown(idCluster)...)
	w = append(w, uintEl(idTimecode, 0)...)
	for i := int16(0); i < 10; i++ {
		w = append(w, block(i*20)...)
	}
	w = append(w, unknown(idCluster)...)
	w = append(w, uintEl(idTimecode, 30000)...)
	w = append(w, block(0)...)
	w = append(w, el(idBlockGroup, el(idBlock, []byte{0x81, 0x01, 0xF4, 0x80, 9}))...) // +500
	return w
}

func TestWebMDurationAndAudioSniffing(t *testing.T) {
	rec := recorderWebM(2, 0)
	if ct := sniff(rec); ct != typeWebA {
		t.Fatalf("audio-only WebM sniffed as %q", ct)
	}
	w, err := parseWebM(bytes.NewReader(rec), false)
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := w.Duration(); !ok || d != 30500*time.Millisecond {
		t.Fatalf("duration from the last block = %s, %v; want 30.5s", d, ok)
	}
	w, err = parseWebM(bytes.NewReader(recorderWebM(2, 12345)), false)
	if d, ok := w.Duration(); err != nil || !ok || d != 12345*time.Millisecond {
		t.Fatalf("duration from Info/Duration = %s, %v, %v", d, ok, err)
	}
	if ct := sniff(recorderWebM(1, 0)); ct != typeWebV {
		t.Fatalf("video WebM sniffed as %q", ct)
	}
	// A cut stream still gives what it holds, and garbage does not hang.
	if _, err := parseWebM(bytes.NewReader(rec[:len(rec)/2]), false); err != nil {
		t.Fatalf("cut stream: %v", err)
	}
	if _, err := parseWebM(bytes.NewReader(bytes.Repeat([]byte{0x00}, 100)), false); err == nil {
		t.Fatal("zeros parsed as WebM")
	}
}

func TestOggDuration(t *testing.T) {
	page := func(granule int64, body []byte) []byte {
		b := []byte("OggS\x00\x00")
		b = binary.LittleEndian.AppendUint64(b, uint64(granule))
		b = append(b, make([]byte, 12)...)
		b = append(b, 1, byte(len(body)))
		return append(b, body...)
	}
	head := page(0, append([]byte("OpusHead\x01\x01"), 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0))
	stream := append(append(head, page(48000, []byte("x"))...), page(5*48000+312, []byte("y"))...)
	if d, ok := oggDuration(stream, stream); !ok || d != 5*time.Second {
		t.Fatalf("Opus duration %s %v", d, ok)
	}
	// -1 granule (no packet ends on the last page): the page before counts.
	withOpen := append(append([]byte{}, stream...), page(-1, []byte("z"))...)
	if d, ok := oggDuration(withOpen, withOpen); !ok || d != 5*time.Second {
		t.Fatalf("Opus duration past a -1 granule %s %v", d, ok)
	}
	if _, ok := oggDuration([]byte("OggS nothing"), []byte("tail")); ok {
		t.Fatal("duration of a stream with no codec header")
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg": "photo.jpg", "../../etc/passwd": "passwd", `C:\Users\me\cv.pdf`: "cv.pdf",
		"": "file", "   ": "file", ".": "file", "..": "file", "...hidden": "hidden",
		"tab\there": "tab here", "evil\u202Etxt.exe": "eviltxt.exe", "quote\"d.txt": "quoted.txt",
		"\xff\xfebad.txt": "bad.txt", "été 🎉.png": "été 🎉.png",
	} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
	long := SanitizeName(string(bytes.Repeat([]byte("é"), 300)))
	if len(long) > MaxNameBytes || !bytes.Equal([]byte(long), bytes.Repeat([]byte("é"), 100)) {
		t.Errorf("long name cut to %d bytes: %q", len(long), long)
	}
}

// The stripper keeps every image byte: the output decodes to the same
// pixels; metadata between scans and data after EOI are dropped too.
func TestStripJPEGKeepsPixels(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 13)
	}
	img.Set(0, 0, color.RGBA{255, 255, 255, 255})
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	plain := buf.Bytes()
	ns := []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>GPS</x:xmpmeta>")
	xmp := append([]byte{0xFF, 0xE1, 0, byte(len(ns) + 2)}, ns...)
	withMeta := append(append(append([]byte{0xFF, 0xD8}, xmp...), plain[2:]...), []byte("PK\x03\x04 appended zip")...)
	var out bytes.Buffer
	o, err := stripJPEG(&out, bytes.NewReader(withMeta))
	if err != nil || o != 1 {
		t.Fatalf("strip: orientation %d, %v", o, err)
	}
	if !bytes.Equal(out.Bytes(), plain) {
		t.Fatalf("stripped JPEG differs from the original without metadata (%d vs %d bytes)", out.Len(), len(plain))
	}
	if _, err := stripJPEG(&out, bytes.NewReader([]byte("GIF89a"))); err == nil {
		t.Fatal("a GIF stripped as a JPEG")
	}
	if _, err := stripJPEG(&out, bytes.NewReader(plain[:len(plain)/2])); err == nil {
		t.Fatal("a cut JPEG stripped without error")
	}
}
