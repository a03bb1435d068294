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

// benchEvent is a message of the size the server delivers for a
// 200-character body.
var benchEvent = delivery.Event{Stored: time.Now(), Frame: protocol.MessageFrame{
	Message: &protocol.Message{ID: "m_0123456789abcdefghijklmnop", ConversationID: "c_0123456789abcdefghijklmnop",
		Seq: 42, SenderID: "u_0123456789abcdefghijklmnop", ClientID: "c-0123456789",
		Body: strings.Repeat("x", 200), CreatedAt: time.Date(2026, 11, 23, 19, 0, 0, 123456000, time.UTC)}}}

// benchFrames seals benchEvent for each topic's user (each envelope is
// tagged for its topic).
func benchFrames(topics []string) [][]byte {
	e := benchEvent
	for _, t := range topics {
		u, _ := delivery.UserOf(t)
		e.To = append(e.To, u)
	}
	msgs, err := testCodec.Seal(e)
	if err != nil {
		panic(err)
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Payload
	}
	return out
}

// benchHub returns a hub holding conns connections spread over users
// accounts, with no network: each connection is its send queue.
func benchHub(users, conns int) (*Hub, []*conn, []string) {
	h := &Hub{opts: Options{WriteWait: time.Second, SendQueue: 256}, log: slog.New(slog.DiscardHandler), metrics: metrics.New(), users: map[string]map[*conn]struct{}{}, codec: testCodec}
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
			frames := benchFrames(topics)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				for j, t := range topics {
					h.HandlePublication(t, frames[j])
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
