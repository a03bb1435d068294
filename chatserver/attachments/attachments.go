// Package attachments holds the attachment use cases: streamed uploads
// sealed into the blob store (package blob/sealed) with the keyring's data
// keys, content sniffing, image checks and thumbnails, voice durations,
// downloads by range for members only, short-lived signed URLs, deletion of
// the blobs when their message goes, and the collection of abandoned
// uploads. docs/api.md ("Attachments") and docs/security.md describe what
// clients see.
package attachments

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/store"
)

// MaxPerMessage is how many attachments one message may carry.
const MaxPerMessage = 10

// Store is the persistence the attachment use cases need.
type Store interface {
	Member(ctx context.Context, convID, userID string) (*store.Member, error)
	CreateAttachment(ctx context.Context, a *store.Attachment) error
	MarkAttachmentReady(ctx context.Context, a *store.Attachment, quota int64) error
	Attachment(ctx context.Context, id string) (*store.Attachment, error)
	AttachmentUsage(ctx context.Context, ownerID string) (int64, error)
	DoomStaleAttachments(ctx context.Context, before time.Time) (int64, error)
	DoomedAttachments(ctx context.Context, limit int) ([]store.Attachment, error)
	DeleteAttachment(ctx context.Context, id string) error
	DiscardUpload(ctx context.Context, id string) error
	DoomUpload(ctx context.Context, ownerID, id string) error
	AttachmentsSealedWith(ctx context.Context, keyID string, limit int) ([]store.Attachment, error)
	ResealAttachment(ctx context.Context, id, oldBlobKey string, next *store.Attachment) (bool, error)
}

// Keys seals blobs and signs URLs: the keyring.
type Keys interface {
	sealed.Keys
	MAC(parts ...[]byte) (kid string, tag []byte)
	VerifyMAC(kid string, tag []byte, parts ...[]byte) bool
}

// Limits bound uploads.
type Limits struct {
	MaxBytes     int64         // one attachment
	Quota        int64         // all of one user's attachments
	MaxPixels    int64         // width × height of an image the server decodes
	MaxVoice     time.Duration // Ogg or WebM audio
	UploadExpiry time.Duration // an upload not attached within it is collected
}

// Config wires a Service.
type Config struct {
	Store   Store
	Blobs   blob.Store
	Keys    Keys
	Limits  Limits
	Limiter ratelimit.Limiter // uploads per user (the message rate); nil: none
	Metrics *metrics.Metrics
	Audit   *audit.Log
	Logger  *slog.Logger
	Now     func() time.Time
}

// Service implements the attachment use cases.
type Service struct {
	store   Store
	blobs   blob.Store
	keys    Keys
	lim     Limits
	limiter ratelimit.Limiter
	metrics *metrics.Metrics
	audit   *audit.Log
	log     *slog.Logger
	now     func() time.Time
}

// New returns a Service.
func New(c Config) *Service {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: c.Store, blobs: c.Blobs, keys: c.Keys, lim: c.Limits, limiter: c.Limiter,
		metrics: metrics.OrNew(c.Metrics), audit: c.Audit, log: log, now: now}
}

// Limits returns the configured limits.
func (s *Service) Limits() Limits { return s.lim }

// Blob keys are built from ids only: "a/<attachment id>/f<random>" for the
// file, ".../t<random>" for the thumbnail. A fresh random part on every
// write (upload or re-encryption) means a new object never replaces one a
// reader may still be streaming.
func blobKey(id, what string) string {
	return "a/" + id + "/" + what + strings.ToLower(rand.Text()[:12])
}

// thumbObject is the object id a thumbnail is sealed to: not the file's,
// so one cannot be served as the other.
func thumbObject(id string) string { return id + "/thumbnail" }

func (s *Service) refuse(reason string, err error) error {
	s.metrics.UploadRefused.WithLabelValues(reason).Inc()
	return err
}

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB" }

// Upload stores the file body yields as a new attachment of userID: sniffed,
// checked, metadata stripped (JPEG), sealed and streamed into the blob store
// (never held whole in memory), its thumbnail made; the attachment is then
// ready to be sent. declared is the request's Content-Length (-1: unknown),
// refused at once when over a limit. A refused or failed upload leaves no
// blob and no row.
func (s *Service) Upload(ctx context.Context, userID, name string, body io.Reader, declared int64) (*protocol.Attachment, error) {
	return s.upload(ctx, userID, name, body, declared, false)
}

