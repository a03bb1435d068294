// Package httpapi serves Parley's REST API (docs/api.md), the WebSocket
// endpoint, health, metrics and the embedded web client, with Gin.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/avatars"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/push"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/realtime"
)

// Rate limit names.
const (
	LimitLogin = "login" // login and register, per IP and per account
)

const refreshCookie = "parley_refresh"

// Checker reports whether a dependency is usable (for /readyz).
type Checker func(ctx context.Context) error

// API is the HTTP surface.
type API struct {
	accounts   *accounts.Service
	msgs       *messaging.Service
	hub        *realtime.Hub
	metrics    *metrics.Metrics
	log        *slog.Logger
	limits     map[string]ratelimit.Limiter
	proxies    []*net.IPNet
	web        fs.FS
	ready      map[string]Checker
	degradable map[string]Checker
	// separateMetrics: /metrics is served on its own listener, not here.
	separateMetrics bool
	keyringz        http.Handler
	refreshTTL      time.Duration
	maxBody         int64
	attachments     *attachments.Service
	avatars         *avatars.Service
	push            *push.Service
}

// Config wires an API.
type Config struct {
	Accounts       *accounts.Service
	Messages       *messaging.Service
	Hub            *realtime.Hub
	Metrics        *metrics.Metrics
	Logger         *slog.Logger
	LoginLimit     ratelimit.Limiter
	TrustedProxies []*net.IPNet
	Web            fs.FS              // the built web client; may hold no index.html
	Ready          map[string]Checker // failing: 503, take this replica out of rotation
	Degradable     map[string]Checker // failing: 200 "degraded" (the replica still stores and serves)
	// SeparateMetrics leaves /metrics off the API (see MetricsHandler), and
	// Keyringz with it.
	SeparateMetrics bool
	// Keyringz reports the loaded keyring to the operator; served at /keyringz
	// beside /metrics, so only on this port when there is no metrics listener.
	Keyringz   http.Handler
	RefreshTTL time.Duration
	// MaxBody caps request bodies [64 KiB]; raise it with the message
	// length limit so a long message can be sent over REST too.
	MaxBody int64
	// Attachments serves uploads and downloads; nil: the endpoints answer
	// not_found.
	Attachments *attachments.Service
	// Avatars serves profile photos; nil: the endpoints answer not_found.
	Avatars *avatars.Service
	// Push keeps Web Push subscriptions; nil: its endpoints answer not_found.
	Push *push.Service
}

// New returns the API.
func New(c Config) *API {
	return &API{accounts: c.Accounts, msgs: c.Messages, hub: c.Hub, metrics: metrics.OrNew(c.Metrics), log: c.Logger,
		limits: map[string]ratelimit.Limiter{LimitLogin: c.LoginLimit}, proxies: c.TrustedProxies,
		web: c.Web, ready: c.Ready, degradable: c.Degradable, separateMetrics: c.SeparateMetrics, keyringz: c.Keyringz, refreshTTL: c.RefreshTTL,
		maxBody: max(c.MaxBody, defaultMaxBody), attachments: c.Attachments, avatars: c.Avatars, push: c.Push}
}

