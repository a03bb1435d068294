package e2e

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/protocol"
)

const wait = 10 * time.Second

// Devices of one user spread over replicas all receive; group messages reach
// every member; presence and typing cross replicas; a user's rate limit holds
// across replicas. With 2 and with 3 replicas.
func TestAcrossReplicas(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d replicas", n), func(t *testing.T) {
			redis := startRedis(t)
			c := newCluster(t, chattest.PostgresDatabase(t), redis.url(), "PARLEY_RATE_MESSAGES=6/1m")
			rs := make([]*replica, n)
			for i := range rs {
				rs[i] = c.start()
			}
			alice := rs[0].Register("alice")
			bob := rs[1].Register("bob")
			carol := rs[n-1].Register("carol")

			conv := bob.Direct(alice) // presence goes to people who share a conversation
			// Alice has one device per replica; Bob sits on the last one.
			var aliceDevs []*chattest.WS
			for _, r := range rs {
				aliceDevs = append(aliceDevs, alice.On(r.API).Dial())
			}
			bobWS := bob.On(rs[n-1].API).Dial()

			// A ticket bought on one replica is redeemed on another, once.
			tk := alice.On(rs[0].API).Ticket()
			w, _, err := rs[1].DialRaw("?ticket="+tk, nil)
			must(t, err == nil && w.Next(wait).Type == "ready", "ticket from replica 0 refused by replica 1: %v", err)
			_, res, err := rs[0].DialRaw("?ticket="+tk, nil)
			must(t, err != nil && res != nil && res.StatusCode == http.StatusUnauthorized, "ticket redeemed twice: %v", err)
			w.Conn.Close()
			p := aliceDevs[0].WaitFor("presence", wait)
			must(t, p.UserID == bob.User.ID && p.Status == "online", "presence across replicas: %+v", p)

			bobWS.SendMsg("b1", conv.ID, "b1", "to all of alice's devices")
			ack := bobWS.WaitFor("ack", wait)
			for _, d := range aliceDevs {
				d.WaitForMessage(ack.Message.ID, wait)
			}

			bobWS.Write(map[string]string{"type": "typing", "conversationId": conv.ID})
			for i, d := range aliceDevs {
				f := d.WaitFor("typing", wait)
				must(t, f.UserID == bob.User.ID, "typing on replica %d: %+v", i, f)
			}

			g := alice.Group("trio", bob, carol)
			carolWS := carol.On(rs[0].API).Dial()
			m := alice.On(rs[n-1].API).Send(g.ID, "hello trio")
			bobWS.WaitForMessage(m.ID, wait)
			carolWS.WaitForMessage(m.ID, wait)
			for _, d := range aliceDevs {
				d.WaitForMessage(m.ID, wait)
			}

			// 6 messages a minute for Carol, whichever replica she uses.
			cc := bob.On(rs[0].API).Direct(carol)
			sent := 0
			for i := 0; i < 6; i++ {
				r := carol.On(rs[i%n].API).Do("POST", "/api/v1/conversations/"+cc.ID+"/messages", map[string]string{"body": fmt.Sprint("c", i)})
				must(t, r.Status == http.StatusCreated, "message %d on replica %d: %d %s", i, i%n, r.Status, r.Body)
				sent++
			}
			for i := range rs {
				r := carol.On(rs[i].API).Do("POST", "/api/v1/conversations/"+cc.ID+"/messages", map[string]string{"body": "one too many"})
				must(t, r.Status == http.StatusTooManyRequests, "replica %d let a 7th message through: %d", i, r.Status)
			}
		})
	}
}

// collector follows one user's messages in one conversation the way a client
// does: live frames plus cursor syncs after reconnects, de-duplicated by id.
type collector struct {
	mu     sync.Mutex
	seen   map[string]int64 // id -> seq
	dups   int              // frames for a message already seen at a seq below the cursor sent
	cursor int64
}

func newCollector() *collector { return &collector{seen: map[string]int64{}} }