// Opaque uploads (end-to-end encrypted conversations) are stored under this
// name and type: the bytes are the client's ciphertext, and the real name,
// type, size and key travel inside the MLS message.
const (
	OpaqueName        = "encrypted"
	OpaqueContentType = "application/octet-stream"
)

// UploadOpaque is Upload for bytes the client encrypted (an attachment of
// an end-to-end encrypted conversation): stored as they are (still sealed
// at rest), never sniffed, decoded or thumbnailed; named OpaqueName, of
// type OpaqueContentType. Limits and quota are Upload's.
func (s *Service) UploadOpaque(ctx context.Context, userID string, body io.Reader, declared int64) (*protocol.Attachment, error) {
	return s.upload(ctx, userID, OpaqueName, body, declared, true)
}

func (s *Service) upload(ctx context.Context, userID, name string, body io.Reader, declared int64, opaque bool) (*protocol.Attachment, error) {
	if s.limiter != nil {
		ok, wait, err := s.limiter.Allow(ctx, "upl:"+userID)
		if err != nil {
			s.log.Warn("upload rate limiter failed; allowing", "err", err)
		} else if !ok {
			s.metrics.RateLimited.WithLabelValues("uploads").Inc()
			return nil, s.refuse("rate_limited", &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
				Message: "you are uploading too fast; wait a moment"})
		}
	}
	tooLarge := func() error {
		return s.refuse("too_large", &apperr.Error{Code: apperr.AttachmentTooLarge, Field: "file",
			Message: "the file is larger than the limit of " + mib(s.lim.MaxBytes)})
	}
	if declared > s.lim.MaxBytes {
		return nil, tooLarge()
	}
	used, err := s.store.AttachmentUsage(ctx, userID)
	if err != nil {
		return nil, unavailable(err)
	}
	quota := func() error {
		return s.refuse("quota", &apperr.Error{Code: apperr.QuotaExceeded, Field: "file",
			Message: "your attachments use " + mib(used) + " of your " + mib(s.lim.Quota) +
				"; delete messages with attachments to make room"})
	}
	left := s.lim.Quota - used
	if left <= 0 || declared > left {
		return nil, quota()
	}
	limit := min(s.lim.MaxBytes, left)

	// Read the head: sniff, and check an image's dimensions before storing
	// or decoding anything.
	br := bufio.NewReaderSize(body, sniffLen)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, s.refuse("failed", apperr.Wrap(apperr.InvalidRequest, err, "reading the upload failed"))
	}
	ct := OpaqueContentType
	if !opaque {
		ct = sniff(head)
	}
	a := &store.Attachment{ID: ids.New("a"), OwnerID: userID, Name: SanitizeName(name), ContentType: ct,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if decodable[ct] {
		cfg, reason, err := CheckImage(head, ct, s.lim.MaxPixels)
		if err != nil {
			return nil, s.refuse(reason, err)
		}
		a.Width, a.Height = cfg.Width, cfg.Height
	}
	a.BlobKey = blobKey(a.ID, "f")
	// The row first: should this process die mid-upload, the collector
	// finds the row once it is stale and deletes whatever blob it names.
	if err := s.store.CreateAttachment(ctx, a); err != nil {
		return nil, unavailable(err)
	}
	view, err := s.store1(ctx, a, br, limit, head)
	if err != nil {
		s.discard(a)
		switch {
		case errors.Is(err, blob.ErrTooLarge) && limit < s.lim.MaxBytes:
			return nil, quota()
		case errors.Is(err, blob.ErrTooLarge):
			return nil, tooLarge()
		case errors.Is(err, store.ErrLimit):
			used, _ = s.store.AttachmentUsage(ctx, userID)
			return nil, quota()
		}
		var ae *apperr.Error
		if errors.As(err, &ae) {
			return nil, err
		}
		s.metrics.UploadRefused.WithLabelValues("failed").Inc()
		if ctx.Err() != nil {
			return nil, apperr.Wrap(apperr.InvalidRequest, err, "the upload was interrupted; nothing was kept")
		}
		return nil, unavailable(err)
	}
	s.metrics.Uploads.WithLabelValues(kind(a.ContentType)).Inc()
	s.metrics.UploadBytes.Add(float64(a.Size))
	if s.audit != nil {
		_ = s.audit.Record(ctx, audit.AttachmentUploaded, userID, a.ID, "",
			map[string]any{"size": a.Size, "contentType": a.ContentType})
	}
	return view, nil
}

