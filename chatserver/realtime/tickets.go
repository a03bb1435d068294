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
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

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
}

// Tickets stores tickets for one redemption.
type Tickets interface {
	Put(ctx context.Context, key string, t Ticket, ttl time.Duration) error
	// Take returns and deletes the ticket (ErrNoTicket when there is none).
	Take(ctx context.Context, key string) (*Ticket, error)
}

// ticketKey is what is stored: the hash, so a dump of the store holds no
// usable ticket.
func ticketKey(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// IssueTicket makes a ticket for t and returns its secret and expiry.
func (h *Hub) IssueTicket(ctx context.Context, t Ticket) (string, time.Time, error) {
	secret := ids.Secret()
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

// Take implements Tickets (GETDEL: atomic, so two replicas cannot both redeem).
func (s *RedisTickets) Take(ctx context.Context, key string) (*Ticket, error) {
	b, err := s.c.GetDel(ctx, redisTicketKey(key)).Bytes()
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
	return &t, nil
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
