package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter shared by every replica (GCRA in Redis, via redis_rate),
// so N replicas do not multiply anyone's allowance.
type Redis struct {
	lim    *redis_rate.Limiter
	limit  redis_rate.Limit
	prefix string
}

// NewRedis returns a shared limiter for r; name separates limits' keys.
func NewRedis(c redis.UniversalClient, name string, r Rate) *Redis {
	return &Redis{lim: redis_rate.NewLimiter(c), prefix: "parley:rl:" + name + ":",
		limit: redis_rate.Limit{Rate: r.N, Burst: r.N, Period: r.Per}}
}

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	res, err := l.lim.Allow(ctx, l.prefix+key, l.limit)
	if err != nil {
		return false, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if res.Allowed == 0 {
		return false, res.RetryAfter, nil
	}
	return true, 0, nil
}
