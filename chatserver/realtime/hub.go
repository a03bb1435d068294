// Package realtime serves Parley's WebSocket protocol (docs/api.md): it
// authenticates connections without long-lived tokens in URLs, keeps a reader
// and a writer goroutine per connection with a bounded send queue, and
// delivers backplane events to every connection of a user.
package realtime

import (
	"context"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/presence"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// Options tune the hub. Zero values take the defaults in brackets.
type Options struct {
	// AllowedOrigins are full origins ("https://chat.example.com"). Empty: only
	// the server's own host. A request without Origin (not a browser) passes.
	AllowedOrigins  []string
	MaxConnections  int           // per process [10000]
	MaxConnsPerUser int           // [32]
	ReadLimit       int64         // bytes per frame [32768]
	SendQueue       int           // frames queued per connection [256]
	PingInterval    time.Duration // [25s]
	PongWait        time.Duration // read deadline, renewed by any frame or pong [60s]
	WriteWait       time.Duration // [10s]
	AuthTimeout     time.Duration // for the first-frame auth [10s]
}

func (o *Options) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxConnections, 10000)
	def(&o.MaxConnsPerUser, 32)
	def(&o.SendQueue, 256)
	if o.ReadLimit <= 0 {
		o.ReadLimit = 32 << 10
	}
	defd(&o.PingInterval, 25*time.Second)
	defd(&o.PongWait, 60*time.Second)
	defd(&o.WriteWait, 10*time.Second)
	defd(&o.AuthTimeout, 10*time.Second)
}

// Hub owns the connections of this process.
type Hub struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics.Metrics
	accounts *accounts.Service
	msgs     *messaging.Service
	presence presence.Tracker
	tickets  Tickets
	bp       backplane.Backplane
	upgrader websocket.Upgrader

	mu      sync.RWMutex
	users   map[string]map[*conn]struct{}
	total   atomic.Int64
	stripes [64]sync.Mutex // serialise subscribe/unsubscribe per user

	draining atomic.Bool
	wg       sync.WaitGroup
}

// Config wires a Hub.
type Config struct {
	Options   Options
	Logger    *slog.Logger
	Metrics   *metrics.Metrics
	Accounts  *accounts.Service
	Messages  *messaging.Service
	Presence  presence.Tracker
	Tickets   Tickets
	Backplane backplane.Backplane // its handler must call the hub's Deliver
}

// NewHub returns a Hub.
func NewHub(c Config) *Hub {
	c.Options.defaults()
	h := &Hub{opts: c.Options, log: c.Logger, metrics: c.Metrics, accounts: c.Accounts, msgs: c.Messages,
		presence: c.Presence, tickets: c.Tickets, bp: c.Backplane, users: map[string]map[*conn]struct{}{}}
	h.upgrader = websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   1024,
		WriteBufferPool:   &sync.Pool{},
		Subprotocols:      []string{protocol.Subprotocol},
		EnableCompression: false,
		CheckOrigin:       h.OriginAllowed,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return h
}

// OriginAllowed reports whether the request's Origin is allowed (see
// Options.AllowedOrigins).
func (h *Hub) OriginAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if len(h.opts.AllowedOrigins) == 0 {
		return strings.EqualFold(u.Host, r.Host)
	}
	for _, a := range h.opts.AllowedOrigins {
		if strings.EqualFold(strings.TrimRight(a, "/"), origin) {
			return true
		}
	}
	return false
}

// Connections is the number of open authenticated connections.
func (h *Hub) Connections() int { return int(h.total.Load()) }

func (h *Hub) stripe(userID string) *sync.Mutex {
	f := fnv.New32a()
	f.Write([]byte(userID))
	return &h.stripes[f.Sum32()%uint32(len(h.stripes))]
}

