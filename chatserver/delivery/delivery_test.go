package delivery_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"log/slog"
	"slices"
	"strconv"
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

// testAuth is an Authenticator with fixed HMAC keys (the keyring derives
// them from its data keys; this package only needs the interface).
type testAuth struct {
	kid  string
	keys map[string][]byte
}

func newAuth(kid string) *testAuth {
	return &testAuth{kid: kid, keys: map[string][]byte{kid: []byte("key-" + kid)}}
}

func (a *testAuth) MAC(parts ...[]byte) (string, []byte) {
	return a.kid, a.sum(a.keys[a.kid], parts)
}

func (a *testAuth) VerifyMAC(kid string, tag []byte, parts ...[]byte) bool {
	key, ok := a.keys[kid]
	return ok && hmac.Equal(tag, a.sum(key, parts))
}

func (a *testAuth) sum(key []byte, parts [][]byte) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte{byte(len(p))})
		h.Write(p)
	}
	return h.Sum(nil)
}

var codec = delivery.NewCodec(newAuth("k1"), nil)

// envelope seals e for its first recipient (or u_x when it has none).
func envelope(t *testing.T, e delivery.Event) (string, []byte) {
	t.Helper()
	if len(e.To) == 0 {
		e.To = []string{"u_x"}
	}
	msgs, err := codec.Seal(e)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return msgs[0].Topic, msgs[0].Payload
}

func open(t *testing.T, topic string, payload []byte) delivery.Received {
	t.Helper()
	r, err := codec.Open(topic, payload)
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
	msgs, err := codec.Seal(delivery.Event{To: []string{"u_a", "u_b"}, Frame: frame,
		Conversation: "c_42", Seq: 7, Stored: stored})
	if err != nil {
		t.Fatal(err)
	}
	r := open(t, msgs[1].Topic, msgs[1].Payload)
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
	r := open(envelopeFor(t, "u_b", delivery.Event{Frame: frame}))
	if r.UserID != "u_b" || r.Kind != delivery.KindFrame || r.Conversation != "" || r.Seq != 0 || !r.Stored.IsZero() {
		t.Errorf("opened %+v, want a frame for u_b with no place in an order and no store time", r)
	}
	if want := encode(t, frame); string(r.Frame) != string(want) {
		t.Errorf("Frame = %s, want %s", r.Frame, want)
	}
	// A store time without an order (the field is independent).
	r = open(envelopeFor(t, "u_b", delivery.Event{Frame: protocol.ResyncFrame{}, Stored: stored}))
	if !r.Stored.Equal(stored) || r.Seq != 0 {
		t.Errorf("opened %+v, want store time %v and no seq", r, stored)
	}
}

// envelopeFor returns t with the envelope of e for user, for open.
func envelopeFor(t *testing.T, user string, e delivery.Event) (*testing.T, string, []byte) {
	e.To = []string{user}
	topic, payload := envelope(t, e)
	return t, topic, payload
}

func TestDisconnectRoundTrip(t *testing.T) {
	for _, tc := range []struct{ except, reason string }{
		{"", "logged out everywhere"},
		{"f_keep", "password changed"},
		{"f_keep", "a reason\nover two lines"}, // only the first newline separates
	} {
		bp := &recordingBackplane{}
		delivery.NewPublisher(bp, codec, slog.New(slog.DiscardHandler), nil).Disconnect(t.Context(), "u_a", tc.except, tc.reason)
		if len(bp.pubs) != 1 || bp.pubs[0].Topic != "u:u_a" {
			t.Fatalf("Disconnect published %+v, want one envelope on u:u_a", bp.pubs)
		}
		r := open(t, bp.pubs[0].Topic, bp.pubs[0].Payload)
		if r.UserID != "u_a" || r.Kind != delivery.KindDisconnect || r.ExceptSession != tc.except || r.Reason != tc.reason {
			t.Errorf("opened %+v, want a disconnect of u_a sparing %q because %q", r, tc.except, tc.reason)
		}
	}
}

func TestDisconnectSessionRoundTrip(t *testing.T) {
	bp := &recordingBackplane{}
	delivery.NewPublisher(bp, codec, slog.New(slog.DiscardHandler), nil).DisconnectSession(t.Context(), "u_a", "f_gone", "signed out")
	r := open(t, bp.pubs[0].Topic, bp.pubs[0].Payload)
	if r.Kind != delivery.KindDisconnect || r.OnlySession != "f_gone" || r.ExceptSession != "" || r.Reason != "signed out" {
		t.Fatalf("opened %+v, want a disconnect of session f_gone only", r)
	}
	if !r.Closes("f_gone") || r.Closes("f_other") {
		t.Error("a session disconnect must close that session's connections and no other")
	}
	all := delivery.Received{Kind: delivery.KindDisconnect, ExceptSession: "f_keep"}
	if !all.Closes("f_other") || all.Closes("f_keep") {
		t.Error("a user disconnect must close every session but the one it spares")
	}
}

