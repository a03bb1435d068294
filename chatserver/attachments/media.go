package attachments

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	_ "image/gif" // registers GIF for image.Decode / DecodeConfig
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	xdraw "golang.org/x/image/draw"
	_ "golang.org/x/image/webp" // registers WebP
)

// Content types the server recognises beyond http.DetectContentType's.
const (
	typeJPEG = "image/jpeg"
	typePNG  = "image/png"
	typeGIF  = "image/gif"
	typeWebP = "image/webp"
	typeOgg  = "audio/ogg"
	typeWebA = "audio/webm"
	typeWebV = "video/webm"
	typeBin  = "application/octet-stream"
)

// sniffLen is how much of an upload is read before anything is stored: the
// content sniffing, an image's header (its dimensions, checked before any
// decoding) and a WebM's track list come from these bytes. A JPEG whose
// frame header lies further in (megabytes of metadata first) is refused.
const sniffLen = 256 << 10

// decodable are the image formats the server decodes for thumbnails (pure
// Go decoders), and serves inline.
var decodable = map[string]bool{typeJPEG: true, typePNG: true, typeGIF: true, typeWebP: true}

// inline lists what is served with Content-Disposition: inline: images the
// server decoded, audio and video (which browsers play in a sandboxed
// element, never as a document). Everything else, HTML, SVG, XML, PDF and
// text included, is served as an attachment (a download), so no file can
// run as a page of this origin; the sandbox CSP on every download is the
// second lock.
var inline = map[string]bool{typeJPEG: true, typePNG: true, typeGIF: true, typeWebP: true,
	typeOgg: true, typeWebA: true, typeWebV: true, "audio/mpeg": true, "audio/wave": true, "audio/mp4": true,
	"video/mp4": true, "video/ogg": true}

// Inline reports whether a sniffed content type is served inline.
func Inline(contentType string) bool { return inline[contentType] }

// sniff decides the content type from the first bytes: Go's
// http.DetectContentType (the WHATWG sniffing algorithm), refined where it is
// too coarse: Ogg carrying Opus or Vorbis is audio, a WebM whose tracks are
// all audio is audio/webm. The uploader's Content-Type is never consulted.
func sniff(head []byte) string {
	ct := http.DetectContentType(head)
	switch ct {
	case "application/ogg":
		if bytes.Contains(head[:min(len(head), 4096)], []byte("OpusHead")) ||
			bytes.Contains(head[:min(len(head), 4096)], []byte("\x01vorbis")) {
			return typeOgg
		}
	case typeWebV:
		if w, err := parseWebM(bytes.NewReader(head), true); err == nil && w.tracks > 0 && w.audioOnly() {
			return typeWebA
		}
	}
	return ct
}

// kind groups content types for metrics.
func kind(ct string) string {
	switch {
	case strings.HasPrefix(ct, "image/"):
		return "image"
	case strings.HasPrefix(ct, "audio/"):
		return "audio"
	case strings.HasPrefix(ct, "video/"):
		return "video"
	}
	return "file"
}

// MaxNameBytes is the longest display name kept.
const MaxNameBytes = 200

// SanitizeName makes an uploader's file name safe to show and to put in a
// Content-Disposition header: the last path element only (no directories,
// so "../../etc/passwd" is "passwd"), no control or format characters (no
// bidi overrides that disguise an extension), no quotes or backslashes,
// valid UTF-8, at most MaxNameBytes bytes, never empty, "." or "..". It is
// a label: storage keys are built from ids, never from it.
func SanitizeName(name string) string {
	name = strings.ToValidUTF8(name, "")
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimRight(name, "/"))
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == '"', r == '/', r == utf8.RuneError:
			continue
		default:
			b.WriteRune(r)
		}
	}
	name = strings.TrimSpace(b.String())
	for len(name) > MaxNameBytes {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	name = strings.Trim(name, " .")
	if name == "" {
		return "file"
	}
	return name
}

// errImageHeader: an image whose dimensions are not within the first sniffLen bytes.
var errImageHeader = errors.New("image header not found in the first 256 KiB")

