package realtime

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// A shared envelope reaches every local connection of the users it names,
// in their conversation's order, and no one else's; recipients on other
// replicas are skipped.
func TestSharedEnvelopeReachesTheUsersItNames(t *testing.T) {
	h := &Hub{opts: Options{WriteWait: time.Second, SendQueue: 16}, log: slog.New(slog.DiscardHandler), metrics: metrics.New(),
		users: map[string]map[*conn]struct{}{}, codec: testCodec}
	a1, a2, b, outsider := testConn(h, "u_a"), testConn(h, "u_a"), testConn(h, "u_b"), testConn(h, "u_z")
	h.users["u_a"] = map[*conn]struct{}{a1: {}, a2: {}}
	h.users["u_b"] = map[*conn]struct{}{b: {}}
	h.users["u_z"] = map[*conn]struct{}{outsider: {}}
	for _, c := range []*conn{a1, a2, b, outsider} {
		c.order = map[string]*convOrder{"c_1": {next: 1}} // positioned: seq 1 is the next to send
	}

	shared := delivery.NewCodec(testAuth{}, nil)
	shared.SetSharedMin(2)
	msgs, err := shared.Seal(delivery.Event{To: []string{"u_a", "u_b", "u_elsewhere"},
		Frame:        protocol.MessageFrame{Message: &protocol.Message{ID: "m_1", ConversationID: "c_1", Seq: 1}},
		Conversation: "c_1", Seq: 1, Stored: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 {
		t.Fatalf("sealed %d envelopes, want 1", len(msgs))
	}
	h.HandlePublication(msgs[0].Topic, msgs[0].Payload)
	for name, c := range map[string]*conn{"u_a's first": a1, "u_a's second": a2, "u_b's": b} {
		got := c.take()
		if len(got) != 1 || got[0].conv != "c_1" || got[0].seq != 1 {
			t.Errorf("%s connection got %+v, want the message at c_1 seq 1", name, got)
		}
	}
	if got := outsider.take(); len(got) != 0 {
		t.Errorf("a user the envelope does not name got %d frames", len(got))
	}
	// Moved to another shared topic by someone who can write to Redis: dropped.
	other := "s:0"
	if msgs[0].Topic == other {
		other = "s:1"
	}
	h.HandlePublication(other, msgs[0].Payload)
	if n := testutilCount(h.metrics, "forged"); n != 1 {
		t.Errorf("rejected as forged: %v, want 1", n)
	}
	if got := a1.take(); len(got) != 0 {
		t.Errorf("a moved envelope was delivered: %+v", got)
	}
}

func testutilCount(m *metrics.Metrics, reason string) float64 {
	return testutil.ToFloat64(m.BackplaneRejected.WithLabelValues(reason))
}

// The connection limit is exported beside the connection count, so an
// alert can compare the two per pod.
func TestConnectionsLimitExported(t *testing.T) {
	m := metrics.New()
	NewHub(Config{Options: Options{MaxConnections: 7}, Logger: slog.New(slog.DiscardHandler), Metrics: m, Codec: testCodec})
	if got := testutil.ToFloat64(m.ConnectionsLimit); got != 7 {
		t.Errorf("parley_ws_connections_limit = %v, want 7", got)
	}
	m = metrics.New()
	NewHub(Config{Logger: slog.New(slog.DiscardHandler), Metrics: m, Codec: testCodec})
	if got := testutil.ToFloat64(m.ConnectionsLimit); got != 10000 {
		t.Errorf("parley_ws_connections_limit = %v with the default, want 10000", got)
	}
}
