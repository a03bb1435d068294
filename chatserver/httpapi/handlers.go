package httpapi

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/realtime"
)

type sessionBody struct {
	User                  protocol.User `json:"user"`
	AccessToken           string        `json:"accessToken"`
	AccessTokenExpiresAt  time.Time     `json:"accessTokenExpiresAt"`
	RefreshToken          string        `json:"refreshToken,omitempty"`
	RefreshTokenExpiresAt time.Time     `json:"refreshTokenExpiresAt"`
}

func (a *API) meta(c *gin.Context) accounts.Meta {
	return accounts.Meta{IP: a.clientIP(c), UserAgent: c.Request.UserAgent()}
}

// writeSession answers with a session. The refresh token goes in the HttpOnly
// cookie, or in the body when the client asked for "session": "body".
func (a *API) writeSession(c *gin.Context, status int, s *accounts.Session, mode string) {
	body := sessionBody{User: s.User, AccessToken: s.AccessToken,
		AccessTokenExpiresAt: s.AccessExpiresAt.UTC(), RefreshTokenExpiresAt: s.RefreshExpiresAt.UTC()}
	if mode == "body" {
		body.RefreshToken = s.RefreshToken
	} else {
		a.setRefreshCookie(c, s.RefreshToken, int(time.Until(s.RefreshExpiresAt).Seconds()))
	}
	c.JSON(status, body)
}