// imageConfig reads an image's dimensions from its first bytes, without
// decoding pixels: what refuses decompression bombs before any allocation
// proportional to the claimed size.
func imageConfig(head []byte) (image.Config, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(head))
	if err != nil {
		if len(head) >= sniffLen && (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) {
			return cfg, errImageHeader
		}
		return cfg, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return cfg, fmt.Errorf("image of %d×%d pixels", cfg.Width, cfg.Height)
	}
	return cfg, nil
}

// Thumbnail and preview sizes.
const (
	ThumbMax   = 480 // the longer side of a thumbnail, in pixels
	previewMax = 16  // the longer side of the blurred preview
)

// thumbnails decodes an image (its dimensions already checked) and returns
// a JPEG thumbnail (nil when the image is no larger than one) and a tiny
// blurred PNG preview, both turned upright by the EXIF orientation.
func thumbnails(r io.Reader, orientation int) (thumb, preview []byte, err error) {
	src, _, err := image.Decode(bufio.NewReaderSize(r, 64<<10))
	if err != nil {
		return nil, nil, err
	}
	b := src.Bounds()
	// Transparent parts show on white, as in a chat bubble.
	flat := func(w, h int) *image.RGBA {
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		return dst
	}
	fit := func(max int) (int, int) {
		w, h := b.Dx(), b.Dy()
		if w <= max && h <= max {
			return w, h
		}
		if w >= h {
			return max, int(math.Max(1, math.Round(float64(h)*float64(max)/float64(w))))
		}
		return int(math.Max(1, math.Round(float64(w)*float64(max)/float64(h)))), max
	}
	// The preview is scaled from the thumbnail when there is one: far
	// fewer pixels to average than a photo of many megapixels.
	from, fromRect := src, b
	if b.Dx() > ThumbMax || b.Dy() > ThumbMax || orientation > 1 {
		w, h := fit(ThumbMax)
		dst := flat(w, h)
		xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), src, b, draw.Over, nil)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, orient(dst, orientation), &jpeg.Options{Quality: 80}); err != nil {
			return nil, nil, err
		}
		thumb = buf.Bytes()
		from, fromRect = dst, dst.Bounds()
	}
	w, h := fit(previewMax)
	small := flat(w, h)
	// CatmullRom over a large step averages the area of each output pixel,
	// keeping the colours; a box blur then hides what detail is left.
	xdraw.CatmullRom.Scale(small, small.Bounds(), from, fromRect, draw.Over, nil)
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, orient(blur(small), orientation)); err != nil {
		return nil, nil, err
	}
	return thumb, buf.Bytes(), nil
}

// blur is a 3×3 box blur.
func blur(src *image.RGBA) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(b)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			var r, g, bl, n int
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					p := image.Pt(x+dx, y+dy)
					if !p.In(b) {
						continue
					}
					c := src.RGBAAt(p.X, p.Y)
					r, g, bl, n = r+int(c.R), g+int(c.G), bl+int(c.B), n+1
				}
			}
			dst.SetRGBA(x, y, color.RGBA{uint8(r / n), uint8(g / n), uint8(bl / n), 255})
		}
	}
	return dst
}

// orient applies an EXIF orientation (1 to 8) to a small image.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var nx, ny int
			switch o {
			case 2:
				nx, ny = w-1-x, y
			case 3:
				nx, ny = w-1-x, h-1-y
			case 4:
				nx, ny = x, h-1-y
			case 5:
				nx, ny = y, x
			case 6:
				nx, ny = h-1-y, x
			case 7:
				nx, ny = h-1-y, w-1-x
			case 8:
				nx, ny = y, w-1-x
			}
			dst.SetRGBA(nx, ny, src.RGBAAt(b.Min.X+x, b.Min.Y+y))
		}
	}
	return dst
}