// Handler builds the Gin engine.
func (a *API) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	_ = r.SetTrustedProxies(nil) // client IPs come from clientIP, which knows our proxies
	r.Use(requestID(), a.accessLog(), a.recovery(), a.securityHeaders(), bodyLimit(a.maxBody))

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })
	r.GET("/readyz", a.readyz)
	if !a.separateMetrics {
		r.GET("/metrics", gin.WrapH(a.MetricsHandler()))
		if a.keyringz != nil {
			r.GET("/keyringz", gin.WrapH(a.keyringz))
		}
	}

	v1 := r.Group("/api/v1")
	auth := v1.Group("/auth")
	auth.POST("/register", a.register)
	auth.POST("/login", a.login)
	auth.POST("/refresh", a.sameOrigin(), a.refresh)
	auth.POST("/logout", a.sameOrigin(), a.logout)

	authed := v1.Group("", a.authenticate())
	authed.POST("/auth/logout-all", a.logoutAll)
	authed.POST("/auth/password", a.changePassword)
	authed.GET("/me", a.me)
	authed.PATCH("/me", a.updateMe)
	authed.DELETE("/me", a.deleteAccount)
	authed.GET("/me/export", a.exportData)
	authed.PUT("/me/avatar", a.setAvatar)
	authed.DELETE("/me/avatar", a.deleteAvatar)
	authed.GET("/users/:id/avatar", a.avatar)
	authed.GET("/users", a.searchUsers)
	authed.POST("/ws/ticket", a.wsTicket)
	authed.GET("/conversations", a.listConversations)
	authed.POST("/conversations/direct", a.createDirect)
	authed.POST("/conversations/group", a.createGroup)
	authed.GET("/conversations/:id", a.getConversation)
	authed.PATCH("/conversations/:id", a.renameConversation)
	authed.POST("/conversations/:id/members", a.addMember)
	authed.DELETE("/conversations/:id/members/:userId", a.removeMember)
	authed.GET("/conversations/:id/messages", a.history)
	authed.POST("/conversations/:id/messages", a.sendMessage)
	authed.POST("/conversations/:id/read", a.markRead)
	authed.PATCH("/conversations/:id/messages/:messageId", a.editMessage)
	authed.DELETE("/conversations/:id/messages/:messageId", a.deleteMessage)
	authed.PUT("/conversations/:id/messages/:messageId/reactions/:emoji", a.react(true))
	authed.DELETE("/conversations/:id/messages/:messageId/reactions/:emoji", a.react(false))
	authed.PUT("/conversations/:id/settings", a.setSettings)
	authed.PUT("/conversations/:id/notifications", a.setMute)
	authed.GET("/me/notifications", a.notifySettings)
	authed.PATCH("/me/notifications", a.updateNotifySettings)
	authed.GET("/push/vapid-key", a.vapidKey)
	authed.POST("/push/subscriptions", a.subscribePush)
	authed.DELETE("/push/subscriptions", a.unsubscribePush)
	authed.DELETE("/push/subscriptions/:id", a.unsubscribePush)
	a.mlsRoutes(authed)
	authed.POST("/attachments", a.upload)
	authed.GET("/attachments/:id/url", a.attachmentURL)
	authed.DELETE("/attachments/:id", a.removeUpload)
	// Downloads authenticate themselves: by access token or signed URL.
	v1.GET("/attachments/:id", a.download(false))
	v1.HEAD("/attachments/:id", a.download(false))
	v1.GET("/attachments/:id/thumbnail", a.download(true))
	v1.HEAD("/attachments/:id/thumbnail", a.download(true))
	// GET never reaches gin (upgradeFirst); the route stays so that other
	// methods get 405, as on every route.
	v1.GET("/ws", gin.WrapH(a.hub))

	r.NoMethod(func(c *gin.Context) {
		writeErr(c, apperr.New(apperr.InvalidRequest, "method %s not allowed here", c.Request.Method))
	})
	r.NoRoute(a.static)
	return upgradeFirst{hub: a.hub, rest: r}
}

// wsPath is the WebSocket upgrade (docs/api.md).
const wsPath = "/api/v1/ws"

// upgradeFirst sends the WebSocket upgrade straight to the hub, past gin
// and its middlewares: request id, access log, security headers and body
// limit do nothing for a 101 answer written by the upgrader, and they were
// work on every connection set-up (docs/benchmarks.md, "Issue 15: set-up
// and idle memory"). The hub counts its outcomes itself
// (parley_ws_connections_total).
type upgradeFirst struct {
	hub  http.Handler
	rest http.Handler
}

func (u upgradeFirst) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == wsPath && r.Method == http.MethodGet {
		u.hub.ServeHTTP(w, r)
		return
	}
	u.rest.ServeHTTP(w, r)
}

// MetricsHandler serves the Prometheus metrics.
func (a *API) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})
}

// writeErr writes the error shape of docs/api.md.
func writeErr(c *gin.Context, err error) {
	e := apperr.From(err)
	body := gin.H{"code": e.Code, "message": e.Message}
	if e.Field != "" {
		body["field"] = e.Field
	}
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		c.Header("Retry-After", strconv.Itoa(secs))
		body["retryAfter"] = secs
	}
	if e.Epoch != nil {
		body["epoch"] = *e.Epoch
	}
	c.AbortWithStatusJSON(e.Status(), gin.H{"error": body})
}

