package realtime

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/protocol"
)

type outFrame struct {
	data   []byte
	stored time.Time // store time of a message, for the delivery-latency metric
	conv   string    // a frame with a place in its conversation's order: which
	seq    int64     // and where
}

// conn is one WebSocket connection. An idle connection costs one goroutine
// (its reader): the writer runs only while frames are queued, pings and the
// token expiry are timers, and the send queue grows on demand up to
// Options.SendQueue and is released when drained.
type conn struct {
	hub       *Hub
	ws        *websocket.Conn
	out       *batchConn // ws's socket; nil in tests without one
	idle      *idleWait  // nil: the reader waits inside gorilla
	id        string
	userID    string
	sessionID string

	mu      sync.Mutex
	queue   []outFrame    // frames waiting for the writer
	writing bool          // a writer goroutine is running
	closing bool          // close requested: the writer ends the connection
	space   chan struct{} // the writer took frames: room for blocked pushes
	done    chan struct{} // closed when close is requested
	ended   chan struct{} // closed when the writer has sent the close frame
	once    sync.Once
	code    int
	why     string

	// One timer per connection for pings and the access token's expiry,
	// whichever is due first (a second timer was ~0.2 KiB per idle
	// connection). nextPing and expires are guarded by mu.
	timer    *time.Timer
	nextPing time.Time
	expires  time.Time // reset by in-band re-authentication

	typing map[string]time.Time // reader goroutine only
	// hidden is the page visibility last reported (reader goroutine only):
	// a connection starts visible, and only changes reach presence, so a
	// client repeating itself costs no Redis round trip.
	hidden bool

	ordMu sync.Mutex            // guards order; taken before mu
	order map[string]*convOrder // per conversation (order.go)
}

func newConn(h *Hub, ws *websocket.Conn, p *accounts.Principal) *conn {
	return &conn{hub: h, ws: ws, id: ids.New("s"), userID: p.UserID, sessionID: p.SessionID,
		space: make(chan struct{}, 1), done: make(chan struct{}), ended: make(chan struct{})}
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
	hj := &hijacker{ResponseWriter: w}
	ws, err := h.upgrader.Upgrade(hj, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	if int(h.total.Load()) >= h.opts.MaxConnections {
		h.count("refused_limit")
		closeNow(ws, websocket.CloseTryAgainLater, "server connection limit reached", h.opts.WriteWait)
		return
	}
	ws.SetReadLimit(h.opts.ReadLimit)
	ctx := context.Background() // the connection outlives the request
	if p == nil {
		p, err = h.firstFrameAuth(ctx, ws)
		if err != nil {
			h.count("auth_failed")
			closeNow(ws, websocket.ClosePolicyViolation, "authentication failed", h.opts.WriteWait)
			return
		}
	}
	c := newConn(h, ws, p)
	c.out = hj.conn
	c.idle = newIdleWait(hj.in, hj.conn.Conn)
	// "ready" is queued before the connection can receive anything, so it is
	// always the first frame, even when a message arrives during registration.
	ready, err := protocol.Encode(readyFrame(p))
	if err != nil {
		closeNow(ws, websocket.CloseInternalServerErr, "server error", h.opts.WriteWait)
		return
	}
	c.queue = []outFrame{{data: ready}}
	if ok, code, why := h.register(ctx, c); !ok {
		h.count("refused_limit")
		closeNow(ws, code, why, h.opts.WriteWait)
		return
	}
	h.count("accepted")
	h.wg.Add(1)
	c.startTimer(p.ExpiresAt)
	c.kick()
	// The handler returns so net/http releases this request's buffers and
	// stack; the connection lives on in its reader goroutine.
	go func() {
		defer h.wg.Done()
		c.readLoop(ctx)
		h.unregister(ctx, c)
		// The writer sends what is queued (the last acks) and the close
		// frame; a draining server waits for that before it exits.
		<-c.ended
		c.linger()
	}()
}

func (h *Hub) count(result string) {
	h.metrics.ConnectionsTotal.WithLabelValues(result).Inc()
}

// ticket redeems a ticket secret, once, and checks that its session was not
// ended (logout everywhere, password change) since it was issued: through
// the revocations the ticket store read with it, or else in the database.
func (h *Hub) ticket(ctx context.Context, secret string) (*accounts.Principal, error) {
	t, err := h.tickets.Take(ctx, ticketKey(secret))
	if err != nil {
		return nil, err
	}
	switch {
	case !t.RevocationsChecked:
		if err := h.accounts.StillValid(ctx, t.UserID, t.SessionID, t.Issued); err != nil {
			return nil, err
		}
	case t.RevokedSinceIssue():
		// The access token bought it before a logout, password change or
		// deletion (RevokingDisconnector): the database says the same.
		return nil, errors.New("realtime: ticket revoked")
	}
	return &accounts.Principal{UserID: t.UserID, SessionID: t.SessionID, ExpiresAt: t.AccessExpires}, nil
}

func (h *Hub) firstFrameAuth(ctx context.Context, ws *websocket.Conn) (*accounts.Principal, error) {
	_ = ws.SetReadDeadline(time.Now().Add(h.opts.AuthTimeout))
	_, data, err := ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	f, _, err := protocol.DecodeClient(data)
	if err != nil {
		return nil, err
	}
	auth, ok := f.(protocol.AuthRequest)
	if !ok || auth.Token == "" {
		return nil, errors.New("first frame is not auth")
	}
	return h.accounts.Authenticate(ctx, auth.Token)
}

func closeNow(ws *websocket.Conn, code int, reason string, wait time.Duration) {
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(wait))
	_ = ws.Close()
}

