package storetest

import (
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var pushTests = []test{
	{"PushSubscriptions", testPushSubscriptions},
	{"PushJobs", testPushJobs},
	{"PushJobsClaimedOnce", testPushJobsClaimedOnce},
	{"RetryWritesNothing", testRetryWritesNothing},
	{"MuteAndNotifySettings", testMuteAndNotifySettings},
	{"Mentions", testMentions},
}

func sub(u *store.User, endpoint string) *store.PushSubscription {
	return &store.PushSubscription{ID: newID("ps"), UserID: u.ID, Endpoint: endpoint, P256DH: "BPk-" + endpoint,
		Auth: "auth-" + endpoint, VAPIDKeyID: "v-1", CreatedAt: t0}
}

// Subscriptions: saved, replaced by endpoint (even for another account),
// limited per user, deleted by id or endpoint only by their owner, removed
// by id whoever owns them, and gone with a deleted account.
func testPushSubscriptions(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	one, err := s.SavePushSubscription(ctx(t), sub(a, "https://push.example/1"), 2)
	wantNoErr(t, "Save", err)
	wantEq(t, "saved endpoint", one.Endpoint, "https://push.example/1")
	wantEq(t, "saved created", one.CreatedAt, t0)
	_, err = s.SavePushSubscription(ctx(t), sub(a, "https://push.example/2"), 2)
	wantNoErr(t, "Save second", err)
	_, err = s.SavePushSubscription(ctx(t), sub(a, "https://push.example/3"), 2)
	wantErr(t, "third over a limit of 2", err, store.ErrLimit)

	// The same endpoint again replaces (new keys), keeping its id; the
	// limit does not count the row it replaces.
	again := sub(a, "https://push.example/1")
	again.Auth = "new-auth"
	got, err := s.SavePushSubscription(ctx(t), again, 2)
	wantNoErr(t, "Save same endpoint", err)
	wantEq(t, "id kept", got.ID, one.ID)
	wantEq(t, "keys replaced", got.Auth, "new-auth")

	// Another account subscribing from the same browser takes it over.
	moved, err := s.SavePushSubscription(ctx(t), sub(b, "https://push.example/2"), 2)
	wantNoErr(t, "Save for bob", err)
	wantEq(t, "moved to bob", moved.UserID, b.ID)
	subs, err := s.PushSubscriptions(ctx(t), []string{a.ID, b.ID})
	wantNoErr(t, "PushSubscriptions", err)
	wantEq(t, "count", len(subs), 2)
	owners := map[string]string{}
	for _, p := range subs {
		owners[p.Endpoint] = p.UserID
	}
	wantDeep(t, "owners", owners, map[string]string{"https://push.example/1": a.ID, "https://push.example/2": b.ID})

	wantErr(t, "bob deletes alice's", s.DeletePushSubscription(ctx(t), b.ID, one.ID), store.ErrNotFound)
	wantNoErr(t, "alice deletes by endpoint", s.DeletePushSubscription(ctx(t), a.ID, "https://push.example/1"))
	wantErr(t, "again", s.DeletePushSubscription(ctx(t), a.ID, one.ID), store.ErrNotFound)
	ok, err := s.RemovePushSubscription(ctx(t), moved.ID)
	wantNoErr(t, "Remove", err)
	wantEq(t, "removed", ok, true)
	ok, err = s.RemovePushSubscription(ctx(t), moved.ID)
	wantNoErr(t, "Remove again", err)
	wantEq(t, "removed again", ok, false)

	_, err = s.SavePushSubscription(ctx(t), sub(a, "https://push.example/4"), 2)
	wantNoErr(t, "Save 4", err)
	wantNoErr(t, "DeleteUser", s.DeleteUser(ctx(t), a.ID, t0))
	subs, err = s.PushSubscriptions(ctx(t), []string{a.ID})
	wantNoErr(t, "PushSubscriptions after delete", err)
	wantEq(t, "a deleted account's subscriptions", len(subs), 0)
	_, err = s.SavePushSubscription(ctx(t), sub(&store.User{ID: "u_nobody"}, "https://push.example/5"), 2)
	wantErr(t, "unknown user", err, store.ErrNotFound)
}

func sendPush(t *testing.T, s store.Store, c *store.Conversation, from *store.User, at, due time.Time) *store.Message {
	t.Helper()
	id := newID("m")
	m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: c.ID, ID: id, SenderID: from.ID,
		ClientID: "cl-" + id, BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: at, PushDue: &due})
	wantNoErr(t, "AppendMessage", err)
	return m
}

