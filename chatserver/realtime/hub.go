// Package realtime serves Parley's WebSocket protocol (docs/api.md): it
// authenticates connections without long-lived tokens in URLs, keeps a reader
// and a writer goroutine per connection with a bounded send queue, and
// delivers backplane events to every connection of a user.
package realtime

import (
	"context"
	"errors"
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
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// Accounts authenticates connections.
type Accounts interface {
	Authenticate(ctx context.Context, accessToken string) (*accounts.Principal, error)
	StillValid(ctx context.Context, userID, session string, issued time.Time) error
}

// Messages runs the requests a connection makes.
type Messages interface {
	SendMessage(ctx context.Context, userID, convID string, d messaging.Draft) (*protocol.Message, bool, error)
	Edit(ctx context.Context, userID, convID, msgID, body string) (*protocol.Message, error)
	Delete(ctx context.Context, userID, convID, msgID string) (*protocol.Message, error)
	React(ctx context.Context, userID, convID, msgID, emoji string, add bool) (*protocol.Message, error)
	Sync(ctx context.Context, userID string, cursors map[string]int64, emit func(protocol.ServerFrame) error) (map[string]int64, error)
	Typing(ctx context.Context, userID, convID string) error
	MarkRead(ctx context.Context, userID, convID string, seq int64) (int64, error)
}

// Presence is told about connections coming and going (and announces them).
type Presence interface {
	Connect(ctx context.Context, userID, connID string)
	Disconnect(ctx context.Context, userID, connID string)
	Heartbeat(ctx context.Context, conns map[string][]string) error
	// SetVisible records whether the page behind a connection is visible
	// (push notifications skip users with a visible page anywhere).
	SetVisible(ctx context.Context, userID, connID string, visible bool) error
}

// Subscriber subscribes this process to user topics (the backplane).
type Subscriber interface {
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error
}

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
	// DeliveryHold is how long a live frame waits for its predecessor in
	// its conversation before the client is told to sync instead [500ms].
	DeliveryHold time.Duration
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
	defd(&o.DeliveryHold, 500*time.Millisecond)
}

// Hub owns the connections of this process.
type Hub struct {
	opts     Options
	log      *slog.Logger
	metrics  *metrics.Metrics
	accounts Accounts
	msgs     Messages
	presence Presence
	tickets  Tickets
	bp       Subscriber
	heads    Heads
	codec    *delivery.Codec
	upgrader websocket.Upgrader
	resync   []byte // the encoded resync frame

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
	Accounts  Accounts
	Messages  Messages
	Presence  Presence
	Tickets   Tickets
	Backplane Subscriber // the hub is then started as its handler (backplane.Handler)
	Heads     Heads      // conversation heads, for positioning
	Codec     *delivery.Codec
}

// NewHub returns a Hub.
func NewHub(c Config) *Hub {
	c.Options.defaults()
	h := &Hub{opts: c.Options, log: c.Logger, metrics: metrics.OrNew(c.Metrics), accounts: c.Accounts, msgs: c.Messages,
		presence: c.Presence, tickets: c.Tickets, bp: c.Backplane, heads: c.Heads, codec: c.Codec, users: map[string]map[*conn]struct{}{},
		resync: delivery.ResyncFrame()}
	h.metrics.ConnectionsLimit.Set(float64(h.opts.MaxConnections))
	h.upgrader = websocket.Upgrader{
		// 0: gorilla reads through the hijacker's 512-byte buffer, which the
		// reader's idle wait checks (batch.go, idle_linux.go).
		ReadBufferSize:    0,
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
		if err := h.bp.Subscribe(ctx, delivery.UserTopic(c.userID)); err != nil {
			h.log.Error("backplane subscribe failed", "err", err)
			h.metrics.BackplaneErrors.Inc()
		}
	}
	h.total.Add(1)
	h.metrics.Connections.Inc()
	h.presence.Connect(ctx, c.userID, c.id)
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
		if err := h.bp.Unsubscribe(ctx, delivery.UserTopic(c.userID)); err != nil {
			h.log.Warn("backplane unsubscribe failed", "err", err)
		}
	}
	h.total.Add(-1)
	h.metrics.Connections.Dec()
	h.presence.Disconnect(ctx, c.userID, c.id)
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

