// Package delivery carries events from the use cases to every connection of
// their recipients, on every replica. It owns the topics (one per user), the
// envelope that travels through the backplane, and frame encoding: an event is
// encoded once, whatever the number of recipients.
//
// The path runs one way: a use case hands an Event to a Publisher, which
// publishes one envelope per recipient topic on the backplane; the backplane
// hands what it receives to its handler (the realtime hub), which opens the
// envelope with Open and queues the frame on the user's local connections.
package delivery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
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
	log     *slog.Logger
	metrics *metrics.Metrics
}

// NewPublisher returns a Publisher over bp.
func NewPublisher(bp backplane.Backplane, log *slog.Logger, m *metrics.Metrics) *Publisher {
	return &Publisher{bp: bp, log: log, metrics: metrics.OrNew(m)}
}

// Publish encodes e's frame once and publishes it to each recipient, and
// returns once the backplane has taken it. A backplane failure is counted and
// logged, not returned: what was stored stays stored, and clients catch up
// through positioning and their cursors.
func (p *Publisher) Publish(ctx context.Context, e Event) {
	env, err := Envelope(e)
	if err != nil {
		p.log.Error("delivery: encode failed", "err", err)
		return
	}
	topics := make([]string, len(e.To))
	for i, to := range e.To {
		topics[i] = UserTopic(to)
	}
	p.publish(ctx, env, topics...)
}

// Envelope encodes e (all but its recipients) as the payload published to
// each recipient's topic.
func Envelope(e Event) ([]byte, error) {
	frame, err := protocol.Encode(e.Frame)
	if err != nil {
		return nil, err
	}
	if e.Conversation != "" {
		return orderedEnvelope(e.Stored, e.Conversation, e.Seq, frame), nil
	}
	return envelope(kindFrame, e.Stored, frame), nil
}

// Disconnect closes every connection of userID on every replica, except those
// of session exceptSession when it is not empty.
func (p *Publisher) Disconnect(ctx context.Context, userID, exceptSession, reason string) {
	p.publish(ctx, envelope(kindDisconnect, time.Time{}, []byte(exceptSession+"\n"+reason)), UserTopic(userID))
}

// publish returns once the backplane has taken env for every topic (see
// backplane.Backplane.Publish), so the ack that follows a send carries that.
func (p *Publisher) publish(ctx context.Context, env []byte, topics ...string) {
	err := p.bp.Publish(ctx, env, topics...)
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

// Kind says what a received envelope asks for.
type Kind byte

// Envelope kinds (the first byte of a payload).
const (
	kindFrame      byte = 'F' // deliver the frame to the user's connections
	kindOrdered    byte = 'O' // the same, for a frame with a place in its conversation's order
	kindDisconnect byte = 'D' // close the user's connections (session to spare, newline, reason)

	// KindFrame: deliver Received.Frame to the user's connections.
	KindFrame Kind = 'F'
	// KindDisconnect: close the user's connections except ExceptSession's.
	KindDisconnect Kind = 'D'
)

// Received is an opened envelope.
type Received struct {
	UserID string
	Kind   Kind
	Frame  []byte    // KindFrame: the encoded frame
	Stored time.Time // KindFrame: store time of a message, or zero
	// Conversation and Seq: the frame's place in its conversation's order
	// (empty and 0 when it has none).
	Conversation string
	Seq          int64
	// KindDisconnect: the session whose connections stay open (may be
	// empty) and the reason sent in the close frame.
	ExceptSession, Reason string
}

// ErrMalformed is returned (wrapped) by Open for a payload it cannot read.
var ErrMalformed = errors.New("delivery: malformed envelope")

// header: kind byte, then the store time in unix nanoseconds (0: none).
const headerLen = 9

func envelope(kind byte, stored time.Time, data []byte) []byte {
	b := make([]byte, headerLen, headerLen+len(data))
	putHeader(b, kind, stored)
	return append(b, data...)
}

// orderedEnvelope: header, seq (8 bytes), conversation id length (2 bytes),
// conversation id, frame.
func orderedEnvelope(stored time.Time, conv string, seq int64, frame []byte) []byte {
	b := make([]byte, headerLen+10, headerLen+10+len(conv)+len(frame))
	putHeader(b, kindOrdered, stored)
	binary.BigEndian.PutUint64(b[headerLen:], uint64(seq))
	binary.BigEndian.PutUint16(b[headerLen+8:], uint16(len(conv)))
	b = append(b, conv...)
	return append(b, frame...)
}

func putHeader(b []byte, kind byte, stored time.Time) {
	b[0] = kind
	var ns int64
	if !stored.IsZero() {
		ns = stored.UnixNano()
	}
	binary.BigEndian.PutUint64(b[1:9], uint64(ns))
}

// Open reads a payload received on topic.
func Open(topic string, payload []byte) (Received, error) {
	var r Received
	var ok bool
	if r.UserID, ok = UserOf(topic); !ok {
		return r, fmt.Errorf("%w: topic %q is not a user topic", ErrMalformed, topic)
	}
	if len(payload) < headerLen {
		return r, fmt.Errorf("%w: %d bytes", ErrMalformed, len(payload))
	}
	if ns := int64(binary.BigEndian.Uint64(payload[1:9])); ns != 0 {
		r.Stored = time.Unix(0, ns)
	}
	data := payload[headerLen:]
	switch payload[0] {
	case kindFrame:
		r.Kind, r.Frame = KindFrame, data
	case kindOrdered:
		if len(data) < 10 {
			return r, fmt.Errorf("%w: short ordered header", ErrMalformed)
		}
		r.Seq = int64(binary.BigEndian.Uint64(data))
		n := int(binary.BigEndian.Uint16(data[8:]))
		data = data[10:]
		if len(data) < n || n == 0 || r.Seq <= 0 {
			return r, fmt.Errorf("%w: bad conversation or seq", ErrMalformed)
		}
		r.Kind, r.Conversation, r.Frame = KindFrame, string(data[:n]), data[n:]
	case kindDisconnect:
		r.Kind = KindDisconnect
		e, why, ok := strings.Cut(string(data), "\n")
		if !ok {
			return r, fmt.Errorf("%w: disconnect without reason", ErrMalformed)
		}
		r.ExceptSession, r.Reason = e, why
	default:
		return r, fmt.Errorf("%w: kind %q", ErrMalformed, payload[0])
	}
	return r, nil
}

// ResyncFrame is the encoded frame asking a client to catch up through its
// cursors.
func ResyncFrame() []byte {
	b, _ := protocol.Encode(protocol.ResyncFrame{}) // cannot fail: an empty struct
	return b
}
