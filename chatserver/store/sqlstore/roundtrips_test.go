package sqlstore

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/chatserver/store"
)

// statements counts what the pool sends to PostgreSQL: each is one round
// trip (the statement cache prepares once per connection, before counting).
type statements struct {
	mu   sync.Mutex
	sqls []string
}

func (s *statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	s.sqls = append(s.sqls, strings.Join(strings.Fields(d.SQL), " "))
	s.mu.Unlock()
	return ctx
}

func (s *statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *statements) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.sqls
	s.sqls = nil
	return out
}

// A send is one round trip on PostgreSQL, whatever it does: a new message
// with a push job and an expiry, or a retry answered with the original.
// A message with attachments keeps its transaction (it also claims the
// uploads, each checked), so it is counted too, as a limit.
func TestPostgresAppendRoundTrips(t *testing.T) {
	admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if admin == "" {
		if testing.Short() {
			t.Skip("PostgreSQL tests need PARLEY_TEST_POSTGRES_URL; skipped in -short mode")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set (hack/postgres.sh start; set -a; . tmp/postgres/env)")
	}
	var st statements
	db, err := Open(t.Context(), postgresEngine(t, admin).newURL(t), Options{Tracer: &st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := t.Context()
	t0 := time.Date(2026, 12, 3, 5, 0, 0, 0, time.UTC)
	var users []*store.User
	for _, name := range []string{"alice", "bob"} {
		u := &store.User{ID: "u-" + name, Username: name, Email: name + "@example.test", PasswordHash: "h", CreatedAt: t0}
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	a, b := users[0], users[1]
	c := &store.Conversation{ID: "c1", Kind: store.KindGroup, CreatedBy: a.ID, CreatedAt: t0, LastActivity: t0}
	if err := db.CreateConversation(ctx, c, []store.Member{{ConversationID: c.ID, UserID: a.ID, Role: store.RoleOwner, JoinedAt: t0},
		{ConversationID: c.ID, UserID: b.ID, Role: store.RoleMember, JoinedAt: t0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SavePushSubscription(ctx, &store.PushSubscription{ID: "ps1", UserID: b.ID, Endpoint: "https://push.example/b",
		P256DH: "k", Auth: "a", VAPIDKeyID: "v", CreatedAt: t0}, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SetExpireAfter(ctx, c.ID, a.ID, time.Hour, t0); err != nil {
		t.Fatal(err)
	}
	due := t0.Add(3 * time.Second)
	send := func(id string) (*store.Message, bool) {
		t.Helper()
		st.take()
		m, created, err := db.AppendMessage(ctx, &store.Message{ConversationID: c.ID, ID: id, SenderID: a.ID,
			ClientID: "cl-1", BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0, PushDue: &due})
		if err != nil {
			t.Fatalf("AppendMessage %s: %v", id, err)
		}
		if got := st.take(); len(got) != 1 {
			t.Errorf("AppendMessage %s sent %d statements, want 1: %q", id, len(got), got)
		}
		return m, created
	}
	m, created := send("m1")
	if !created || m.Seq != 2 || m.ExpiresAt == nil || !m.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("new message: created=%v seq=%d expires=%v, want true 2 %v", created, m.Seq, m.ExpiresAt, t0.Add(time.Hour))
	}
	m, created = send("m2")
	if created || m.ID != "m1" || m.Seq != 2 {
		t.Errorf("retry: created=%v id=%s seq=%d, want false m1 2", created, m.ID, m.Seq)
	}
	jobs, err := db.ClaimPushJobs(ctx, "r1", due, time.Minute, 10)
	if err != nil || len(jobs) != 1 || jobs[0].MessageID != "m1" {
		t.Errorf("push jobs = %+v, %v; want one for m1", jobs, err)
	}
	if read, err := db.MarkRead(ctx, c.ID, a.ID, 0); err != nil || read != 2 {
		t.Errorf("sender's read marker = %d, %v; want 2", read, err)
	}

	// Unknown conversation: not found, still one statement.
	st.take()
	_, _, err = db.AppendMessage(ctx, &store.Message{ConversationID: "nope", ID: "m3", SenderID: a.ID,
		BodySealed: "v1.k1.x", KeyID: "k1", CreatedAt: t0})
	if !errorsIsNotFound(err) {
		t.Errorf("unknown conversation: %v, want ErrNotFound", err)
	}
	if got := st.take(); len(got) != 1 {
		t.Errorf("unknown conversation sent %d statements, want 1: %q", len(got), got)
	}
}

func errorsIsNotFound(err error) bool { return err != nil && errors.Is(err, store.ErrNotFound) }
