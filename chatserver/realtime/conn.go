package realtime

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/protocol"
)

type outFrame struct {
	data   []byte
	stored time.Time // store time of a message, for the delivery-latency metric
}

type conn struct {
	hub       *Hub
	ws        *websocket.Conn
	id        string
	userID    string
	sessionID string
	expires   atomic.Int64 // access-token expiry, unix nanoseconds

	send  chan outFrame
	renew chan struct{}
	done  chan struct{}
	once  sync.Once
	code  int
	why   string

	typing map[string]time.Time // reader goroutine only
}

// ServeHTTP upgrades an HTTP request to a Parley WebSocket connection.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	if !h.OriginAllowed(r) {
		h.count("refused_origin")
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	var p *accounts.Principal
	if t := r.URL.Query().Get("ticket"); t != "" {
		var err error
		p, err = h.ticket(r.Context(), t)
		if err != nil {
			h.count("auth_failed")
			http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
			return
		}
	}
	ws, err := h.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	if int(h.total.Load()) >= h.opts.MaxConnections {
		h.count("refused_limit")
		closeNow(ws, websocket.CloseTryAgainLater, "server connection limit reached", h.opts.WriteWait)
		return
	}
	ws.SetReadLimit(h.opts.ReadLimit)
	ctx := context.WithoutCancel(r.Context())
	if p == nil {
		p, err = h.firstFrameAuth(ctx, ws)
		if err != nil {
			h.count("auth_failed")
			closeNow(ws, websocket.ClosePolicyViolation, "authentication failed", h.opts.WriteWait)
			return
		}
	}
	c := &conn{hub: h, ws: ws, id: ids.New("s"), userID: p.UserID, sessionID: p.SessionID,
		send: make(chan outFrame, h.opts.SendQueue), renew: make(chan struct{}, 1), done: make(chan struct{}),
		typing: map[string]time.Time{}}
	c.expires.Store(p.ExpiresAt.UnixNano())
	if ok, code, why := h.register(ctx, c); !ok {
		h.count("refused_limit")
		closeNow(ws, code, why, h.opts.WriteWait)
		return
	}
	h.count("accepted")
	h.wg.Add(1)
	defer h.wg.Done()
	go c.writeLoop()
	c.push(protocol.ServerFrame{Type: "ready", UserID: c.userID, SessionID: c.sessionID,
		Protocol: protocol.Version, ExpiresAt: timePtr(p.ExpiresAt)})
	c.readLoop(ctx)
	h.unregister(ctx, c)
}

func (h *Hub) count(result string) {
	if h.metrics != nil {
		h.metrics.ConnectionsTotal.WithLabelValues(result).Inc()
	}
}

func (h *Hub) ticket(ctx context.Context, t string) (*accounts.Principal, error) {
	p, err := h.accounts.AuthenticateTicket(ctx, t)
	if err != nil {
		return nil, err
	}
	first, err := h.tickets.Consume(ctx, p.TokenID, p.ExpiresAt)
	if err != nil {
		return nil, err
	}
	if !first {
		return nil, errors.New("ticket already used")
	}
	return p, nil
}

func (h *Hub) firstFrameAuth(ctx context.Context, ws *websocket.Conn) (*accounts.Principal, error) {
	_ = ws.SetReadDeadline(time.Now().Add(h.opts.AuthTimeout))
	var f protocol.ClientFrame
	if err := ws.ReadJSON(&f); err != nil {
		return nil, err
	}
	if f.Type != "auth" || f.Token == "" {
		return nil, errors.New("first frame is not auth")
	}
	return h.accounts.Authenticate(ctx, f.Token)
}

func closeNow(ws *websocket.Conn, code int, reason string, wait time.Duration) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(wait))
	_ = ws.Close()
}

func timePtr(t time.Time) *time.Time { u := t.UTC(); return &u }