// register adds c; the first connection of a user subscribes its topic and
// announces it online.
func (h *Hub) register(ctx context.Context, c *conn) (ok bool, code int, reason string) {
	mu := h.stripe(c.userID)
	mu.Lock()
	defer mu.Unlock()
	h.mu.Lock()
	set := h.users[c.userID]
	if len(set) >= h.opts.MaxConnsPerUser {
		h.mu.Unlock()
		return false, websocket.CloseTryAgainLater, "too many connections for this account"
	}
	first := len(set) == 0
	if first {
		set = map[*conn]struct{}{}
		h.users[c.userID] = set
	}
	set[c] = struct{}{}
	h.mu.Unlock()
	if first {
		if err := h.bp.Subscribe(ctx, backplane.UserTopic(c.userID)); err != nil {
			h.log.Error("backplane subscribe failed", "err", err)
			if h.metrics != nil {
				h.metrics.BackplaneErrors.Inc()
			}
		}
	}
	h.total.Add(1)
	if h.metrics != nil {
		h.metrics.Connections.Inc()
	}
	if online, err := h.presence.Connect(ctx, c.userID, c.id); err == nil && online {
		h.msgs.AnnouncePresence(ctx, c.userID, true)
	}
	return true, 0, ""
}

func (h *Hub) unregister(ctx context.Context, c *conn) {
	mu := h.stripe(c.userID)
	mu.Lock()
	defer mu.Unlock()
	h.mu.Lock()
	set := h.users[c.userID]
	if _, ok := set[c]; !ok {
		h.mu.Unlock()
		return
	}
	delete(set, c)
	last := len(set) == 0
	if last {
		delete(h.users, c.userID)
	}
	h.mu.Unlock()
	if last {
		if err := h.bp.Unsubscribe(ctx, backplane.UserTopic(c.userID)); err != nil {
			h.log.Warn("backplane unsubscribe failed", "err", err)
		}
	}
	h.total.Add(-1)
	if h.metrics != nil {
		h.metrics.Connections.Dec()
	}
	if offline, err := h.presence.Disconnect(ctx, c.userID, c.id); err == nil && offline {
		h.msgs.AnnouncePresence(ctx, c.userID, false)
	}
}

func (h *Hub) conns(userID string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	set := h.users[userID]
	out := make([]*conn, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	return out
}

// Deliver is the backplane handler: it hands an event to every connection of
// the topic's user without ever blocking on a slow one.
func (h *Hub) Deliver(topic string, payload []byte) {
	userID, ok := strings.CutPrefix(topic, "u:")
	if !ok {
		return
	}
	kind, stored, data, ok := protocol.OpenEnvelope(payload)
	if !ok {
		h.log.Warn("malformed backplane payload", "topic", topic)
		return
	}
	for _, c := range h.conns(userID) {
		switch kind {
		case protocol.KindFrame:
			c.offer(outFrame{data: data, stored: stored})
		case protocol.KindDisconnect:
			if except, reason := protocol.ParseDisconnect(data); except == "" || except != c.sessionID {
				c.close(websocket.ClosePolicyViolation, reason)
			}
		}
	}
}

// Shutdown stops accepting connections, lets every connection finish the
// frame it is handling (a send in flight is committed and acked), then closes
// it with 1001 so the client reconnects elsewhere; it waits for the
// connections to end, or for ctx.
func (h *Hub) Shutdown(ctx context.Context) {
	h.draining.Store(true)
	h.mu.RLock()
	var all []*conn
	for _, set := range h.users {
		for c := range set {
			all = append(all, c)
		}
	}
	h.mu.RUnlock()
	for _, c := range all {
		// Wakes the reader from its blocking read; it sees draining and closes.
		_ = c.ws.SetReadDeadline(time.Now())
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		for _, c := range all {
			c.close(websocket.CloseGoingAway, "server shutting down; reconnect")
		}
	}
}

// Resync asks every local connection to catch up through its cursors
// ("resync" frame): the backplane lost events while it was disconnected.
func (h *Hub) Resync() {
	frame := []byte(`{"type":"resync"}`)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.users {
		for c := range set {
			c.offer(outFrame{data: frame})
		}
	}
}

// Heartbeat refreshes this process's connections in the presence tracker
// every interval until ctx ends, so they stay online while the process lives.
func (h *Hub) Heartbeat(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.RLock()
		conns := make(map[string][]string, len(h.users))
		for u, set := range h.users {
			for c := range set {
				conns[u] = append(conns[u], c.id)
			}
		}
		h.mu.RUnlock()
		if err := h.presence.Heartbeat(ctx, conns); err != nil {
			h.log.Warn("presence heartbeat failed", "err", err)
		}
	}
}

// Draining reports whether Shutdown has begun.
func (h *Hub) Draining() bool { return h.draining.Load() }