// connsOf returns the local connections of the users listed (most of a
// shared envelope's recipients may be on other replicas).
func (h *Hub) connsOf(users []string) []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []*conn
	for _, u := range users {
		for c := range h.users[u] {
			out = append(out, c)
		}
	}
	return out
}

// SubscribeShared subscribes this replica to the shared topics, on which
// events for many recipients travel once (delivery.Codec.SetSharedMin). Call
// it once, after the backplane was started with the hub as its handler; a
// failure is logged and the backplane subscribes again when Redis returns.
func (h *Hub) SubscribeShared(ctx context.Context) {
	for _, t := range delivery.SharedTopics() {
		if err := h.bp.Subscribe(ctx, t); err != nil {
			h.log.Error("backplane subscribe failed", "topic", t, "err", err)
			h.metrics.BackplaneErrors.Inc()
		}
	}
}

// HandlePublication implements backplane.Handler: it hands an event to every
// local connection of its recipients (the topic's user, or those a shared
// envelope lists) without ever blocking on a slow one.
func (h *Hub) HandlePublication(topic string, payload []byte) {
	r, err := h.codec.Open(topic, payload)
	if err != nil {
		// Redis is not trusted: what does not verify is dropped and counted.
		reason := "malformed"
		switch {
		case errors.Is(err, delivery.ErrForged):
			reason = "forged"
		case errors.Is(err, delivery.ErrStale):
			reason = "stale"
		}
		h.metrics.BackplaneRejected.WithLabelValues(reason).Inc()
		h.log.Warn("dropped a backplane payload", "reason", reason, "err", err)
		return
	}
	var conns []*conn
	if r.To != nil {
		conns = h.connsOf(r.To)
	} else {
		conns = h.conns(r.UserID)
	}
	for _, c := range conns {
		switch r.Kind {
		case delivery.KindFrame:
			if r.Conversation != "" {
				c.offerOrdered(outFrame{data: r.Frame, stored: r.Stored, conv: r.Conversation, seq: r.Seq})
			} else {
				c.offer(outFrame{data: r.Frame, stored: r.Stored})
			}
		case delivery.KindDisconnect:
			if r.Closes(c.sessionID) {
				c.close(websocket.ClosePolicyViolation, r.Reason)
			}
		}
	}
}

// allConns returns every local connection.
func (h *Hub) allConns() []*conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*conn, 0, h.total.Load())
	for _, set := range h.users {
		for c := range set {
			out = append(out, c)
		}
	}
	return out
}

// Shutdown stops accepting connections, lets every connection finish the
// frame it is handling (a send in flight is committed and acked), then closes
// it with 1001 so the client reconnects elsewhere; it waits for the
// connections to end, or for ctx.
func (h *Hub) Shutdown(ctx context.Context) {
	h.draining.Store(true)
	for _, c := range h.allConns() {
		// Wakes the reader from its blocking read; it sees draining and closes.
		_ = c.ws.SetReadDeadline(time.Now())
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Out of time: a writer may be stuck on a client that does not read
		// (up to WriteWait). Closing the sockets ends it and its reader now.
		for _, c := range h.allConns() {
			c.close(websocket.CloseGoingAway, "server shutting down; reconnect")
			_ = c.ws.NetConn().Close()
		}
	}
}

// HandleResync implements backplane.Handler: it asks every local connection
// to catch up through its cursors, since the backplane may have lost events.
func (h *Hub) HandleResync() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, set := range h.users {
		for c := range set {
			c.offer(outFrame{data: h.resync})
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
