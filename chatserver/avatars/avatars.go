// Package avatars holds profile photos (issue 12): an uploaded image is
// checked like an attachment's (sniffed, its dimensions read before any
// decoding, the same pixel limit: package attachments' image checks), then
// decoded, centre-cropped to a square, scaled to Size×Size, turned upright
// by its EXIF orientation and encoded anew as a JPEG, so nothing of the
// original file (EXIF, GPS, comments, trailing data) survives. The JPEG is
// sealed into the blob store with the keyring's data keys like every blob;
// the user's row names it (store.Avatar). docs/api.md ("Profile photo")
// and docs/security.md describe what clients see.
package avatars

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/sealed"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/store"
)

// Size is the side of a stored photo, in pixels: twice the largest avatar
// the web client draws, for sharp high-DPI screens.
const Size = 256

// DefaultMaxBytes bounds an uploaded photo (before it is shrunk).
const DefaultMaxBytes = 10 << 20

// quality is the stored JPEG's: a 256×256 photo comes out at 10-30 KB.
const quality = 85

// Store is the persistence profile photos need.
type Store interface {
	UserByID(ctx context.Context, id string) (*store.User, error)
	SetAvatar(ctx context.Context, userID string, next store.Avatar) (store.Avatar, error)
	AvatarsSealedWith(ctx context.Context, keyID string, limit int) ([]store.User, error)
	ResealAvatar(ctx context.Context, userID, oldBlobKey string, next store.Avatar) (bool, error)
}

// Config wires a Service.
type Config struct {
	Store     Store
	Blobs     blob.Store
	Keys      sealed.Keys
	MaxBytes  int64             // an upload [DefaultMaxBytes]
	MaxPixels int64             // width × height of an image the server decodes (the attachments' limit)
	Limiter   ratelimit.Limiter // shared with attachment uploads, per user; nil: none
	Audit     *audit.Log
	Logger    *slog.Logger
	Now       func() time.Time
}

// Service implements the profile photo use cases.
type Service struct {
	store     Store
	blobs     blob.Store
	keys      sealed.Keys
	maxBytes  int64
	maxPixels int64
	limiter   ratelimit.Limiter
	audit     *audit.Log
	log       *slog.Logger
	now       func() time.Time
}

// New returns a Service.
func New(c Config) *Service {
	s := &Service{store: c.Store, blobs: c.Blobs, keys: c.Keys, maxBytes: c.MaxBytes, maxPixels: c.MaxPixels,
		limiter: c.Limiter, audit: c.Audit, log: c.Logger, now: c.Now}
	if s.maxBytes <= 0 {
		s.maxBytes = DefaultMaxBytes
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// MaxBytes is the upload limit.
func (s *Service) MaxBytes() int64 { return s.maxBytes }

// KeyPrefix starts every photo's blob key: "p/<user id>/<version>-<random>".
// The random part is new on every write (upload or re-encryption), so a new
// object never replaces one a reader may still be reading.
const KeyPrefix = "p/"

func blobKey(userID, version string) string {
	return KeyPrefix + userID + "/" + version + "-" + random(8)
}

// objectID binds a photo's ciphertext to its user and version: one
// user's blob cannot be served as another's, nor an old photo as the new.
func objectID(userID, version string) string { return "avatar/" + userID + "/" + version }

func random(n int) string { return strings.ToLower(rand.Text()[:n]) }

func unavailable(err error) error {
	return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable; nothing was changed")
}

func noUser() error { return apperr.New(apperr.NotFound, "no such user") }

func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', -1, 64) + " MiB" }

// Set makes the image body yields userID's profile photo and returns the
// user as they are now; the photo it replaces is deleted. declared is the
// request's Content-Length (-1: unknown), refused at once when over the
// limit. A refused upload changes nothing and stores nothing.
func (s *Service) Set(ctx context.Context, userID string, body io.Reader, declared int64) (*store.User, error) {
	if s.limiter != nil {
		// One budget with attachment uploads: a photo is an upload.
		ok, wait, err := s.limiter.Allow(ctx, "upl:"+userID)
		if err != nil {
			s.log.Warn("avatar rate limiter failed; allowing", "err", err)
		} else if !ok {
			return nil, &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait, Message: "you are uploading too fast; wait a moment"}
		}
	}
	tooLarge := apperr.OnField(apperr.AttachmentTooLarge, "file", "the photo is larger than the limit of %s", mib(s.maxBytes))
	if declared > s.maxBytes {
		return nil, tooLarge
	}
	// The head first: what it is, and an image's dimensions, before the
	// rest is read or anything decoded.
	br := bufio.NewReaderSize(blob.LimitReader(body, s.maxBytes), attachments.SniffLen)
	head, err := br.Peek(attachments.SniffLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, blob.ErrTooLarge) {
			return nil, tooLarge
		}
		return nil, apperr.Wrap(apperr.InvalidRequest, err, "reading the photo failed")
	}
	ct := attachments.Sniff(head)
	if !attachments.Decodable(ct) {
		return nil, apperr.OnField(apperr.InvalidMedia, "file", "a profile photo must be a JPEG, PNG, GIF or WebP image (this is %s)", ct)
	}
	if _, _, err := attachments.CheckImage(head, ct, s.maxPixels); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(br)
	if err != nil {
		if errors.Is(err, blob.ErrTooLarge) {
			return nil, tooLarge
		}
		return nil, apperr.Wrap(apperr.InvalidRequest, err, "reading the photo failed")
	}
	photo, err := Square(data, ct)
	if err != nil {
		return nil, apperr.OnField(apperr.InvalidMedia, "file", "the image does not decode: %v", err)
	}

	next := store.Avatar{Version: random(12)}
	next.BlobKey = blobKey(userID, next.Version)
	res, err := sealed.Put(ctx, s.blobs, next.BlobKey, objectID(userID, next.Version), s.keys, bytes.NewReader(photo), int64(len(photo)))
	if err != nil {
		return nil, unavailable(fmt.Errorf("avatars: store %s: %w", userID, err))
	}
	next.KeyID, next.Stored = res.KeyID, int64(res.Stored)
	prev, err := s.store.SetAvatar(ctx, userID, next)
	if err != nil {
		s.deleteBlob(next.BlobKey, userID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, noUser()
		}
		return nil, unavailable(err)
	}
	if prev.BlobKey != "" {
		s.deleteBlob(prev.BlobKey, userID)
	}
	if s.audit != nil {
		_ = s.audit.Record(ctx, audit.ProfileChanged, userID, userID, "", map[string]any{"field": "avatar", "size": len(photo)})
	}
	return s.user(ctx, userID)
}

