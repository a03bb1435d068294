package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// positionBound is docs/api.md's bound for learning of a lost live frame
// with no later message: 2 × position interval + delivery hold at the
// defaults. positionSlack allows for a loaded 2-core test machine (and for
// the sync round trip that follows the resync); the bound itself is a
// functional guarantee, so it is asserted.
const (
	positionBound = 4500 * time.Millisecond
	positionSlack = time.Second
)

// exactnessDuration is how long senders run in TestExactnessAcrossReplicas:
// 30 s, or PARLEY_EXACTNESS_DURATION (e.g. 60s) for a longer soak.
func exactnessDuration(t *testing.T) time.Duration {
	v := os.Getenv("PARLEY_EXACTNESS_DURATION")
	if v == "" {
		return 30 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 10*time.Minute {
		t.Fatalf("PARLEY_EXACTNESS_DURATION=%q: want a duration up to 10m", v)
	}
	return d
}

// skipShort skips a test that runs real replicas with PostgreSQL and Redis
// for seconds: -short is for the fast tests.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: replicas, PostgreSQL and Redis under traffic for seconds")
	}
}

// startClients starts every client and waits until each has a connection.
func startClients(t *testing.T, clients ...*docClient) {
	t.Helper()
	for _, d := range clients {
		if err := d.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.close)
	}
	for _, d := range clients {
		must(t, d.waitConnected(10*time.Second), "%s did not connect", d.name)
	}
}

// exited returns a channel closed when r's current process has ended (for a
// replica that is expected to kill itself).
func exited(r *replica) <-chan struct{} {
	ch := make(chan struct{})
	cmd := r.cmd
	go func() { cmd.Wait(); close(ch) }()
	return ch
}

// postMessage sends over REST and returns the status and the message.
func postMessage(base, token, convID, clientID, body string) (int, *docMessage, error) {
	status, raw, err := httpDo("POST", base+"/api/v1/conversations/"+convID+"/messages", token,
		map[string]string{"clientId": clientID, "body": body})
	if err != nil {
		return 0, nil, err
	}
	var m docMessage
	if status == http.StatusOK || status == http.StatusCreated {
		if err := json.Unmarshal(raw, &m); err != nil {
			return status, nil, err
		}
	}
	return status, &m, nil
}

