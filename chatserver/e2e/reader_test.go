package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// docClient is a WebSocket client written from docs/api.md ("WebSocket
// protocol" and "Ordering, holes and what an ack guarantees") alone, not from
// the web client or the server's types, so that it checks what the document
// promises and nothing else:
//
//   - it connects with a ticket (POST /api/v1/ws/ticket) and expects "ready";
//   - after every "ready" that starts a connection it sends "sync" with its
//     cursor (the highest seq it has) for every conversation it knows;
//   - on "resync" with a conversationId it syncs that conversation (cursor 0
//     when it has none); without one it syncs them all;
//   - it de-duplicates messages by id and keeps the highest seq per
//     conversation;
//   - when the socket closes it reconnects, to a random replica.
//
// It records what a user would see, and flags every violation of the
// ordering rule: a message that is new to it but arrives with a seq at or
// below the highest it already has ("out of order"), or a new message that
// skips seqs ("hole"). Duplicates of messages it already has are allowed
// (a sync answer may repeat what arrived live just before it) and only
// counted.
//
// Only "message" frames count as having a message: an "ack" answers the send
// and may overtake message frames of other senders that this connection is
// still owed, so treating it as received would fake an ordering violation.
//
// Every method is safe to call from any goroutine; nothing here calls
// t.Fatal off the test goroutine (failures are recorded and checked later).
type docClient struct {
	name   string
	userID string
	token  string
	home   string           // replica it connects to first, and back to while it lives
	bases  func() []string  // replicas to reconnect to (the live ones)
	chaos  [2]time.Duration // disconnect by itself after a random time in this range; zero: never
	quiet  bool             // set to stop the chaos (the end of a test)

	stop chan struct{}
	done chan struct{}

	replies chan wireFrame // ack and error frames answering requests, for send

	writeMu sync.Mutex // one writer at a time on the socket
	mu      sync.Mutex
	ws      *websocket.Conn
	gen     int // counts connections that reached ready
	convs   map[string]*convState
	st      clientStats
	issues  []string // the first protocol violations, for failure messages
}

type convState struct {
	cursor  int64                // highest seq received
	got     map[string]int64     // message id -> seq
	first   map[string]time.Time // message id -> when it first arrived
	resyncs []time.Time          // resync frames naming this conversation
}

type clientStats struct {
	connects   int // connections that reached ready
	failed     int // connection attempts that failed
	chaos      int // disconnects the client made on purpose
	messages   int // message frames
	dups       int // message frames for messages already had (allowed)
	outOfOrder int // new message with seq <= cursor
	holes      int // new message with seq > cursor+1
	ahead      int // synced cursors above what the sync delivered
	resyncAll  int
	resyncConv int
	syncs      int
	closes     map[int]int // close codes received
	resyncAt   []time.Time // every resync frame, named or not
}

// wireFrame is a server frame as docs/api.md describes it: the union of the
// fields of every kind.
type wireFrame struct {
	Type           string           `json:"type"`
	ID             string           `json:"id"`
	UserID         string           `json:"userId"`
	ConversationID string           `json:"conversationId"`
	Code           string           `json:"code"`
	RetryAfter     int              `json:"retryAfter"`
	Cursors        map[string]int64 `json:"cursors"`
	Conversation   *struct {
		ID string `json:"id"`
	} `json:"conversation"`
	Message json.RawMessage `json:"message"` // an object in message and ack, a string in error
}

// docMessage is "A message" of docs/api.md.
type docMessage struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversationId"`
	Seq            int64  `json:"seq"`
	SenderID       string `json:"senderId"`
	ClientID       string `json:"clientId"`
	Body           string `json:"body"`
}