// Remove deletes userID's profile photo and returns the user as they are
// now; changed is false when there was none.
func (s *Service) Remove(ctx context.Context, userID string) (u *store.User, changed bool, err error) {
	prev, err := s.store.SetAvatar(ctx, userID, store.Avatar{})
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, noUser()
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	if prev.BlobKey != "" {
		s.deleteBlob(prev.BlobKey, userID)
		if s.audit != nil {
			_ = s.audit.Record(ctx, audit.ProfileChanged, userID, userID, "", map[string]any{"field": "avatar", "removed": true})
		}
	}
	u, err = s.user(ctx, userID)
	return u, prev.BlobKey != "", err
}

func (s *Service) user(ctx context.Context, userID string) (*store.User, error) {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noUser()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return u, nil
}

// deleteBlob deletes a photo no row names any more, on a context of its
// own (the request's may be what failed). A failure is left to Collect.
func (s *Service) deleteBlob(key, userID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.blobs.Delete(ctx, key); err != nil {
		s.log.Warn("old profile photo not deleted; the collector retries", "user", userID, "err", err)
	}
}

// Photo is a stored profile photo, read.
type Photo struct {
	Version string
	JPEG    []byte
}

// Open reads userID's profile photo. Any signed-in user may (docs/security.md:
// a photo is as public as the name beside it); a deleted account, or one
// with no photo, is not_found.
func (s *Service) Open(ctx context.Context, userID string) (*Photo, error) {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, noUser()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if u.DeletedAt != nil || u.Avatar.BlobKey == "" {
		return nil, apperr.New(apperr.NotFound, "this user has no profile photo")
	}
	obj, err := sealed.Open(ctx, s.blobs, u.Avatar.BlobKey, objectID(u.ID, u.Avatar.Version), s.keys, sealed.StoredSize(u.Avatar.Stored))
	if errors.Is(err, blob.ErrNotFound) {
		// Replaced or resealed a moment ago: the client refetches on the
		// "user" frame that change sends.
		return nil, apperr.New(apperr.NotFound, "this user has no profile photo")
	}
	if err != nil {
		return nil, fmt.Errorf("avatars: open %s: %w", userID, err)
	}
	b, err := obj.ReadAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("avatars: read %s: %w", userID, err)
	}
	return &Photo{Version: u.Avatar.Version, JPEG: b}, nil
}

// Purge deletes a deleted account's photo (account purge): the blob first,
// then the row's reference, so an interrupted purge, run again, still
// finds what to delete.
func (s *Service) Purge(ctx context.Context, userID string) error {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("avatars: purge %s: %w", userID, err)
	}
	if u.Avatar.BlobKey == "" {
		return nil
	}
	if err := s.blobs.Delete(ctx, u.Avatar.BlobKey); err != nil {
		return fmt.Errorf("avatars: purge %s: %w", userID, err)
	}
	if _, err := s.store.SetAvatar(ctx, userID, store.Avatar{}); err != nil {
		return fmt.Errorf("avatars: purge %s: %w", userID, err)
	}
	return nil
}

