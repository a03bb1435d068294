package delivery_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

var stored = time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)

func encode(t *testing.T, f protocol.ServerFrame) []byte {
	t.Helper()
	b, err := protocol.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func envelope(t *testing.T, e delivery.Event) []byte {
	t.Helper()
	env, err := delivery.Envelope(e)
	if err != nil {
		t.Fatalf("Envelope: %v", err)
	}
	return env
}

func open(t *testing.T, topic string, payload []byte) delivery.Received {
	t.Helper()
	r, err := delivery.Open(topic, payload)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func TestUserTopic(t *testing.T) {
	topic := delivery.UserTopic("u_1")
	if u, ok := delivery.UserOf(topic); !ok || u != "u_1" {
		t.Errorf("UserOf(UserTopic(u_1)) = %q, %v", u, ok)
	}
	if _, ok := delivery.UserOf("c:u_1"); ok {
		t.Error("UserOf accepted a topic that is not a user's")
	}
}

func TestOrderedFrameRoundTrip(t *testing.T) {
	frame := protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_42", Seq: 7,
		SenderID: "u_a", Body: "hello", CreatedAt: stored}}
	env := envelope(t, delivery.Event{To: []string{"u_a", "u_b"}, Frame: frame,
		Conversation: "c_42", Seq: 7, Stored: stored})
	r := open(t, delivery.UserTopic("u_b"), env)
	if r.UserID != "u_b" || r.Kind != delivery.KindFrame || r.Conversation != "c_42" || r.Seq != 7 {
		t.Errorf("opened %+v, want user u_b, a frame, conversation c_42, seq 7", r)
	}
	if !r.Stored.Equal(stored) {
		t.Errorf("Stored = %v, want %v (nanoseconds kept)", r.Stored, stored)
	}
	if want := encode(t, frame); string(r.Frame) != string(want) {
		t.Errorf("Frame = %s, want %s", r.Frame, want)
	}
}

func TestUnorderedFrameRoundTrip(t *testing.T) {
	frame := protocol.TypingFrame{ConversationID: "c_42", UserID: "u_a"}
	r := open(t, "u:u_b", envelope(t, delivery.Event{To: []string{"u_b"}, Frame: frame}))
	if r.UserID != "u_b" || r.Kind != delivery.KindFrame || r.Conversation != "" || r.Seq != 0 || !r.Stored.IsZero() {
		t.Errorf("opened %+v, want a frame for u_b with no place in an order and no store time", r)
	}
	if want := encode(t, frame); string(r.Frame) != string(want) {
		t.Errorf("Frame = %s, want %s", r.Frame, want)
	}

	// A store time without an order (the field is independent).
	r = open(t, "u:u_b", envelope(t, delivery.Event{Frame: protocol.ResyncFrame{}, Stored: stored}))
	if !r.Stored.Equal(stored) || r.Seq != 0 {
		t.Errorf("opened %+v, want store time %v and no seq", r, stored)
	}
}

func TestDisconnectRoundTrip(t *testing.T) {
	for _, tc := range []struct{ except, reason string }{
		{"", "logged out everywhere"},
		{"f_keep", "password changed"},
		{"f_keep", "a reason\nover two lines"}, // only the first newline separates
	} {
		bp := &recordingBackplane{}
		delivery.NewPublisher(bp, slog.New(slog.DiscardHandler), nil).Disconnect(t.Context(), "u_a", tc.except, tc.reason)
		if len(bp.pubs) != 1 || bp.pubs[0].topic != "u:u_a" {
			t.Fatalf("Disconnect published %+v, want one envelope on u:u_a", bp.pubs)
		}
		r := open(t, bp.pubs[0].topic, bp.pubs[0].payload)
		if r.UserID != "u_a" || r.Kind != delivery.KindDisconnect || r.ExceptSession != tc.except || r.Reason != tc.reason {
			t.Errorf("opened %+v, want a disconnect of u_a sparing %q because %q", r, tc.except, tc.reason)
		}
	}
}

func TestOpenRefusesMalformed(t *testing.T) {
	ordered := envelope(t, delivery.Event{Frame: protocol.ResyncFrame{}, Conversation: "c_1", Seq: 3})
	frame := envelope(t, delivery.Event{Frame: protocol.ResyncFrame{}})
	const hdr = 9 // kind byte and store time
	withSeq := func(seq uint64) []byte {
		b := slices.Clone(ordered)
		binary.BigEndian.PutUint64(b[hdr:], seq)
		return b
	}
	withConvLen := func(n uint16) []byte {
		b := slices.Clone(ordered)
		binary.BigEndian.PutUint16(b[hdr+8:], n)
		return b
	}
	withKind := func(k byte) []byte {
		b := slices.Clone(frame)
		b[0] = k
		return b
	}
	for _, tc := range []struct {
		name, topic string
		payload     []byte
	}{
		{"empty", "u:u_a", nil},
		{"shorter than the header", "u:u_a", frame[:hdr-1]},
		{"unknown kind", "u:u_a", withKind('X')},
		{"ordered header cut short", "u:u_a", ordered[:hdr+9]},
		{"conversation longer than the payload", "u:u_a", withConvLen(1000)},
		{"empty conversation", "u:u_a", withConvLen(0)},
		{"seq 0", "u:u_a", withSeq(0)},
		{"negative seq", "u:u_a", withSeq(1 << 63)},
		{"disconnect without reason", "u:u_a", append(withKind('D')[:hdr], "f_keep"...)},
		{"not a user topic", "c:c_1", frame},
		{"no topic", "", frame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := delivery.Open(tc.topic, tc.payload); !errors.Is(err, delivery.ErrMalformed) {
				t.Errorf("Open: %v, want an error wrapping ErrMalformed", err)
			}
		})
	}
}

