package realtime

import (
	"context"
	"slices"
	"time"

	"github.com/parley-chat/parley/chatserver/protocol"
)

// Per-conversation order (docs/api.md, "Ordering, holes and what an ack
// guarantees"). Messages of one conversation are stored by several replicas
// and reach this one through as many streams, so their frames can arrive out
// of seq order. Each connection keeps, per conversation, the seq it must be
// sent next; a frame ahead of it is held until its predecessor comes, and if
// it does not within the hold time, the client is told to sync that
// conversation instead (a resync naming it). Where the connection stands is
// learnt from the client's sync; until then a conversation's live frames are
// held for the hold time too, waiting for that sync, and then sent in order
// from the oldest (a client that never syncs still gets live messages).

// convOrder is one conversation's delivery state on one connection.
type convOrder struct {
	next     int64      // seq to send next; 0: unknown until the client syncs
	held     []outFrame // live frames waiting, ascending by seq
	syncing  int        // syncs in flight covering this conversation
	awaiting bool       // a resync was sent: hold until the client syncs
	timer    *time.Timer
}

// maxHeld bounds the frames held per conversation and connection; beyond it
// they are dropped and the client syncs (it will, having been told to).
const maxHeld = 256

// offerOrdered queues a live frame that has a place in its conversation's
// order, holding it when its predecessor has not been sent yet.
func (c *conn) offerOrdered(f outFrame) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	if c.order == nil {
		c.order = map[string]*convOrder{}
	}
	o := c.order[f.conv]
	if o == nil {
		o = &convOrder{}
		c.order[f.conv] = o
	}
	switch {
	case o.next > 0 && f.seq < o.next:
		c.hub.metrics.DeliveryDuplicates.Inc() // sent already (or covered by a sync)
		return
	case o.next > 0 && f.seq == o.next && o.syncing == 0 && !o.awaiting:
		c.offer(f)
		o.next++
		c.release(f.conv, o)
		return
	}
	c.hold(f.conv, o, f)
}

// hold keeps f until its predecessors are sent, starting the hold timer.
func (c *conn) hold(conv string, o *convOrder, f outFrame) {
	i, found := slices.BinarySearchFunc(o.held, f.seq, func(h outFrame, seq int64) int { return int(h.seq - seq) })
	if found {
		return // the same frame twice (a retry's publish)
	}
	if len(o.held) >= maxHeld {
		o.held = nil
		c.askSync(conv, o, "overflow")
		return
	}
	o.held = slices.Insert(o.held, i, f)
	c.hub.metrics.DeliveryHeld.Inc()
	c.armHold(conv, o)
}

// armHold starts the hold timer when frames wait and nothing else (a sync in
// flight, a resync sent) will release them.
func (c *conn) armHold(conv string, o *convOrder) {
	if len(o.held) == 0 || o.syncing > 0 || o.awaiting || o.timer != nil {
		return
	}
	o.timer = time.AfterFunc(c.hub.opts.DeliveryHold, func() { c.holdExpired(conv) })
}

func (c *conn) holdExpired(conv string) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	o := c.order[conv]
	if o == nil {
		return
	}
	o.timer = nil
	if len(o.held) == 0 || o.syncing > 0 || o.awaiting {
		return
	}
	if o.next == 0 {
		// The client has not synced this conversation (it may not follow
		// the rule, or be slow to): send what came, in order, from the
		// oldest held frame on, rather than nothing.
		c.hub.metrics.DeliveryUnsynced.Inc()
		o.next = o.held[0].seq
		c.release(conv, o)
		return
	}
	c.askSync(conv, o, "hold")
}

// askSync tells the client to sync conv; its live frames are held until it has.
func (c *conn) askSync(conv string, o *convOrder, reason string) {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	if o.awaiting {
		return
	}
	o.awaiting = true
	c.hub.metrics.DeliveryResyncs.WithLabelValues(reason).Inc()
	data, err := protocol.Encode(protocol.ResyncFrame{ConversationID: conv})
	if err != nil {
		return
	}
	c.offer(outFrame{data: data})
}