// store1 seals the upload into the blob store, makes the thumbnail and
// preview, reads a voice message's duration, and marks the row ready.
func (s *Service) store1(ctx context.Context, a *store.Attachment, br *bufio.Reader, limit int64, head []byte) (*protocol.Attachment, error) {
	// The limit applies to what the client sends, before any stripping, so
	// an endless body is cut off whatever it holds.
	src := blob.LimitReader(br, limit)
	orientation := 1
	var stripErr error
	done := make(chan struct{})
	stop := func() {}
	if a.ContentType == typeJPEG {
		pr, pw := io.Pipe()
		raw := src
		go func() {
			defer close(done)
			orientation, stripErr = stripJPEG(pw, raw)
			pw.CloseWithError(stripErr)
		}()
		src = pr
		// Once Put returns (done or failed), the stripper must not stay
		// blocked writing into a pipe nobody reads.
		stop = func() { pr.CloseWithError(errors.New("upload ended")) }
	} else {
		close(done)
	}
	res, err := sealed.Put(ctx, s.blobs, a.BlobKey, a.ID, s.keys, src, limit)
	stop()
	<-done
	if stripErr != nil && errors.Is(stripErr, blob.ErrTooLarge) {
		return nil, stripErr
	}
	if err != nil {
		if errors.Is(err, blob.ErrTooLarge) {
			return nil, blob.ErrTooLarge
		}
		if stripErr != nil {
			return nil, apperr.OnField(apperr.InvalidMedia, "file", "the JPEG is damaged: %v", stripErr)
		}
		return nil, err
	}
	a.Size, a.StoredSize, a.KeyID = res.PlaintextSize, int64(res.Stored), res.KeyID

	obj, err := sealed.Open(ctx, s.blobs, a.BlobKey, a.ID, s.keys, res.Stored)
	if err != nil {
		return nil, err
	}
	switch {
	case decodable[a.ContentType]:
		if orientation >= 5 {
			a.Width, a.Height = a.Height, a.Width // shown turned
		}
		rc, err := obj.NewReader(ctx, 0, -1)
		if err != nil {
			return nil, err
		}
		thumb, preview, err := thumbnails(rc, orientation)
		rc.Close()
		if err != nil {
			return nil, apperr.OnField(apperr.InvalidMedia, "file", "the image does not decode: %v", err)
		}
		a.Preview = preview
		if thumb != nil {
			a.ThumbKey = blobKey(a.ID, "t")
			tres, err := sealed.Put(ctx, s.blobs, a.ThumbKey, thumbObject(a.ID), s.keys, bytes.NewReader(thumb), int64(len(thumb)))
			if err != nil {
				a.ThumbKey = ""
				return nil, err
			}
			a.ThumbStored = int64(tres.Stored)
		}
	case a.ContentType == typeOgg:
		tail, err := readRange(ctx, obj, max(a.Size-64<<10, 0), -1)
		if err != nil {
			return nil, err
		}
		if d, ok := oggDuration(head, tail); ok {
			a.Duration = d
		}
	case a.ContentType == typeWebA:
		rc, err := obj.NewReader(ctx, 0, -1)
		if err != nil {
			return nil, err
		}
		w, err := parseWebM(rc, false)
		rc.Close()
		if err != nil {
			return nil, apperr.OnField(apperr.InvalidMedia, "file", "the WebM audio is damaged: %v", err)
		}
		if d, ok := w.Duration(); ok {
			a.Duration = d
		}
	}
	if strings.HasPrefix(a.ContentType, "audio/") && a.Duration > s.lim.MaxVoice {
		return nil, s.refuse("voice_too_long", apperr.OnField(apperr.VoiceTooLong, "file", "the recording is %s long; the limit is %s", a.Duration.Round(time.Second), s.lim.MaxVoice))
	}
	if err := s.store.MarkAttachmentReady(ctx, a, s.lim.Quota); err != nil {
		return nil, err
	}
	v := View(a)
	return &v, nil
}