// orphanAge is how old an unnamed photo blob must be before Collect
// deletes it: far longer than an upload takes between storing the blob
// and naming it in the user's row.
const orphanAge = time.Hour

// Collect deletes photo blobs no user's row names (left by a process that
// stopped between storing a photo and recording it, or between replacing
// one and deleting the old blob, or by a failed delete): run by the holder
// of the expiry lease. It returns how many it deleted.
func (s *Service) Collect(ctx context.Context) (int, error) {
	named := map[string]string{} // user id -> blob key its row names ("" none)
	n := 0
	for info, err := range s.blobs.List(ctx, KeyPrefix, s.now().Add(-orphanAge)) {
		if err != nil {
			return n, fmt.Errorf("avatars: collect: %w", err)
		}
		uid, _, ok := strings.Cut(strings.TrimPrefix(info.Key, KeyPrefix), "/")
		if !ok {
			continue
		}
		key, seen := named[uid]
		if !seen {
			u, err := s.store.UserByID(ctx, uid)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return n, fmt.Errorf("avatars: collect: %w", err)
			default:
				key = u.Avatar.BlobKey
			}
			named[uid] = key
		}
		if key == info.Key {
			continue
		}
		if err := s.blobs.Delete(ctx, info.Key); err != nil {
			return n, fmt.Errorf("avatars: collect: %w", err)
		}
		n++
	}
	return n, nil
}

// Reseal re-encrypts up to limit photos sealed with data key kid to the
// active key (messaging's Resealer calls it for every non-active key, like
// the attachments'): each is copied into a new object, the row switched to
// it only if it still names the old one, and the old object deleted. It
// returns how many it moved and how many would not open (left as they are
// and logged).
func (s *Service) Reseal(ctx context.Context, kid string, limit int) (resealed, failed int, err error) {
	users, err := s.store.AvatarsSealedWith(ctx, kid, limit)
	if err != nil {
		return 0, 0, fmt.Errorf("avatars: reseal: %w", err)
	}
	for _, u := range users {
		next := u.Avatar
		next.BlobKey = blobKey(u.ID, next.Version)
		res, err := sealed.Reseal(ctx, s.blobs, u.Avatar.BlobKey, next.BlobKey, objectID(u.ID, next.Version), s.keys,
			sealed.StoredSize(u.Avatar.Stored), 4<<20)
		if err != nil {
			if sealed.Unopenable(err) {
				s.log.Error("reseal: profile photo does not open; left as it is", "user", u.ID, "kid", kid, "err", err)
				failed++
				continue
			}
			return resealed, failed, fmt.Errorf("avatars: reseal %s: %w", u.ID, err)
		}
		next.Stored, next.KeyID = int64(res.Stored), res.KeyID
		ok, err := s.store.ResealAvatar(ctx, u.ID, u.Avatar.BlobKey, next)
		if err != nil || !ok {
			// Replaced or removed meanwhile: the copy is not needed.
			_ = s.blobs.Delete(ctx, next.BlobKey)
			if err != nil {
				return resealed, failed, fmt.Errorf("avatars: reseal %s: %w", u.ID, err)
			}
			continue
		}
		_ = s.blobs.Delete(ctx, u.Avatar.BlobKey)
		resealed++
	}
	return resealed, failed, nil
}

// Square decodes an image (its dimensions already checked against the
// pixel limit) and returns it as a Size×Size JPEG: the centred square
// cropped out, scaled, turned upright by a JPEG's EXIF orientation,
// transparency shown on white. The JPEG is encoded anew, so it carries no
// metadata of the original.
func Square(data []byte, contentType string) ([]byte, error) {
	orientation := 1
	if contentType == "image/jpeg" {
		orientation = attachments.JPEGOrientation(bytes.NewReader(data))
	}
	src, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	side := min(b.Dx(), b.Dy())
	if side <= 0 {
		return nil, errors.New("empty image")
	}
	crop := image.Rect(0, 0, side, side).Add(b.Min).Add(image.Pt((b.Dx()-side)/2, (b.Dy()-side)/2))
	dst := image.NewRGBA(image.Rect(0, 0, Size, Size))
	draw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	var from image.Image = src
	if side > 4*Size {
		// A first, cheap pass down to 4×Size: Catmull-Rom over the whole
		// of a photo of many megapixels would cost seconds.
		mid := image.NewRGBA(image.Rect(0, 0, 4*Size, 4*Size))
		draw.Draw(mid, mid.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
		xdraw.ApproxBiLinear.Scale(mid, mid.Bounds(), src, crop, draw.Over, nil)
		from, crop = mid, mid.Bounds()
	}
	xdraw.CatmullRom.Scale(dst, dst.Bounds(), from, crop, draw.Over, nil)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, attachments.Orient(dst, orientation), &jpeg.Options{Quality: quality}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
