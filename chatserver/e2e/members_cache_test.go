package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// No message reaches a member removed before it was sent, with each
// replica's members cache on (it always is), across 2 replicas with
// PostgreSQL and Redis. Replica 1 caches the group's members through sends;
// Carol is then removed through replica 0, which replica 1 is not told
// about: its next sends must find out (from the membership version the
// store returns at each message's seq) and leave her out. Then removals race
// with a stream of sends: nothing sent after a removal returned reaches the
// removed member, and a member still in gets all of it live (unless told to
// catch up by sync).
//
// It runs twice: with an envelope per member (the backplane's topic of each
// user) and with one shared envelope per message naming the members at its
// seq (-shared-fanout-min 2): either way the list is decided by the sender's
// replica from the version the store returned.
func TestRemovedMemberGetsNothingAfterRemoval(t *testing.T) {
	skipShort(t)
	for _, mode := range []struct{ name, min string }{{"per-user", "0"}, {"shared", "2"}} {
		t.Run(mode.name, func(t *testing.T) { removedMemberGetsNothing(t, "PARLEY_SHARED_FANOUT_MIN="+mode.min) })
	}
}

func removedMemberGetsNothing(t *testing.T, fanout string) {
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url(), "PARLEY_RATE_MESSAGES=100000/1s", fanout)
	r0, r1 := c.start(), c.start()
	alice := r0.Register("alice")
	bob := r1.Register("bob")
	carol := r0.Register("carol")
	dave := r0.Register("dave")
	g := alice.Group("cache", bob, carol, dave)
	carolWS := carol.On(r0.API).Dial()
	daveWS := dave.On(r0.API).Dial()

	// Replica 1 caches {alice, bob, carol, dave}; Carol gets these.
	for i := range 3 {
		m := bob.On(r1.API).Send(g.ID, fmt.Sprint("before ", i))
		carolWS.WaitForMessage(m.ID, wait)
	}
	r := alice.On(r0.API).Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+carol.User.ID, nil)
	must(t, r.Status == http.StatusNoContent || r.Status == http.StatusOK, "remove carol: %d %s", r.Status, r.Body)
	carolWS.WaitFor("removed", wait)
	var after []string
	for i := range 5 {
		m := bob.On(r1.API).Send(g.ID, fmt.Sprint("after ", i))
		after = append(after, m.ID)
	}
	for _, id := range after {
		daveWS.WaitForMessage(id, wait) // delivered to those still in
	}
	carolWS.Quiet("message", 2*time.Second)

	// Racing: Bob sends through replica 1 without pause while Dave, Erin
	// and Frank (connected to both replicas) are removed one by one through
	// replica 0.
	erin, frank := r1.Register("erin"), r0.Register("frank")
	for _, u := range []*chattest.Client{erin, frank} {
		r := alice.On(r0.API).Do("POST", "/api/v1/conversations/"+g.ID+"/members", map[string]string{"userId": u.User.ID})
		must(t, r.Status == http.StatusOK || r.Status == http.StatusCreated, "add %s: %d %s", u.User.Username, r.Status, r.Body)
	}
	aliceWS := alice.On(r1.API).Dial()
	type seen struct {
		mu      sync.Mutex
		ids     map[string]bool
		resyncs int
	}
	watch := func(w *chattest.WS) *seen {
		s := &seen{ids: map[string]bool{}}
		go func() {
			for f := range w.Frames {
				s.mu.Lock()
				switch {
				case f.Type == "message" && f.Message != nil:
					s.ids[f.Message.ID] = true
				case f.Type == "resync":
					s.resyncs++
				}
				s.mu.Unlock()
			}
		}()
		return s
	}
	victims := []*chattest.Client{dave, erin, frank}
	got := map[string][]*seen{}
	for _, u := range victims {
		for _, api := range []*chattest.API{r0.API, r1.API} {
			got[u.User.ID] = append(got[u.User.ID], watch(u.On(api).Dial()))
		}
	}
	watch(daveWS)
	aliceSeen := watch(aliceWS)
	type sent struct {
		id    string
		start time.Time
	}
	var (
		mu   sync.Mutex
		msgs []sent
		stop = make(chan struct{})
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			m := bob.On(r1.API).Send(g.ID, fmt.Sprint("race ", i))
			mu.Lock()
			msgs = append(msgs, sent{m.ID, start})
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	removedAt := map[string]time.Time{}
	for _, u := range victims {
		time.Sleep(300 * time.Millisecond)
		r := alice.On(r0.API).Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+u.User.ID, nil)
		must(t, r.Status == http.StatusNoContent || r.Status == http.StatusOK, "remove %s: %d %s", u.User.Username, r.Status, r.Body)
		removedAt[u.User.ID] = time.Now()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-done
	mu.Lock()
	all := append([]sent(nil), msgs...)
	mu.Unlock()
	// Wait until the stream has reached Alice (or her connection was told
	// to catch up by sync, which live delivery may ask for when frames
	// arrive out of order: TestExactnessAcrossReplicas covers that path),
	// then a second more for anything still on its way to a removed member.
	last := all[len(all)-1].id
	func() {
		deadline := time.Now().Add(wait)
		for time.Now().Before(deadline) {
			aliceSeen.mu.Lock()
			ok := aliceSeen.ids[last] || aliceSeen.resyncs > 0
			aliceSeen.mu.Unlock()
			if ok {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("alice got neither the last message %s nor a resync", last)
	}()
	time.Sleep(time.Second)
	afterRemoval := 0
	for _, u := range victims {
		for _, m := range all {
			if !m.start.After(removedAt[u.User.ID]) {
				continue
			}
			afterRemoval++
			for i, s := range got[u.User.ID] {
				s.mu.Lock()
				leaked := s.ids[m.id]
				s.mu.Unlock()
				must(t, !leaked, "%s got message %s, sent after the removal returned (connection on replica %d)", u.User.Username, m.id, i)
			}
		}
	}
	aliceSeen.mu.Lock()
	if aliceSeen.resyncs == 0 {
		for _, m := range all {
			must(t, aliceSeen.ids[m.id], "alice missed message %s live and got no resync", m.id)
		}
	}
	aliceSeen.mu.Unlock()
	must(t, afterRemoval >= 3, "only %d (member, message) pairs after a removal: the race did not run", afterRemoval)
	t.Logf("%d messages raced with 3 removals; %d were sent after a removal of someone who got none of them", len(all), afterRemoval)
}
