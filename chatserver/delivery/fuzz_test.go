package delivery_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

// fuzzIssued is the fuzz codecs' clock: envelopes sealed for the seeds stay
// fresh however long the fuzzer runs.
var fuzzIssued = time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)

// fuzzKeyring loads a real keyring with fixed key material (the same in the
// fuzzing coordinator and every worker, so seeds sealed in one verify in the
// others) and one data key, whose MAC key tags the envelopes.
func fuzzKeyring(tb testing.TB) *keyring.Keyring {
	tb.Helper()
	at := fuzzIssued.Add(-time.Hour)
	material := func(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }
	f := &keyringfile.File{Version: keyringfile.Version,
		JWT: []keyringfile.JWTKey{{ID: "j-1", Alg: keyringfile.AlgEdDSA, State: keyringfile.StateActive,
			Created: at, Activated: &at, PrivateKey: material(1)}},
		Data: []keyringfile.DataKey{{ID: "d-1", Alg: keyringfile.AlgA256GCM, State: keyringfile.StateActive,
			Created: at, Activated: &at, Key: material(2)}},
	}
	raw, err := f.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyringfile.FileName), raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	k, err := keyring.Load(dir, keyring.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func fuzzCodec(k *keyring.Keyring, now time.Time) *delivery.Codec {
	return delivery.NewCodec(k, func() time.Time { return now })
}

// FuzzCodecOpen feeds arbitrary topics and payloads to Codec.Open, as anyone
// who can publish to Redis can. Properties: it never panics; it fails with
// ErrMalformed, ErrForged or ErrStale, or the envelope is for the topic's
// user and is lossless: sealing what Open returned (kind, store time,
// conversation, seq, frame, or the disconnect's session and reason) at the
// envelope's issue time gives back the very same payload.
func FuzzCodecOpen(f *testing.F) {
	k := fuzzKeyring(f)
	c := fuzzCodec(k, fuzzIssued)
	frame, err := protocol.Encode(protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_1",
		Seq: 7, SenderID: "u_a", Body: "hello", CreatedAt: fuzzIssued}})
	if err != nil {
		f.Fatal(err)
	}
	stored := fuzzIssued.Add(-time.Second)
	for _, e := range []delivery.Event{
		{To: []string{"u_b"}, Frame: protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", Seq: 7, Body: "hello"}},
			Conversation: "c_1", Seq: 7, Stored: stored},
		{To: []string{"u_b"}, Frame: protocol.TypingFrame{ConversationID: "c_1", UserID: "u_a"}},
		{To: []string{""}, Frame: protocol.ResyncFrame{}, Stored: stored},
	} {
		msgs, err := c.Seal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msgs[0].Topic, msgs[0].Payload)
		f.Add("u:u_other", msgs[0].Payload) // moved to another user
		f.Add("c:c_1", msgs[0].Payload)
	}
	for _, body := range []string{"E\nlogged out everywhere", "Ef_keep\npassword changed", "Of_gone\nlogged out", "O\nx", "X\ny", "Enoreason"} {
		m := c.SealRaw('D', time.Time{}, []byte(body), "u:u_b")
		f.Add(m.Topic, m.Payload)
	}
	ordered := func(seq int64, conv string) []byte {
		b := binary.BigEndian.AppendUint64(nil, uint64(seq))
		b = binary.BigEndian.AppendUint16(b, uint16(len(conv)))
		return append(append(b, conv...), frame...)
	}
	for _, body := range [][]byte{ordered(1, "c_1"), ordered(0, "c_1"), ordered(-1, "c_1"), ordered(1, ""), ordered(1, "c")[:9]} {
		m := c.SealRaw('O', stored, body, "u:u_b")
		f.Add(m.Topic, m.Payload)
	}
	shared := fuzzCodec(k, fuzzIssued)
	shared.SetSharedMin(2)
	for _, e := range []delivery.Event{
		{To: []string{"u_a", "u_b", "u_c"}, Frame: protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", Seq: 7, Body: "hello"}},
			Conversation: "c_1", Seq: 7, Stored: stored},
		{To: []string{"u_a", "u_b"}, Frame: protocol.TypingFrame{ConversationID: "c_1", UserID: "u_a"}},
	} {
		msgs, err := shared.Seal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(msgs[0].Topic, msgs[0].Payload)
		f.Add("s:99", msgs[0].Payload)
		f.Add("u:u_a", msgs[0].Payload)
	}
	for _, body := range []string{"\x00\x01\x03u_a", "\x00\x00", "\x00\x05\x01a", "\xff\xff\x01a\x01b", "\x00\x01\x00"} {
		m := c.SealRaw('f', time.Time{}, []byte(body), "s:3")
		f.Add(m.Topic, m.Payload)
	}
	f.Add("u:u_b", []byte{})
	f.Add("u:u_b", []byte("F\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x03d-1"))

	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		r, err := c.Open(topic, payload)
		if err != nil {
			if !errors.Is(err, delivery.ErrMalformed) && !errors.Is(err, delivery.ErrForged) && !errors.Is(err, delivery.ErrStale) {
				t.Fatalf("Open(%q, %q): unexpected error %v", topic, payload, err)
			}
			return
		}
		var list []byte
		if r.To != nil {
			if r.UserID != "" || !slices.Contains(delivery.SharedTopics(), topic) || r.Kind != delivery.KindFrame {
				t.Fatalf("Open(%q) gave user %q, %d recipients, kind %q", topic, r.UserID, len(r.To), r.Kind)
			}
			list = binary.BigEndian.AppendUint16(nil, uint16(len(r.To)))
			for _, id := range r.To {
				list = append(append(list, byte(len(id))), id...)
			}
		} else if delivery.UserTopic(r.UserID) != topic {
			t.Fatalf("Open(%q) gave user %q", topic, r.UserID)
		}
		var kind byte
		var body []byte
		switch {
		case r.Kind == delivery.KindFrame && r.Conversation == "":
			if r.Seq != 0 {
				t.Fatalf("an unordered frame with seq %d", r.Seq)
			}
			kind, body = 'F', r.Frame
		case r.Kind == delivery.KindFrame:
			if r.Seq <= 0 || len(r.Conversation) > 0xffff {
				t.Fatalf("accepted conversation %q, seq %d", r.Conversation, r.Seq)
			}
			kind = 'O'
			body = binary.BigEndian.AppendUint64(nil, uint64(r.Seq))
			body = binary.BigEndian.AppendUint16(body, uint16(len(r.Conversation)))
			body = append(append(body, r.Conversation...), r.Frame...)
		case r.Kind == delivery.KindDisconnect:
			if r.ExceptSession != "" && r.OnlySession != "" {
				t.Fatalf("a disconnect sparing %q and closing only %q", r.ExceptSession, r.OnlySession)
			}
			kind = 'D'
			mode := "E" + r.ExceptSession
			if r.OnlySession != "" {
				mode = "O" + r.OnlySession
			}
			body = []byte(mode + "\n" + r.Reason)
		default:
			t.Fatalf("Open(%q) gave kind %q", payload, r.Kind)
		}
		if list != nil {
			kind += 'a' - 'A' // the shared kinds are the lower-case letters
			body = append(list, body...)
		}
		issued := time.Unix(0, int64(binary.BigEndian.Uint64(payload[1:9])))
		again := fuzzCodec(k, issued).SealRaw(kind, r.Stored, body, topic)
		if !bytes.Equal(again.Payload, payload) {
			t.Fatalf("Open(%q, %q) = %+v, which seals to %q", topic, payload, r, again.Payload)
		}
	})
}