// close asks the writer to send a close frame with code and reason and end
// the connection. Only the first call counts.
func (c *conn) close(code int, reason string) {
	c.once.Do(func() {
		c.code, c.why = code, reason
		close(c.done)
	})
}

// offer queues a live frame without blocking. A full queue means the client
// cannot keep up: it is disconnected (it will catch up through its cursors)
// rather than slowing anyone else down.
func (c *conn) offer(f outFrame) {
	select {
	case c.send <- f:
	case <-c.done:
	default:
		if c.hub.metrics != nil {
			c.hub.metrics.FramesDropped.Inc()
		}
		c.close(websocket.CloseTryAgainLater, "too slow: send queue full; reconnect and sync")
	}
}

// push queues a frame answering the client's own request, waiting for room
// (back-pressure on that client only) up to the write timeout.
func (c *conn) push(f protocol.ServerFrame) bool {
	data, err := json.Marshal(f)
	if err != nil {
		c.hub.log.Error("encode frame", "err", err)
		return false
	}
	return c.pushRaw(outFrame{data: data})
}

func (c *conn) pushRaw(f outFrame) bool {
	t := time.NewTimer(c.hub.opts.WriteWait)
	defer t.Stop()
	select {
	case c.send <- f:
		return true
	case <-c.done:
		return false
	case <-t.C:
		c.close(websocket.CloseTryAgainLater, "too slow: send queue full; reconnect and sync")
		return false
	}
}

func (c *conn) writeLoop() {
	h := c.hub
	ping := time.NewTicker(h.opts.PingInterval)
	expiry := time.NewTimer(time.Until(time.Unix(0, c.expires.Load())))
	defer func() {
		ping.Stop()
		expiry.Stop()
		_ = c.ws.Close()
	}()
	for {
		select {
		case f := <-c.send:
			_ = c.ws.SetWriteDeadline(time.Now().Add(h.opts.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				c.close(websocket.CloseAbnormalClosure, "write failed")
				return
			}
			if !f.stored.IsZero() && h.metrics != nil {
				h.metrics.MessagesDelivered.Inc()
				h.metrics.DeliveryLatency.Observe(time.Since(f.stored).Seconds())
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(h.opts.WriteWait)); err != nil {
				c.close(websocket.CloseAbnormalClosure, "ping failed")
				return
			}
		case <-c.renew:
			if !expiry.Stop() {
				select {
				case <-expiry.C:
				default:
				}
			}
			expiry.Reset(time.Until(time.Unix(0, c.expires.Load())))
		case <-expiry.C:
			c.close(websocket.ClosePolicyViolation, "access token expired; reconnect with a fresh one")
		case <-c.done:
			if h.metrics != nil {
				h.metrics.Disconnects.WithLabelValues(closeReason(c.code)).Inc()
			}
			if c.code == websocket.CloseGoingAway {
				c.flush() // acks of the last requests go out before the close frame
			}
			if c.code != websocket.CloseAbnormalClosure {
				_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.why),
					time.Now().Add(h.opts.WriteWait))
			}
			return
		}
	}
}

// flush writes what is queued, within one write timeout in all.
func (c *conn) flush() {
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.hub.opts.WriteWait))
	for {
		select {
		case f := <-c.send:
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				return
			}
		default:
			return
		}
	}
}

func closeReason(code int) string {
	switch code {
	case websocket.CloseNormalClosure:
		return "normal"
	case websocket.CloseGoingAway:
		return "going_away"
	case websocket.ClosePolicyViolation:
		return "policy"
	case websocket.CloseTryAgainLater:
		return "try_again_later"
	default:
		return "error"
	}
}

