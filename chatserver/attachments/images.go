package attachments

import (
	"image"
	"io"

	"github.com/parley-chat/parley/chatserver/apperr"
)

// The image checks of uploads, exported for the other places that take an
// image from a client (profile photos, package avatars), so every image the
// server decodes passes the same sniffing and decompression-bomb limits.

// SniffLen is how many leading bytes Sniff and CheckImage look at.
const SniffLen = sniffLen

// Sniff returns the content type of a file from its first bytes (at most
// SniffLen of them); the uploader's claim is never consulted.
func Sniff(head []byte) string { return sniff(head) }

// Decodable reports whether the server decodes images of a sniffed content
// type (JPEG, PNG, GIF, WebP: pure Go decoders).
func Decodable(contentType string) bool { return decodable[contentType] }

// CheckImage reads a decodable image's dimensions from its first bytes,
// without decoding pixels, and refuses one that does not parse
// (invalid_media) or holds more than maxPixels pixels (image_too_large):
// what stops a decompression bomb before any allocation proportional to
// its claimed size. reason is the refusal's metric label.
func CheckImage(head []byte, contentType string, maxPixels int64) (cfg image.Config, reason string, err error) {
	cfg, err = imageConfig(head)
	if err != nil {
		return cfg, "invalid_media", apperr.OnField(apperr.InvalidMedia, "file", "the file looks like %s but is not a valid image: %v", contentType, err)
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return cfg, "image_too_large", apperr.OnField(apperr.ImageTooLarge, "file", "the image is %d×%d pixels; the limit is %d megapixels", cfg.Width, cfg.Height, maxPixels/1_000_000)
	}
	return cfg, "", nil
}

// JPEGOrientation returns the EXIF orientation (1 to 8) of the JPEG r
// holds, 1 when it has none or does not parse: phones record it rather
// than turning the pixels, and Go's decoder ignores it.
func JPEGOrientation(r io.Reader) int {
	o, err := stripJPEG(io.Discard, r)
	if err != nil || o < 1 {
		return 1
	}
	return o
}

// Orient applies an EXIF orientation (1 to 8) to an image.
func Orient(img *image.RGBA, orientation int) *image.RGBA { return orient(img, orientation) }
