package httpapi

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/messaging"
)

// defaultMaxBody caps request bodies unless configured higher: JSON
// requests are small.
const defaultMaxBody = 64 << 10

// requestID gives every request an id, echoed in X-Request-Id and the logs.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := ids.New("req")
		c.Set("request_id", id)
		c.Header("X-Request-Id", id)
		c.Next()
	}
}

// accessLog logs one JSON line per request: no bodies, no query strings (a
// WebSocket ticket travels in one), no headers.
func (a *API) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		d := time.Since(start)
		code := c.Writer.Status()
		a.metrics.HTTPRequests.WithLabelValues(c.Request.Method, route, strconv.Itoa(code)).Inc()
		a.metrics.HTTPDuration.WithLabelValues(c.Request.Method, route).Observe(d.Seconds())
		level := slog.LevelInfo
		if code >= 500 {
			level = slog.LevelError
		}
		if route == "/healthz" || route == "/readyz" || route == "/metrics" {
			level = slog.LevelDebug
		}
		a.log.Log(c.Request.Context(), level, "request", "method", c.Request.Method, "path", c.Request.URL.Path,
			"route", route, "status", code, "duration_ms", float64(d.Microseconds())/1000,
			"ip", a.clientIP(c), "request_id", c.GetString("request_id"), "user", c.GetString("user_id"))
	}
}

// recovery turns a panic into a 500 with the request id, and logs it.
func (a *API) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				a.log.Error("panic", "panic", r, "request_id", c.GetString("request_id"))
				writeErr(c, apperr.New(apperr.Internal, "internal error (request %s)", c.GetString("request_id")))
			}
		}()
		c.Next()
	}
}

// ServiceWorkerPolicy is the only Trusted Types policy the page may create.
// With require-trusted-types-for 'script', navigator.serviceWorker.register
// takes a TrustedScriptURL only (Chromium refuses a string), so the web
// client creates this one policy, whose createScriptURL returns the service
// worker's fixed path and refuses anything else (it defines no createHTML:
// the client still has no HTML sinks).
const ServiceWorkerPolicy = "parley-sw"

// securityHeaders sets the headers every response carries.
func (a *API) securityHeaders() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.Writer.Header()
		host := c.Request.Host
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; "+
			"img-src 'self' data: blob:; font-src 'self'; connect-src 'self' ws://"+host+" wss://"+host+"; "+
			"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; "+
			"require-trusted-types-for 'script'; trusted-types "+ServiceWorkerPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "strict-origin-when-cross-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		// The microphone is the app's own (voice messages), never an embedder's.
		h.Set("Permissions-Policy", "camera=(), microphone=(self), geolocation=(), payment=()")
		if a.isHTTPS(c) {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			h.Set("Cache-Control", "no-store")
		}
		c.Next()
	}
}

// bodyLimit refuses bodies over maxBody bytes.
func bodyLimit(maxBody int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method == http.MethodPost && c.Request.URL.Path == uploadPath ||
			c.Request.Method == http.MethodPut && c.Request.URL.Path == avatarPath {
			c.Next() // an upload: the attachment (or photo) limits apply, as it streams
			return
		}
		maxBody := maxBody
		if c.Request.Method == http.MethodPost && mlsBodyRoutes[c.FullPath()] {
			// Commits with their Welcome and KeyPackage batches are larger
			// than any message; their own limits are checked field by field.
			maxBody = max(maxBody, messaging.MLSBodyLimit)
		}
		if c.Request.ContentLength > maxBody {
			writeErr(c, apperr.New(apperr.RequestTooLarge, "request body is larger than %d bytes", maxBody))
			c.Abort()
			return
		}
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
		c.Next()
	}
}

// trusted reports whether the direct peer is a configured proxy.
func (a *API) trusted(c *gin.Context) bool {
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, n := range a.proxies {
		if ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

func (a *API) isHTTPS(c *gin.Context) bool {
	if c.Request.TLS != nil {
		return true
	}
	return a.trusted(c) && strings.EqualFold(c.GetHeader("X-Forwarded-Proto"), "https")
}

// clientIP is the peer address, or the nearest untrusted address in
// X-Forwarded-For when the peer is a trusted proxy.
func (a *API) clientIP(c *gin.Context) string {
	host, _, err := net.SplitHostPort(c.Request.RemoteAddr)
	if err != nil {
		host = c.Request.RemoteAddr
	}
	if !a.trusted(c) {
		return host
	}
	hops := strings.Split(c.GetHeader("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		ip := net.ParseIP(strings.TrimSpace(hops[i]))
		if ip == nil {
			break
		}
		inProxy := false
		for _, n := range a.proxies {
			if n.Contains(ip) {
				inProxy = true
				break
			}
		}
		if !inProxy {
			return ip.String()
		}
	}
	return host
}

// sameOrigin refuses a cross-site request that carries an Origin header not
// on the allow-list: the refresh cookie is SameSite=Strict, and this is a
// second lock on the same door.
func (a *API) sameOrigin() gin.HandlerFunc {
	return func(c *gin.Context) {
		if !a.hub.OriginAllowed(c.Request) {
			writeErr(c, apperr.New(apperr.Forbidden, "cross-origin request refused"))
			c.Abort()
			return
		}
		c.Next()
	}
}

// authenticate requires a valid Bearer access token.
func (a *API) authenticate() gin.HandlerFunc {
	return func(c *gin.Context) {
		h := c.GetHeader("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			c.Header("WWW-Authenticate", `Bearer realm="parley"`)
			writeErr(c, apperr.New(apperr.Unauthorized, "sign in first"))
			c.Abort()
			return
		}
		p, err := a.accounts.Authenticate(c.Request.Context(), tok)
		if err != nil {
			c.Header("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
			writeErr(c, err)
			c.Abort()
			return
		}
		c.Set("user_id", p.UserID)
		c.Set("session_id", p.SessionID)
		c.Set("token_expires", p.ExpiresAt)
		c.Next()
	}
}

// limit applies a rate limit keyed by key(c); an empty key skips it.
func (a *API) allow(c *gin.Context, name string, keys ...string) bool {
	lim := a.limits[name]
	for _, k := range keys {
		if k == "" {
			continue
		}
		ok, wait, err := lim.Allow(c.Request.Context(), k)
		if err != nil {
			a.log.Warn("rate limiter failed; allowing", "limit", name, "err", err)
			continue
		}
		if !ok {
			a.metrics.RateLimited.WithLabelValues(name).Inc()
			writeErr(c, &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait,
				Message: "too many attempts; try again in a little while"})
			return false
		}
	}
	return true
}
