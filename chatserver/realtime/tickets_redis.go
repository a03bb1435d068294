package realtime

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisTickets makes tickets single-use across replicas.
type RedisTickets struct{ c redis.UniversalClient }

// NewRedisTickets returns Tickets kept in Redis.
func NewRedisTickets(c redis.UniversalClient) *RedisTickets { return &RedisTickets{c: c} }

// Consume implements Tickets.
func (t *RedisTickets) Consume(ctx context.Context, jti string, expires time.Time) (bool, error) {
	ttl := time.Until(expires) + time.Second
	if ttl < time.Second {
		ttl = time.Second
	}
	ok, err := t.c.SetNX(ctx, "parley:ticket:"+jti, 1, ttl).Result()
	if err != nil {
		return false, fmt.Errorf("tickets: %w", err)
	}
	return ok, nil
}

// FallbackTickets uses Primary and, when it fails, Secondary: during a Redis
// outage a ticket is single-use per replica rather than refused.
type FallbackTickets struct{ Primary, Secondary Tickets }

// Consume implements Tickets.
func (f FallbackTickets) Consume(ctx context.Context, jti string, expires time.Time) (bool, error) {
	ok, err := f.Primary.Consume(ctx, jti, expires)
	if err == nil {
		return ok, nil
	}
	return f.Secondary.Consume(ctx, jti, expires)
}