// Jobs: written with the message only when another member has a
// subscription, claimed when due, leased (not claimed again while the
// lease runs, claimed again once it lapsed), finished only by the holder.
func testPushJobs(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, a, b)
	due := t0.Add(3 * time.Second)
	sendPush(t, s, c, a, t0, due) // nobody subscribed: no job
	_, err := s.SavePushSubscription(ctx(t), sub(a, "https://push.example/a"), 5)
	wantNoErr(t, "Save", err)
	sendPush(t, s, c, a, t0, due) // only the sender subscribed: no job
	jobs, err := s.ClaimPushJobs(ctx(t), "r1", due.Add(time.Hour), time.Minute, 10)
	wantNoErr(t, "Claim", err)
	wantEq(t, "jobs without another subscribed member", len(jobs), 0)

	_, err = s.SavePushSubscription(ctx(t), sub(b, "https://push.example/b"), 5)
	wantNoErr(t, "Save b", err)
	m := sendPush(t, s, c, a, t0, due)
	jobs, err = s.ClaimPushJobs(ctx(t), "r1", due.Add(-time.Millisecond), time.Minute, 10)
	wantNoErr(t, "Claim early", err)
	wantEq(t, "jobs before due", len(jobs), 0)
	jobs, err = s.ClaimPushJobs(ctx(t), "r1", due, time.Minute, 10)
	wantNoErr(t, "Claim", err)
	wantDeep(t, "jobs", jobs, []store.PushJob{{MessageID: m.ID, ConversationID: c.ID, Seq: m.Seq, SenderID: a.ID,
		StoredAt: t0, DueAt: due, Attempts: 1}})
	jobs, err = s.ClaimPushJobs(ctx(t), "r2", due.Add(30*time.Second), time.Minute, 10)
	wantNoErr(t, "Claim by r2 during the lease", err)
	wantEq(t, "jobs leased to r1", len(jobs), 0)
	wantNoErr(t, "Finish by r2", s.FinishPushJobs(ctx(t), "r2", []string{m.ID}))
	jobs, err = s.ClaimPushJobs(ctx(t), "r2", due.Add(61*time.Second), time.Minute, 10)
	wantNoErr(t, "Claim after the lease", err)
	wantEq(t, "claimed again", len(jobs), 1)
	wantEq(t, "attempts", jobs[0].Attempts, 2)
	wantNoErr(t, "Finish by r1 (no longer holds it)", s.FinishPushJobs(ctx(t), "r1", []string{m.ID}))
	wantNoErr(t, "Finish by r2", s.FinishPushJobs(ctx(t), "r2", []string{m.ID}))
	jobs, err = s.ClaimPushJobs(ctx(t), "r3", due.Add(time.Hour), time.Minute, 10)
	wantNoErr(t, "Claim after finish", err)
	wantEq(t, "jobs after finish", len(jobs), 0)

	// A message without PushDue enqueues nothing; a conversation's
	// deletion takes its jobs.
	mustSend(t, s, c, a, t0)
	sendPush(t, s, c, a, t0, due)
	wantNoErr(t, "DeleteConversation", s.DeleteConversation(ctx(t), c.ID))
	jobs, err = s.ClaimPushJobs(ctx(t), "r3", due.Add(time.Hour), time.Minute, 10)
	wantNoErr(t, "Claim after conversation deletion", err)
	wantEq(t, "jobs of a deleted conversation", len(jobs), 0)
}