// A frame that cannot be encoded is an error from Envelope, not a payload.
func TestEnvelopeEncodeError(t *testing.T) {
	if _, err := delivery.Envelope(delivery.Event{Frame: badFrame{Ch: make(chan int)}}); err == nil {
		t.Error("Envelope encoded a frame JSON cannot represent")
	}
}

type badFrame struct{ Ch chan int }

func (badFrame) FrameType() protocol.FrameType { return protocol.TypeMessage }

func TestPublishEncodesOnceAndFansOut(t *testing.T) {
	bp := &recordingBackplane{}
	p := delivery.NewPublisher(bp, slog.New(slog.DiscardHandler), nil)
	frame := protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_1", Seq: 1, Body: "hi"}}
	e := delivery.Event{To: []string{"u_a", "u_b", "u_c"}, Frame: frame, Conversation: "c_1", Seq: 1, Stored: stored}
	p.Publish(t.Context(), e)

	if got := bp.topics(); !slices.Equal(got, []string{"u:u_a", "u:u_b", "u:u_c"}) {
		t.Fatalf("published to %q, want one topic per recipient", got)
	}
	want := envelope(t, e)
	for i, pub := range bp.pubs {
		if string(pub.payload) != string(want) {
			t.Errorf("payload %d differs from Envelope(e)", i)
		}
		// Encoded once: every recipient gets the very same bytes.
		if &pub.payload[0] != &bp.pubs[0].payload[0] {
			t.Errorf("payload %d was encoded again", i)
		}
		if r := open(t, pub.topic, pub.payload); r.UserID != e.To[i] || r.Seq != 1 || r.Conversation != "c_1" {
			t.Errorf("recipient %d opened %+v", i, r)
		}
	}

	bp.pubs = nil
	p.Publish(t.Context(), delivery.Event{Frame: frame})
	if len(bp.pubs) != 0 {
		t.Errorf("an event without recipients published %d envelopes", len(bp.pubs))
	}
	p.Publish(t.Context(), delivery.Event{To: []string{"u_a"}, Frame: badFrame{Ch: make(chan int)}})
	if len(bp.pubs) != 0 {
		t.Errorf("an event that cannot be encoded published %d envelopes", len(bp.pubs))
	}
}

// A backplane failure for one recipient is counted, and the others still get
// the event (what was stored stays stored; clients catch up by cursor).
func TestPublishCountsFailuresAndGoesOn(t *testing.T) {
	m := metrics.New()
	bp := &recordingBackplane{fail: map[string]bool{"u:u_b": true}}
	p := delivery.NewPublisher(bp, slog.New(slog.DiscardHandler), m)
	p.Publish(t.Context(), delivery.Event{To: []string{"u_a", "u_b", "u_c"}, Frame: protocol.ResyncFrame{}})
	if got := bp.topics(); !slices.Equal(got, []string{"u:u_a", "u:u_c"}) {
		t.Errorf("delivered to %q, want u_a and u_c despite u_b's failure", got)
	}
	var c dto.Metric
	if err := m.BackplaneErrors.Write(&c); err != nil {
		t.Fatal(err)
	}
	if got := c.GetCounter().GetValue(); got != 1 {
		t.Errorf("backplane errors counted: %v, want 1", got)
	}
}

func TestResyncFrame(t *testing.T) {
	if got, want := string(delivery.ResyncFrame()), string(encode(t, protocol.ResyncFrame{})); got != want {
		t.Errorf("ResyncFrame() = %s, want %s", got, want)
	}
}

// recordingBackplane records publishes; topics in fail are refused.
type recordingBackplane struct {
	mu   sync.Mutex
	pubs []pub
	fail map[string]bool
}

type pub struct {
	topic   string
	payload []byte
}

// Publish records every topic but those in fail, and returns an error if
// any was refused (as a backplane does when it could not take them all).
func (b *recordingBackplane) Publish(_ context.Context, payload []byte, topics ...string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	for _, topic := range topics {
		if b.fail[topic] {
			err = errors.New("refused")
			continue
		}
		b.pubs = append(b.pubs, pub{topic, payload})
	}
	return err
}

func (b *recordingBackplane) topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.pubs {
		out = append(out, p.topic)
	}
	return out
}

func (b *recordingBackplane) Start(backplane.Handler) error             { return nil }
func (b *recordingBackplane) Subscribe(context.Context, string) error   { return nil }
func (b *recordingBackplane) Unsubscribe(context.Context, string) error { return nil }
func (b *recordingBackplane) Healthy(context.Context) error             { return nil }
func (b *recordingBackplane) Close() error                              { return nil }

var _ backplane.Backplane = (*recordingBackplane)(nil)