// Senders on two replicas and readers on all three, in one group, for 30 s:
// readers drop their connections at random moments and reconnect to random
// replicas; senders retry through lost connections with the same clientId.
// At the end every client holds exactly the acked messages, none arrived out
// of order or over a hole, and the store holds exactly the acked messages
// with seqs 1..N.
func TestExactnessAcrossReplicas(t *testing.T) {
	skipShort(t)
	dur := exactnessDuration(t)
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	rs := []*replica{c.start(), c.start(), c.start()}
	live := newLiveBases(rs...)

	const nSenders, nReaders = 4, 6
	var senderUsers, readerUsers []*chattest.Client
	for i := 0; i < nSenders; i++ {
		senderUsers = append(senderUsers, rs[i%3].Register(fmt.Sprintf("sender%d", i)))
	}
	for i := 0; i < nReaders; i++ {
		readerUsers = append(readerUsers, rs[i%3].Register(fmt.Sprintf("reader%d", i)))
	}
	g := senderUsers[0].Group("exactness", append(senderUsers[1:], readerUsers...)...)

	// Senders: two on r0, two on r1. Readers: two per replica, each dropping
	// its connection every 0.3 to 3 s.
	var senders, readers []*docClient
	for i, u := range senderUsers {
		r := rs[i%2]
		senders = append(senders, newDocClient(fmt.Sprintf("sender%d@%d", i, r.port), u, r.Base, live.get))
	}
	for i, u := range readerUsers {
		r := rs[i%3]
		readers = append(readers, newDocClient(fmt.Sprintf("reader%d@%d", i, r.port), u, r.Base, live.get).
			withChaos(300*time.Millisecond, 3*time.Second))
	}
	all := append(append([]*docClient(nil), senders...), readers...)
	startClients(t, all...)

	log := newAckLog()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	sent := make([]int, nSenders)
	begin := time.Now()
	for i, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// 2% of sends lose their connection before the ack: the retry
			// with the same clientId must return the stored message.
			sent[i] = s.sendLoop(g.ID, fmt.Sprintf("s%d", i), log, 0.02, stop)
		}()
	}
	time.Sleep(dur)
	close(stop)
	wg.Wait() // each sender finishes its message in flight (bounded by send's give-up)
	traffic := time.Since(begin)
	for _, d := range readers {
		d.calm()
	}
	acked := log.snapshot()
	settle, ok := waitAll(all, g.ID, acked, 15*time.Second)

	var conns, chaos, failed, msgs, dups, ooo, holes, ahead, rsAll, rsConv, syncs int
	for _, d := range all {
		s := d.stats()
		t.Logf("%s: %d connections (%d dropped on purpose, %d failed attempts), %d message frames, %d duplicates, %d resync (+%d naming the group), closes %v",
			d.name, s.connects, s.chaos, s.failed, s.messages, s.dups, s.resyncAll, s.resyncConv, s.closes)
		conns += s.connects
		chaos += s.chaos
		failed += s.failed
		msgs += s.messages
		dups += s.dups
		ooo += s.outOfOrder
		holes += s.holes
		ahead += s.ahead
		rsAll += s.resyncAll
		rsConv += s.resyncConv
		syncs += s.syncs
	}
	t.Logf("FIGURES: exactness, 3 replicas, %d closed-loop senders on 2 replicas, %d readers dropping connections every 0.3-3 s: "+
		"%d messages acked in %.1f s (%.0f/s), %d sends retried with the same clientId; %d reconnects (%d dropped on purpose), "+
		"%d message frames (%d duplicates), %d out of order, %d holes, %d resync frames without conversationId and %d naming it, %d syncs; "+
		"all clients complete %.2f s after the last ack (settled=%v)",
		nSenders, nReaders, len(acked), traffic.Seconds(), float64(len(acked))/traffic.Seconds(), log.retries,
		conns-len(all), chaos, msgs, dups, ooo, holes, rsAll, rsConv, syncs, settle.Seconds(), ok)

	for _, d := range all {
		d.close()
	}
	must(t, len(log.fails()) == 0, "sends failed:\n  %s", strings.Join(log.fails(), "\n  "))
	must(t, len(acked) >= 500, "only %d messages acked in %v: the test did not load the cluster (sent per sender %v)", len(acked), dur, sent)
	for _, d := range all {
		checkExact(t, d, g.ID, acked)
	}
	checkStore(t, rs[2].Base, readerUsers[0].Token, g.ID, acked)
}