// FuzzCodecSeal seals a message event with fuzzed fields, for a fuzzed
// recipient. Properties: Seal refuses exactly the ordered events it cannot
// carry (seq <= 0, a conversation id over 65535 bytes); what it seals opens on
// the recipient's topic to the event's place, store time and encoded frame;
// it opens on no other topic; and with any one byte changed, it does not
// open at all.
func FuzzCodecSeal(f *testing.F) {
	k := fuzzKeyring(f)
	c := fuzzCodec(k, fuzzIssued)
	f.Add("u_b", "c_1", int64(7), int64(fuzzIssued.UnixNano()), "hello", uint(0), byte(1))
	f.Add("u_b", "", int64(0), int64(0), "", uint(17), byte(0xff))
	f.Add("", "c", int64(-1), int64(-5), "\x00", uint(1<<30), byte(0x80))
	f.Add("u_b", "c_1", int64(1<<62), int64(1), "\u00e9\U0001F600\xff", uint(99), byte('x'))
	f.Fuzz(func(t *testing.T, to, conv string, seq, storedNS int64, text string, pos uint, flip byte) {
		var stored time.Time
		if storedNS != 0 {
			stored = time.Unix(0, storedNS)
		}
		frame := protocol.MessageFrame{Message: &protocol.Message{ConversationID: conv, Seq: seq, Body: text}}
		e := delivery.Event{To: []string{to}, Frame: frame, Conversation: conv, Seq: seq, Stored: stored}
		msgs, err := c.Seal(e)
		if bad := conv != "" && (seq <= 0 || len(conv) > 0xffff); bad != (err != nil) {
			t.Fatalf("Seal(conversation of %d bytes, seq %d): %v", len(conv), seq, err)
		}
		if err != nil {
			return
		}
		if len(msgs) != 1 || msgs[0].Topic != delivery.UserTopic(to) {
			t.Fatalf("Seal for %q gave %+v", to, msgs)
		}
		r, err := c.Open(msgs[0].Topic, msgs[0].Payload)
		if err != nil {
			t.Fatalf("Open(Seal(%+v)): %v", e, err)
		}
		want, err := protocol.Encode(frame)
		if err != nil {
			t.Fatal(err)
		}
		wantSeq := seq
		if conv == "" {
			wantSeq = 0
		}
		if r.UserID != to || r.Kind != delivery.KindFrame || r.Conversation != conv || r.Seq != wantSeq ||
			!r.Stored.Equal(stored) || r.Stored.IsZero() != stored.IsZero() || !bytes.Equal(r.Frame, want) {
			t.Fatalf("Open(Seal(%+v)) = %+v", e, r)
		}
		if _, err := c.Open(delivery.UserTopic(to+"x"), msgs[0].Payload); !errors.Is(err, delivery.ErrForged) {
			t.Fatalf("an envelope for %q opened on another user's topic: %v", to, err)
		}
		if flip == 0 {
			flip = 1 // a change, not a no-op
		}
		changed := bytes.Clone(msgs[0].Payload)
		changed[pos%uint(len(changed))] ^= flip
		if r, err := c.Open(msgs[0].Topic, changed); err == nil {
			t.Fatalf("an envelope with byte %d changed opened: %+v", pos%uint(len(changed)), r)
		}
	})
}
