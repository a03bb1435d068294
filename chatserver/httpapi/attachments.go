package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// uploadPath is the upload endpoint: exempt from the request body cap (the
// attachment service applies the attachment limits while streaming).
const uploadPath = "/api/v1/attachments"

// downloadCSP makes whatever a download holds inert should a browser ever
// render it: no script, no plugin, no form, no same-origin access (sandbox),
// nothing fetched (default-src 'none').
const downloadCSP = "sandbox; default-src 'none'"

// upload stores an attachment. The file is the raw request body (not
// multipart/form-data): it streams into the sealed blob store as it arrives
// with no parsing of parts and no temporary file, a browser sends a File or
// Blob that way with fetch or XMLHttpRequest (upload progress included), and
// Content-Length lets a too-large file be refused before a byte of it is
// read. The display name comes in X-Filename, percent-encoded UTF-8
// (encodeURIComponent); the request's Content-Type is ignored: the server
// sniffs the bytes.
func (a *API) upload(c *gin.Context) {
	if a.attachments == nil {
		writeErr(c, apperr.New(apperr.NotFound, "attachments are not enabled on this server"))
		return
	}
	if strings.HasPrefix(strings.ToLower(c.GetHeader("Content-Type")), "multipart/") {
		a.fail(c, apperr.New(apperr.InvalidRequest, "send the file as the raw request body, not multipart/form-data"))
		return
	}
	name := c.GetHeader("X-Filename")
	if dec, err := url.PathUnescape(name); err == nil {
		name = dec
	}
	var (
		v   *protocol.Attachment
		err error
	)
	switch opaque := c.Query("opaque"); opaque {
	case "true", "1":
		// Client-encrypted bytes (end-to-end encrypted conversations):
		// stored as they are, the name and type stay inside the message.
		v, err = a.attachments.UploadOpaque(c.Request.Context(), c.GetString("user_id"), c.Request.Body, c.Request.ContentLength)
	case "", "false", "0":
		v, err = a.attachments.Upload(c.Request.Context(), c.GetString("user_id"), name, c.Request.Body, c.Request.ContentLength)
	default:
		a.fail(c, apperr.OnField(apperr.InvalidRequest, "opaque", "opaque must be true or false"))
		return
	}
	if err != nil {
		if apperr.Is(err, apperr.AttachmentTooLarge) || apperr.Is(err, apperr.QuotaExceeded) {
			// The client may still be sending: do not read the rest, close.
			c.Header("Connection", "close")
		}
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

// attachmentURL answers signed URLs of an attachment and its thumbnail for
// the caller: what <img>, <audio> and <video> elements fetch, since they
// cannot send the access token (which never goes in a URL).
func (a *API) attachmentURL(c *gin.Context) {
	if a.attachments == nil {
		writeErr(c, apperr.New(apperr.NotFound, "attachments are not enabled on this server"))
		return
	}
	ctx, uid, id := c.Request.Context(), c.GetString("user_id"), c.Param("id")
	u, exp, err := a.attachments.SignedURL(ctx, uid, id, false)
	if err != nil {
		a.fail(c, err)
		return
	}
	body := gin.H{"url": u, "expiresAt": exp.UTC()}
	if tu, _, err := a.attachments.SignedURL(ctx, uid, id, true); err == nil {
		body["thumbnailUrl"] = tu
	}
	c.JSON(http.StatusOK, body)
}

// removeUpload deletes the caller's upload that was not sent.
func (a *API) removeUpload(c *gin.Context) {
	if a.attachments == nil {
		writeErr(c, apperr.New(apperr.NotFound, "attachments are not enabled on this server"))
		return
	}
	if err := a.attachments.Remove(c.Request.Context(), c.GetString("user_id"), c.Param("id")); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// download serves an attachment (or its thumbnail) to a member of its
// conversation, authenticated by the access token or by a signed URL.
func (a *API) download(thumbnail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if a.attachments == nil {
			writeErr(c, apperr.New(apperr.NotFound, "attachments are not enabled on this server"))
			return
		}
		ctx, id := c.Request.Context(), c.Param("id")
		var uid string
		if q := c.Request.URL.Query(); q.Has("s") {
			var err error
			if uid, err = a.attachments.VerifyURL(id, thumbnail, q.Get("u"), q.Get("e"), q.Get("k"), q.Get("s")); err != nil {
				a.fail(c, err)
				return
			}
		} else {
			tok, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
			if !ok || tok == "" {
				c.Header("WWW-Authenticate", `Bearer realm="parley"`)
				writeErr(c, apperr.New(apperr.Unauthorized, "sign in first, or use a signed URL (GET .../url)"))
				return
			}
			p, err := a.accounts.Authenticate(ctx, tok)
			if err != nil {
				c.Header("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
				writeErr(c, err)
				return
			}
			uid = p.UserID
		}
		d, err := a.attachments.Open(ctx, uid, id, thumbnail)
		if err != nil {
			a.fail(c, err)
			return
		}
		h := c.Writer.Header()
		h.Set("Content-Security-Policy", downloadCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Type", d.ContentType)
		h.Set("Content-Disposition", disposition(d))
		h.Set("Accept-Ranges", "bytes")
		off, n, partial, ok := parseRange(c.GetHeader("Range"), d.Size)
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", d.Size))
			writeErr(c, apperr.New(apperr.RangeNotSatisfiable, "the range lies outside the file's %d bytes", d.Size))
			return
		}
		status := http.StatusOK
		if partial {
			status = http.StatusPartialContent
			h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, d.Size))
		}
		h.Set("Content-Length", strconv.FormatInt(n, 10))
		a.metrics.Downloads.WithLabelValues(map[bool]string{true: "thumbnail", false: "file"}[thumbnail],
			map[bool]string{true: "partial", false: "full"}[partial]).Inc()
		if c.Request.Method == http.MethodHead {
			c.Status(status)
			return
		}
		rc, err := d.Reader(ctx, off, n)
		if err != nil {
			if errors.Is(err, blob.ErrInvalidRange) {
				writeErr(c, apperr.New(apperr.RangeNotSatisfiable, "the range lies outside the file"))
				return
			}
			a.fail(c, fmt.Errorf("download %s: %w", id, err))
			return
		}
		defer rc.Close()
		c.Status(status)
		if _, err := io.Copy(c.Writer, rc); err != nil && ctx.Err() == nil {
			// Headers are gone: cutting the response short is all that is
			// left; a segment that fails authentication never reaches it.
			a.log.Error("attachment download cut short", "attachment", id, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
}

// disposition is the Content-Disposition of a download: inline only for
// what the browser shows as media, attachment (a file to save) for
// anything that could render as a document (HTML, SVG, XML, PDF, text...).
// The name is the sanitised display name, with an ASCII fallback.
func disposition(d *attachments.Download) string {
	kind := "attachment"
	if d.Inline {
		kind = "inline"
	}
	name := d.Attachment.Name
	if d.Thumbnail {
		name = "thumbnail.jpg"
	}
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7E || r == '"' || r == '\\' || r == '%' || r == ';' {
			return '_'
		}
		return r
	}, name)
	return fmt.Sprintf(`%s; filename="%s"; filename*=UTF-8''%s`, kind, ascii, url.PathEscape(name))
}

// parseRange reads a single-range Range header against a file of size
// bytes. No header, a malformed one, another unit or several ranges: the
// whole file (RFC 9110 lets a server ignore Range). ok is false for a
// range that lies outside the file (416).
func parseRange(h string, size int64) (off, n int64, partial, ok bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if h == "" || !found || strings.Contains(spec, ",") {
		return 0, size, false, true
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, size, false, true
	}
	if first == "" { // suffix: the last N bytes
		k, err := strconv.ParseInt(last, 10, 64)
		if err != nil || k < 0 {
			return 0, size, false, true
		}
		if k == 0 || size == 0 {
			return 0, 0, false, false
		}
		k = min(k, size)
		return size - k, k, true, true
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return 0, size, false, true
	}
	end := size - 1
	if last != "" {
		b, err := strconv.ParseInt(last, 10, 64)
		if err != nil || b < a {
			return 0, size, false, true
		}
		end = min(b, size-1)
	}
	if a >= size {
		return 0, 0, false, false
	}
	return a, end - a + 1, true, true
}