// fail logs server-side errors and writes the response.
func (a *API) fail(c *gin.Context, err error) {
	e := apperr.From(err)
	if e.Code == apperr.Internal || e.Code == apperr.Unavailable {
		a.log.Error("request failed", "request_id", c.GetString("request_id"), "route", c.FullPath(), "err", err)
		if e.Code == apperr.Internal {
			e = apperr.New(apperr.Internal, "internal error (request %s)", c.GetString("request_id"))
		}
	}
	writeErr(c, e)
}

// bind decodes a JSON body strictly: unknown fields, trailing data and
// invalid UTF-8 (which Go's decoder would silently turn into U+FFFD) are errors.
func bind(c *gin.Context, v any) error {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return apperr.New(apperr.RequestTooLarge, "request body is larger than %d bytes", tooBig.Limit)
		}
		return apperr.New(apperr.InvalidRequest, "reading the request body failed")
	}
	if !protocol.ValidText(body) {
		return apperr.New(apperr.InvalidRequest, "request body is not valid UTF-8 (or escapes a lone surrogate)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		switch {
		case errors.As(err, &typeErr) && typeErr.Field != "":
			return apperr.New(apperr.InvalidRequest, "field %q has the wrong type (want %s)", typeErr.Field, typeErr.Type)
		case errors.Is(err, io.EOF):
			return apperr.New(apperr.InvalidRequest, "request body must be a JSON object")
		default:
			return apperr.New(apperr.InvalidRequest, "invalid JSON: %s", err.Error())
		}
	}
	if dec.More() {
		return apperr.New(apperr.InvalidRequest, "invalid JSON: data after the object")
	}
	return nil
}

func (a *API) readyz(c *gin.Context) {
	if a.hub.Draining() {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "draining"})
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	checks := gin.H{}
	run := func(m map[string]Checker) bool {
		ok := true
		for name, check := range m {
			if err := check(ctx); err != nil {
				checks[name] = err.Error()
				ok = false
			} else {
				checks[name] = "ok"
			}
		}
		return ok
	}
	critical, optional := run(a.ready), run(a.degradable)
	switch {
	case !critical:
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "unavailable", "checks": checks})
	case !optional:
		// Messages are still stored and acked; live delivery across replicas is
		// degraded until the backplane is back, then clients resync.
		c.JSON(http.StatusOK, gin.H{"status": "degraded", "checks": checks})
	default:
		c.JSON(http.StatusOK, gin.H{"status": "ok", "checks": checks})
	}
}

// static serves the web client: files under /assets/ with long caching, and
// index.html for every other path that is not the API (client-side routes).
func (a *API) static(c *gin.Context) {
	p := c.Request.URL.Path
	if strings.HasPrefix(p, "/api/") || (c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead) {
		writeErr(c, apperr.New(apperr.NotFound, "no such endpoint"))
		return
	}
	if a.web != nil && strings.HasPrefix(p, "/assets/") {
		name := strings.TrimPrefix(p, "/")
		if st, err := fs.Stat(a.web, name); err == nil && !st.IsDir() {
			c.Header("Cache-Control", "public, max-age=31536000, immutable")
			c.FileFromFS(name, http.FS(a.web))
			return
		}
		writeErr(c, apperr.New(apperr.NotFound, "no such file"))
		return
	}
	if a.web != nil {
		if st, err := fs.Stat(a.web, strings.TrimPrefix(p, "/")); err == nil && !st.IsDir() && p != "/index.html" {
			c.FileFromFS(strings.TrimPrefix(p, "/"), http.FS(a.web))
			return
		}
		if index, err := fs.ReadFile(a.web, "index.html"); err == nil {
			c.Header("Cache-Control", "no-cache")
			c.Data(http.StatusOK, "text/html; charset=utf-8", index)
			return
		}
	}
	c.Header("Cache-Control", "no-cache")
	c.String(http.StatusOK, "Parley API is running. The web client was not built into this binary: run `make web` (or `make run`).\n")
}