// kill -9 right after a message is committed, before it is published or
// acked (fault kill-after-store): the client gets no answer and retries the
// same clientId on a survivor, which answers with the stored message (200 on
// REST, an ack on the WebSocket) and publishes it again. Readers that stay
// connected to the survivors get it within the positioning bound (live from
// the retry's publish, or through positioning), in order; a reader that was
// on the dead replica reconnects and catches up.
func TestKillAfterStore(t *testing.T) {
	skipShort(t)
	const n = 5 // the fault fires on the 5th message the replica stores
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r1 := c.start(fmt.Sprintf("PARLEY_FAULTS=kill-after-store@%d", n))
	r2, r3 := c.start(), c.start()
	live := newLiveBases(r1, r2, r3)
	alice, bob, carol, dave := r2.Register("alice"), r2.Register("bob"), r3.Register("carol"), r1.Register("dave")
	g := alice.Group("crash", bob, carol, dave)

	steady := []*docClient{newDocClient("bob@r2", bob, r2.Base, live.get), newDocClient("carol@r3", carol, r3.Base, live.get)}
	roaming := newDocClient("dave@r1", dave, r1.Base, live.get)
	readers := append(append([]*docClient(nil), steady...), roaming)
	startClients(t, readers...)
	acked := map[string]int64{}

	// REST: n-1 messages through r1, then the n-th kills it.
	for i := 1; i < n; i++ {
		status, m, err := postMessage(r1.Base, alice.Token, g.ID, fmt.Sprintf("rest-%d", i), fmt.Sprint("rest ", i))
		must(t, err == nil && status == http.StatusCreated, "REST send %d through r1: %d %v", i, status, err)
		acked[m.ID] = m.Seq
	}
	gone := exited(r1)
	stored := time.Now()
	status, _, err := postMessage(r1.Base, alice.Token, g.ID, fmt.Sprintf("rest-%d", n), fmt.Sprint("rest ", n))
	must(t, err != nil, "REST send %d through r1 was answered (%d): the fault should have killed r1 before the answer", n, status)
	select {
	case <-gone:
	case <-time.After(10 * time.Second):
		t.Fatal("r1 did not die on kill-after-store")
	}
	r1.dead = true
	live.set(r1.Base, false)
	status, m, err := postMessage(r2.Base, alice.Token, g.ID, fmt.Sprintf("rest-%d", n), fmt.Sprint("rest ", n))
	must(t, err == nil && status == http.StatusOK && m.Seq == n, "retry of clientId rest-%d on r2: %d %+v %v, want 200 with the stored seq %d", n, status, m, err, n)
	retried := time.Now()
	acked[m.ID] = m.Seq
	_, ok := waitAll(steady, g.ID, acked, positionBound+positionSlack+5*time.Second)
	must(t, ok, "readers on the survivors did not get the message stored before the crash")
	for _, d := range steady {
		fs := d.firstSeen(g.ID, m.ID)
		t.Logf("FIGURES: kill-after-store over REST: %s had seq %d %.3f s after the crashing send began, %.3f s after the retry was answered",
			d.name, n, fs.Sub(stored).Seconds(), fs.Sub(retried).Seconds())
		must(t, fs.Sub(stored) <= positionBound+positionSlack, "%s got seq %d %.2f s after it was stored (bound %v + %v slack)",
			d.name, n, fs.Sub(stored).Seconds(), positionBound, positionSlack)
	}

	// WebSocket: r1 again (the fault counts per process), a sender on it.
	r1.run()
	live.set(r1.Base, true)
	sender := newDocClient("alice@r1", alice, r1.Base, live.get)
	startClients(t, sender)
	log := newAckLog()
	gone = exited(r1)
	var crashID string
	var crashSent time.Time
	for i := 1; i <= n+3; i++ {
		id := fmt.Sprintf("ws-%d", i)
		if i == n {
			crashSent = time.Now()
		}
		m, ok := sender.send(g.ID, id, "ws "+id, log, 0, 30*time.Second)
		must(t, ok, "WS send %s was never acked: %v", id, log.fails())
		acked[m.ID] = m.Seq
		if i == n {
			crashID = m.ID
			select {
			case <-gone:
			case <-time.After(5 * time.Second):
				t.Fatal("r1 did not die on kill-after-store (WS)")
			}
			r1.dead = true
			live.set(r1.Base, false)
			rec := log.rec(m.ID)
			must(t, rec.attempts > 1, "%s was acked on its first attempt, through the replica that died storing it", id)
		}
	}
	_, ok = waitAll(steady, g.ID, acked, positionBound+positionSlack+5*time.Second)
	must(t, ok, "readers on the survivors did not get every WS message")
	for _, d := range steady {
		fs := d.firstSeen(g.ID, crashID)
		t.Logf("FIGURES: kill-after-store over WS: %s had the crashed message %.3f s after its first send (ack after %d attempts)",
			d.name, fs.Sub(crashSent).Seconds(), log.rec(crashID).attempts)
		must(t, fs.Sub(crashSent) <= positionBound+positionSlack, "%s got the crashed message %.2f s after its send",
			d.name, fs.Sub(crashSent).Seconds())
	}
	_, ok = waitAll([]*docClient{roaming, sender}, g.ID, acked, positionBound+positionSlack+5*time.Second)
	must(t, ok, "the reconnecting clients did not catch up")
	for _, d := range steady {
		s := d.stats()
		must(t, s.connects == 1, "%s reconnected (%d connections): it was on a survivor", d.name, s.connects)
	}
	for _, d := range append(readers, sender) {
		d.close()
		checkExact(t, d, g.ID, acked)
	}
	must(t, len(log.fails()) == 0, "sends failed: %v", log.fails())
	checkStore(t, r2.Base, bob.Token, g.ID, acked)
}

