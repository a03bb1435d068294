package realtime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/circuit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/metrics"
)

// TicketTTL is how long a WebSocket ticket may wait to be redeemed.
const TicketTTL = 30 * time.Second

// ErrNoTicket: unknown, expired or already used.
var ErrNoTicket = errors.New("realtime: unknown, expired or used ticket")

// Ticket is what a WebSocket ticket stands for: an opaque, single-use,
// 30-second secret bought with an access token. Being opaque (a random
// secret looked up on redeem), it costs no signature on either side.
type Ticket struct {
	UserID        string    `json:"u"`
	SessionID     string    `json:"s"`
	AccessExpires time.Time `json:"x"` // the socket stays authenticated until then unless renewed
	Issued        time.Time `json:"i"` // checked against logout-everywhere on redeem

	// Set by a store that records revocations (RedisTickets) when it
	// redeems: the latest revocation of the ticket's user or session, read
	// in the same round trip, so the hub needs no database read.
	RevocationsChecked bool      `json:"-"`
	Revoked            time.Time `json:"-"` // zero: none within TicketTTL
}

// RevokedSinceIssue reports whether a revocation recorded by the store
// (RevocationsChecked) came at or after the ticket was issued.
func (t *Ticket) RevokedSinceIssue() bool {
	return !t.Revoked.IsZero() && !t.Issued.After(t.Revoked)
}

// Tickets stores tickets for one redemption.
type Tickets interface {
	Put(ctx context.Context, key string, t Ticket, ttl time.Duration) error
	// Take returns and deletes the ticket (ErrNoTicket when there is none).
	Take(ctx context.Context, key string) (*Ticket, error)
}

// ticketKey is what is stored: the hash, so a dump of the store holds no
// usable ticket, after the owner the secret names ("user.session."), so a
// store can read the owner's revocations in the redemption's round trip. The
// owner in a secret is a hint only: the ticket it redeems must match it.
func ticketKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	owner := ""
	if i := strings.LastIndexByte(secret, '.'); i > 0 {
		owner = secret[:i+1]
	}
	return owner + hex.EncodeToString(h[:])
}

// keyOwner returns the user and session a ticket key names (ok false for a
// secret without an owner).
func keyOwner(key string) (user, session string, ok bool) {
	user, rest, ok1 := strings.Cut(key, ".")
	session, _, ok2 := strings.Cut(rest, ".")
	return user, session, ok1 && ok2 && user != "" && session != ""
}

// IssueTicket makes a ticket for t and returns its secret and expiry.
func (h *Hub) IssueTicket(ctx context.Context, t Ticket) (string, time.Time, error) {
	secret := ids.Secret()
	if t.UserID != "" && t.SessionID != "" && !strings.Contains(t.UserID+t.SessionID, ".") {
		secret = t.UserID + "." + t.SessionID + "." + secret
	}
	if err := h.tickets.Put(ctx, ticketKey(secret), t, TicketTTL); err != nil {
		return "", time.Time{}, fmt.Errorf("realtime: issue ticket: %w", err)
	}
	return secret, t.Issued.Add(TicketTTL), nil
}

// MemoryTickets keeps tickets in this process.
type MemoryTickets struct {
	mu    sync.Mutex
	m     map[string]memTicket
	sweep time.Time
}

type memTicket struct {
	t   Ticket
	exp time.Time
}

// NewMemoryTickets returns an empty MemoryTickets.
func NewMemoryTickets() *MemoryTickets { return &MemoryTickets{m: map[string]memTicket{}} }

// Put implements Tickets.
func (s *MemoryTickets) Put(_ context.Context, key string, t Ticket, ttl time.Duration) error {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.sweep) > time.Minute {
		for k, v := range s.m {
			if now.After(v.exp) {
				delete(s.m, k)
			}
		}
		s.sweep = now
	}
	s.m[key] = memTicket{t: t, exp: now.Add(ttl)}
	return nil
}

// Take implements Tickets.
func (s *MemoryTickets) Take(_ context.Context, key string) (*Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	delete(s.m, key)
	if !ok || time.Now().After(v.exp) {
		return nil, ErrNoTicket
	}
	return &v.t, nil
}

// RedisTickets keeps tickets in Redis, so a ticket bought from one replica
// is redeemed on any other, once.
type RedisTickets struct {
	c       redis.UniversalClient
	auth    delivery.Authenticator
	metrics *metrics.Metrics
}

// NewRedisTickets returns Tickets kept in Redis.
func NewRedisTickets(c redis.UniversalClient, auth delivery.Authenticator, m *metrics.Metrics) *RedisTickets {
	return &RedisTickets{c: c, auth: auth, metrics: metrics.OrNew(m)}
}

func redisTicketKey(key string) string { return "parley:ticket:" + key }

// revokedKey holds the time of the latest revocation of a user's
// credentials (session "") or of one session, for as long as a ticket issued
// before it could still be redeemed.
func revokedKey(user, session string) string {
	if session == "" {
		return "parley:revoked:" + user
	}
	return "parley:revoked:" + user + ":" + session
}

// revokedTTL outlives every ticket issued before the revocation.
const revokedTTL = TicketTTL + 10*time.Second

