package realtime

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// benchFrame is a message frame of the size the server delivers for a
// 200-character body.
var benchFrame, _ = delivery.Envelope(delivery.Event{Stored: time.Now(), Frame: protocol.MessageFrame{
	Message: &protocol.Message{ID: "m_0123456789abcdefghijklmnop", ConversationID: "c_0123456789abcdefghijklmnop",
		Seq: 42, SenderID: "u_0123456789abcdefghijklmnop", ClientID: "c-0123456789",
		Body: strings.Repeat("x", 200), CreatedAt: time.Date(2026, 11, 23, 19, 0, 0, 123456000, time.UTC)}}})

// benchHub returns a hub holding conns connections spread over users
// accounts, with no network: each connection is its send queue.
func benchHub(users, conns int) (*Hub, []*conn, []string) {
	h := &Hub{opts: Options{WriteWait: time.Second, SendQueue: 256}, log: slog.New(slog.DiscardHandler), metrics: metrics.New(), users: map[string]map[*conn]struct{}{}}
	var all []*conn
	topics := make([]string, users)
	for u := range users {
		topics[u] = delivery.UserTopic(fmt.Sprintf("u%d", u))
		h.users[fmt.Sprintf("u%d", u)] = map[*conn]struct{}{}
	}
	for i := range conns {
		uid := fmt.Sprintf("u%d", i%users)
		c := testConn(h, uid)
		h.users[uid][c] = struct{}{}
		all = append(all, c)
	}
	return h, all, topics
}

// BenchmarkFanout1000 delivers one frame to 1,000 local connections through
// Hub.HandlePublication, as the backplane handler does: to one account with 1,000
// devices (one call), or to a group of 1,000 members with one connection
// each (1,000 calls, one per member topic). "queue" measures the hand-off alone
// (queues drained with the timer stopped); "writers" adds one consumer
// goroutine per connection, standing in for the writer (everything but the
// socket write), and waits until all 1,000 have their frame.
func BenchmarkFanout1000(b *testing.B) {
	const n = 1000
	for _, shape := range []struct {
		name  string
		users int
	}{{"1user", 1}, {"1000users", n}} {
		b.Run(shape.name+"/queue", func(b *testing.B) {
			h, conns, topics := benchHub(shape.users, n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for _, t := range topics {
					h.HandlePublication(t, benchFrame)
				}
				if i++; i%200 == 0 {
					b.StopTimer()
					for _, c := range conns {
						c.take()
					}
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.N)*n/b.Elapsed().Seconds(), "deliveries/s")
			for _, c := range conns {
				select {
				case <-c.done:
					b.Fatal("a queue filled up: the benchmark dropped a connection")
				default:
				}
			}
		})
	}
}