func TestOpenRefusesMalformed(t *testing.T) {
	_, frame := envelope(t, delivery.Event{Frame: protocol.ResyncFrame{}})
	body := func(kind byte, b []byte) []byte { return codec.SealRaw(kind, time.Time{}, b, "u:u_a").Payload }
	ordered := func(seq uint64, convLen uint16, conv string) []byte {
		b := binary.BigEndian.AppendUint64(nil, seq)
		b = binary.BigEndian.AppendUint16(b, convLen)
		return append(b, conv...)
	}
	for _, tc := range []struct {
		name, topic string
		payload     []byte
	}{
		{"empty", "u:u_a", nil},
		{"shorter than the header", "u:u_a", frame[:17]},
		{"no key id", "u:u_a", append(slices.Clone(frame[:17]), 0)},
		{"tag cut short", "u:u_a", frame[:21]},
		{"unknown kind", "u:u_a", body('X', []byte("{}"))},
		{"ordered header cut short", "u:u_a", body('O', make([]byte, 9))},
		{"conversation longer than the payload", "u:u_a", body('O', ordered(3, 1000, "c_1"))},
		{"empty conversation", "u:u_a", body('O', ordered(3, 0, ""))},
		{"seq 0", "u:u_a", body('O', ordered(0, 3, "c_1"))},
		{"negative seq", "u:u_a", body('O', ordered(1<<63, 3, "c_1"))},
		{"disconnect without reason", "u:u_a", body('D', []byte("Ef_keep"))},
		{"disconnect without mode", "u:u_a", body('D', []byte("\nreason"))},
		{"disconnect of no session", "u:u_a", body('D', []byte("O\nreason"))},
		{"disconnect with an unknown mode", "u:u_a", body('D', []byte("Xf\nreason"))},
		{"not a user topic", "c:c_1", frame},
		{"no topic", "", frame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := codec.Open(tc.topic, tc.payload); !errors.Is(err, delivery.ErrMalformed) {
				t.Errorf("Open: %v, want an error wrapping ErrMalformed", err)
			}
		})
	}
}

