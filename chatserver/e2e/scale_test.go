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

// Stop Redis for 10 s under traffic, then start it again. While it is down
// sends are still stored and acked (readyz says degraded), a reader on the
// senders' replica still gets every message live, and a reader on the
// other replica learns of them through positioning (docs/api.md, "What an
// ack guarantees"); once Redis is back every replica tells its clients to
// resync. At the end both readers hold exactly the acked messages, each
// stored once with seqs 1..N. Acks/s and ack latency before, during and after
// are printed (FIGURES), not asserted: they are figures for the docs.
func TestRedisRestartUnderTraffic(t *testing.T) {
	skipShort(t)
	const phase, outage = 5 * time.Second, 10 * time.Second
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r1, r2 := c.start(), c.start()
	live := newLiveBases(r1, r2)
	alice, bob := r1.Register("alice"), r1.Register("bob")
	conv := alice.Direct(bob)

	// Bob has one device on the senders' replica and one on the other.
	same := newDocClient("bob@r1", bob, r1.Base, live.get)
	other := newDocClient("bob@r2", bob, r2.Base, live.get)
	senders := []*docClient{newDocClient("alice@r1#1", alice, r1.Base, live.get), newDocClient("alice@r1#2", alice, r1.Base, live.get)}
	startClients(t, append([]*docClient{same, other}, senders...)...)

	log := newAckLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Add(1)
		go func() { defer wg.Done(); s.sendLoop(conv.ID, fmt.Sprint("a", i), log, 0, stop) }()
	}
	t0 := time.Now()
	time.Sleep(phase)
	redis.stop()
	down := time.Now()
	time.Sleep(1200 * time.Millisecond)
	code, body := r1.ready()
	must(t, code == http.StatusOK && strings.Contains(body, `"degraded"`), "readyz with Redis down: %d %s", code, body)
	time.Sleep(outage - time.Since(down))
	redis.start()
	up := time.Now()
	time.Sleep(phase)
	close(stop)
	wg.Wait()
	end := time.Now()

	// Every replica asks its clients to resync once Redis is back.
	deadline := time.Now().Add(20 * time.Second)
	for resynced := false; !resynced; {
		for _, at := range other.stats().resyncAt {
			resynced = resynced || at.After(up)
		}
		must(t, resynced || time.Now().Before(deadline), "bob@r2 was not asked to resync after Redis came back")
		time.Sleep(50 * time.Millisecond)
	}
	acked := log.snapshot()
	settle, complete := waitAll([]*docClient{same, other}, conv.ID, acked, 15*time.Second)

	// Figures by ack time; latency from the first attempt to the ack.
	type window struct {
		name     string
		from, to time.Time
		lat      []time.Duration
		sameLag  []time.Duration // ack -> the reader on the senders' replica has it
		otherLag []time.Duration // ack -> the reader on the other replica has it
	}
	ws := []*window{{name: "before", from: t0, to: down}, {name: "during (Redis stopped)", from: down, to: up},
		{name: "after", from: up, to: end}}
	var lateSame, lateOther []string
	for id := range acked {
		rec := log.rec(id)
		for _, w := range ws {
			if rec.acked.Before(w.from) || !rec.acked.Before(w.to) {
				continue
			}
			w.lat = append(w.lat, rec.acked.Sub(rec.first))
			if fs := same.firstSeen(conv.ID, id); !fs.IsZero() {
				w.sameLag = append(w.sameLag, fs.Sub(rec.acked))
			}
			if fs := other.firstSeen(conv.ID, id); !fs.IsZero() {
				w.otherLag = append(w.otherLag, fs.Sub(rec.acked))
			}
		}
		if rec.acked.Before(down) || !rec.acked.Before(up) {
			continue
		}
		// Live on the same replica: positioning needs at least one 2 s
		// interval, so under 2 s is the live path (milliseconds here). Only
		// sends begun after Redis was dead: an earlier one may have been
		// handed to Redis just before it died.
		if fs := same.firstSeen(conv.ID, id); rec.first.After(down) && (fs.IsZero() || fs.Sub(rec.acked) >= 2*time.Second) {
			lateSame = append(lateSame, fmt.Sprintf("%s acked %.1f s into the outage, reached bob@r1 after %v",
				id, rec.acked.Sub(down).Seconds(), fs.Sub(rec.acked)))
		}
		// Other replica: through positioning, within its bound (only for
		// messages acked early enough for the bound to end before Redis
		// came back).
		if rec.acked.Add(positionBound + positionSlack).Before(up) {
			if fs := other.firstSeen(conv.ID, id); fs.IsZero() || fs.Sub(rec.acked) > positionBound+positionSlack {
				lateOther = append(lateOther, fmt.Sprintf("%s acked %.1f s into the outage, reached bob@r2 after %v",
					id, rec.acked.Sub(down).Seconds(), fs.Sub(rec.acked)))
			}
		}
	}
	resyncs := func(d *docClient, w *window) int {
		n := 0
		for _, at := range d.stats().resyncAt {
			if !at.Before(w.from) && at.Before(w.to) {
				n++
			}
		}
		return n
	}
	for _, w := range ws {
		secs := w.to.Sub(w.from).Seconds()
		slow := 0
		for _, l := range w.lat {
			if l > 100*time.Millisecond {
				slow++
			}
		}
		t.Logf("FIGURES: redis outage, 2 replicas, 2 closed-loop WS senders on r1: %s (%.1f s): %d acks, %.0f acks/s, "+
			"ack latency p50 %v p99 %v max %v, %d over 100 ms; reader on r1 gets it p50 %v max %v after the ack (%d resyncs), reader on r2 p50 %v max %v (%d resyncs)",
			w.name, secs, len(w.lat), float64(len(w.lat))/secs,
			percentile(w.lat, 50).Round(100*time.Microsecond), percentile(w.lat, 99).Round(100*time.Microsecond),
			percentile(w.lat, 100).Round(100*time.Microsecond), slow,
			percentile(w.sameLag, 50).Round(100*time.Microsecond), percentile(w.sameLag, 100).Round(time.Millisecond), resyncs(same, w),
			percentile(w.otherLag, 50).Round(time.Millisecond), percentile(w.otherLag, 100).Round(time.Millisecond), resyncs(other, w))
	}
	for _, d := range []*docClient{same, other} {
		s := d.stats()
		t.Logf("%s: %d connections, %d message frames, %d duplicates, %d resync (+%d naming the conversation); complete %.2f s after the last ack",
			d.name, s.connects, s.messages, s.dups, s.resyncAll, s.resyncConv, settle.Seconds())
	}

	must(t, len(log.fails()) == 0, "sends failed: %v", log.fails())
	must(t, len(ws[1].lat) > 0, "no send was acked while Redis was down")
	must(t, len(ws[2].lat) > 0, "no send was acked after Redis came back")
	must(t, len(lateSame) == 0, "the reader on the senders' replica did not get %d messages live during the outage, e.g. %s",
		len(lateSame), strings.Join(lateSame[:min(len(lateSame), 5)], "; "))
	must(t, len(lateOther) == 0, "the reader on the other replica missed the positioning bound for %d messages acked during the outage, e.g. %s",
		len(lateOther), strings.Join(lateOther[:min(len(lateOther), 5)], "; "))
	must(t, complete, "the readers did not end complete")
	for _, d := range append([]*docClient{same, other}, senders...) {
		d.close()
		checkExact(t, d, conv.ID, acked)
	}
	checkStore(t, r2.Base, bob.Token, conv.ID, acked)
	deadline = time.Now().Add(10 * time.Second)
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