func readyFrame(p *accounts.Principal) protocol.ReadyFrame {
	return protocol.ReadyFrame{UserID: p.UserID, SessionID: p.SessionID, Protocol: protocol.Version,
		ExpiresAt: p.ExpiresAt.UTC()}
}

// close asks the writer to end the connection with a close frame carrying
// code and reason. Only the first call counts. Frames still queued are sent
// first when the server is going away (acks of the last requests); for every
// other reason they are dropped.
func (c *conn) close(code int, reason string) {
	c.once.Do(func() {
		c.mu.Lock()
		c.code, c.why, c.closing = code, reason, true
		if code != websocket.CloseGoingAway {
			c.queue = nil
		}
		start := !c.writing
		c.writing = true
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
		close(c.done)
		c.stopOrder()
		if start {
			go c.writeLoop()
		}
	})
}

// enqueue adds f if there is room and starts the writer when none runs.
func (c *conn) enqueue(f outFrame) (queued, closing bool) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false, true
	}
	if len(c.queue) >= c.hub.opts.SendQueue {
		c.mu.Unlock()
		return false, false
	}
	c.queue = append(c.queue, f)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true, false
}

// kick starts the writer when frames wait and none runs.
func (c *conn) kick() {
	c.mu.Lock()
	start := !c.writing && len(c.queue) > 0
	if start {
		c.writing = true
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// offer queues a live frame without blocking. A full queue means the client
// cannot keep up: it is disconnected (it will catch up through its cursors)
// rather than slowing anyone else down.
func (c *conn) offer(f outFrame) {
	if queued, closing := c.enqueue(f); queued || closing {
		return
	}
	c.hub.metrics.FramesDropped.Inc()
	c.close(websocket.CloseTryAgainLater, "too slow: send queue full; reconnect and sync")
}

// push queues a frame answering the client's own request, waiting for room
// (back-pressure on that client only) up to the write timeout.
func (c *conn) push(f protocol.ServerFrame) bool {
	data, err := protocol.Encode(f)
	if err != nil {
		c.hub.log.Error("encode frame", "err", err)
		return false
	}
	return c.pushRaw(outFrame{data: data})
}

func (c *conn) pushRaw(f outFrame) bool {
	var deadline <-chan time.Time
	for {
		queued, closing := c.enqueue(f)
		if queued {
			return true
		}
		if closing {
			return false
		}
		if deadline == nil {
			t := time.NewTimer(c.hub.opts.WriteWait)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-c.space:
		case <-c.done:
			return false
		case <-deadline:
			c.close(websocket.CloseTryAgainLater, "too slow: send queue full; reconnect and sync")
			return false
		}
	}
}

// writeLoop writes queued frames until the queue is empty, then exits; after
// a close request it writes the close frame and closes the socket.
func (c *conn) writeLoop() {
	h := c.hub
	for {
		c.mu.Lock()
		batch := c.queue
		c.queue = nil // the next frames start a fresh, small queue
		closing := c.closing
		if len(batch) == 0 && !closing {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		select {
		case c.space <- struct{}{}:
		default:
		}
		// Several frames go to the kernel together: one write(2) instead of
		// one per frame (gorilla still frames each message on its own).
		batched := c.out != nil && len(batch) > 1
		if batched {
			c.out.begin()
		}
		failed := false
		for _, f := range batch {
			_ = c.ws.SetWriteDeadline(time.Now().Add(h.opts.WriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, f.data); err != nil {
				failed = true
				break
			}
		}
		if batched && c.out.flush() != nil {
			failed = true
		}
		if failed {
			c.close(websocket.CloseAbnormalClosure, "write failed")
		} else {
			for _, f := range batch {
				if !f.stored.IsZero() {
					h.metrics.MessagesDelivered.Inc()
					h.metrics.DeliveryLatency.Observe(time.Since(f.stored).Seconds())
				}
			}
		}
		if len(batch) == 0 && closing {
			c.finish()
			return
		}
	}
}

// finish sends the close frame (unless the connection already broke) and
// closes the socket, which ends the reader.
func (c *conn) finish() {
	defer close(c.ended)
	h := c.hub
	h.metrics.Disconnects.WithLabelValues(closeReason(c.code)).Inc()
	if c.code == websocket.CloseAbnormalClosure {
		_ = c.ws.Close()
		return
	}
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.code, c.why),
		time.Now().Add(h.opts.WriteWait))
	// The reader closes the socket (linger): wake it if it still waits for
	// the client.
	_ = c.ws.SetReadDeadline(time.Now().Add(closeLinger))
}

// closeLinger is how long a closing connection keeps reading after its close
// frame. Closing a socket with unread input makes the kernel send a reset,
// and a reset can make the client drop the close frame still in its buffers
// (it then sees 1006 instead of, say, 1001 "reconnect").
const closeLinger = 500 * time.Millisecond

// linger runs once the reader is done and the writer has sent the close
// frame: it discards what the client still sends (its own close frame) until
// the client closes or closeLinger passes, then closes the socket.
func (c *conn) linger() {
	nc := c.ws.NetConn()
	_ = nc.SetReadDeadline(time.Now().Add(closeLinger))
	_, _ = io.Copy(io.Discard, nc)
	_ = nc.Close()
}

// startTimer arms the connection's timer: the first ping, and the expiry.
func (c *conn) startTimer(expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.nextPing = time.Now().Add(c.hub.opts.PingInterval)
	c.expires = expires
	c.timer = time.AfterFunc(c.due(), c.tick)
}

// setExpiry moves the expiry (in-band re-authentication).
func (c *conn) setExpiry(expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expires = expires
	if c.timer != nil && !c.closing {
		c.timer.Reset(c.due())
	}
}

// due is how long until the next ping or the expiry; mu is held.
func (c *conn) due() time.Duration {
	next := c.nextPing
	if c.expires.Before(next) {
		next = c.expires
	}
	return time.Until(next)
}

// tick runs on the timer: it ends an expired connection or sends a ping,
// and re-arms the timer (under mu, so a concurrent setExpiry is not lost).
// WriteControl may run beside the writer.
func (c *conn) tick() {
	now := time.Now()
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	expired := !now.Before(c.expires)
	ping := !expired && !now.Before(c.nextPing)
	if ping {
		c.nextPing = now.Add(c.hub.opts.PingInterval)
	}
	if !expired {
		c.timer.Reset(c.due())
	}
	c.mu.Unlock()
	switch {
	case expired:
		c.expired()
	case ping:
		if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(c.hub.opts.WriteWait)); err != nil {
			c.close(websocket.CloseAbnormalClosure, "ping failed")
		}
	}
}

func (c *conn) expired() {
	c.close(websocket.ClosePolicyViolation, "access token expired; reconnect with a fresh one")
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
		if h.draining.Load() {
			return c.ws.SetReadDeadline(time.Now()) // keep Shutdown's wake-up
		}
		return c.ws.SetReadDeadline(time.Now().Add(h.opts.PongWait))
	})
	for {
		if h.draining.Load() {
			// Shutdown wakes readers with a deadline of now; one that was
			// handling a frame may have pushed it back since.
			c.close(websocket.CloseGoingAway, "server shutting down; reconnect")
			return
		}
		c.idle.wait()
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
		f, id, err := protocol.DecodeClient(data)
		if !protocol.ValidText(data) {
			// Go's JSON decoder would have replaced the bad bytes with
			// U+FFFD and stored that: refuse instead, naming the request.
			c.fail(id, apperr.New(apperr.InvalidRequest, "frame is not valid UTF-8 (or escapes a lone surrogate)"))
			continue
		}
		if err != nil {
			c.fail(id, apperr.New(apperr.InvalidRequest, "%s", err.Error()))
			continue
		}
		if !c.handle(ctx, f) {
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
	f := protocol.ErrorFrame{ID: id, Code: e.Code, Message: e.Message, Epoch: e.Epoch}
	if e.RetryAfter > 0 {
		f.RetryAfter = int((e.RetryAfter + time.Second - 1) / time.Second)
	}
	c.push(f)
}

// answer returns a func that answers request id with an ack carrying the
// message, or with the error.
func (c *conn) answer(id string) func(*protocol.Message, error) {
	return func(m *protocol.Message, err error) {
		if err != nil {
			c.fail(id, err)
			return
		}
		c.push(protocol.AckFrame{ID: id, Message: m})
	}
}

// handle runs one client frame; false ends the connection.
func (c *conn) handle(ctx context.Context, frame protocol.ClientFrame) bool {
	h := c.hub
	switch f := frame.(type) {
	case protocol.AuthRequest:
		p, err := h.accounts.Authenticate(ctx, f.Token)
		if err != nil || p.UserID != c.userID {
			c.close(websocket.ClosePolicyViolation, "authentication failed")
			return false
		}
		c.setExpiry(p.ExpiresAt)
		c.push(readyFrame(p))
	case protocol.SendRequest:
		if (f.Body == nil && f.Ciphertext == "" && len(f.Attachments) == 0) || f.ConversationID == "" {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest,
				"send needs conversationId and a body or attachments (a ciphertext in an end-to-end encrypted conversation)"))
			return true
		}
		body := ""
		if f.Body != nil {
			body = *f.Body
		}
		m, _, err := h.msgs.SendMessage(ctx, c.userID, f.ConversationID,
			messaging.Draft{ClientID: f.ClientID, Body: body, ReplyTo: f.ReplyTo, Attachments: f.Attachments, Ciphertext: f.Ciphertext})
		if err != nil {
			c.fail(f.ID, err)
			return true
		}
		h.metrics.MessagesSent.WithLabelValues("ws").Inc()
		c.push(protocol.AckFrame{ID: f.ID, Message: m})
	case protocol.EditRequest:
		if f.Body == nil || f.ConversationID == "" || f.MessageID == "" {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, "edit needs conversationId, messageId and body"))
			return true
		}
		c.answer(f.ID)(h.msgs.Edit(ctx, c.userID, f.ConversationID, f.MessageID, *f.Body))
	case protocol.DeleteRequest:
		if f.ConversationID == "" || f.MessageID == "" {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, "delete needs conversationId and messageId"))
			return true
		}
		c.answer(f.ID)(h.msgs.Delete(ctx, c.userID, f.ConversationID, f.MessageID))
	case protocol.ReactRequest:
		if f.ConversationID == "" || f.MessageID == "" {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, "react needs conversationId, messageId and emoji"))
			return true
		}
		c.answer(f.ID)(h.msgs.React(ctx, c.userID, f.ConversationID, f.MessageID, f.Emoji, !f.Remove))
	case protocol.SyncRequest:
		if len(f.Cursors) > messaging.MaxSyncConvs {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, "at most %d conversations per sync", messaging.MaxSyncConvs))
			return true
		}
		convs := make([]string, 0, len(f.Cursors))
		for conv := range f.Cursors {
			convs = append(convs, conv)
		}
		// Live frames of these conversations wait until the sync has sent
		// what it found, so none overtakes the messages it sends.
		c.syncStarted(convs)
		cursors, err := h.msgs.Sync(ctx, c.userID, f.Cursors, func(fr protocol.ServerFrame) error {
			data, err := protocol.Encode(fr)
			if err != nil {
				return err
			}
			if !c.pushRaw(outFrame{data: data}) {
				return errors.New("connection closed during sync")
			}
			return nil
		})
		c.syncDone(convs, cursors)
		if err != nil {
			c.fail(f.ID, err)
			return true
		}
		c.push(protocol.SyncedFrame{ID: f.ID, Cursors: cursors})
	case protocol.TypingRequest:
		// At most one typing event per conversation per second per connection.
		if last, ok := c.typing[f.ConversationID]; ok && time.Since(last) < time.Second {
			return true
		}
		if c.typing == nil || len(c.typing) > 256 {
			c.typing = map[string]time.Time{}
		}
		c.typing[f.ConversationID] = time.Now()
		if err := h.msgs.Typing(ctx, c.userID, f.ConversationID); err != nil {
			c.fail(f.ID, err)
		}
	case protocol.ReadRequest:
		if _, err := h.msgs.MarkRead(ctx, c.userID, f.ConversationID, f.Seq); err != nil {
			c.fail(f.ID, err)
		}
	case protocol.PingRequest:
		c.push(protocol.PongFrame{ID: f.ID})
	case protocol.VisibilityRequest:
		if f.Visible == nil {
			c.fail(f.ID, apperr.New(apperr.InvalidRequest, `a visibility frame needs "visible": true or false`))
			return true
		}
		if c.hidden == !*f.Visible {
			return true
		}
		if err := h.presence.SetVisible(ctx, c.userID, c.id, *f.Visible); err != nil {
			// Presence is best effort: the worst outcome is a push too many
			// or too few; the next report tries again.
			h.log.Warn("presence: set visible failed", "err", err)
			return true
		}
		c.hidden = !*f.Visible
	default:
		c.fail(frame.RequestID(), apperr.New(apperr.InvalidRequest, "unknown frame type %q", frame.FrameType()))
	}
	return true
}