// release sends the held frames that now follow on, drops those already
// covered, and re-arms the timer for what still waits.
func (c *conn) release(conv string, o *convOrder) {
	if o.next == 0 || o.syncing > 0 || o.awaiting {
		return
	}
	n := 0
	for _, f := range o.held {
		switch {
		case f.seq < o.next:
			c.hub.metrics.DeliveryDuplicates.Inc()
		case f.seq == o.next:
			c.offer(f)
			o.next++
		default:
			o.held[n] = f
			n++
		}
	}
	clear(o.held[n:])
	o.held = o.held[:n]
	if len(o.held) == 0 && o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	c.armHold(conv, o)
}

// syncStarted marks the conversations a sync covers: their live frames wait
// until it has answered, so none overtakes the messages it sends.
func (c *conn) syncStarted(convs []string) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	if c.order == nil {
		c.order = map[string]*convOrder{}
	}
	for _, conv := range convs {
		o := c.order[conv]
		if o == nil {
			o = &convOrder{}
			c.order[conv] = o
		}
		o.syncing++
	}
}

// syncDone records where the sync left each conversation (cursors holds the
// last seq sent for each conversation the user is a member of; nil when the
// sync failed) and releases what waited.
func (c *conn) syncDone(convs []string, cursors map[string]int64) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	for _, conv := range convs {
		o := c.order[conv]
		if o == nil {
			continue
		}
		o.syncing--
		if cursors == nil {
			c.armHold(conv, o)
			continue
		}
		cur, member := cursors[conv]
		if !member {
			if o.syncing == 0 { // not (or no longer) a member: forget it
				if o.timer != nil {
					o.timer.Stop()
				}
				delete(c.order, conv)
			}
			continue
		}
		o.next = max(o.next, cur+1)
		o.awaiting = false
		c.release(conv, o)
	}
}

// positions lists the conversations whose position this connection knows,
// with the seq it must be sent next.
func (c *conn) positions(into map[string]struct{}) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	for conv, o := range c.order {
		if o.next > 0 {
			into[conv] = struct{}{}
		}
	}
}

// checkPositions asks the client to sync every conversation in which a
// message stored before the previous check (heads) has still not been sent.
func (c *conn) checkPositions(heads map[string]int64) {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	for conv, o := range c.order {
		if o.next == 0 || o.syncing > 0 || o.awaiting {
			continue
		}
		if head, ok := heads[conv]; ok && head >= o.next {
			c.askSync(conv, o, "position")
		}
	}
}

// stopOrder stops the hold timers of a closed connection.
func (c *conn) stopOrder() {
	c.ordMu.Lock()
	defer c.ordMu.Unlock()
	for _, o := range c.order {
		if o.timer != nil {
			o.timer.Stop()
		}
	}
	c.order = nil
}

// Heads reads the newest seq of conversations (the store), for positioning.
type Heads interface {
	ConversationHeads(ctx context.Context, ids []string) (map[string]int64, error)
}

// Position checks, every interval until ctx ends, that each connection was
// sent every message of the conversations it follows that was stored before
// the previous check (a lost publish has no successor to reveal it). A hole
// is found within two intervals plus the hold time.
func (h *Hub) Position(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var prev map[string]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all := h.allConns()
		followed := map[string]struct{}{}
		for _, c := range all {
			c.positions(followed)
		}
		if len(followed) == 0 {
			prev = nil
			continue
		}
		ids := make([]string, 0, len(followed))
		for id := range followed {
			ids = append(ids, id)
		}
		start := time.Now()
		heads, err := h.heads.ConversationHeads(ctx, ids)
		h.metrics.PositionCheck.Observe(time.Since(start).Seconds())
		if err != nil {
			h.log.Warn("positioning: reading conversation heads failed", "err", err)
			continue
		}
		if prev != nil {
			for _, c := range all {
				c.checkPositions(prev)
			}
		}
		prev = heads
	}
}
