package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/parley-chat/parley/chatserver/internal/pushtest"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/push"
	"github.com/parley-chat/parley/pkg/keyringfile"
)

const pushGrace = 300 * time.Millisecond

// startPush starts a server whose pushes go to a test push service.
func startPush(t *testing.T, opts ...option) (*testServer, *pushtest.Service) {
	t.Helper()
	ts := start(t, append(opts, withArgs("-push-grace", pushGrace.String(), "-push-allow-loopback", "true"))...)
	probe := ts.Register("vapidprobe")
	r := probe.Do("GET", "/api/v1/push/vapid-key", nil)
	must(t, r.Status == 200, "vapid-key: %d %s", r.Status, r.Body)
	var k push.VAPIDKey
	r.Decode(t, &k)
	raw, err := base64URL(k.PublicKey)
	must(t, err == nil && len(raw) == 65 && raw[0] == 4, "vapid public key %q is not a base64url P-256 point", k.PublicKey)
	return ts, pushtest.New(t, func() string { return k.PublicKey })
}

// subscribe registers a new test subscription for c and returns it with
// the server's id for it.
func subscribe(t *testing.T, ps *pushtest.Service, c *client, name string) (*pushtest.Subscription, push.Subscription) {
	t.Helper()
	sub := ps.Subscribe(name)
	r := c.Do("POST", "/api/v1/push/subscriptions", map[string]any{"endpoint": sub.Endpoint,
		"expirationTime": nil, "keys": map[string]string{"p256dh": sub.P256DH(), "auth": sub.AuthB64()}})
	must(t, r.Status == 201, "subscribe: %d %s", r.Status, r.Body)
	var out push.Subscription
	r.Decode(t, &out)
	return sub, out
}

// eventually waits up to 5 s for cond.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func payloadOf(t *testing.T, p pushtest.Push) push.Payload {
	t.Helper()
	must(t, p.Err == nil, "push to %s failed the push service's checks: %v", p.Subscription, p.Err)
	var pl push.Payload
	if err := json.Unmarshal(p.Plain, &pl); err != nil {
		t.Fatalf("payload %q: %v", p.Plain, err)
	}
	return pl
}