// Revoke records that credentials of user (every session when session is
// "") issued until at are no longer accepted: a ticket issued until then is
// refused when redeemed. A store without this record (MemoryTickets) makes
// the hub read the database instead.
func (s *RedisTickets) Revoke(ctx context.Context, user, session string, at time.Time) error {
	if err := s.c.Set(ctx, revokedKey(user, session), at.UnixNano(), revokedTTL).Err(); err != nil {
		return fmt.Errorf("tickets: revoke: %w", err)
	}
	return nil
}

// Put implements Tickets.
func (s *RedisTickets) Put(ctx context.Context, key string, t Ticket, ttl time.Duration) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	// Redis is not trusted: the value is tagged with the keyring, so a
	// ticket-shaped key written by anyone else is refused on redemption.
	kid, tag := s.auth.MAC([]byte("ticket"), []byte(key), b)
	v := kid + "\n" + base64.RawStdEncoding.EncodeToString(tag) + "\n" + string(b)
	return s.c.Set(ctx, redisTicketKey(key), v, ttl).Err()
}

// Take implements Tickets (GETDEL: atomic, so two replicas cannot both
// redeem). For a key that names its owner, the owner's revocations are read
// in the same round trip (RevocationsChecked).
func (s *RedisTickets) Take(ctx context.Context, key string) (*Ticket, error) {
	user, session, owned := keyOwner(key)
	var get *redis.StringCmd
	var marks [2]*redis.StringCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.GetDel(ctx, redisTicketKey(key))
		if owned {
			marks[0] = p.Get(ctx, revokedKey(user, ""))
			marks[1] = p.Get(ctx, revokedKey(user, session))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("tickets: %w", err)
	}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoTicket
	}
	if err != nil {
		return nil, fmt.Errorf("tickets: %w", err)
	}
	kid, rest, _ := bytes.Cut(b, []byte("\n"))
	enc, body, _ := bytes.Cut(rest, []byte("\n"))
	tag, err := base64.RawStdEncoding.DecodeString(string(enc))
	if err != nil || !s.auth.VerifyMAC(string(kid), tag, []byte("ticket"), []byte(key), body) {
		s.metrics.BackplaneRejected.WithLabelValues("ticket_forged").Inc()
		return nil, ErrNoTicket
	}
	var t Ticket
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, fmt.Errorf("tickets: %w", err)
	}
	if !owned {
		return &t, nil
	}
	if t.UserID != user || t.SessionID != session {
		return nil, ErrNoTicket // the secret named another owner
	}
	for _, m := range marks {
		ns, err := m.Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return &t, nil // unreadable: the hub reads the database
		default:
			if at := time.Unix(0, ns); at.After(t.Revoked) {
				t.Revoked = at
			}
		}
	}
	t.RevocationsChecked = true
	return &t, nil
}

// Revoker records revocations where tickets are redeemed (RedisTickets).
type Revoker interface {
	Revoke(ctx context.Context, user, session string, at time.Time) error
}

// RevokingDisconnector passes disconnects on to Next (the backplane), after
// recording each as a revocation in Tickets, so that a ticket bought before
// a logout (here or everywhere), a password change or an account deletion
// is refused on any replica without a database read. accounts.Service calls
// it once the revocation is committed.
type RevokingDisconnector struct {
	Next    accounts.Disconnector
	Tickets Revoker
	Log     *slog.Logger
	Now     func() time.Time // nil: time.Now
}

func (r RevokingDisconnector) revoke(ctx context.Context, user, session string) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if err := r.Tickets.Revoke(ctx, user, session, now()); err != nil {
		// Redis is failing: its tickets are failing too, and the memory
		// fallback's are checked against the database.
		r.Log.Warn("ticket revocation not recorded", "err", err)
	}
}

// Disconnect implements accounts.Disconnector.
func (r RevokingDisconnector) Disconnect(ctx context.Context, userID, exceptSession, reason string) {
	r.revoke(ctx, userID, "")
	r.Next.Disconnect(ctx, userID, exceptSession, reason)
}

// DisconnectSession implements accounts.Disconnector.
func (r RevokingDisconnector) DisconnectSession(ctx context.Context, userID, session, reason string) {
	r.revoke(ctx, userID, session)
	r.Next.DisconnectSession(ctx, userID, session, reason)
}

// FallbackTickets uses Primary and, when it fails, Secondary: during a Redis
// outage tickets still work, redeemable on the replica that issued them.
// Breaker (may be nil) skips Primary for a cool-down after it fails.
type FallbackTickets struct {
	Primary, Secondary Tickets
	Breaker            *circuit.Breaker
}

// Put implements Tickets.
func (f FallbackTickets) Put(ctx context.Context, key string, t Ticket, ttl time.Duration) error {
	if f.Breaker.Allow() {
		err := f.Primary.Put(ctx, key, t, ttl)
		if err == nil {
			f.Breaker.Success()
			return nil
		}
		f.Breaker.Failure()
	}
	return f.Secondary.Put(ctx, key, t, ttl)
}

// Take implements Tickets.
func (f FallbackTickets) Take(ctx context.Context, key string) (*Ticket, error) {
	err := ErrNoTicket
	if f.Breaker.Allow() {
		var t *Ticket
		t, err = f.Primary.Take(ctx, key)
		switch {
		case err == nil:
			f.Breaker.Success()
			return t, nil
		case errors.Is(err, ErrNoTicket):
			f.Breaker.Success() // Redis answered
		default:
			f.Breaker.Failure()
		}
	}
	if t2, err2 := f.Secondary.Take(ctx, key); err2 == nil {
		return t2, nil
	}
	return nil, err
}