// Redis is not trusted: an envelope made without the keyring, moved to
// another user's topic, altered anywhere, or replayed later is refused.
func TestOpenRefusesForgedAndStale(t *testing.T) {
	topic, good := envelope(t, delivery.Event{To: []string{"u_a"}, Frame: protocol.MessageFrame{
		Message: &protocol.Message{ID: "m_1", Body: "hi"}}, Conversation: "c_1", Seq: 1, Stored: stored})
	flip := func(i int) []byte {
		b := slices.Clone(good)
		b[i] ^= 1
		return b
	}
	otherKey := delivery.NewCodec(newAuth("k9"), nil)
	msgs, err := otherKey.Seal(delivery.Event{To: []string{"u_a"}, Frame: protocol.ResyncFrame{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, topic string
		payload     []byte
	}{
		{"another user's topic", "u:u_b", good},
		{"kind changed", topic, flip(0)},
		{"issue time changed", topic, flip(5)},
		{"store time changed", topic, flip(12)},
		{"tag changed", topic, flip(len(good) - 60)},
		{"body changed", topic, flip(len(good) - 1)},
		{"made with a key the keyring does not have", msgs[0].Topic, msgs[0].Payload},
	} {
		if _, err := codec.Open(tc.topic, tc.payload); !errors.Is(err, delivery.ErrForged) && !errors.Is(err, delivery.ErrMalformed) {
			t.Errorf("%s: Open: %v, want ErrForged", tc.name, err)
		}
	}
	if _, err := codec.Open("u:u_b", good); !errors.Is(err, delivery.ErrForged) {
		t.Errorf("moved to another topic: %v, want ErrForged", err)
	}

	now := time.Now()
	past := delivery.NewCodec(newAuth("k1"), func() time.Time { return now.Add(-delivery.MaxAge - time.Second) })
	future := delivery.NewCodec(newAuth("k1"), func() time.Time { return now.Add(delivery.MaxAge + time.Second) })
	for name, c := range map[string]*delivery.Codec{"replayed": past, "from the future": future} {
		m, err := c.Seal(delivery.Event{To: []string{"u_a"}, Frame: protocol.ResyncFrame{}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := codec.Open(m[0].Topic, m[0].Payload); !errors.Is(err, delivery.ErrStale) {
			t.Errorf("%s: Open: %v, want ErrStale", name, err)
		}
	}
}

// A frame that cannot be encoded, or an ordered event without a seq, is an
// error from Seal, not a payload.
func TestSealErrors(t *testing.T) {
	if _, err := codec.Seal(delivery.Event{To: []string{"u_a"}, Frame: badFrame{Ch: make(chan int)}}); err == nil {
		t.Error("Seal encoded a frame JSON cannot represent")
	}
	if _, err := codec.Seal(delivery.Event{To: []string{"u_a"}, Frame: protocol.ResyncFrame{}, Conversation: "c", Seq: 0}); err == nil {
		t.Error("Seal accepted an ordered event with seq 0")
	}
}

type badFrame struct{ Ch chan int }

func (badFrame) FrameType() protocol.FrameType { return protocol.TypeMessage }

func TestPublishEncodesOnceAndFansOut(t *testing.T) {
	bp := &recordingBackplane{}
	p := delivery.NewPublisher(bp, codec, slog.New(slog.DiscardHandler), nil)
	frame := protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_1", Seq: 1, Body: "hi"}}
	e := delivery.Event{To: []string{"u_a", "u_b", "u_c"}, Frame: frame, Conversation: "c_1", Seq: 1, Stored: stored}
	p.Publish(t.Context(), e)

	if got := bp.topics(); !slices.Equal(got, []string{"u:u_a", "u:u_b", "u:u_c"}) {
		t.Fatalf("published to %q, want one topic per recipient", got)
	}
	encoded := encode(t, frame)
	for i, pub := range bp.pubs {
		// One encoding: every recipient's envelope ends with the same frame;
		// only the tag, made for its own topic, differs.
		if !bytes.HasSuffix(pub.Payload, encoded) {
			t.Errorf("payload %d does not carry the encoded frame", i)
		}
		if r := open(t, pub.Topic, pub.Payload); r.UserID != e.To[i] || r.Seq != 1 || r.Conversation != "c_1" {
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
	p := delivery.NewPublisher(bp, codec, slog.New(slog.DiscardHandler), m)
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
	pubs []backplane.Message
	fail map[string]bool
}

// Publish records every message but those for topics in fail, and returns
// an error if any was refused (as a backplane does when it could not take
// them all).
func (b *recordingBackplane) Publish(_ context.Context, msgs ...backplane.Message) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var err error
	for _, m := range msgs {
		if b.fail[m.Topic] {
			err = errors.New("refused")
			continue
		}
		b.pubs = append(b.pubs, m)
	}
	return err
}

func (b *recordingBackplane) topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, p := range b.pubs {
		out = append(out, p.Topic)
	}
	return out
}

func (b *recordingBackplane) Start(backplane.Handler) error             { return nil }
func (b *recordingBackplane) Subscribe(context.Context, string) error   { return nil }
func (b *recordingBackplane) Unsubscribe(context.Context, string) error { return nil }
func (b *recordingBackplane) Healthy(context.Context) error             { return nil }
func (b *recordingBackplane) Close() error                              { return nil }

var _ backplane.Backplane = (*recordingBackplane)(nil)

// An event for many recipients crosses the backplane once, on its
// conversation's shared topic, naming them all; what Redis could do to it
// (move it to another topic, add a recipient, put it on a user topic) does
// not open.
func TestSharedEnvelope(t *testing.T) {
	c := delivery.NewCodec(newAuth("k1"), nil)
	c.SetSharedMin(3)
	frame := protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_42", Seq: 7, Body: "hello"}}
	to := []string{"u_a", "u_b", "u_c", "u_d"}
	msgs, err := c.Seal(delivery.Event{To: to, Frame: frame, Conversation: "c_42", Seq: 7, Stored: stored})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !slices.Contains(delivery.SharedTopics(), msgs[0].Topic) {
		t.Fatalf("sealed %d messages on %q, want one on a shared topic", len(msgs), msgs[0].Topic)
	}
	r, err := c.Open(msgs[0].Topic, msgs[0].Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.To, to) || r.UserID != "" || r.Conversation != "c_42" || r.Seq != 7 || !r.Stored.Equal(stored) ||
		!bytes.Equal(r.Frame, encode(t, frame)) {
		t.Errorf("opened %+v", r)
	}

	// The same conversation always takes the same topic (Redis keeps the
	// order of one channel); another may take another.
	again, _ := c.Seal(delivery.Event{To: to, Frame: frame, Conversation: "c_42", Seq: 8})
	if again[0].Topic != msgs[0].Topic {
		t.Errorf("seq 8 on %q, seq 7 on %q", again[0].Topic, msgs[0].Topic)
	}
	topics := map[string]bool{}
	for i := range 64 {
		m, _ := c.Seal(delivery.Event{To: to, Frame: frame, Conversation: "c_" + strconv.Itoa(i), Seq: 1})
		topics[m[0].Topic] = true
	}
	if len(topics) < delivery.SharedShards/2 {
		t.Errorf("64 conversations used %d of %d shared topics", len(topics), delivery.SharedShards)
	}

	// Fewer recipients than the threshold: one envelope each, as before.
	few, _ := c.Seal(delivery.Event{To: to[:2], Frame: frame, Conversation: "c_42", Seq: 7})
	if len(few) != 2 || few[0].Topic != "u:u_a" || few[1].Topic != "u:u_b" {
		t.Errorf("two recipients sealed as %d messages", len(few))
	}
	// Events outside a conversation (typing) share too.
	typing, _ := c.Seal(delivery.Event{To: to, Frame: protocol.TypingFrame{ConversationID: "c_42", UserID: "u_a"}})
	if r, err := c.Open(typing[0].Topic, typing[0].Payload); err != nil || len(typing) != 1 || r.Conversation != "" || len(r.To) != 4 {
		t.Errorf("typing: %d messages, opened %+v, %v", len(typing), r, err)
	}

	other := "s:0"
	if msgs[0].Topic == other {
		other = "s:1"
	}
	if _, err := c.Open(other, msgs[0].Payload); !errors.Is(err, delivery.ErrForged) {
		t.Errorf("moved to another shared topic: %v, want ErrForged", err)
	}
	if _, err := c.Open("u:u_a", msgs[0].Payload); !errors.Is(err, delivery.ErrForged) && !errors.Is(err, delivery.ErrMalformed) {
		t.Errorf("moved to a user topic: %v, want it refused", err)
	}
	added := bytes.Replace(msgs[0].Payload, []byte("\x00\x04\x03u_a"), []byte("\x00\x05\x03u_x\x03u_a"), 1)
	if bytes.Equal(added, msgs[0].Payload) {
		t.Fatal("test did not find the recipient list")
	}
	if _, err := c.Open(msgs[0].Topic, added); !errors.Is(err, delivery.ErrForged) {
		t.Errorf("a recipient added: %v, want ErrForged", err)
	}
	// A shared kind on a user topic, and a user kind on a shared topic, are
	// malformed even with a valid tag.
	if _, err := c.Open("u:u_a", c.SealRaw('o', stored, []byte("x"), "u:u_a").Payload); !errors.Is(err, delivery.ErrMalformed) {
		t.Errorf("shared kind on a user topic: %v", err)
	}
	if _, err := c.Open("s:1", c.SealRaw('F', stored, []byte("x"), "s:1").Payload); !errors.Is(err, delivery.ErrMalformed) {
		t.Errorf("user kind on a shared topic: %v", err)
	}
	for _, body := range []string{"", "\x00", "\x00\x00x", "\x00\x02\x01a", "\x00\x01\x00x", "\x00\x01\x05ab", "\xff\xff\x01a"} {
		if _, err := c.Open("s:1", c.SealRaw('f', stored, []byte(body), "s:1").Payload); !errors.Is(err, delivery.ErrMalformed) {
			t.Errorf("recipient list %q: %v, want ErrMalformed", body, err)
		}
	}
	// An empty recipient id cannot be named.
	if _, err := c.Seal(delivery.Event{To: []string{"u_a", "", "u_c"}, Frame: frame}); err == nil {
		t.Error("sealed a shared envelope for an empty recipient id")
	}
}

// A replica with sharing off still opens what a replica with it on sealed
// (replicas may differ during a rolling change of the setting), and more
// than 65,535 recipients split into several envelopes that name each once.
func TestSharedEnvelopeSplitsAndOpensAnywhere(t *testing.T) {
	on := delivery.NewCodec(newAuth("k1"), nil)
	on.SetSharedMin(1)
	off := delivery.NewCodec(newAuth("k1"), nil)
	to := make([]string, 70000)
	for i := range to {
		to[i] = "u_" + strconv.Itoa(i)
	}
	msgs, err := on.Seal(delivery.Event{To: to, Frame: protocol.ResyncFrame{}, Conversation: "c_1", Seq: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d envelopes for 70,000 recipients, want 2", len(msgs))
	}
	var got []string
	for _, m := range msgs {
		r, err := off.Open(m.Topic, m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.To...)
	}
	if !slices.Equal(got, to) {
		t.Errorf("the envelopes named %d recipients, want the 70,000 in order", len(got))
	}
}
