// Package delivery carries events from the use cases to every connection of
// their recipients, on every replica. It owns the topics (one per user, and a
// few shared ones every replica subscribes), the envelope that travels through
// the backplane, and frame encoding: an event is encoded once, whatever the
// number of recipients.
//
// The path runs one way: a use case hands an Event to a Publisher, which
// publishes one envelope per recipient topic on the backplane (or, for an
// event with many recipients, one shared envelope naming them all); the
// backplane hands what it receives to its handler (the realtime hub), which
// opens and verifies the envelope with a Codec and queues the frame on the
// recipients' local connections.
package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// Event is something that happened, for the connections of its recipients.
type Event struct {
	// To lists the recipients' user ids; every connection of each gets Frame.
	To    []string
	Frame protocol.ServerFrame
	// Conversation and Seq place the event in its conversation's order
	// (messages); empty and 0 for events outside it (typing, presence).
	Conversation string
	Seq          int64
	// Stored is when the event was stored (messages), for the delivery
	// latency metric; zero otherwise.
	Stored time.Time
}

// Publisher turns events into envelopes on the backplane. It implements the
// narrow event interfaces the use cases declare.
type Publisher struct {
	bp      backplane.Backplane
	codec   *Codec
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewPublisher returns a Publisher over bp, sealing envelopes with codec.
func NewPublisher(bp backplane.Backplane, codec *Codec, log *slog.Logger, m *metrics.Metrics) *Publisher {
	return &Publisher{bp: bp, codec: codec, log: log, metrics: metrics.OrNew(m)}
}

// Publish encodes e's frame once and publishes it to each recipient, and
// returns once the backplane has taken it. A backplane failure is counted and
// logged, not returned: what was stored stays stored, and clients catch up
// through positioning and their cursors.
func (p *Publisher) Publish(ctx context.Context, e Event) {
	msgs, err := p.codec.Seal(e)
	if err != nil {
		p.log.Error("delivery: encode failed", "err", err)
		return
	}
	kind := "user"
	if len(msgs) > 0 && isSharedTopic(msgs[0].Topic) {
		kind = "shared"
	}
	p.metrics.Envelopes.WithLabelValues(kind).Add(float64(len(msgs)))
	p.publish(ctx, msgs...)
}

// Disconnect closes every connection of userID on every replica, except those
// of session exceptSession when it is not empty.
func (p *Publisher) Disconnect(ctx context.Context, userID, exceptSession, reason string) {
	p.publish(ctx, p.codec.seal(kindDisconnect, time.Time{}, []byte("E"+exceptSession+"\n"+reason), UserTopic(userID))...)
}

// DisconnectSession closes the connections of one session (login) of
// userID, on every replica.
func (p *Publisher) DisconnectSession(ctx context.Context, userID, session, reason string) {
	p.publish(ctx, p.codec.seal(kindDisconnect, time.Time{}, []byte("O"+session+"\n"+reason), UserTopic(userID))...)
}

// publish returns once the backplane has taken every message (see
// backplane.Backplane.Publish), so the ack that follows a send carries that.
func (p *Publisher) publish(ctx context.Context, msgs ...backplane.Message) {
	err := p.bp.Publish(ctx, msgs...)
	switch {
	case err == nil:
	case errors.Is(err, backplane.ErrUnavailable):
		// Counted by the backplane; positioning closes the hole elsewhere.
		p.log.Debug("backplane unavailable; event delivered on this replica only", "err", err)
	default:
		p.metrics.BackplaneErrors.Inc()
		p.log.Warn("backplane publish failed", "err", err)
	}
}

// UserTopic is the topic of one user's events.
func UserTopic(userID string) string { return userPrefix + userID }

const userPrefix = "u:"

// UserOf returns the user whose topic this is.
func UserOf(topic string) (userID string, ok bool) { return strings.CutPrefix(topic, userPrefix) }

// SharedShards is the number of shared topics. An event with many recipients
// travels once, on the shared topic of its conversation, to every replica;
// several topics rather than one spread that traffic over the masters of a
// Redis Cluster (sharded pub/sub routes each topic to one of them).
const SharedShards = 16

const sharedPrefix = "s:"

// SharedTopics are the topics every replica subscribes to, once, for shared
// envelopes.
func SharedTopics() []string {
	out := make([]string, SharedShards)
	for i := range out {
		out[i] = sharedPrefix + strconv.Itoa(i)
	}
	return out
}

// sharedTopic is the shared topic of key (a conversation id, or a recipient's
// for events outside a conversation): a conversation's events always take
// the same one, so Redis keeps their order.
func sharedTopic(key string) string {
	h := fnv.New32a()
	h.Write([]byte(key))
	return sharedPrefix + strconv.Itoa(int(h.Sum32()%SharedShards))
}

func isSharedTopic(topic string) bool {
	n, ok := strings.CutPrefix(topic, sharedPrefix)
	if !ok {
		return false
	}
	i, err := strconv.Atoi(n)
	return err == nil && i >= 0 && i < SharedShards && strconv.Itoa(i) == n
}

// Kind says what a received envelope asks for.
type Kind byte

// What a received envelope asks for.
const (
	// KindFrame: deliver Received.Frame to the user's connections.
	KindFrame Kind = 'F'
	// KindDisconnect: close the user's connections except ExceptSession's.
	KindDisconnect Kind = 'D'
)

// Envelope kinds (the first byte of a payload).
const (
	kindFrame      byte = 'F' // a frame for the user's connections
	kindOrdered    byte = 'O' // the same, with a place in its conversation's order
	kindDisconnect byte = 'D' // close the user's connections (session to spare, newline, reason)
	// Shared envelopes, on a shared topic: the recipients' ids, then the body
	// of a frame or of an ordered frame.
	kindSharedFrame   byte = 'f'
	kindSharedOrdered byte = 'o'
)

// Received is an opened envelope.
type Received struct {
	// UserID is the recipient of an envelope on a user topic; To lists the
	// recipients of a shared envelope (UserID is then empty). A replica hands
	// the frame to those of them it has connections for.
	UserID string
	To     []string
	Kind   Kind
	Frame  []byte    // KindFrame: the encoded frame
	Stored time.Time // KindFrame: store time of a message, or zero
	// Conversation and Seq: the frame's place in its conversation's order
	// (empty and 0 when it has none).
	Conversation string
	Seq          int64
	// KindDisconnect: the session whose connections stay open (may be
	// empty), or the only session whose connections close, and the reason
	// sent in the close frame.
	ExceptSession, OnlySession, Reason string
}

// Closes reports whether a disconnect applies to a connection of session.
func (r Received) Closes(session string) bool {
	if r.OnlySession != "" {
		return session == r.OnlySession
	}
	return r.ExceptSession == "" || r.ExceptSession != session
}

// Errors returned (wrapped) by Open: the payload is unreadable, its tag does
// not verify (it was not made by a server holding the keyring, or it was
// made for another topic), or it is too old (a replay).
var (
	ErrMalformed = errors.New("delivery: malformed envelope")
	ErrForged    = errors.New("delivery: envelope does not verify")
	ErrStale     = errors.New("delivery: envelope too old or from the future")
)

// Authenticator makes and checks tags with keys only the servers hold (the
// keyring's MAC keys).
type Authenticator interface {
	MAC(parts ...[]byte) (kid string, tag []byte)
	VerifyMAC(kid string, tag []byte, parts ...[]byte) bool
}

// MaxAge bounds how old (or how far in the future, for clock skew between
// replicas) an envelope may be: a captured envelope cannot be replayed later.
const MaxAge = 2 * time.Minute

// Codec seals and opens envelopes. Redis and the pod network are not
// trusted: every envelope carries a tag over its topic, header and a digest
// of its body, made with the keyring, so a party that can write to Redis
// cannot inject a frame or move a genuine one to another user's topic.
//
// Layout: kind (1 byte), issue time and store time (unix ns, 8 bytes each),
// key id length (1 byte), key id, tag (32 bytes), body. The body of an
// ordered frame is seq (8 bytes), conversation id length (2 bytes),
// conversation id, frame; of a frame, the frame; of a disconnect, E and the
// session to spare (or O and the only session to close), a newline, the
// reason.
type Codec struct {
	auth      Authenticator
	now       func() time.Time
	sharedMin int
}

// NewCodec returns a Codec; now may be nil (time.Now). It seals one envelope
// per recipient until SetSharedMin says otherwise.
func NewCodec(auth Authenticator, now func() time.Time) *Codec {
	if now == nil {
		now = time.Now
	}
	return &Codec{auth: auth, now: now}
}

// SetSharedMin makes Seal put an event for n or more recipients in one shared
// envelope naming them, published once on a shared topic that every replica
// receives, instead of one envelope per recipient topic; 0 turns it off.
// Shared envelopes are opened whatever this says, so replicas with different
// settings work together. Call it before the codec is used.
func (c *Codec) SetSharedMin(n int) { c.sharedMin = n }

// maxShared bounds the recipients of one shared envelope (a larger event is
// split): the count is a uint16 on the wire.
const maxShared = 0xffff

const (
	fixedHeader = 18 // kind, issued, stored, key id length
	tagLen      = 32
)

// Seal encodes e's frame once and returns one backplane message per
// recipient, each tagged for its own topic; or, for at least SetSharedMin
// recipients, one shared message naming them all.
func (c *Codec) Seal(e Event) ([]backplane.Message, error) {
	frame, err := protocol.Encode(e.Frame)
	if err != nil {
		return nil, err
	}
	kind, body := kindFrame, frame
	if e.Conversation != "" {
		if e.Seq <= 0 || len(e.Conversation) > 0xffff {
			return nil, fmt.Errorf("delivery: ordered event with seq %d and a conversation id of %d bytes", e.Seq, len(e.Conversation))
		}
		kind = kindOrdered
		body = make([]byte, 10, 10+len(e.Conversation)+len(frame))
		binary.BigEndian.PutUint64(body, uint64(e.Seq))
		binary.BigEndian.PutUint16(body[8:], uint16(len(e.Conversation)))
		body = append(body, e.Conversation...)
		body = append(body, frame...)
	}
	if c.sharedMin > 0 && len(e.To) >= c.sharedMin {
		return c.sealShared(kind, e, body)
	}
	topics := make([]string, len(e.To))
	for i, to := range e.To {
		topics[i] = UserTopic(to)
	}
	return c.seal(kind, e.Stored, body, topics...), nil
}

// sealShared seals body once for all of e's recipients, on the shared topic
// of e's conversation. The recipient list is inside the tagged body: Redis
// cannot add anyone to it.
func (c *Codec) sealShared(kind byte, e Event, body []byte) ([]backplane.Message, error) {
	if kind == kindFrame {
		kind = kindSharedFrame
	} else {
		kind = kindSharedOrdered
	}
	key := e.Conversation
	if key == "" {
		key = e.To[0]
	}
	topic := sharedTopic(key)
	var out []backplane.Message
	for to := e.To; len(to) > 0; {
		n := min(len(to), maxShared)
		size := 2 + len(body)
		for _, id := range to[:n] {
			if id == "" || len(id) > 0xff {
				return nil, fmt.Errorf("delivery: recipient id of %d bytes", len(id))
			}
			size += 1 + len(id)
		}
		b := make([]byte, 2, size)
		binary.BigEndian.PutUint16(b, uint16(n))
		for _, id := range to[:n] {
			b = append(b, byte(len(id)))
			b = append(b, id...)
		}
		b = append(b, body...)
		out = append(out, c.seal(kind, e.Stored, b, topic)...)
		to = to[n:]
	}
	return out, nil
}

// seal writes one envelope per topic around body (hashed once).
func (c *Codec) seal(kind byte, stored time.Time, body []byte, topics ...string) []backplane.Message {
	digest := sha256.Sum256(body)
	issued := c.now()
	out := make([]backplane.Message, len(topics))
	for i, topic := range topics {
		header := make([]byte, fixedHeader, fixedHeader+8+tagLen+len(body))
		header[0] = kind
		binary.BigEndian.PutUint64(header[1:9], uint64(issued.UnixNano()))
		var ns int64
		if !stored.IsZero() {
			ns = stored.UnixNano()
		}
		binary.BigEndian.PutUint64(header[9:17], uint64(ns))
		kid, tag := c.auth.MAC([]byte(topic), header[:17], digest[:])
		// The key id is covered by the MAC through the key it names.
		header[17] = byte(len(kid))
		p := append(header, kid...)
		p = append(p, tag...)
		out[i] = backplane.Message{Topic: topic, Payload: append(p, body...)}
	}
	return out
}

// Open reads and verifies a payload received on topic.
func (c *Codec) Open(topic string, payload []byte) (Received, error) {
	var r Received
	var ok bool
	shared := isSharedTopic(topic)
	if r.UserID, ok = UserOf(topic); !ok {
		r.UserID = ""
		if !shared {
			return r, fmt.Errorf("%w: topic %q is neither a user's nor a shared one", ErrMalformed, topic)
		}
	}
	if len(payload) < fixedHeader {
		return r, fmt.Errorf("%w: %d bytes", ErrMalformed, len(payload))
	}
	n := int(payload[17])
	if n == 0 || len(payload) < fixedHeader+n+tagLen {
		return r, fmt.Errorf("%w: short header", ErrMalformed)
	}
	kid := string(payload[fixedHeader : fixedHeader+n])
	tag := payload[fixedHeader+n : fixedHeader+n+tagLen]
	body := payload[fixedHeader+n+tagLen:]
	digest := sha256.Sum256(body)
	if !c.auth.VerifyMAC(kid, tag, []byte(topic), payload[:17], digest[:]) {
		return r, ErrForged
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(payload[1:9])))
	if age := c.now().Sub(issued); age > MaxAge || age < -MaxAge {
		return r, fmt.Errorf("%w: issued %v ago", ErrStale, age.Round(time.Second))
	}
	if ns := int64(binary.BigEndian.Uint64(payload[9:17])); ns != 0 {
		r.Stored = time.Unix(0, ns)
	}
	kind := payload[0]
	if shared != (kind == kindSharedFrame || kind == kindSharedOrdered) {
		return r, fmt.Errorf("%w: kind %q on topic %q", ErrMalformed, kind, topic)
	}
	if shared {
		to, rest, err := readRecipients(body)
		if err != nil {
			return r, err
		}
		r.To, body = to, rest
		if kind == kindSharedFrame {
			kind = kindFrame
		} else {
			kind = kindOrdered
		}
	}
	switch kind {
	case kindFrame:
		r.Kind, r.Frame = KindFrame, body
	case kindOrdered:
		if len(body) < 10 {
			return r, fmt.Errorf("%w: short ordered header", ErrMalformed)
		}
		r.Seq = int64(binary.BigEndian.Uint64(body))
		cn := int(binary.BigEndian.Uint16(body[8:]))
		body = body[10:]
		if len(body) < cn || cn == 0 || r.Seq <= 0 {
			return r, fmt.Errorf("%w: bad conversation or seq", ErrMalformed)
		}
		r.Kind, r.Conversation, r.Frame = KindFrame, string(body[:cn]), body[cn:]
	case kindDisconnect:
		r.Kind = KindDisconnect
		s, why, ok := strings.Cut(string(body), "\n")
		if !ok || s == "" || (s[0] == 'O' && len(s) == 1) {
			return r, fmt.Errorf("%w: disconnect without mode, session or reason", ErrMalformed)
		}
		switch s[0] {
		case 'E':
			r.ExceptSession = s[1:]
		case 'O':
			r.OnlySession = s[1:]
		default:
			return r, fmt.Errorf("%w: disconnect mode %q", ErrMalformed, s[0])
		}
		r.Reason = why
	default:
		return r, fmt.Errorf("%w: kind %q", ErrMalformed, payload[0])
	}
	return r, nil
}

// readRecipients reads the recipient list at the start of a shared body.
func readRecipients(body []byte) (to []string, rest []byte, err error) {
	if len(body) < 2 {
		return nil, nil, fmt.Errorf("%w: short recipient list", ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	// Each id takes at least 2 bytes: a count larger than that is a lie, and
	// must not size an allocation.
	if n == 0 || n > len(body)/2 {
		return nil, nil, fmt.Errorf("%w: %d recipients in %d bytes", ErrMalformed, n, len(body))
	}
	to = make([]string, n)
	for i := range to {
		if len(body) < 1 {
			return nil, nil, fmt.Errorf("%w: short recipient list", ErrMalformed)
		}
		l := int(body[0])
		if l == 0 || len(body) < 1+l {
			return nil, nil, fmt.Errorf("%w: bad recipient id", ErrMalformed)
		}
		to[i], body = string(body[1:1+l]), body[1+l:]
	}
	return to, body, nil
}

// ResyncFrame is the encoded frame asking a client to catch up through its
// cursors.
func ResyncFrame() []byte {
	b, _ := protocol.Encode(protocol.ResyncFrame{}) // cannot fail: an empty struct
	return b
}
