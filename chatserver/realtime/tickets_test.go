package realtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/metrics"
)

// stillValid counts database checks (accounts.Service.StillValid).
type stillValid struct{ calls int }

func (s *stillValid) Authenticate(context.Context, string) (*accounts.Principal, error) {
	return nil, errors.New("not used")
}

func (s *stillValid) StillValid(context.Context, string, string, time.Time) error {
	s.calls++
	return nil
}

type noDisconnect struct{ calls int }

func (n *noDisconnect) Disconnect(context.Context, string, string, string)        { n.calls++ }
func (n *noDisconnect) DisconnectSession(context.Context, string, string, string) { n.calls++ }

// With tickets in Redis a redemption reads the ticket and the revocations of
// its user and session in one round trip: no database read, and a ticket
// bought before a revocation (of the user, or of its session) is refused.
func TestRedisTicketsCheckRevocationsWithoutTheDatabase(t *testing.T) {
	o, err := redis.ParseURL(chattest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(o)
	t.Cleanup(func() { rc.Close() })
	store := NewRedisTickets(rc, testAuth{}, metrics.New())
	db := &stillValid{}
	h := NewHub(Config{Tickets: store, Accounts: db, Codec: testCodec, Logger: slog.New(slog.DiscardHandler)})
	ctx := t.Context()
	suffix := strings.ToLower(time.Now().Format("150405.000000"))
	user, s1, s2 := "u_t"+strings.ReplaceAll(suffix, ".", ""), "f_one", "f_two"
	buy := func(session string) string {
		t.Helper()
		secret, _, err := h.IssueTicket(ctx, Ticket{UserID: user, SessionID: session,
			AccessExpires: time.Now().Add(time.Minute), Issued: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, user+"."+session+".") {
			t.Fatalf("secret %q does not name its owner", secret)
		}
		return secret
	}
	redeem := func(secret string) error {
		t.Helper()
		_, err := h.ticket(ctx, secret)
		return err
	}

	if err := redeem(buy(s1)); err != nil {
		t.Fatalf("a fresh ticket: %v", err)
	}
	if db.calls != 0 {
		t.Fatalf("redeeming read the database %d times, want 0", db.calls)
	}
	first := buy(s1)
	if err := redeem(first); err != nil {
		t.Fatal(err)
	}
	if err := redeem(first); !errors.Is(err, ErrNoTicket) {
		t.Fatalf("second redemption: %v, want ErrNoTicket", err)
	}

	// A secret naming another owner redeems nothing.
	other := buy(s1)
	forged := strings.Replace(other, user+"."+s1, user+"."+s2, 1)
	if err := redeem(forged); err == nil {
		t.Fatal("a secret naming another session was accepted")
	}

	// Revoking one session refuses its tickets only.
	old1, old2 := buy(s1), buy(s2)
	sockets := &noDisconnect{}
	rev := RevokingDisconnector{Next: sockets, Tickets: store, Log: slog.New(slog.DiscardHandler)}
	time.Sleep(time.Millisecond)
	rev.DisconnectSession(ctx, user, s1, "signed out")
	if err := redeem(old1); err == nil {
		t.Fatal("a ticket of the session logged out was accepted")
	}
	if err := redeem(old2); err != nil {
		t.Fatalf("a ticket of another session: %v", err)
	}
	// Revoking the user refuses every ticket bought before; later ones work.
	old1, old2 = buy(s1), buy(s2)
	time.Sleep(time.Millisecond)
	rev.Disconnect(ctx, user, "", "logged out everywhere")
	for _, s := range []string{old1, old2} {
		if err := redeem(s); err == nil {
			t.Fatal("a ticket bought before logout everywhere was accepted")
		}
	}
	time.Sleep(time.Millisecond)
	if err := redeem(buy(s2)); err != nil {
		t.Fatalf("a ticket bought after: %v", err)
	}
	if sockets.calls != 2 {
		t.Fatalf("disconnects passed on: %d, want 2", sockets.calls)
	}
	if db.calls != 0 {
		t.Fatalf("redeeming read the database %d times, want 0", db.calls)
	}

	// In-process tickets (Redis down: FallbackTickets' secondary) record no
	// revocations, so the database decides.
	h.tickets = NewMemoryTickets()
	if err := redeem(buy(s1)); err != nil {
		t.Fatal(err)
	}
	if db.calls != 1 {
		t.Fatalf("an in-process ticket read the database %d times, want 1", db.calls)
	}
}