// oggDuration reads the duration of an Ogg Opus or Vorbis stream: the
// granule position of the last page (tail holds the stream's last bytes),
// minus Opus's pre-skip, over the sample rate (48 kHz for Opus, the
// identification header's for Vorbis; both read from head).
func oggDuration(head, tail []byte) (time.Duration, bool) {
	var rate, preSkip int64
	if i := bytes.Index(head, []byte("OpusHead")); i >= 0 && len(head) >= i+12 {
		rate, preSkip = 48000, int64(binary.LittleEndian.Uint16(head[i+10:]))
	} else if i := bytes.Index(head, []byte("\x01vorbis")); i >= 0 && len(head) >= i+16 {
		rate = int64(binary.LittleEndian.Uint32(head[i+12:]))
	}
	if rate <= 0 {
		return 0, false
	}
	for i := len(tail) - 27; i >= 0; i-- {
		i = bytes.LastIndex(tail[:i+4], []byte("OggS"))
		if i < 0 || len(tail) < i+27 {
			return 0, false
		}
		if tail[i+4] != 0 { // version
			continue
		}
		g := int64(binary.LittleEndian.Uint64(tail[i+6:]))
		if g < 0 { // -1: no packet ends on this page
			continue
		}
		return samplesDuration(max(g-preSkip, 0), rate), true
	}
	return 0, false
}

// webm is what parseWebM learns of a Matroska/WebM stream.
type webm struct {
	tracks, audio  int
	scale          int64   // TimecodeScale, ns per tick
	duration       float64 // Info/Duration, in ticks; 0 when absent
	maxTick        int64   // latest block timestamp seen
	clusterTick    int64
	sawBlock       bool
	headerOnly     bool
	inTrack        bool
	trackTypeAudio bool
}

func (w *webm) audioOnly() bool { return w.tracks > 0 && w.audio == w.tracks }

// Duration is the stream's duration: Info/Duration when the muxer wrote it,
// else the latest block's timestamp (MediaRecorder in Chromium writes no
// duration: it streams).
func (w *webm) Duration() (time.Duration, bool) {
	scale := w.scale
	if scale <= 0 {
		scale = 1_000_000
	}
	if w.duration > 0 { // false for NaN too
		return floatDuration(w.duration * float64(scale)), true
	}
	if w.sawBlock {
		return floatDuration(float64(max(w.maxTick, 0)) * float64(scale)), true
	}
	return 0, false
}

// A file's numbers are the uploader's: durations computed from them
// saturate at the longest time.Duration (refused by the voice length
// limit) instead of wrapping around to a short or negative one.
const maxDuration = time.Duration(math.MaxInt64)

// samplesDuration is samples/rate seconds (both ≥ 0, rate > 0).
func samplesDuration(samples, rate int64) time.Duration {
	secs := samples / rate
	if secs > int64(maxDuration/time.Second)-1 {
		return maxDuration
	}
	return time.Duration(secs)*time.Second + time.Duration((samples%rate)*int64(time.Second)/rate)
}

// floatDuration converts nanoseconds, clamping to [0, maxDuration].
func floatDuration(ns float64) time.Duration {
	switch {
	case !(ns > 0):
		return 0
	case ns >= float64(maxDuration):
		return maxDuration
	}
	return time.Duration(ns)
}

// EBML ids parseWebM needs.
const (
	idEBML        = 0x1A45DFA3
	idSegment     = 0x18538067
	idInfo        = 0x1549A966
	idScale       = 0x2AD7B1
	idDuration    = 0x4489
	idTracks      = 0x1654AE6B
	idTrackEntry  = 0xAE
	idTrackType   = 0x83
	idCluster     = 0x1F43B675
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
	idBlockGroup  = 0xA0
	idBlock       = 0xA1
)

// parseWebM walks a WebM stream's elements: the track types, the timecode
// scale and duration, and (unless headerOnly) every cluster's and block's
// timestamp. It reads sequentially and keeps nothing but those numbers, so
// it works on a stream of any length. Unknown-size elements (live
// recordings) are entered as containers.
func parseWebM(r io.Reader, headerOnly bool) (*webm, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	w := &webm{headerOnly: headerOnly}
	err := w.walk(br, -1, 0)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, errStop) {
		err = nil
	}
	if w.inTrack {
		w.endTrack()
	}
	return w, err
}

var errStop = errors.New("stop")

func (w *webm) endTrack() {
	w.tracks++
	if w.trackTypeAudio {
		w.audio++
	}
	w.inTrack, w.trackTypeAudio = false, false
}

