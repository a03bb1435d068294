package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/internal/pushtest"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/push"
)

// Two replicas on one PostgreSQL and one Redis, both running the push
// outbox: every message is pushed once (never by both), and a member with a
// visible page on the OTHER replica is not pushed until that page reports
// hidden.
func TestPushOncePerMessageAcrossReplicas(t *testing.T) {
	skipShort(t)
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url(),
		"PARLEY_PUSH_GRACE=300ms", "PARLEY_PUSH_ALLOW_LOOPBACK=true")
	r1, r2 := c.start(), c.start()
	keys, err := keyring.Load(c.keyDir, keyring.Options{})
	must(t, err == nil && keys.VAPID() != nil, "cluster keyring: %v", err)
	ps := pushtest.New(t, keys.VAPID().PublicKeyBase64)

	alice, bob := r1.Register("alice"), r2.Register("bob")
	carol, dave := r1.Register("carol"), r2.Register("dave")
	conv := alice.Direct(bob)
	control := carol.Direct(dave)
	for _, s := range []struct {
		who  *chattest.Client
		name string
	}{{bob, "bob"}, {dave, "dave"}} {
		sub := ps.Subscribe(s.name)
		r := s.who.Do("POST", "/api/v1/push/subscriptions", map[string]any{"endpoint": sub.Endpoint,
			"keys": map[string]string{"p256dh": sub.P256DH(), "auth": sub.AuthB64()}})
		must(t, r.Status == 201, "subscribe %s: %d %s", s.name, r.Status, r.Body)
	}
	about := func(name, convID string) []push.Payload {
		var out []push.Payload
		for _, p := range ps.To(name) {
			must(t, p.Err == nil, "push to %s failed a check: %v", name, p.Err)
			var pl push.Payload
			must(t, json.Unmarshal(p.Plain, &pl) == nil, "payload %q", p.Plain)
			if pl.ConversationID == convID {
				out = append(out, pl)
			}
		}
		return out
	}

	// Messages sent through both replicas, apart enough not to collapse.
	const n = 8
	sent := map[string]bool{}
	for i := range n {
		sender := alice.On(r1.API)
		if i%2 == 1 {
			sender = alice.On(r2.API)
		}
		sent[sender.Send(conv.ID, fmt.Sprintf("message %d", i)).ID] = true
		time.Sleep(500 * time.Millisecond)
	}
	ps.Wait(t, 15*time.Second, "every message pushed", func([]pushtest.Push) bool {
		total := 0
		for _, pl := range about("bob", conv.ID) {
			total += pl.Count
		}
		return total >= n
	})
	time.Sleep(time.Second) // a duplicate, if any, would come now
	got := about("bob", conv.ID)
	seen := map[string]int{}
	total := 0
	for _, pl := range got {
		must(t, sent[pl.MessageID], "a push about message %s, which was not sent", pl.MessageID)
		seen[pl.MessageID]++
		total += pl.Count
	}
	for id, k := range seen {
		must(t, k == 1, "message %s pushed %d times", id, k)
	}
	must(t, total == n, "the pushes stand for %d messages, want %d", total, n)
	s1, s2 := pushesSent(t, r1), pushesSent(t, r2)
	must(t, s1+s2 == len(got), "replicas count %d + %d pushes sent, the push service got %d", s1, s2, len(got))
	t.Logf("%d messages through 2 replicas: %d pushes (replica 1 sent %d, replica 2 sent %d)", n, len(got), s1, s2)

	// Bob's page is open on replica 2; alice writes through replica 1.
	ws := bob.On(r2.API).Dial()
	alice.On(r1.API).Send(conv.ID, "while bob looks, on the other replica")
	carol.Send(control.ID, "control 1")
	ps.Wait(t, 10*time.Second, "control push 1", func([]pushtest.Push) bool { return len(about("dave", control.ID)) == 1 })
	must(t, len(about("bob", conv.ID)) == len(got), "bob was pushed while his page was visible on replica 2")

	ws.Write(map[string]any{"type": "visibility", "visible": false})
	ws.Write(map[string]any{"type": "ping", "id": "p"})
	ws.WaitFor("pong", 5*time.Second)
	m := alice.On(r1.API).Send(conv.ID, "now bob's page is hidden")
	ps.Wait(t, 10*time.Second, "push once the page is hidden", func([]pushtest.Push) bool {
		for _, pl := range about("bob", conv.ID) {
			if pl.MessageID == m.ID {
				return true
			}
		}
		return false
	})
}

var pushSentRE = regexp.MustCompile(`(?m)^parley_push_sent_total (\d+)`)

// pushesSent reads a replica's parley_push_sent_total.
func pushesSent(t *testing.T, r *replica) int {
	t.Helper()
	res, err := http.Get(r.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	m := pushSentRE.FindSubmatch(b)
	if m == nil {
		t.Fatalf("no parley_push_sent_total in /metrics:\n%s", strings.Join(strings.Split(string(b), "\n")[:5], "\n"))
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}