// waitPush waits for a push to the named subscription about convID.
func waitPush(t *testing.T, ps *pushtest.Service, name, convID string) pushtest.Push {
	t.Helper()
	var found pushtest.Push
	ps.Wait(t, 10*time.Second, "a push to "+name+" about "+convID, func(all []pushtest.Push) bool {
		for _, p := range all {
			if p.Subscription == name && p.Plain != nil && strings.Contains(string(p.Plain), convID) {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// pushedAbout lists the accepted pushes to name about convID.
func pushedAbout(ps *pushtest.Service, name, convID string) []pushtest.Push {
	var out []pushtest.Push
	for _, p := range ps.To(name) {
		if p.Plain != nil && strings.Contains(string(p.Plain), convID) {
			out = append(out, p)
		}
	}
	return out
}

// The subscription endpoints: validation, replacement by endpoint, removal
// by id or by endpoint, only by the owner.
func TestPushSubscriptionAPI(t *testing.T) {
	ts, ps := startPush(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	good := ps.Subscribe("good")
	keys := map[string]string{"p256dh": good.P256DH(), "auth": good.AuthB64()}
	bad := []struct {
		name, field string
		body        map[string]any
	}{
		{"http on another host", "endpoint", map[string]any{"endpoint": "http://push.example/x", "keys": keys}},
		{"not a URL", "endpoint", map[string]any{"endpoint": "push.example/x", "keys": keys}},
		{"credentials", "endpoint", map[string]any{"endpoint": "https://u:p@push.example/x", "keys": keys}},
		{"ftp", "endpoint", map[string]any{"endpoint": "ftp://push.example/x", "keys": keys}},
		{"long", "endpoint", map[string]any{"endpoint": "https://push.example/" + strings.Repeat("a", 2100), "keys": keys}},
		{"short p256dh", "keys.p256dh", map[string]any{"endpoint": good.Endpoint,
			"keys": map[string]string{"p256dh": good.P256DH()[:40], "auth": good.AuthB64()}}},
		{"p256dh off the curve", "keys.p256dh", map[string]any{"endpoint": good.Endpoint,
			"keys": map[string]string{"p256dh": "BA" + strings.Repeat("A", 85), "auth": good.AuthB64()}}},
		{"auth of 15 bytes", "keys.auth", map[string]any{"endpoint": good.Endpoint,
			"keys": map[string]string{"p256dh": good.P256DH(), "auth": "AAAAAAAAAAAAAAAAAAAA"}}},
	}
	for _, tc := range bad {
		r := alice.Do("POST", "/api/v1/push/subscriptions", tc.body)
		must(t, r.Status == 400 && r.Field() == tc.field, "%s: %d %s, want 400 on %s", tc.name, r.Status, r.Body, tc.field)
	}
	_, first := subscribe(t, ps, alice, "good")
	must(t, first.ID != "" && first.Endpoint == good.Endpoint, "subscription %+v", first)
	// The same browser subscribing again keeps the row.
	r := alice.Do("POST", "/api/v1/push/subscriptions", map[string]any{"endpoint": good.Endpoint, "keys": keys})
	var again push.Subscription
	r.Decode(t, &again)
	must(t, r.Status == 201 && again.ID == first.ID, "re-subscribe: %d %s", r.Status, r.Body)

	r = bob.Do("DELETE", "/api/v1/push/subscriptions/"+first.ID, nil)
	must(t, r.Status == 404, "bob deletes alice's subscription: %d", r.Status)
	r = alice.Do("DELETE", "/api/v1/push/subscriptions/"+first.ID, nil)
	must(t, r.Status == 204, "delete by id: %d %s", r.Status, r.Body)
	r = alice.Do("DELETE", "/api/v1/push/subscriptions/"+first.ID, nil)
	must(t, r.Status == 404, "delete again: %d", r.Status)
	subscribe(t, ps, alice, "good")
	r = alice.Do("DELETE", "/api/v1/push/subscriptions", map[string]string{"endpoint": good.Endpoint})
	must(t, r.Status == 204, "delete by endpoint: %d %s", r.Status, r.Body)
}

// A push reaches the push service encrypted to the subscription (its keys
// decrypt it, another's do not), signed with the server's VAPID key, with
// TTL, Topic and Urgency, and without the message's text; with pushPreview
// on it carries a short excerpt.
func TestPushDeliveredWithoutText(t *testing.T) {
	ts, ps := startPush(t)
	alice, bob := registerAs(ts, "alice", "Alice A"), ts.Register("bob")
	conv := alice.Direct(bob)
	sub, row := subscribe(t, ps, bob, "bob-laptop")
	other := ps.Subscribe("someone-else")

	secret := "the launch code is 0000, keep it between us"
	m := alice.Send(conv.ID, secret)
	p := waitPush(t, ps, "bob-laptop", conv.ID)
	pl := payloadOf(t, p)
	must(t, pl.Type == "message" && pl.ConversationID == conv.ID && pl.MessageID == m.ID && pl.Seq == m.Seq,
		"payload %+v", pl)
	must(t, pl.Title == "Alice A" && pl.Sender != nil && pl.Sender.ID == alice.User.ID && pl.Unread == 1 && !pl.Mention,
		"payload %+v", pl)
	must(t, pl.Body == "" && !strings.Contains(string(p.Plain), "launch"), "the push carries text: %s", p.Plain)
	must(t, p.TTL == 86400 && p.Urgency == "normal" && p.Topic == push.Topic(row.ID, conv.ID),
		"headers: TTL %d Urgency %q Topic %q", p.TTL, p.Urgency, p.Topic)
	must(t, p.Claims["sub"] == "mailto:admin@localhost", "VAPID sub %v", p.Claims["sub"])
	// Every push is one padded 4096-byte record: its size tells nothing.
	must(t, p.Size == 4096, "push body of %d bytes, want 4096", p.Size)
	if _, err := pushtest.Decrypt(p.Body, other.Private, other.Auth); err == nil {
		t.Fatal("another subscription's keys decrypted the push")
	}
	if _, err := pushtest.Decrypt(p.Body, sub.Private, other.Auth); err == nil {
		t.Fatal("the right key with another auth secret decrypted the push")
	}
	// The server counts once it has read the push service's answer.
	eventually(t, "parley_push_sent_total counted", func() bool { return testutil.ToFloat64(ts.srv.Metrics().PushSent) >= 1 })
	latency := &dto.Metric{}
	must(t, ts.srv.Metrics().PushLatency.Write(latency) == nil, "read the latency histogram")
	h := latency.GetHistogram()
	must(t, h.GetSampleCount() == 1 && h.GetSampleSum() >= pushGrace.Seconds() && h.GetSampleSum() < 5,
		"push latency: %d samples, %.3fs", h.GetSampleCount(), h.GetSampleSum())
	t.Logf("push latency (stored -> accepted, grace %s): %.0f ms", pushGrace, h.GetSampleSum()*1000)

	r := bob.Do("PATCH", "/api/v1/me/notifications", map[string]any{"pushPreview": true})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"pushPreview":true`), "preview on: %d %s", r.Status, r.Body)
	long := strings.Repeat("abcdefghij", 15)
	alice.Send(conv.ID, long)
	ps.Wait(t, 10*time.Second, "a push with a preview", func(all []pushtest.Push) bool {
		for _, p := range all {
			if p.Plain != nil && strings.Contains(string(p.Plain), `"body"`) {
				pl := payloadOf(t, p)
				must(t, pl.Body == long[:100]+"…", "preview %q", pl.Body)
				return true
			}
		}
		return false
	})
}

// 404 and 410 remove the subscription; 429 and 503 are retried until the
// push service accepts.
func TestPushRetriesAndRemoval(t *testing.T) {
	ts, ps := startPush(t)
	alice, bob, carol := ts.Register("alice"), ts.Register("bob"), ts.Register("carol")
	toBob, toCarol := alice.Direct(bob), alice.Direct(carol)
	subscribe(t, ps, bob, "bob")
	subscribe(t, ps, carol, "carol")

	ps.Answer("bob", "1", 429, 503)
	alice.Send(toBob.ID, "one")
	ps.Wait(t, 15*time.Second, "bob's push accepted after two refusals", func(all []pushtest.Push) bool {
		return slices.ContainsFunc(all, func(p pushtest.Push) bool { return p.Subscription == "bob" && p.Status == 201 })
	})
	got := ps.To("bob")
	must(t, len(got) == 3 && got[0].Status == 429 && got[1].Status == 503 && got[2].Status == 201,
		"bob's pushes: %d", len(got))
	must(t, got[1].At.Sub(got[0].At) >= 900*time.Millisecond, "retried after %s, before Retry-After", got[1].At.Sub(got[0].At))

	ps.Answer("carol", "", 410)
	alice.Send(toCarol.ID, "two")
	ps.Wait(t, 10*time.Second, "carol's push answered 410", func(all []pushtest.Push) bool {
		return slices.ContainsFunc(all, func(p pushtest.Push) bool { return p.Subscription == "carol" && p.Status == 410 })
	})
	eventually(t, "removal counted", func() bool {
		return testutil.ToFloat64(ts.srv.Metrics().PushRemoved.WithLabelValues("gone")) >= 1
	})
	subs, err := ts.srv.Store().PushSubscriptions(t.Context(), []string{carol.User.ID})
	must(t, err == nil && len(subs) == 0, "carol's subscription after 410: %v %v", subs, err)
	// Nothing more goes to it.
	alice.Send(toCarol.ID, "three")
	alice.Send(toBob.ID, "control")
	ps.Wait(t, 10*time.Second, "the control push", func(all []pushtest.Push) bool { return len(ps.To("bob")) == 4 })
	must(t, len(ps.To("carol")) == 1, "pushes to a removed subscription: %d", len(ps.To("carol")))

	// 404 removes too.
	_, again := subscribe(t, ps, carol, "carol2")
	ps.Answer("carol2", "", 404)
	alice.Send(toCarol.ID, "four")
	ps.Wait(t, 10*time.Second, "carol2's push answered 404", func([]pushtest.Push) bool { return len(ps.To("carol2")) == 1 })
	eventually(t, "subscription "+again.ID+" removed after 404", func() bool {
		subs, err := ts.srv.Store().PushSubscriptions(t.Context(), []string{carol.User.ID})
		return err == nil && len(subs) == 0
	})
}

// Who is pushed: not a member with a visible page (a connection that never
// reported counts as visible), yes once it is hidden; not one who read the
// message within the grace; a muted conversation only for a mention (unless
// mentions do not break mute); nothing in do-not-disturb. Each "no" is
// checked after a later push in another conversation, which the outbox
// handles after it.
func TestPushWhenAndWhenNot(t *testing.T) {
	ts, ps := startPush(t)
	alice, bob, carol, dave := ts.Register("alice"), ts.Register("bob"), ts.Register("carol"), ts.Register("dave")
	group := alice.Group("team", bob, carol)
	// Pushes to dave, sent after each message bob should not be pushed
	// about, show that the outbox got past that message.
	control := carol.Direct(dave)
	subscribe(t, ps, bob, "bob")
	subscribe(t, ps, dave, "dave")
	n := 0
	controlPush := func(what string) {
		t.Helper()
		n++
		carol.Send(control.ID, "control "+what)
		ps.Wait(t, 10*time.Second, "control push "+what, func([]pushtest.Push) bool {
			return len(pushedAbout(ps, "dave", control.ID)) == n
		})
	}
	none := func(what string) {
		t.Helper()
		controlPush(what)
		must(t, len(pushedAbout(ps, "bob", group.ID)) == 0, "%s: bob was pushed about the group", what)
	}

	ws := bob.Dial()
	ws.Write(map[string]any{"type": "visibility", "id": "bad"})
	f := ws.WaitFor("error", 5*time.Second)
	must(t, f.ID == "bad" && f.Code == "invalid_request", "visibility without visible: %+v", f)
	alice.Send(group.ID, "while bob's page is open")
	none("a visible page")
	ws.Write(map[string]any{"type": "visibility", "visible": false, "id": "v1"})
	ws.Write(map[string]any{"type": "ping", "id": "p1"})
	ws.WaitFor("pong", 5*time.Second)
	m := alice.Send(group.ID, "while bob's page is hidden")
	p := waitPush(t, ps, "bob", group.ID)
	must(t, payloadOf(t, p).MessageID == m.ID, "push about %s", p.Plain)
	ws.Conn.Close()

	before := len(pushedAbout(ps, "bob", group.ID))
	m = alice.Send(group.ID, "read at once")
	r := bob.Do("POST", "/api/v1/conversations/"+group.ID+"/read", map[string]int64{"seq": m.Seq})
	must(t, r.Status == 200, "read: %d", r.Status)
	controlPush("read within the grace")
	must(t, len(pushedAbout(ps, "bob", group.ID)) == before, "bob was pushed about a message he read")

	r = bob.Do("PUT", "/api/v1/conversations/"+group.ID+"/notifications", map[string]string{"mute": "8h"})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), "mutedUntil"), "mute: %d %s", r.Status, r.Body)
	var list struct{ Conversations []protocol.Conversation }
	bob.Do("GET", "/api/v1/conversations", nil).Decode(t, &list)
	for _, c := range list.Conversations {
		must(t, (c.ID == group.ID) == (c.MutedUntil != nil), "bob's list: %s mutedUntil %v", c.ID, c.MutedUntil)
	}
	var aliceList struct{ Conversations []protocol.Conversation }
	alice.Do("GET", "/api/v1/conversations", nil).Decode(t, &aliceList)
	must(t, aliceList.Conversations[0].MutedUntil == nil, "alice sees bob's mute")

	alice.Send(group.ID, "muted")
	controlPush("muted")
	must(t, len(pushedAbout(ps, "bob", group.ID)) == before, "bob was pushed in a muted conversation")

	m = alice.Send(group.ID, "hey @Bob, look")
	must(t, slices.Equal(m.Mentions, []string{bob.User.ID}), "mentions %v", m.Mentions)
	p = waitPush(t, ps, "bob", m.ID)
	pl := payloadOf(t, p)
	must(t, pl.Mention && p.Urgency == "high", "mention push: %+v urgency %q", pl, p.Urgency)

	r = bob.Do("PATCH", "/api/v1/me/notifications", map[string]any{"mentionsBreakMute": false})
	must(t, r.Status == 200, "mentionsBreakMute off: %d %s", r.Status, r.Body)
	before = len(pushedAbout(ps, "bob", group.ID))
	alice.Send(group.ID, "@bob again")
	controlPush("mention with mentionsBreakMute off")
	must(t, len(pushedAbout(ps, "bob", group.ID)) == before, "a mention broke the mute with the setting off")

	r = bob.Do("PATCH", "/api/v1/me/notifications", map[string]any{"mentionsBreakMute": true, "dnd": "always"})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), "9999-12-31"), "dnd: %d %s", r.Status, r.Body)
	r = bob.Do("PUT", "/api/v1/conversations/"+group.ID+"/notifications", map[string]string{"mute": "off"})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"mutedUntil":null`), "unmute: %d %s", r.Status, r.Body)
	alice.Send(group.ID, "@bob in dnd")
	controlPush("dnd")
	must(t, len(pushedAbout(ps, "bob", group.ID)) == before, "bob was pushed in do-not-disturb")
	r = bob.Do("PATCH", "/api/v1/me/notifications", map[string]any{"dnd": "off"})
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"dndUntil":null`), "dnd off: %d %s", r.Status, r.Body)
	must(t, testutil.ToFloat64(ts.srv.Metrics().PushSkipped.WithLabelValues("dnd")) >= 1, "dnd skips not counted")

	for _, tc := range []struct{ path, body string }{
		{"/api/v1/conversations/" + group.ID + "/notifications", `{"mute":"2h"}`},
		{"/api/v1/conversations/" + group.ID + "/notifications", `{}`},
	} {
		r := bob.Do("PUT", tc.path, tc.body)
		must(t, r.Status == 400 && r.Field() == "mute", "%s %s: %d %s", tc.path, tc.body, r.Status, r.Body)
	}
	r = bob.Do("PATCH", "/api/v1/me/notifications", map[string]any{"dndUntil": "2001-01-01T00:00:00Z"})
	must(t, r.Status == 400 && r.Field() == "dndUntil", "dndUntil in the past: %d %s", r.Status, r.Body)
	r = ts.Register("erin").Do("PUT", "/api/v1/conversations/"+group.ID+"/notifications", map[string]string{"mute": "1h"})
	must(t, r.Status == 404, "a non-member mutes: %d", r.Status)
}

// A burst in one conversation: every message is accounted for once, all
// under one Topic, the last push about the newest message.
func TestPushBurstCollapses(t *testing.T) {
	ts, ps := startPush(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	_, row := subscribe(t, ps, bob, "bob")
	var last protocol.Message
	for i := range 6 {
		last = alice.Send(conv.ID, "burst "+string(rune('a'+i)))
	}
	ps.Wait(t, 10*time.Second, "every message of the burst pushed or collapsed", func(all []pushtest.Push) bool {
		total := 0
		for _, p := range all {
			total += payloadOf(t, p).Count
		}
		return total == 6
	})
	got := ps.To("bob")
	for _, p := range got {
		must(t, p.Topic == push.Topic(row.ID, conv.ID), "topic %q", p.Topic)
	}
	pl := payloadOf(t, got[len(got)-1])
	must(t, pl.MessageID == last.ID && pl.Unread == 6, "last push %+v", pl)
	t.Logf("6 messages sent back to back: %d pushes", len(got))
}

// Mentions are parsed by the server from the stored text: members only,
// case-insensitive, deduplicated, not inside an email address.
func TestMentionsOnMessages(t *testing.T) {
	ts := start(t)
	alice, bob, carol, dave := ts.Register("alice"), ts.Register("bob"), ts.Register("carol"), ts.Register("dave")
	g := alice.Group("team", bob, carol)
	m := alice.Send(g.ID, "hi @Bob and @bob, cc @carol. mail bob@example.com, not @dave or @nobody")
	must(t, slices.Equal(m.Mentions, []string{bob.User.ID, carol.User.ID}), "mentions %v", m.Mentions)
	h := bob.History(g.ID, 0)
	must(t, slices.Equal(h[len(h)-1].Mentions, m.Mentions), "history mentions %v", h[len(h)-1].Mentions)
	_ = dave
	plain := alice.Send(g.ID, "no one here")
	must(t, plain.Mentions == nil, "mentions of a plain message: %v", plain.Mentions)
}

// A keyring without a VAPID key (written before push existed) runs with
// push off; adding one turns it on at the next reload; a new active VAPID
// key (deliberate rotation) drops the subscriptions made with the old one,
// and a client that subscribes again with the new key is pushed again.
func TestPushVAPIDAddedAndRotated(t *testing.T) {
	keyDir := filepath.Join(t.TempDir(), "keys")
	must(t, os.MkdirAll(keyDir, 0o700) == nil, "mkdir")
	f, err := keyringfile.New(time.Now())
	must(t, err == nil, "new keyring: %v", err)
	writeKeyring(t, keyDir, f)
	ts := start(t, withArgs("-keyring-dir", keyDir, "-keyring-reload", "1s", "-push-grace", pushGrace.String(),
		"-push-allow-loopback", "true"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)

	r := bob.Do("GET", "/api/v1/push/vapid-key", nil)
	must(t, r.Status == 404, "vapid-key without a VAPID key: %d %s", r.Status, r.Body)
	var current atomic.Value // the push service reads it on its own goroutine
	current.Store("")
	ps := pushtest.New(t, func() string { return current.Load().(string) })
	probe := ps.Subscribe("probe")
	r = bob.Do("POST", "/api/v1/push/subscriptions", map[string]any{"endpoint": probe.Endpoint,
		"keys": map[string]string{"p256dh": probe.P256DH(), "auth": probe.AuthB64()}})
	must(t, r.Status == 404, "subscribe without a VAPID key: %d %s", r.Status, r.Body)
	alice.Send(conv.ID, "messages still work")

	waitKey := func(id string) string {
		t.Helper()
		var k push.VAPIDKey
		eventually(t, "vapid-key "+id, func() bool {
			r := bob.Do("GET", "/api/v1/push/vapid-key", nil)
			if r.Status != 200 {
				return false
			}
			r.Decode(t, &k)
			return k.KeyID == id
		})
		return k.PublicKey
	}
	v1, err := keyringfile.NewVAPIDKey(time.Now(), keyringfile.StateActive)
	must(t, err == nil, "vapid key: %v", err)
	f.VAPID = []keyringfile.VAPIDKey{v1}
	writeKeyring(t, keyDir, f)
	current.Store(waitKey(v1.ID))
	_, row1 := subscribe(t, ps, bob, "bob-v1")
	must(t, row1.KeyID == v1.ID, "subscription key id %s", row1.KeyID)
	alice.Send(conv.ID, "pushed under v1")
	waitPush(t, ps, "bob-v1", conv.ID)

	v2, err := keyringfile.NewVAPIDKey(time.Now(), keyringfile.StateActive)
	must(t, err == nil, "vapid key: %v", err)
	f.VAPID[0].State = keyringfile.StateRetired
	f.VAPID = append(f.VAPID, v2)
	writeKeyring(t, keyDir, f)
	current.Store(waitKey(v2.ID))
	before := len(ps.To("bob-v1"))
	alice.Send(conv.ID, "after the rotation")
	eventually(t, "the old subscription removed", func() bool {
		return testutil.ToFloat64(ts.srv.Metrics().PushRemoved.WithLabelValues("vapid_rotated")) == 1
	})
	must(t, len(ps.To("bob-v1")) == before, "a push went to a subscription made with the old VAPID key")
	subscribe(t, ps, bob, "bob-v2")
	alice.Send(conv.ID, "pushed under v2")
	p := waitPush(t, ps, "bob-v2", conv.ID)
	must(t, p.Err == nil, "push under v2: %v", p.Err)
}
