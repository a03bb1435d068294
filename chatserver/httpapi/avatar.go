package httpapi

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
)

// avatarPath is the profile photo upload: exempt from the request body cap
// (the avatar service applies its own limit while reading).
const avatarPath = "/api/v1/me/avatar"

// avatarMaxAge is how long a browser may keep a photo fetched with the
// version it is at (?v=): a new photo has a new version, so a new URL.
const avatarMaxAge = 365 * 24 * 3600

// setAvatar makes the request body, a raw image (not multipart, as for
// attachments), the caller's profile photo; everyone sharing a
// conversation with them gets a "user" frame with the new version.
func (a *API) setAvatar(c *gin.Context) {
	if a.avatars == nil {
		writeErr(c, apperr.New(apperr.NotFound, "profile photos are not enabled on this server"))
		return
	}
	if strings.HasPrefix(strings.ToLower(c.GetHeader("Content-Type")), "multipart/") {
		a.fail(c, apperr.New(apperr.InvalidRequest, "send the image as the raw request body, not multipart/form-data"))
		return
	}
	ctx := c.Request.Context()
	u, err := a.avatars.Set(ctx, c.GetString("user_id"), c.Request.Body, c.Request.ContentLength)
	if err != nil {
		if apperr.Is(err, apperr.AttachmentTooLarge) {
			c.Header("Connection", "close") // the client may still be sending: do not read the rest
		}
		a.fail(c, err)
		return
	}
	a.msgs.AnnounceProfile(ctx, u)
	c.JSON(http.StatusOK, accounts.SelfView(u))
}

// deleteAvatar removes the caller's profile photo (no photo: the same 200).
func (a *API) deleteAvatar(c *gin.Context) {
	if a.avatars == nil {
		writeErr(c, apperr.New(apperr.NotFound, "profile photos are not enabled on this server"))
		return
	}
	ctx := c.Request.Context()
	u, changed, err := a.avatars.Remove(ctx, c.GetString("user_id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	if changed {
		a.msgs.AnnounceProfile(ctx, u)
	}
	c.JSON(http.StatusOK, accounts.SelfView(u))
}

// avatar serves a user's profile photo to any signed-in user (profiles are
// as visible as the people search that finds them: docs/security.md).
// The ETag is the photo's version; a request naming the current version
// (?v=) may be cached for long, any other for a minute.
func (a *API) avatar(c *gin.Context) {
	if a.avatars == nil {
		writeErr(c, apperr.New(apperr.NotFound, "profile photos are not enabled on this server"))
		return
	}
	p, err := a.avatars.Open(c.Request.Context(), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	h := c.Writer.Header()
	etag := `"` + p.Version + `"`
	h.Set("ETag", etag)
	if c.Query("v") == p.Version {
		h.Set("Cache-Control", "private, max-age="+strconv.Itoa(avatarMaxAge)+", immutable")
	} else {
		h.Set("Cache-Control", "private, max-age=60")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", downloadCSP)
	h.Set("Content-Disposition", `inline; filename="avatar.jpg"`)
	if inm := c.GetHeader("If-None-Match"); inm != "" && (inm == etag || inm == "W/"+etag) {
		c.Status(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(p.JPEG)))
	c.Data(http.StatusOK, "image/jpeg", p.JPEG)
}