// A message is acked but its live publish is lost (fault drop-publish), and
// the replica that stored it is killed with SIGKILL right after the ack: no
// later message reveals the hole. Readers that stay connected elsewhere get a
// resync for the conversation through positioning and have the message
// within the documented bound.
func TestDropPublishThenKill(t *testing.T) {
	skipShort(t)
	const n = 4 // the 4th message stored by r1 is acked but not published
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r1 := c.start(fmt.Sprintf("PARLEY_FAULTS=drop-publish@%d", n))
	r2, r3 := c.start(), c.start()
	live := newLiveBases(r1, r2, r3)
	alice, bob, carol := r1.Register("alice"), r2.Register("bob"), r3.Register("carol")
	g := alice.Group("lost publish", bob, carol)

	steady := []*docClient{newDocClient("bob@r2", bob, r2.Base, live.get), newDocClient("carol@r3", carol, r3.Base, live.get)}
	sender := newDocClient("alice@r1", alice, r1.Base, live.get)
	startClients(t, append(steady, sender)...)
	log := newAckLog()
	acked := map[string]int64{}
	var lost *docMessage
	for i := 1; i <= n; i++ {
		m, ok := sender.send(g.ID, fmt.Sprint("m-", i), fmt.Sprint("message ", i), log, 0, 10*time.Second)
		must(t, ok, "send %d not acked: %v", i, log.fails())
		acked[m.ID] = m.Seq
		lost = m
		if i < n {
			// The earlier messages arrive live, so the readers follow the
			// conversation when the lost one comes.
			_, ok := waitAll(steady, g.ID, acked, 5*time.Second)
			must(t, ok, "message %d did not arrive live", i)
		}
	}
	ackAt := log.rec(lost.ID).acked
	r1.kill9()
	live.set(r1.Base, false)
	sender.close()

	_, ok := waitAll(steady, g.ID, acked, positionBound+positionSlack+5*time.Second)
	for _, d := range steady {
		fs := d.firstSeen(g.ID, lost.ID)
		if fs.IsZero() {
			t.Errorf("%s never got seq %d (acked, publish lost, replica killed)", d.name, n)
			continue
		}
		lag := fs.Sub(ackAt)
		t.Logf("FIGURES: drop-publish then kill -9: %s had seq %d %.3f s after its ack (documented bound %v)", d.name, n, lag.Seconds(), positionBound)
		must(t, lag <= positionBound+positionSlack, "%s had seq %d %.2f s after the ack; the bound is %v (+%v slack)",
			d.name, n, lag.Seconds(), positionBound, positionSlack)
		var named bool
		for _, at := range d.resyncsFor(g.ID) {
			named = named || !at.Before(ackAt)
		}
		must(t, named, "%s got the message without a resync naming the conversation", d.name)
		must(t, d.stats().connects == 1, "%s reconnected: it was on a survivor", d.name)
	}
	must(t, ok, "readers did not end complete")
	for _, d := range steady {
		d.close()
		checkExact(t, d, g.ID, acked)
	}
	checkStore(t, r2.Base, bob.Token, g.ID, acked)
}