// walk reads elements until limit bytes are read (limit < 0: until EOF).
func (w *webm) walk(br *bufio.Reader, limit int64, depth int) error {
	if depth > 8 {
		return errors.New("webm: nested too deep")
	}
	var read int64
	for limit < 0 || read < limit {
		id, n1, err := readVint(br, false)
		if err != nil {
			return err
		}
		size, n2, err := readVint(br, true)
		if err != nil {
			return err
		}
		read += int64(n1 + n2)
		unknown := size < 0
		switch id {
		case idEBML, idSegment, idInfo, idTracks, idBlockGroup, idCluster:
			if id == idCluster && w.headerOnly {
				return errStop
			}
			if unknown {
				// Unknown size (a live stream): its children follow until
				// the end; a sibling cluster is read as one of them.
				return w.walk(br, -1, depth+1)
			}
			if err := w.walk(br, size, depth+1); err != nil {
				return err
			}
			read += size
			continue
		case idTrackEntry:
			if w.inTrack {
				w.endTrack()
			}
			w.inTrack = true
			if unknown {
				return errors.New("webm: track entry of unknown size")
			}
			if err := w.walk(br, size, depth+1); err != nil {
				return err
			}
			w.endTrack()
			read += size
			continue
		}
		if unknown || size > 1<<40 {
			return errors.New("webm: element of unknown size")
		}
		switch id {
		case idTrackType, idScale, idTimecode:
			v, err := readUint(br, size)
			if err != nil {
				return err
			}
			switch id {
			case idTrackType:
				w.trackTypeAudio = v == 2
			case idScale:
				w.scale = int64(v)
			case idTimecode:
				w.clusterTick = int64(v)
				w.maxTick = max(w.maxTick, w.clusterTick)
			}
		case idDuration:
			// A float of 0 (zero), 4 or 8 bytes; its size is the
			// uploader's, so it is checked before anything is allocated.
			if size != 0 && size != 4 && size != 8 {
				return fmt.Errorf("webm: Duration of %d bytes", size)
			}
			var b [8]byte
			if _, err := io.ReadFull(br, b[:size]); err != nil {
				return err
			}
			switch size {
			case 0:
				w.duration = 0
			case 4:
				w.duration = float64(math.Float32frombits(binary.BigEndian.Uint32(b[:])))
			case 8:
				w.duration = math.Float64frombits(binary.BigEndian.Uint64(b[:]))
			}
		case idSimpleBlock, idBlock:
			_, n, err := readVint(br, true) // track number
			if err != nil {
				return err
			}
			var tc [2]byte
			if _, err := io.ReadFull(br, tc[:]); err != nil {
				return err
			}
			w.sawBlock = true
			w.maxTick = max(w.maxTick, w.clusterTick+int64(int16(binary.BigEndian.Uint16(tc[:]))))
			if _, err := br.Discard(int(size) - n - 2); err != nil {
				return err
			}
		default:
			if _, err := br.Discard(int(size)); err != nil {
				return err
			}
		}
		read += size
	}
	return nil
}

// readVint reads an EBML variable-length integer; as a size (mask), the
// marker bit is removed and all ones means unknown (-1).
func readVint(br *bufio.Reader, mask bool) (int64, int, error) {
	first, err := br.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n := 1
	for m := byte(0x80); n <= 8 && first&m == 0; m >>= 1 {
		n++
	}
	if n > 8 {
		return 0, 0, errors.New("webm: invalid variable-length integer")
	}
	v := int64(first)
	if mask {
		v &= int64(0xFF >> n)
	}
	allOnes := v == int64(0xFF>>n)
	for i := 1; i < n; i++ {
		b, err := br.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		v = v<<8 | int64(b)
		allOnes = allOnes && b == 0xFF
	}
	if mask && allOnes {
		return -1, n, nil
	}
	return v, n, nil
}

func readUint(br *bufio.Reader, size int64) (uint64, error) {
	if size > 8 {
		return 0, errors.New("webm: integer of more than 8 bytes")
	}
	var v uint64
	for range size {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		v = v<<8 | uint64(b)
	}
	return v, nil
}