func (c *collector) add(m *protocol.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[m.ID] = m.Seq
	for {
		found := false
		for _, s := range c.seen {
			if s == c.cursor+1 {
				c.cursor++
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
}

// drain reads frames until the socket closes or stop is closed.
func (c *collector) drain(w *chattest.WS, stop <-chan struct{}) {
	for {
		select {
		case f, ok := <-w.Frames:
			if !ok {
				return
			}
			if f.Type == "message" && f.Message != nil {
				c.add(f.Message)
			}
		case <-stop:
			return
		}
	}
}

// syncFrom reconnects user to r and syncs from the collector's cursor; every
// message the sync returns must be above the cursor (no duplicates).
func (c *collector) syncFrom(t *testing.T, w *chattest.WS, convID string) {
	t.Helper()
	c.mu.Lock()
	cur := c.cursor
	c.mu.Unlock()
	w.Sync("s", map[string]int64{convID: cur})
	for {
		f := w.Next(wait)
		switch f.Type {
		case "message":
			if f.Message.Seq <= cur {
				c.mu.Lock()
				c.dups++
				c.mu.Unlock()
			}
			c.add(f.Message)
		case "synced":
			return
		}
	}
}

type sender struct {
	mu    sync.Mutex
	acked map[string]int64
}

func (s *sender) ack(m *protocol.Message) {
	s.mu.Lock()
	s.acked[m.ID] = m.Seq
	s.mu.Unlock()
}

// sendLoop sends n messages over ws, one at a time (waiting for each ack or
// error), and records acked ones. It stops early if the socket dies.
func (s *sender) sendLoop(w *chattest.WS, convID, prefix string, n int, pause time.Duration) {
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", prefix, i)
		if err := w.Conn.WriteJSON(map[string]any{"type": "send", "id": id, "conversationId": convID, "clientId": id, "body": id}); err != nil {
			return
		}
		timeout := time.After(wait)
	await:
		for {
			select {
			case f, ok := <-w.Frames:
				if !ok {
					return
				}
				if f.ID == id && f.Type == "ack" {
					s.ack(f.Message)
					break await
				}
				if f.ID == id && f.Type == "error" {
					break await
				}
			case <-timeout:
				return
			}
		}
		time.Sleep(pause)
	}
}

// checkExactlyOnce: every acked message is stored exactly once, seqs are
// 1..N with no gap, and the collector saw every stored message, none twice.
func checkExactlyOnce(t *testing.T, reader *chattest.Client, convID string, s *sender, col *collector) {
	t.Helper()
	var stored []protocol.Message
	for after := int64(0); ; {
		page := reader.History(convID, after)
		stored = append(stored, page...)
		if len(page) < 200 {
			break
		}
		after = page[len(page)-1].Seq
	}
	ids, bodies := map[string]bool{}, map[string]bool{}
	for i, m := range stored {
		must(t, m.Seq == int64(i+1), "stored seq %d at position %d: gap", m.Seq, i)
		must(t, !bodies[m.Body], "message %q stored twice", m.Body) // bodies are unique per send
		ids[m.ID], bodies[m.Body] = true, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.acked {
		must(t, ids[id], "acked message %s is not stored", id)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	must(t, col.dups == 0, "%d messages delivered twice by sync", col.dups)
	var missing []int64
	for _, m := range stored {
		if _, ok := col.seen[m.ID]; !ok {
			missing = append(missing, m.Seq)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	must(t, len(missing) == 0, "the reader never got seqs %v", missing)
	t.Logf("%d acked, %d stored, all delivered once", len(s.acked), len(stored))
}

// kill -9 one replica under traffic: its clients reconnect to another and,
// through cursor sync, miss nothing and see nothing twice; every acked message
// is in the database exactly once.
func TestKillReplicaUnderTraffic(t *testing.T) {
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r1, r2 := c.start(), c.start()
	alice, bob := r1.Register("alice"), r1.Register("bob")
	conv := alice.Direct(bob)

	col := newCollector()
	bobOnR1 := bob.On(r1.API).Dial()
	stopDrain := make(chan struct{})
	drained := make(chan struct{})
	go func() { col.drain(bobOnR1, stopDrain); close(drained) }()

	s := &sender{acked: map[string]int64{}}
	var wg sync.WaitGroup
	// Alice sends from both replicas; the one on r1 dies with it.
	wg.Add(2)
	go func() { defer wg.Done(); s.sendLoop(alice.On(r1.API).Dial(), conv.ID, "r1", 150, 5*time.Millisecond) }()
	go func() { defer wg.Done(); s.sendLoop(alice.On(r2.API).Dial(), conv.ID, "r2", 150, 5*time.Millisecond) }()

	time.Sleep(300 * time.Millisecond)
	r1.kill9()
	<-drained // bob's socket on r1 is gone
	must(t, bobOnR1.ClosedWith(wait) != 0, "closed")

	bobOnR2 := bob.On(r2.API).Dial()
	col.syncFrom(t, bobOnR2, conv.ID)
	go col.drain(bobOnR2, stopDrain)
	wg.Wait()
	time.Sleep(200 * time.Millisecond)
	close(stopDrain)
	// a final sync, as a client does after any doubt
	final := bob.On(r2.API).Dial()
	col.syncFrom(t, final, conv.ID)
	checkExactlyOnce(t, bob.On(r2.API), conv.ID, s, col)
}

// Restart Redis under traffic: sends are still stored and acked while it is
// down (readyz says degraded), and once it is back every replica tells its
// clients to resync, so nothing is missed and nothing arrives twice.
func TestRedisRestartUnderTraffic(t *testing.T) {
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r1, r2 := c.start(), c.start()
	alice, bob := r1.Register("alice"), r1.Register("bob")
	conv := alice.Direct(bob)

	col := newCollector()
	bobWS := bob.On(r2.API).Dial()
	resynced := make(chan struct{}, 4)
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case f, ok := <-bobWS.Frames:
				if !ok {
					return
				}
				switch f.Type {
				case "message":
					col.add(f.Message)
				case "resync":
					resynced <- struct{}{}
				}
			case <-stop:
				return
			}
		}
	}()

	s := &sender{acked: map[string]int64{}}
	aliceWS := alice.On(r1.API).Dial()
	done := make(chan struct{})
	go func() { s.sendLoop(aliceWS, conv.ID, "a", 120, 20*time.Millisecond); close(done) }()

	time.Sleep(400 * time.Millisecond)
	redis.stop()
	time.Sleep(1200 * time.Millisecond)
	code, body := r1.ready()
	must(t, code == http.StatusOK && strings.Contains(body, `"degraded"`), "readyz with Redis down: %d %s", code, body)
	s.mu.Lock()
	ackedDuring := len(s.acked)
	s.mu.Unlock()
	redis.start()

	select {
	case <-resynced:
	case <-time.After(20 * time.Second):
		t.Fatal("bob was not asked to resync after Redis came back")
	}
	<-done
	close(stop)
	s.mu.Lock()
	must(t, len(s.acked) > ackedDuring, "no sends acked after the restart")
	s.mu.Unlock()
	final := bob.On(r2.API).Dial()
	col.syncFrom(t, final, conv.ID)
	checkExactlyOnce(t, bob.On(r2.API), conv.ID, s, col)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body = r1.ready()
		if strings.Contains(body, `"status":"ok"`) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	must(t, code == http.StatusOK && strings.Contains(body, `"status":"ok"`), "readyz after Redis is back: %d %s", code, body)
}

// Stop PostgreSQL: sends fail with a clear error and are not acked, nothing is
// half-written; start it again: traffic resumes without restarting us.
func TestPostgresOutage(t *testing.T) {
	pg := startPrivatePostgres(t)
	c := newCluster(t, pg.url, "")
	r := c.start()
	alice, bob := r.Register("alice"), r.Register("bob")
	conv := alice.Direct(bob)
	alice.Send(conv.ID, "before")
	w := alice.Dial()

	pg.stop()
	res := alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]string{"body": "during", "clientId": "during-rest"})
	must(t, res.Status == http.StatusServiceUnavailable && res.Code() == "unavailable", "REST send with PostgreSQL down: %d %s", res.Status, res.Body)
	w.SendMsg("d1", conv.ID, "during-ws", "during")
	f := w.WaitFor("error", wait)
	must(t, f.ID == "d1" && f.Code == "unavailable", "WS send with PostgreSQL down: %+v", f)
	code, _ := r.ready()
	must(t, code == http.StatusServiceUnavailable, "readyz with PostgreSQL down: %d", code)

	pg.start()
	var last chattest.Resp
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		last = alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]string{"body": "after", "clientId": "after"})
		if last.Status == http.StatusCreated {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	must(t, last.Status == http.StatusCreated, "send after PostgreSQL is back: %d %s", last.Status, last.Body)
	msgs := bob.History(conv.ID, 0)
	var bodies []string
	for i, m := range msgs {
		must(t, m.Seq == int64(i+1), "seq gap: %+v", msgs)
		bodies = append(bodies, m.Body)
	}
	must(t, strings.Join(bodies, ",") == "before,after", "stored %v, want exactly the acked messages", bodies)
	code, _ = r.ready()
	must(t, code == http.StatusOK, "readyz after recovery: %d", code)
}