func (a *API) setRefreshCookie(c *gin.Context, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{Name: refreshCookie, Value: value, Path: "/api/v1/auth",
		MaxAge: maxAge, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// bindSession decodes the body into v and validates its "session" field
// (which session points into); on failure it has answered.
func (a *API) bindSession(c *gin.Context, v any, session *string) (string, bool) {
	if err := bind(c, v); err != nil {
		a.fail(c, err)
		return "", false
	}
	mode, err := sessionMode(*session)
	if err != nil {
		a.fail(c, err)
		return "", false
	}
	return mode, true
}

func sessionMode(m string) (string, error) {
	switch m {
	case "", "cookie":
		return "cookie", nil
	case "body":
		return "body", nil
	}
	return "", apperr.New(apperr.InvalidRequest, `session must be "cookie" or "body"`)
}

func (a *API) register(c *gin.Context) {
	var in struct {
		Username    string `json:"username"`
		Email       string `json:"email"`
		Password    string `json:"password"`
		DisplayName string `json:"displayName"`
		Session     string `json:"session"`
	}
	mode, ok := a.bindSession(c, &in, &in.Session)
	if !ok {
		return
	}
	if !a.allow(c, LimitLogin, "ip:"+a.clientIP(c), "acct:"+accounts.NormalizeEmail(in.Email)) {
		return
	}
	s, err := a.accounts.Register(c.Request.Context(), accounts.RegisterInput{Username: in.Username,
		Email: in.Email, Password: in.Password, DisplayName: in.DisplayName}, a.meta(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeSession(c, http.StatusCreated, s, mode)
}

func (a *API) login(c *gin.Context) {
	var in struct {
		Login    string `json:"login"`
		Password string `json:"password"`
		Session  string `json:"session"`
	}
	mode, ok := a.bindSession(c, &in, &in.Session)
	if !ok {
		return
	}
	if in.Login == "" || in.Password == "" {
		a.fail(c, apperr.New(apperr.InvalidRequest, "login and password are required"))
		return
	}
	if !a.allow(c, LimitLogin, "ip:"+a.clientIP(c), "acct:"+accounts.NormalizeLogin(in.Login)) {
		return
	}
	s, err := a.accounts.Login(c.Request.Context(), in.Login, in.Password, a.meta(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeSession(c, http.StatusOK, s, mode)
}

// refreshSecret reads the refresh token from the body or, failing that, the
// cookie. It reports which, so the answer goes back the same way.
func (a *API) refreshSecret(c *gin.Context) (secret, mode string, err error) {
	var in struct {
		RefreshToken string `json:"refreshToken"`
	}
	if c.Request.ContentLength != 0 {
		if err := bind(c, &in); err != nil {
			return "", "", err
		}
	}
	if in.RefreshToken != "" {
		return in.RefreshToken, "body", nil
	}
	ck, _ := c.Cookie(refreshCookie)
	return ck, "cookie", nil
}

func (a *API) refresh(c *gin.Context) {
	secret, mode, err := a.refreshSecret(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	s, err := a.accounts.Refresh(c.Request.Context(), secret, a.meta(c))
	if err != nil {
		if mode == "cookie" && (apperr.Is(err, apperr.InvalidRefreshToken) || apperr.Is(err, apperr.TokenReused)) {
			a.setRefreshCookie(c, "", -1)
		}
		a.fail(c, err)
		return
	}
	a.writeSession(c, http.StatusOK, s, mode)
}

func (a *API) logout(c *gin.Context) {
	secret, _, err := a.refreshSecret(c)
	if err != nil {
		a.fail(c, err)
		return
	}
	if err := a.accounts.Logout(c.Request.Context(), secret, a.meta(c)); err != nil {
		a.fail(c, err)
		return
	}
	a.setRefreshCookie(c, "", -1)
	c.Status(http.StatusNoContent)
}

func (a *API) logoutAll(c *gin.Context) {
	if err := a.accounts.LogoutAll(c.Request.Context(), c.GetString("user_id"), a.meta(c)); err != nil {
		a.fail(c, err)
		return
	}
	a.setRefreshCookie(c, "", -1)
	c.Status(http.StatusNoContent)
}

func (a *API) changePassword(c *gin.Context) {
	var in struct {
		CurrentPassword string `json:"currentPassword"`
		NewPassword     string `json:"newPassword"`
		Session         string `json:"session"`
	}
	mode, ok := a.bindSession(c, &in, &in.Session)
	if !ok {
		return
	}
	uid := c.GetString("user_id")
	if !a.allow(c, LimitLogin, "ip:"+a.clientIP(c), "acct-id:"+uid) {
		return
	}
	s, err := a.accounts.ChangePassword(c.Request.Context(), uid, c.GetString("session_id"), in.CurrentPassword, in.NewPassword, a.meta(c))
	if err != nil {
		a.fail(c, err)
		return
	}
	a.writeSession(c, http.StatusOK, s, mode)
}

func (a *API) me(c *gin.Context) {
	u, err := a.accounts.Me(c.Request.Context(), c.GetString("user_id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

// updateMe changes the caller's profile: their display name.
func (a *API) updateMe(c *gin.Context) {
	var in struct {
		DisplayName *string `json:"displayName"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.DisplayName == nil {
		a.fail(c, apperr.OnField(apperr.InvalidRequest, "displayName", "displayName is required"))
		return
	}
	u, err := a.msgs.SetDisplayName(c.Request.Context(), c.GetString("user_id"), *in.DisplayName)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

// deleteAccount deletes the caller's account (docs/api.md, "Delete my
// account"): the account at once, then its content in bounded batches in
// this request, on a context that a client going away does not cancel
// (a purge cut short is finished by the background pass).
func (a *API) deleteAccount(c *gin.Context) {
	var in struct {
		Password string `json:"password"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	uid := c.GetString("user_id")
	if !a.allow(c, LimitLogin, "ip:"+a.clientIP(c), "acct-id:"+uid) {
		return
	}
	if err := a.accounts.DeleteAccount(c.Request.Context(), uid, in.Password, a.meta(c)); err != nil {
		a.fail(c, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request.Context()), accountPurgeTimeout)
	defer cancel()
	a.msgs.DevicesGone(ctx, uid)
	if _, err := a.msgs.PurgeAccount(ctx, uid); err != nil {
		// The account is deleted; the background pass finishes the rest.
		a.log.Error("account purge failed; the background pass will finish it", "request_id", c.GetString("request_id"), "err", err)
	}
	a.setRefreshCookie(c, "", -1)
	c.Status(http.StatusNoContent)
}

// accountPurgeTimeout bounds the content purge of a deleted account in its
// request.
const accountPurgeTimeout = 10 * time.Minute

// exportData streams the caller's data as JSON (docs/api.md, "Export my data").
func (a *API) exportData(c *gin.Context) {
	uid := c.GetString("user_id")
	if !a.allow(c, LimitLogin, "ip:"+a.clientIP(c), "export:"+uid) {
		return
	}
	started := false
	err := a.msgs.Export(c.Request.Context(), uid, a.clientIP(c), func() io.Writer {
		started = true
		c.Header("Content-Type", "application/json; charset=utf-8")
		c.Header("Content-Disposition", `attachment; filename="parley-export.json"`)
		c.Header("Cache-Control", "no-store")
		c.Status(http.StatusOK)
		return c.Writer
	})
	if err != nil {
		if !started {
			a.fail(c, err)
			return
		}
		// Headers are out: cut the response short so the client sees an
		// incomplete JSON document, never a complete-looking wrong one.
		a.log.Error("export failed midway", "request_id", c.GetString("request_id"), "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (a *API) searchUsers(c *gin.Context) {
	limit, _ := strconv.Atoi(c.Query("limit"))
	users, err := a.accounts.Search(c.Request.Context(), c.GetString("user_id"), c.Query("q"), limit)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"users": users})
}

func (a *API) wsTicket(c *gin.Context) {
	t, exp, err := a.hub.IssueTicket(c.Request.Context(), realtime.Ticket{UserID: c.GetString("user_id"),
		SessionID: c.GetString("session_id"), AccessExpires: c.GetTime("token_expires"), Issued: time.Now()})
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"ticket": t, "expiresAt": exp.UTC()})
}

func (a *API) listConversations(c *gin.Context) {
	convs, err := a.msgs.List(c.Request.Context(), c.GetString("user_id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	if convs == nil {
		convs = []protocol.Conversation{}
	}
	c.JSON(http.StatusOK, gin.H{"conversations": convs})
}

func (a *API) createDirect(c *gin.Context) {
	var in struct {
		UserID string `json:"userId"`
		E2EE   bool   `json:"e2ee"` // end-to-end encrypted (MLS); fixed at creation
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	v, created, err := a.msgs.CreateDirectE2EE(c.Request.Context(), c.GetString("user_id"), in.UserID, in.E2EE)
	if err != nil {
		a.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.JSON(status, v)
}

func (a *API) createGroup(c *gin.Context) {
	var in struct {
		Title     string   `json:"title"`
		MemberIDs []string `json:"memberIds"`
		E2EE      bool     `json:"e2ee"` // end-to-end encrypted (MLS); fixed at creation
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	v, err := a.msgs.CreateGroupE2EE(c.Request.Context(), c.GetString("user_id"), in.Title, in.MemberIDs, in.E2EE)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

func (a *API) getConversation(c *gin.Context) {
	v, err := a.msgs.Conversation(c.Request.Context(), c.GetString("user_id"), c.Param("id"))
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// renameConversation changes a group's title.
func (a *API) renameConversation(c *gin.Context) {
	var in struct {
		Title *string `json:"title"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Title == nil {
		a.fail(c, apperr.OnField(apperr.InvalidRequest, "title", "title is required"))
		return
	}
	v, err := a.msgs.RenameGroup(c.Request.Context(), c.GetString("user_id"), c.Param("id"), *in.Title)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (a *API) addMember(c *gin.Context) {
	var in struct {
		UserID string `json:"userId"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	v, err := a.msgs.AddMember(c.Request.Context(), c.GetString("user_id"), c.Param("id"), in.UserID)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, v)
}

func (a *API) removeMember(c *gin.Context) {
	if err := a.msgs.RemoveMember(c.Request.Context(), c.GetString("user_id"), c.Param("id"), c.Param("userId")); err != nil {
		a.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// querySeq reads a whole number >= 0 from the query; set reports whether
// the parameter was there (after=0 differs from no after).
func querySeq(c *gin.Context, name string) (n int64, set bool, err error) {
	v, set := c.GetQuery(name)
	if !set {
		return 0, false, nil
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || n < 0 {
		return 0, true, apperr.New(apperr.InvalidRequest, "%s must be a whole number >= 0", name)
	}
	return n, true, nil
}

func (a *API) history(c *gin.Context) {
	before, hasBefore, err := querySeq(c, "before")
	if err != nil {
		a.fail(c, err)
		return
	}
	after, hasAfter, err := querySeq(c, "after")
	if err != nil {
		a.fail(c, err)
		return
	}
	limit, _, err := querySeq(c, "limit")
	if err != nil {
		a.fail(c, err)
		return
	}
	if hasBefore && hasAfter {
		a.fail(c, apperr.New(apperr.InvalidRequest, "use before or after (a seq >= 0), not both"))
		return
	}
	msgs, more, err := a.msgs.History(c.Request.Context(), c.GetString("user_id"), c.Param("id"),
		messaging.Page{Forward: hasAfter, Before: before, After: after, Limit: int(limit)})
	if err != nil {
		a.fail(c, err)
		return
	}
	if msgs == nil {
		msgs = []protocol.Message{}
	}
	c.JSON(http.StatusOK, gin.H{"messages": msgs, "hasMore": more})
}

func (a *API) sendMessage(c *gin.Context) {
	var in struct {
		ClientID    string   `json:"clientId"`
		Body        *string  `json:"body"`
		ReplyTo     string   `json:"replyTo"`
		Attachments []string `json:"attachments"`
		// Ciphertext replaces body in an end-to-end encrypted conversation.
		Ciphertext string `json:"ciphertext"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Body == nil && in.Ciphertext == "" && len(in.Attachments) == 0 {
		a.fail(c, apperr.New(apperr.InvalidRequest, "body is required (or attachments; ciphertext in an end-to-end encrypted conversation)"))
		return
	}
	body := ""
	if in.Body != nil {
		body = *in.Body
	}
	m, created, err := a.msgs.SendMessage(c.Request.Context(), c.GetString("user_id"), c.Param("id"),
		messaging.Draft{ClientID: in.ClientID, Body: body, ReplyTo: in.ReplyTo, Attachments: in.Attachments, Ciphertext: in.Ciphertext})
	if err != nil {
		a.fail(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.metrics.MessagesSent.WithLabelValues("rest").Inc()
	}
	c.JSON(status, m)
}

// answerMessage writes the message a lifecycle use case returned, or its error.
func (a *API) answerMessage(c *gin.Context, m *protocol.Message, err error) {
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, m)
}

func (a *API) editMessage(c *gin.Context) {
	var in struct {
		Body *string `json:"body"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.Body == nil {
		a.fail(c, apperr.New(apperr.InvalidRequest, "body is required"))
		return
	}
	m, err := a.msgs.Edit(c.Request.Context(), c.GetString("user_id"), c.Param("id"), c.Param("messageId"), *in.Body)
	a.answerMessage(c, m, err)
}

func (a *API) deleteMessage(c *gin.Context) {
	m, err := a.msgs.Delete(c.Request.Context(), c.GetString("user_id"), c.Param("id"), c.Param("messageId"))
	a.answerMessage(c, m, err)
}

// react adds (PUT) or removes (DELETE) the caller's reaction named in the path.
func (a *API) react(add bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		m, err := a.msgs.React(c.Request.Context(), c.GetString("user_id"), c.Param("id"), c.Param("messageId"),
			c.Param("emoji"), add)
		a.answerMessage(c, m, err)
	}
}

func (a *API) setSettings(c *gin.Context) {
	var in struct {
		ExpireAfter *int64 `json:"expireAfter"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	if in.ExpireAfter == nil || *in.ExpireAfter < 0 || *in.ExpireAfter > 1<<32 {
		a.fail(c, apperr.New(apperr.InvalidRequest, "expireAfter (seconds) is required: 0, 3600, 86400, 604800 or 2592000"))
		return
	}
	v, err := a.msgs.SetExpireAfter(c.Request.Context(), c.GetString("user_id"), c.Param("id"),
		time.Duration(*in.ExpireAfter)*time.Second)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

func (a *API) markRead(c *gin.Context) {
	var in struct {
		Seq int64 `json:"seq"`
	}
	if err := bind(c, &in); err != nil {
		a.fail(c, err)
		return
	}
	read, err := a.msgs.MarkRead(c.Request.Context(), c.GetString("user_id"), c.Param("id"), in.Seq)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"readSeq": read})
}