func (f wireFrame) message() (*docMessage, error) {
	var m docMessage
	if err := json.Unmarshal(f.Message, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// newDocClient returns a client of user c; start it with run.
func newDocClient(name string, c *chattest.Client, home string, bases func() []string) *docClient {
	return &docClient{name: name, userID: c.User.ID, token: c.Token, home: home, bases: bases,
		stop: make(chan struct{}), done: make(chan struct{}), replies: make(chan wireFrame, 64),
		convs: map[string]*convState{}, st: clientStats{closes: map[int]int{}}}
}

// withChaos makes the client drop its connection after a random time in
// [min, max) on every connection.
func (d *docClient) withChaos(min, max time.Duration) *docClient {
	d.chaos = [2]time.Duration{min, max}
	return d
}

// start learns the user's conversations (GET /conversations, as a client
// does when it opens) and connects, reconnecting until close.
func (d *docClient) start() error {
	status, body, err := httpDo("GET", d.home+"/api/v1/conversations", d.token, nil)
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("%s: list conversations: %d %v %s", d.name, status, err, body)
	}
	var list struct {
		Conversations []struct {
			ID string `json:"id"`
		} `json:"conversations"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return err
	}
	d.mu.Lock()
	for _, c := range list.Conversations {
		d.conv(c.ID)
	}
	d.mu.Unlock()
	go d.run()
	return nil
}

// close stops the client and waits for its loop to end.
func (d *docClient) close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.mu.Lock()
	if d.ws != nil {
		d.ws.Close()
	}
	d.mu.Unlock()
	<-d.done
}

// calm stops the client's own disconnects (it keeps reconnecting after the
// server's).
func (d *docClient) calm() {
	d.mu.Lock()
	d.quiet = true
	d.mu.Unlock()
}

func (d *docClient) stopped() bool {
	select {
	case <-d.stop:
		return true
	default:
		return false
	}
}

// conv returns the state of conversation id, creating it; d.mu held.
func (d *docClient) conv(id string) *convState {
	c := d.convs[id]
	if c == nil {
		c = &convState{got: map[string]int64{}, first: map[string]time.Time{}}
		d.convs[id] = c
	}
	return c
}

func (d *docClient) issue(format string, args ...any) {
	if len(d.issues) < 20 {
		d.issues = append(d.issues, fmt.Sprintf(format, args...))
	}
}

// run connects, serves the connection until it ends, and reconnects, until
// the client is closed. The first connection goes home; after a close a
// client with chaos picks a random live replica, one without goes back home
// while home lives (so a test can place it), else to a random one.
func (d *docClient) run() {
	defer close(d.done)
	for first, failed := true, false; !d.stopped(); {
		base := d.pick(first, failed)
		ws, err := d.connect(base)
		if err != nil {
			d.mu.Lock()
			d.st.failed++
			d.mu.Unlock()
			failed = true
			select {
			case <-d.stop:
			case <-time.After(time.Duration(50+rand.IntN(200)) * time.Millisecond):
			}
			continue
		}
		first, failed = false, false
		d.serve(ws)
	}
}

// pick chooses the replica to connect to; after a failed attempt, a random
// one (home may be dead before the test has said so).
func (d *docClient) pick(first, failed bool) string {
	bases := d.bases()
	switch {
	case len(bases) == 0 || (first && !failed):
		return d.home
	case !failed && d.chaos[1] == 0 && slices.Contains(bases, d.home):
		return d.home
	}
	return bases[rand.IntN(len(bases))]
}

// connect buys a ticket on base, dials, waits for ready and syncs every
// known conversation (rule 2).
func (d *docClient) connect(base string) (*websocket.Conn, error) {
	status, body, err := httpDo("POST", base+"/api/v1/ws/ticket", d.token, nil)
	if err != nil || status != http.StatusOK {
		return nil, fmt.Errorf("ticket: %d %v", status, err)
	}
	var tk struct {
		Ticket string `json:"ticket"`
	}
	if err := json.Unmarshal(body, &tk); err != nil || tk.Ticket == "" {
		return nil, fmt.Errorf("ticket answer %s", body)
	}
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"parley.v1"}}
	ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/v1/ws?ticket="+url.QueryEscape(tk.Ticket), nil)
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ready wireFrame
	if err := ws.ReadJSON(&ready); err != nil {
		ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Time{})
	d.mu.Lock()
	defer d.mu.Unlock()
	if ready.Type != "ready" || ready.UserID != d.userID {
		d.issue("first frame %+v, want ready for %s", ready, d.userID)
		ws.Close()
		return nil, fmt.Errorf("no ready")
	}
	if d.stopped() {
		ws.Close()
		return nil, fmt.Errorf("stopped")
	}
	d.ws = ws
	d.gen++
	d.st.connects++
	cursors := map[string]int64{}
	for id, c := range d.convs {
		cursors[id] = c.cursor
	}
	if err := d.syncLocked(cursors); err != nil {
		ws.Close()
		return nil, err
	}
	if d.chaos[1] > 0 && !d.quiet {
		after := d.chaos[0] + rand.N(d.chaos[1]-d.chaos[0])
		gen := d.gen
		time.AfterFunc(after, func() { d.drop(gen) })
	}
	return ws, nil
}

// drop ends connection gen from the client side, half the time with a close
// frame and half the time by just closing the socket (a lost network).
func (d *docClient) drop(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen || d.ws == nil || d.quiet {
		return
	}
	d.st.chaos++
	if rand.IntN(2) == 0 {
		_ = d.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
			time.Now().Add(time.Second))
	}
	d.ws.Close()
}

// syncLocked sends a sync frame; d.mu held.
func (d *docClient) syncLocked(cursors map[string]int64) error {
	d.st.syncs++
	return d.writeLocked(map[string]any{"type": "sync", "id": fmt.Sprintf("sync-%d", d.st.syncs), "cursors": cursors})
}

func (d *docClient) writeLocked(v any) error {
	if d.ws == nil {
		return fmt.Errorf("not connected")
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	_ = d.ws.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return d.ws.WriteJSON(v)
}

// serve reads frames until the connection ends.
func (d *docClient) serve(ws *websocket.Conn) {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			d.mu.Lock()
			if ce, ok := err.(*websocket.CloseError); ok {
				d.st.closes[ce.Code]++
			} else {
				d.st.closes[websocket.CloseAbnormalClosure]++
			}
			if d.ws == ws {
				d.ws = nil
			}
			d.mu.Unlock()
			ws.Close()
			return
		}
		var f wireFrame
		if err := json.Unmarshal(data, &f); err != nil {
			d.mu.Lock()
			d.issue("frame is not JSON: %s", data)
			d.mu.Unlock()
			continue
		}
		d.handle(f, data)
	}
}

func (d *docClient) handle(f wireFrame, raw []byte) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch f.Type {
	case "message":
		m, err := f.message()
		if err != nil || m.ID == "" || m.ConversationID == "" || m.Seq < 1 {
			d.issue("bad message frame %s", raw)
			return
		}
		d.st.messages++
		c := d.conv(m.ConversationID)
		if seq, ok := c.got[m.ID]; ok {
			d.st.dups++ // allowed: de-duplicated by id
			if seq != m.Seq {
				d.issue("message %s arrived as seq %d and as seq %d", m.ID, seq, m.Seq)
			}
			return
		}
		switch {
		case m.Seq <= c.cursor:
			d.st.outOfOrder++
			d.issue("out of order: new message %s seq %d in %s arrived after seq %d", m.ID, m.Seq, m.ConversationID, c.cursor)
		case m.Seq > c.cursor+1:
			d.st.holes++
			d.issue("hole: new message %s seq %d in %s arrived while the highest was %d", m.ID, m.Seq, m.ConversationID, c.cursor)
		}
		c.got[m.ID] = m.Seq
		c.first[m.ID] = now
		if m.Seq > c.cursor {
			c.cursor = m.Seq
		}
	case "resync":
		d.st.resyncAt = append(d.st.resyncAt, now)
		cursors := map[string]int64{}
		if f.ConversationID != "" {
			d.st.resyncConv++
			c := d.conv(f.ConversationID)
			c.resyncs = append(c.resyncs, now)
			cursors[f.ConversationID] = c.cursor
		} else {
			d.st.resyncAll++
			for id, c := range d.convs {
				cursors[id] = c.cursor
			}
		}
		_ = d.syncLocked(cursors) // a failed write ends the connection; the reconnect syncs
	case "synced":
		// The sync sent every message up to these cursors before this frame.
		for id, cur := range f.Cursors {
			if c := d.convs[id]; c != nil && cur > c.cursor {
				d.st.ahead++
				d.issue("synced %s at %d but only messages up to %d arrived", id, cur, c.cursor)
			}
		}
	case "conversation":
		if f.Conversation != nil && f.Conversation.ID != "" {
			d.conv(f.Conversation.ID) // its first live frame will bring a resync
		}
	case "ack", "error":
		if f.ID == "" && f.Type == "error" {
			d.issue("error frame without id: %s", raw)
			return
		}
		select {
		case d.replies <- f:
		default:
		}
	}
}

// connected reports the current connection's generation (0: none).
func (d *docClient) connected() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ws == nil {
		return 0
	}
	return d.gen
}

// waitConnected waits until the client has a connection.
func (d *docClient) waitConnected(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if d.connected() != 0 {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// ackLog records sends and their acks, shared by senders.
type ackLog struct {
	mu       sync.Mutex
	byID     map[string]int64   // message id -> seq
	byClient map[string]string  // clientId -> message id
	sent     map[string]sentRec // message id -> times
	retries  int                // sends repeated with the same clientId
	failures []string
}

type sentRec struct {
	first, acked time.Time // first attempt, ack
	attempts     int
}

func newAckLog() *ackLog {
	return &ackLog{byID: map[string]int64{}, byClient: map[string]string{}, sent: map[string]sentRec{}}
}

func (l *ackLog) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failures) < 20 {
		l.failures = append(l.failures, fmt.Sprintf(format, args...))
	}
}

// record notes an ack of clientID; a second ack for the same clientId must
// name the same message (an idempotent retry stores nothing new).
func (l *ackLog) record(clientID string, m *docMessage, rec sentRec) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if prev, ok := l.byClient[clientID]; ok && prev != m.ID {
		if len(l.failures) < 20 {
			l.failures = append(l.failures, fmt.Sprintf("clientId %s acked as %s and as %s", clientID, prev, m.ID))
		}
	}
	l.byClient[clientID] = m.ID
	l.byID[m.ID] = m.Seq
	l.sent[m.ID] = rec
	if rec.attempts > 1 {
		l.retries++
	}
}

// fails returns the failures recorded so far.
func (l *ackLog) fails() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.failures...)
}

// rec returns the record of message id.
func (l *ackLog) rec(id string) sentRec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent[id]
}

func (l *ackLog) snapshot() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.byID))
	for k, v := range l.byID {
		out[k] = v
	}
	return out
}

// send sends one message over the client's socket and waits for its ack,
// retrying with the same clientId after an error frame, a lost connection or
// a timeout (docs/api.md: a retry returns the stored message), for up to
// giveUp. dropRate is the chance to drop the connection right after writing
// the send, before the ack, to exercise those retries.
func (d *docClient) send(convID, clientID, body string, log *ackLog, dropRate float64, giveUp time.Duration) (*docMessage, bool) {
	start := time.Now()
	// Stale answers of an earlier send are of no use.
	for len(d.replies) > 0 {
		<-d.replies
	}
	for attempt := 1; time.Since(start) < giveUp; {
		reqID := fmt.Sprintf("%s.%d", clientID, attempt)
		d.mu.Lock()
		gen := d.gen
		err := d.writeLocked(map[string]any{"type": "send", "id": reqID, "conversationId": convID, "clientId": clientID, "body": body})
		d.mu.Unlock()
		if err != nil { // not connected: wait for the reconnect
			select {
			case <-d.stop:
				return nil, false
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		attempt++
		if dropRate > 0 && rand.Float64() < dropRate {
			d.drop(gen)
		}
		timeout := time.NewTimer(10 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
	wait:
		for {
			select {
			case f := <-d.replies:
				if f.ID != reqID {
					continue
				}
				if f.Type == "ack" {
					m, err := f.message()
					if err != nil || m.ClientID != clientID || m.ConversationID != convID {
						log.fail("%s: bad ack %+v for clientId %s", d.name, m, clientID)
						break wait
					}
					timeout.Stop()
					tick.Stop()
					log.record(clientID, m, sentRec{first: start, acked: time.Now(), attempts: attempt - 1})
					return m, true
				}
				switch f.Code {
				case "rate_limited":
					time.Sleep(time.Duration(max(f.RetryAfter, 1)) * time.Second)
				case "unavailable":
					time.Sleep(100 * time.Millisecond)
				default:
					log.fail("%s: send %s answered %s", d.name, clientID, f.Code)
					time.Sleep(100 * time.Millisecond)
				}
				break wait
			case <-tick.C:
				if g := d.connected(); g != gen {
					break wait // that connection is gone; retry on the next
				}
			case <-timeout.C:
				break wait
			case <-d.stop:
				timeout.Stop()
				tick.Stop()
				return nil, false
			}
		}
		timeout.Stop()
		tick.Stop()
	}
	log.fail("%s: clientId %s not acked within %v", d.name, clientID, giveUp)
	return nil, false
}

// sendLoop sends messages prefix-0, prefix-1, … one at a time (a closed
// loop) until stop is closed, finishing the one in flight.
func (d *docClient) sendLoop(convID, prefix string, log *ackLog, dropRate float64, stop <-chan struct{}) int {
	n := 0
	for ; ; n++ {
		select {
		case <-stop:
			return n
		default:
		}
		id := fmt.Sprintf("%s-%d", prefix, n)
		if _, ok := d.send(convID, id, "body of "+id, log, dropRate, 30*time.Second); !ok {
			return n
		}
	}
}

// has reports whether the client has every message of want in conversation.
func (d *docClient) has(convID string, want map[string]int64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.convs[convID]
	if c == nil {
		return len(want) == 0
	}
	for id := range want {
		if _, ok := c.got[id]; !ok {
			return false
		}
	}
	return true
}

// firstSeen is when message id first reached the client (zero: never).
func (d *docClient) firstSeen(convID, id string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.convs[convID]; c != nil {
		return c.first[id]
	}
	return time.Time{}
}

// resyncsFor lists the resync frames naming convID.
func (d *docClient) resyncsFor(convID string) []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.convs[convID]; c != nil {
		return append([]time.Time(nil), c.resyncs...)
	}
	return nil
}

func (d *docClient) stats() clientStats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.st
	s.closes = map[int]int{}
	for k, v := range d.st.closes {
		s.closes[k] = v
	}
	s.resyncAt = append([]time.Time(nil), d.st.resyncAt...)
	return s
}

// waitAll waits until every client has every message of want, or timeout;
// it returns how long that took and whether it happened.
func waitAll(clients []*docClient, convID string, want map[string]int64, timeout time.Duration) (time.Duration, bool) {
	start := time.Now()
	for {
		all := true
		for _, d := range clients {
			if !d.has(convID, want) {
				all = false
				break
			}
		}
		if all {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkExact asserts that the client holds exactly the acked messages of
// convID (none missing, none extra, each at its acked seq) and saw no
// ordering violation.
func checkExact(t *testing.T, d *docClient, convID string, acked map[string]int64) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.convs[convID]
	if c == nil {
		c = &convState{got: map[string]int64{}}
	}
	var missing, extra []int64
	for id, seq := range acked {
		got, ok := c.got[id]
		switch {
		case !ok:
			missing = append(missing, seq)
		case got != seq:
			t.Errorf("%s: message %s has seq %d, acked as %d", d.name, id, got, seq)
		}
	}
	for id, seq := range c.got {
		if _, ok := acked[id]; !ok {
			extra = append(extra, seq)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	sort.Slice(extra, func(i, j int) bool { return extra[i] < extra[j] })
	if len(missing) > 0 {
		t.Errorf("%s: %d acked messages never arrived, seqs %v", d.name, len(missing), head(missing))
	}
	if len(extra) > 0 {
		t.Errorf("%s: %d messages that were never acked arrived, seqs %v", d.name, len(extra), head(extra))
	}
	if d.st.outOfOrder > 0 || d.st.holes > 0 || d.st.ahead > 0 || len(d.issues) > 0 {
		t.Errorf("%s: %d out of order, %d holes, %d synced ahead; first issues:\n  %s", d.name, d.st.outOfOrder,
			d.st.holes, d.st.ahead, strings.Join(d.issues, "\n  "))
	}
}

func head(s []int64) []int64 {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

// checkStore asserts that the stored history of convID, read from the first
// message on (after=0), is exactly the acked messages with seqs 1..N.
func checkStore(t *testing.T, base, token, convID string, acked map[string]int64) {
	t.Helper()
	var stored []docMessage
	for after := int64(0); ; {
		status, body, err := httpDo("GET", fmt.Sprintf("%s/api/v1/conversations/%s/messages?limit=200&after=%d", base, convID, after), token, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("history after %d: %d %v %s", after, status, err, body)
		}
		var page struct {
			Messages []docMessage `json:"messages"`
			HasMore  bool         `json:"hasMore"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		stored = append(stored, page.Messages...)
		if !page.HasMore || len(page.Messages) == 0 {
			break
		}
		after = page.Messages[len(page.Messages)-1].Seq
	}
	clients := map[string]bool{}
	for i, m := range stored {
		if m.Seq != int64(i+1) {
			t.Fatalf("stored history: seq %d at position %d (gap or disorder)", m.Seq, i+1)
		}
		key := m.SenderID + "/" + m.ClientID
		if clients[key] {
			t.Errorf("clientId %s stored twice", key)
		}
		clients[key] = true
		if seq, ok := acked[m.ID]; !ok {
			t.Errorf("stored message %s (seq %d, clientId %s) was never acked", m.ID, m.Seq, m.ClientID)
		} else if seq != m.Seq {
			t.Errorf("stored message %s has seq %d, acked as %d", m.ID, m.Seq, seq)
		}
	}
	if len(stored) != len(acked) {
		t.Errorf("%d messages stored, %d acked", len(stored), len(acked))
	}
}

// httpDo is a plain request that returns errors instead of failing the test,
// for use off the test goroutine and against replicas that may be dead.
func httpDo(method, u, token string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// percentile returns the p-th percentile (0..100) of ds, sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

// liveBases tracks which replicas are up, for reconnecting clients.
type liveBases struct {
	mu   sync.Mutex
	up   map[string]bool
	list []string
}

func newLiveBases(rs ...*replica) *liveBases {
	l := &liveBases{up: map[string]bool{}}
	for _, r := range rs {
		l.up[r.Base] = true
		l.list = append(l.list, r.Base)
	}
	return l
}

func (l *liveBases) set(base string, up bool) {
	l.mu.Lock()
	l.up[base] = up
	l.mu.Unlock()
}

func (l *liveBases) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, b := range l.list {
		if l.up[b] {
			out = append(out, b)
		}
	}
	return out
}