// Many claimers at once never get the same job.
func testPushJobsClaimedOnce(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, a, b)
	_, err := s.SavePushSubscription(ctx(t), sub(b, "https://push.example/b"), 5)
	wantNoErr(t, "Save", err)
	const n = 60
	for range n {
		sendPush(t, s, c, a, t0, t0)
	}
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for w := range 6 {
		wg.Go(func() {
			for range 20 {
				jobs, err := s.ClaimPushJobs(ctx(t), newID("r")+string(rune('a'+w)), t0.Add(time.Second), time.Minute, 4)
				if err != nil {
					t.Errorf("Claim: %v", err)
					return
				}
				mu.Lock()
				for _, j := range jobs {
					seen[j.MessageID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	wantEq(t, "jobs claimed", len(seen), n)
	for id, k := range seen {
		if k != 1 {
			t.Fatalf("job %s claimed %d times", id, k)
		}
	}
}

// Mute per member, read back with Member(s) and the caller's summaries;
// notification settings default to no preview, mentions break mute, no DND.
func testMuteAndNotifySettings(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, a, b)
	until := t0.Add(8 * time.Hour)
	wantNoErr(t, "SetMute", s.SetMute(ctx(t), c.ID, b.ID, until))
	m, err := s.Member(ctx(t), c.ID, b.ID)
	wantNoErr(t, "Member", err)
	wantEq(t, "muted until", m.MutedUntil, until)
	ms, err := s.Members(ctx(t), c.ID)
	wantNoErr(t, "Members", err)
	for _, m := range ms {
		want := time.Time{}
		if m.UserID == b.ID {
			want = until
		}
		wantEq(t, "Members muted until of "+m.UserID, m.MutedUntil, want)
	}
	sum, err := s.ConversationSummary(ctx(t), b.ID, c.ID)
	wantNoErr(t, "ConversationSummary", err)
	wantEq(t, "summary muted until", sum.MutedUntil, until)
	list, err := s.ListConversations(ctx(t), a.ID)
	wantNoErr(t, "ListConversations", err)
	wantEq(t, "alice's summary is not muted", list[0].MutedUntil, time.Time{})
	wantNoErr(t, "SetMute forever", s.SetMute(ctx(t), c.ID, b.ID, store.MuteForever))
	m, _ = s.Member(ctx(t), c.ID, b.ID)
	wantEq(t, "muted forever", m.MutedUntil, store.MuteForever)
	wantNoErr(t, "unmute", s.SetMute(ctx(t), c.ID, b.ID, time.Time{}))
	m, _ = s.Member(ctx(t), c.ID, b.ID)
	wantEq(t, "unmuted", m.MutedUntil.IsZero(), true)
	wantErr(t, "SetMute of a non-member", s.SetMute(ctx(t), c.ID, "u_nobody", until), store.ErrNotFound)

	got, err := s.NotifySettings(ctx(t), []string{a.ID, b.ID, "u_nobody"})
	wantNoErr(t, "NotifySettings", err)
	wantDeep(t, "defaults", got, map[string]store.NotifySettings{
		a.ID: {MentionsBreakMute: true}, b.ID: {MentionsBreakMute: true}})
	set := store.NotifySettings{PushPreview: true, MentionsBreakMute: false, DNDUntil: store.MuteForever}
	wantNoErr(t, "SetNotifySettings", s.SetNotifySettings(ctx(t), a.ID, set))
	got, err = s.NotifySettings(ctx(t), []string{a.ID})
	wantNoErr(t, "NotifySettings", err)
	wantEq(t, "set", got[a.ID], set)
	wantErr(t, "SetNotifySettings of nobody", s.SetNotifySettings(ctx(t), "u_nobody", set), store.ErrNotFound)
}

// Mentions are stored with the message and read back by every read.
func testMentions(t *testing.T, s store.Store) {
	a, b, c := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	conv := mustGroup(t, s, t0, a, b, c)
	id := newID("m")
	m, _, err := s.AppendMessage(ctx(t), &store.Message{ConversationID: conv.ID, ID: id, SenderID: a.ID,
		ClientID: "cl-" + id, BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0, Mentions: []string{b.ID, c.ID}})
	wantNoErr(t, "AppendMessage", err)
	wantDeep(t, "returned", m.Mentions, []string{b.ID, c.ID})
	got, err := s.MessageByID(ctx(t), conv.ID, id)
	wantNoErr(t, "MessageByID", err)
	wantDeep(t, "MessageByID mentions", got.Mentions, []string{b.ID, c.ID})
	after, err := s.MessagesAfter(ctx(t), conv.ID, 0, 10)
	wantNoErr(t, "MessagesAfter", err)
	wantDeep(t, "MessagesAfter mentions", after[0].Mentions, []string{b.ID, c.ID})
	sum, err := s.ConversationSummary(ctx(t), b.ID, conv.ID)
	wantNoErr(t, "ConversationSummary", err)
	wantDeep(t, "last message mentions", sum.LastMessage.Mentions, []string{b.ID, c.ID})
	plain := mustSend(t, s, conv, a, t0)
	got, _ = s.MessageByID(ctx(t), conv.ID, plain.ID)
	wantEq(t, "no mentions", len(got.Mentions), 0)
}

func wantDeep(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

// A retried send (same client id) returns the original and writes nothing
// else: no second push job, no seq, the original's expiry (computed from the
// setting when it was stored), the sender's read marker where it was. On
// PostgreSQL every part of a send is one statement, so each of these is a
// branch of it that a retry must skip.
func testRetryWritesNothing(t *testing.T, s store.Store) {
	a, b := mustUser(t, s, "alice"), mustUser(t, s, "bob")
	c := mustGroup(t, s, t0, a, b)
	_, err := s.SavePushSubscription(ctx(t), sub(b, "https://push.example/b"), 5)
	wantNoErr(t, "Save b", err)
	_, err = s.SetExpireAfter(ctx(t), c.ID, a.ID, time.Hour, t0)
	wantNoErr(t, "SetExpireAfter", err) // an event: seq 1
	due := t0.Add(3 * time.Second)
	first := sendPush(t, s, c, a, t0, due)
	wantEq(t, "seq", first.Seq, int64(2))
	if first.ExpiresAt == nil {
		t.Fatal("ExpiresAt = nil, want the conversation's hour")
	}
	wantTime(t, "ExpiresAt", *first.ExpiresAt, t0.Add(time.Hour))

	_, err = s.SetExpireAfter(ctx(t), c.ID, a.ID, 2*time.Hour, t0)
	wantNoErr(t, "SetExpireAfter again", err) // seq 3
	later := t0.Add(time.Minute)
	retry := &store.Message{ConversationID: c.ID, ID: newID("m"), SenderID: a.ID, ClientID: first.ClientID,
		BodySealed: "v1.k1.other", KeyID: "k1", CreatedAt: later, PushDue: &due}
	got, created, err := s.AppendMessage(ctx(t), retry)
	wantNoErr(t, "AppendMessage retry", err)
	wantEq(t, "created on retry", created, false)
	checkMessage(t, "retry returns the original", *got, *first)
	if got.ExpiresAt == nil || !got.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("retry ExpiresAt = %v, want the original's %v", got.ExpiresAt, t0.Add(time.Hour))
	}
	conv, err := s.Conversation(ctx(t), c.ID)
	wantNoErr(t, "Conversation", err)
	wantEq(t, "LastSeq after retry", conv.LastSeq, int64(3))
	wantTime(t, "LastActivity after retry", conv.LastActivity, t0)
	jobs, err := s.ClaimPushJobs(ctx(t), "r1", due, time.Minute, 10)
	wantNoErr(t, "Claim", err)
	wantDeep(t, "jobs", jobs, []store.PushJob{{MessageID: first.ID, ConversationID: c.ID, Seq: first.Seq, SenderID: a.ID,
		StoredAt: t0, DueAt: due, Attempts: 1}})
	// The sender read up to its own message (2), not past it.
	read, err := s.MarkRead(ctx(t), c.ID, a.ID, 0)
	wantNoErr(t, "MarkRead", err)
	wantEq(t, "sender's read_seq", read, int64(2))
}