func readRange(ctx context.Context, obj *sealed.Object, off, n int64) ([]byte, error) {
	rc, err := obj.NewReader(ctx, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// discard deletes what a failed upload stored, and its row. It runs on its
// own context: the request's may be what failed.
func (s *Service) discard(a *store.Attachment) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range []string{a.BlobKey, a.ThumbKey} {
		if k == "" {
			continue
		}
		if err := s.blobs.Delete(ctx, k); err != nil {
			// The row stays: the collector deletes the blob once it is stale.
			s.log.Warn("refused upload's blob not deleted; the collector retries", "attachment", a.ID, "err", err)
			return
		}
	}
	if err := s.store.DiscardUpload(ctx, a.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("refused upload's row not deleted; the collector retries", "attachment", a.ID, "err", err)
	}
}

// Remove deletes userID's upload id before it is sent: a file taken off a
// message being written stops counting against the quota at once instead
// of at the upload expiry. Someone else's upload or a missing one is
// not_found; one already sent is a conflict (deleting its message deletes
// it).
func (s *Service) Remove(ctx context.Context, userID, id string) error {
	a, err := s.store.Attachment(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && a.OwnerID != userID) {
		return noAttachment()
	}
	if err != nil {
		return unavailable(err)
	}
	if a.State == store.AttachmentAttached {
		return apperr.New(apperr.Conflict, "this attachment was sent; delete its message instead")
	}
	switch err := s.store.DoomUpload(ctx, userID, id); {
	case errors.Is(err, store.ErrNotFound):
		// Sent or collected a moment ago: ask again for which.
		if cur, err := s.store.Attachment(ctx, id); err == nil && cur.State == store.AttachmentAttached {
			return apperr.New(apperr.Conflict, "this attachment was sent; delete its message instead")
		}
		return noAttachment()
	case err != nil:
		return unavailable(err)
	}
	// Blobs and row now; what fails here the collector finishes.
	s.purge(ctx, []store.Attachment{*a}, "removed")
	return nil
}

// View is an attachment as clients see it.
func View(a *store.Attachment) protocol.Attachment {
	v := protocol.Attachment{ID: a.ID, Name: a.Name, ContentType: a.ContentType, Size: a.Size,
		Width: a.Width, Height: a.Height, DurationMS: a.Duration.Milliseconds(), Thumbnail: a.ThumbKey != ""}
	if len(a.Preview) > 0 {
		v.Preview = "data:image/png;base64," + base64.StdEncoding.EncodeToString(a.Preview)
	}
	return v
}

func unavailable(err error) error {
	return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable; nothing was saved")
}

func noAttachment() error { return apperr.New(apperr.NotFound, "no such attachment") }

// Download is an attachment opened for reading.
type Download struct {
	Attachment  store.Attachment
	Thumbnail   bool
	ContentType string
	Size        int64
	// Inline: shown in the page (images, audio, video); otherwise served as
	// a download.
	Inline bool
	obj    *sealed.Object
}

// Reader returns length plaintext bytes from offset (length < 0: to the end).
func (d *Download) Reader(ctx context.Context, offset, length int64) (io.ReadCloser, error) {
	return d.obj.NewReader(ctx, offset, length)
}

// Open opens attachment id (or its thumbnail) for userID: a member of the
// conversation its message is in, or its uploader before it is sent.
// Anyone else gets not_found, as for an id that does not exist.
func (s *Service) Open(ctx context.Context, userID, id string, thumbnail bool) (*Download, error) {
	a, err := s.store.Attachment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noAttachment()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	switch a.State {
	case store.AttachmentAttached:
		if _, err := s.store.Member(ctx, a.ConversationID, userID); errors.Is(err, store.ErrNotFound) {
			return nil, noAttachment()
		} else if err != nil {
			return nil, unavailable(err)
		}
	case store.AttachmentReady:
		if a.OwnerID != userID {
			return nil, noAttachment()
		}
	default:
		return nil, noAttachment()
	}
	d := &Download{Attachment: *a, Thumbnail: thumbnail, ContentType: a.ContentType, Inline: Inline(a.ContentType)}
	key, obj, stored := a.BlobKey, a.ID, a.StoredSize
	if thumbnail {
		if a.ThumbKey == "" {
			return nil, apperr.New(apperr.NotFound, "this attachment has no thumbnail")
		}
		key, obj, stored = a.ThumbKey, thumbObject(a.ID), a.ThumbStored
		d.ContentType, d.Inline = typeJPEG, true
	}
	d.obj, err = sealed.Open(ctx, s.blobs, key, obj, s.keys, sealed.StoredSize(stored))
	if errors.Is(err, blob.ErrNotFound) {
		// Deleted meanwhile (its message went a moment ago).
		return nil, noAttachment()
	}
	if err != nil {
		return nil, fmt.Errorf("attachments: open %s: %w", id, err)
	}
	d.Size = d.obj.Size()
	return d, nil
}

// URLTTL is how long a signed URL works: long enough to watch a video
// (each seek is a new request on the same URL), short enough that a URL
// leaked from a log or a history is soon useless. Access is checked again
// on every request: a member removed meanwhile gets not_found.
const URLTTL = 30 * time.Minute

// urlPurpose separates URL signatures from every other MAC of the keyring.
const urlPurpose = "parley/attachment-url/v1"

func variant(thumbnail bool) string {
	if thumbnail {
		return "thumbnail"
	}
	return "file"
}

// Path is the API path of an attachment or its thumbnail.
func Path(id string, thumbnail bool) string {
	p := "/api/v1/attachments/" + id
	if thumbnail {
		p += "/thumbnail"
	}
	return p
}

// SignedURL returns a URL of attachment id (or its thumbnail) that works
// without an Authorization header, for userID only, until the returned
// time: what <img> and <audio> elements fetch. It checks access first.
func (s *Service) SignedURL(ctx context.Context, userID, id string, thumbnail bool) (string, time.Time, error) {
	if _, err := s.Open(ctx, userID, id, thumbnail); err != nil {
		return "", time.Time{}, err
	}
	exp := s.now().Add(URLTTL).Truncate(time.Second)
	e := strconv.FormatInt(exp.Unix(), 10)
	kid, tag := s.keys.MAC([]byte(urlPurpose), []byte(userID), []byte(id), []byte(variant(thumbnail)), []byte(e))
	q := "?u=" + userID + "&e=" + e + "&k=" + kid + "&s=" + base64.RawURLEncoding.EncodeToString(tag)
	return Path(id, thumbnail) + q, exp, nil
}

// VerifyURL checks a signed URL's parameters and returns the user it was
// signed for. Any failure is unauthorized, with one message: a tampered URL
// learns nothing.
func (s *Service) VerifyURL(id string, thumbnail bool, userID, exp, kid, sig string) (string, error) {
	bad := apperr.New(apperr.Unauthorized, "this link is invalid or has expired; open the attachment again")
	e, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || userID == "" || kid == "" {
		return "", bad
	}
	tag, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !s.keys.VerifyMAC(kid, tag, []byte(urlPurpose), []byte(userID), []byte(id), []byte(variant(thumbnail)), []byte(exp)) {
		return "", bad
	}
	if s.now().Unix() > e {
		return "", bad
	}
	return userID, nil
}

// Purge deletes the blobs of attachments whose message is gone (already
// marked deleted by the store), then their rows: called right after a
// message is deleted or expires. What fails is left for the collector.
func (s *Service) Purge(ctx context.Context, as []store.Attachment) {
	s.purge(ctx, as, "gone")
}

func (s *Service) purge(ctx context.Context, as []store.Attachment, why string) int {
	n := 0
	for _, a := range as {
		ok := true
		for _, k := range []string{a.BlobKey, a.ThumbKey} {
			if k == "" {
				continue
			}
			if err := s.blobs.Delete(ctx, k); err != nil {
				s.log.Warn("attachment blob not deleted; the collector retries", "attachment", a.ID, "err", err)
				ok = false
			}
		}
		if !ok {
			continue
		}
		if err := s.store.DeleteAttachment(ctx, a.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("attachment row not deleted; the collector retries", "attachment", a.ID, "err", err)
			continue
		}
		if why != "" {
			s.metrics.AttachmentsDeleted.WithLabelValues(why).Inc()
		}
		n++
	}
	if n > 0 && why != "" && s.audit != nil {
		ids := make([]string, 0, len(as))
		for _, a := range as {
			ids = append(ids, a.ID)
		}
		_ = s.audit.Record(ctx, audit.AttachmentsDeleted, "", "", "", map[string]any{"attachments": ids, "why": why})
	}
	return n
}

// CollectBatch is how many attachments one collector step deletes.
const CollectBatch = 200

// staleUploadFiles is the age past which a storage engine's own temporary
// files (an fs upload cut by a crash) are removed.
const staleUploadFiles = time.Hour

// Collect is the collector's pass (run by the holder of the expiry lease):
// uploads never attached within the upload expiry are marked deleted, then
// the blobs and rows of every attachment marked deleted (those whose
// message, conversation or owner went and that Purge did not finish) are
// deleted; the filesystem engine's stale temporary files go too. It returns
// how many attachments it deleted.
func (s *Service) Collect(ctx context.Context) (int, error) {
	s.metrics.AttachmentGCRuns.Inc()
	stale, err := s.store.DoomStaleAttachments(ctx, s.now().Add(-s.lim.UploadExpiry))
	if err != nil {
		return 0, fmt.Errorf("attachments: collect: %w", err)
	}
	if stale > 0 {
		s.metrics.AttachmentsDeleted.WithLabelValues("stale").Add(float64(stale))
	}
	total := 0
	for ctx.Err() == nil {
		doomed, err := s.store.DoomedAttachments(ctx, CollectBatch)
		if err != nil {
			return total, fmt.Errorf("attachments: collect: %w", err)
		}
		n := s.purge(ctx, doomed, "")
		total += n
		if len(doomed) < CollectBatch || n == 0 {
			break
		}
	}
	if fs, ok := s.blobs.(interface {
		RemoveStaleUploads(ctx context.Context, before time.Time) (int, error)
	}); ok {
		if _, err := fs.RemoveStaleUploads(ctx, s.now().Add(-staleUploadFiles)); err != nil {
			s.log.Warn("attachments: stale upload files not removed", "err", err)
		}
	}
	return total, nil
}

// Reseal re-encrypts up to limit attachments sealed with data key kid to
// the active key (package messaging's Resealer calls it for every
// non-active key): each blob is copied, segment by segment, into a new
// object; the row is switched to it only if it still names the old one,
// and the old objects are deleted after. It returns how many it moved and
// how many would not open (tampered, or their key is gone: left as they
// are and logged).
func (s *Service) Reseal(ctx context.Context, kid string, limit int) (resealed, failed int, err error) {
	as, err := s.store.AttachmentsSealedWith(ctx, kid, limit)
	if err != nil {
		return 0, 0, fmt.Errorf("attachments: reseal: %w", err)
	}
	for _, a := range as {
		next := a
		next.BlobKey = blobKey(a.ID, "f")
		res, err := sealed.Reseal(ctx, s.blobs, a.BlobKey, next.BlobKey, a.ID, s.keys, sealed.StoredSize(a.StoredSize), a.Size)
		if err != nil {
			if sealed.Unopenable(err) {
				s.log.Error("reseal: attachment does not open; left as it is", "attachment", a.ID, "kid", kid, "err", err)
				failed++
				continue
			}
			return resealed, failed, fmt.Errorf("attachments: reseal %s: %w", a.ID, err)
		}
		next.StoredSize, next.KeyID = int64(res.Stored), res.KeyID
		if a.ThumbKey != "" {
			next.ThumbKey = blobKey(a.ID, "t")
			tres, err := sealed.Reseal(ctx, s.blobs, a.ThumbKey, next.ThumbKey, thumbObject(a.ID), s.keys,
				sealed.StoredSize(a.ThumbStored), 1<<24)
			if err != nil {
				_ = s.blobs.Delete(ctx, next.BlobKey)
				s.log.Error("reseal: attachment thumbnail does not open; left as it is", "attachment", a.ID, "err", err)
				failed++
				continue
			}
			next.ThumbStored = int64(tres.Stored)
		}
		ok, err := s.store.ResealAttachment(ctx, a.ID, a.BlobKey, &next)
		if err != nil || !ok {
			// Deleted or resealed meanwhile: the new copies are not needed.
			_ = s.blobs.Delete(ctx, next.BlobKey)
			if next.ThumbKey != "" {
				_ = s.blobs.Delete(ctx, next.ThumbKey)
			}
			if err != nil {
				return resealed, failed, fmt.Errorf("attachments: reseal %s: %w", a.ID, err)
			}
			continue
		}
		// A download that opened the old objects a moment ago may still be
		// reading them; it fails and the client retries on the new ones.
		_ = s.blobs.Delete(ctx, a.BlobKey)
		if a.ThumbKey != "" {
			_ = s.blobs.Delete(ctx, a.ThumbKey)
		}
		resealed++
	}
	return resealed, failed, nil
}