func (c *conn) readLoop(ctx context.Context) {
	h := c.hub
	_ = c.ws.SetReadDeadline(time.Now().Add(h.opts.PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(h.opts.PongWait))
	})
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			switch {
			case h.draining.Load():
				c.close(websocket.CloseGoingAway, "server shutting down; reconnect")
			case errors.Is(err, websocket.ErrReadLimit):
				// gorilla has already sent 1009 (message too big).
				c.close(websocket.CloseAbnormalClosure, "frame too large")
			case websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway):
				c.close(websocket.CloseNormalClosure, "")
			default:
				c.close(websocket.CloseAbnormalClosure, "read failed")
			}
			return
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(h.opts.PongWait))
		if typ != websocket.TextMessage {
			c.fail("", apperr.New(apperr.InvalidRequest, "frames must be JSON text"))
			continue
		}
		var f protocol.ClientFrame
		if err := json.Unmarshal(data, &f); err != nil {
			c.fail("", apperr.New(apperr.InvalidRequest, "frame is not valid JSON"))
			continue
		}
		if !c.handle(ctx, &f) {
			return
		}
	}
}

// fail sends an error frame answering request id.
func (c *conn) fail(id string, err error) {
	e := apperr.From(err)
	if e.Code == apperr.Internal {
		c.hub.log.Error("websocket request failed", "err", err)
	}
	f := protocol.ServerFrame{Type: "error", ID: id, Code: e.Code, ErrMessage: e.Message}
	if e.RetryAfter > 0 {
		f.RetryAfter = int((e.RetryAfter + time.Second - 1) / time.Second)
	}
	c.push(f)
}

// handle runs one client frame; false ends the connection.
func (c *conn) handle(ctx context.Context, f *protocol.ClientFrame) bool {
	h := c.hub
	switch f.Type {
	case "auth":
		p, err := h.accounts.Authenticate(ctx, f.Token)
		if err != nil || p.UserID != c.userID {
			c.close(websocket.ClosePolicyViolation, "authentication failed")
			return false
		}
		c.expires.Store(p.ExpiresAt.UnixNano())
		select {
		case c.renew <- struct{}{}:
		default:
		}
		c.push(protocol.ServerFrame{Type: "ready", UserID: c.userID, SessionID: p.SessionID,
			Protocol: protocol.Version, ExpiresAt: timePtr(p.ExpiresAt)})
	case "send":
		if f.Body == nil || f.ConversationID == "" {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, "send needs conversationId and body"))
			return true
		}
		m, _, err := h.msgs.Send(ctx, c.userID, f.ConversationID, f.ClientID, *f.Body)
		if err != nil {
			c.fail(f.ID, err)
			return true
		}
		if h.metrics != nil {
			h.metrics.MessagesSent.WithLabelValues("ws").Inc()
		}
		c.push(protocol.ServerFrame{Type: "ack", ID: f.ID, Message: m})
	case "sync":
		cursors, err := h.msgs.Sync(ctx, c.userID, f.Cursors, func(m protocol.Message) error {
			data, err := json.Marshal(protocol.ServerFrame{Type: "message", Message: &m})
			if err != nil {
				return err
			}
			if !c.pushRaw(outFrame{data: data}) {
				return errors.New("connection closed during sync")
			}
			return nil
		})
		if err != nil {
			c.fail(f.ID, err)
			return true
		}
		c.push(protocol.ServerFrame{Type: "synced", ID: f.ID, Cursors: cursors})
	case "typing":
		// At most one typing event per conversation per second per connection.
		if last, ok := c.typing[f.ConversationID]; ok && time.Since(last) < time.Second {
			return true
		}
		c.typing[f.ConversationID] = time.Now()
		if len(c.typing) > 256 {
			clear(c.typing)
		}
		if err := h.msgs.Typing(ctx, c.userID, f.ConversationID); err != nil {
			c.fail(f.ID, err)
		}
	case "read":
		if _, err := h.msgs.MarkRead(ctx, c.userID, f.ConversationID, f.Seq); err != nil {
			c.fail(f.ID, err)
		}
	case "ping":
		c.push(protocol.ServerFrame{Type: "pong", ID: f.ID})
	default:
		c.fail(f.ID, apperr.New(apperr.InvalidRequest, "unknown frame type %q", f.Type))
	}
	return true
}
