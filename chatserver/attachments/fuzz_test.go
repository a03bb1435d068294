package attachments

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/jpeg"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The parsers here read bytes an uploader chose. Their fuzz targets assert
// what the rest of the server relies on, beyond not panicking.

// FuzzStripJPEG: whatever it accepts comes out as a JPEG (SOI ... EOI) with
// nothing left to strip: stripping the output again changes nothing and
// finds the same orientation, and the orientation is one of EXIF's 1-8.
func FuzzStripJPEG(f *testing.F) {
	img := image.NewGray(image.Rect(0, 0, 9, 7))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		f.Fatal(err)
	}
	plain := buf.Bytes()
	f.Add(plain)
	exif := []byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00\x00\x00")
	seg := append([]byte{0xFF, 0xE1, 0, byte(len(exif) + 2)}, exif...)
	f.Add(append(append([]byte{0xFF, 0xD8}, seg...), plain[2:]...))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x01, 0xFF, 0x00, 0xFF, 0xD0, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		o, err := stripJPEG(&out, bytes.NewReader(in))
		if err != nil {
			return
		}
		b := out.Bytes()
		if !bytes.HasPrefix(b, []byte{0xFF, 0xD8}) || !bytes.HasSuffix(b, []byte{0xFF, 0xD9}) {
			t.Fatalf("output is not SOI…EOI: % x", b)
		}
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		var again bytes.Buffer
		o2, err := stripJPEG(&again, bytes.NewReader(b))
		if err != nil {
			t.Fatalf("the stripped output does not strip again: %v", err)
		}
		if o2 != o || !bytes.Equal(again.Bytes(), b) {
			t.Fatalf("stripping twice differs: orientation %d then %d; %d then %d bytes", o, o2, len(b), again.Len())
		}
	})
}

// FuzzOggDuration: a duration is never negative, and a granule position too
// large for time.Duration saturates (so the voice length limit refuses it)
// instead of wrapping around to a small or negative length.
func FuzzOggDuration(f *testing.F) {
	page := func(granule uint64) []byte {
		b := binary.LittleEndian.AppendUint64([]byte("OggS\x00\x00"), granule)
		return append(b, make([]byte, 15)...)
	}
	opus := append([]byte("OpusHead\x01\x01"), 0x38, 0x01, 0x80, 0xBB, 0, 0, 0, 0, 0)
	vorbis := append([]byte("\x01vorbis\x00\x00\x00\x00\x02"), 0x80, 0xBB, 0, 0, 0, 0, 0, 0)
	f.Add(opus, page(5*48000+312))
	f.Add(vorbis, page(48000))
	f.Add(opus, page(1<<62))
	f.Add(vorbis, page(^uint64(0)>>1))
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		d, ok := oggDuration(head, tail)
		if !ok {
			if d != 0 {
				t.Fatalf("no duration, yet %s", d)
			}
			return
		}
		if d < 0 {
			t.Fatalf("negative duration %s", d)
		}
	})
}

// FuzzWebM: parsing never panics or loops, and a duration is never
// negative (NaN, infinite, negative or huge Duration elements and block
// timestamps saturate or are ignored).
func FuzzWebM(f *testing.F) {
	f.Add(recorderWebM(2, 0))
	f.Add(recorderWebM(2, 30500))
	f.Add(recorderWebM(1, 0))
	f.Add([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, headerOnly := range []bool{true, false} {
			w, err := parseWebM(bytes.NewReader(in), headerOnly)
			if err != nil {
				continue
			}
			if d, ok := w.Duration(); ok && d < 0 {
				t.Fatalf("negative duration %s (headerOnly %v)", d, headerOnly)
			}
		}
	})
}

// FuzzSanitizeName: the label shown and put in Content-Disposition is
// valid UTF-8, non-empty, at most MaxNameBytes, one path element that is
// not "." or "..", without control or format characters, quotes or
// backslashes, and sanitising it again changes nothing.
func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"photo.jpg", "../../etc/passwd", `C:\x\cv.pdf`, "", "..", "evil\u202Etxt.exe", "a\"b", "\xff\xfe", " . "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n := SanitizeName(in)
		if n == "" || n == "." || n == ".." || len(n) > MaxNameBytes || !utf8.ValidString(n) {
			t.Fatalf("SanitizeName(%q) = %q", in, n)
		}
		if strings.ContainsAny(n, "/\\\"") {
			t.Fatalf("SanitizeName(%q) = %q keeps a separator or quote", in, n)
		}
		for _, r := range n {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Fatalf("SanitizeName(%q) = %q keeps %U", in, n, r)
			}
		}
		if again := SanitizeName(n); again != n {
			t.Fatalf("SanitizeName is not stable: %q then %q", n, again)
		}
	})
}

// FuzzImageConfig: dimensions come back positive or as an error, whatever
// the header claims, without decoding pixels (it runs on every upload
// before the pixel limit is checked).
func FuzzImageConfig(f *testing.F) {
	img := image.NewGray(image.Rect(0, 0, 3, 2))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00"))
	f.Add([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	f.Fuzz(func(t *testing.T, in []byte) {
		cfg, err := imageConfig(in)
		if err == nil && (cfg.Width <= 0 || cfg.Height <= 0) {
			t.Fatalf("accepted %d×%d", cfg.Width, cfg.Height)
		}
	})
}
