// Package ratelimit limits how often a key (an IP, an account, a user) may do
// something. The in-memory Limiter serves one process; a shared one (Redis)
// implements the same interface for many replicas.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/chatserver/circuit"
	"github.com/parley-chat/parley/pkg/settings"
)

// Rate is N events per Per, with bursts of up to N. The format is defined once,
// in pkg/settings, which the operator shares.
type Rate = settings.Rate

// ParseRate reads "N/duration", e.g. "10/5m" or "60/1m".
func ParseRate(s string) (Rate, error) { return settings.ParseRate(s) }

// Limiter decides whether one more event for key is allowed now. When not, it
// says how long to wait.
type Limiter interface {
	Allow(ctx context.Context, key string) (ok bool, retryAfter time.Duration, err error)
}

// Memory is a token-bucket Limiter for one process. Idle keys are swept so
// memory stays bounded by the keys active within one period.
type Memory struct {
	rate rate.Limit
	n    int
	per  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	buckets map[string]*entry
	sweep   time.Time
}

type entry struct {
	lim  *rate.Limiter
	last time.Time
}

// NewMemory returns a Memory limiter for r. now may be nil (time.Now).
func NewMemory(r Rate, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{rate: rate.Limit(float64(r.N) / r.Per.Seconds()), n: r.N, per: r.Per, now: now,
		buckets: map[string]*entry{}}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string) (bool, time.Duration, error) {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.sweep) > m.per {
		// A bucket untouched for a whole period is full again: forgetting it
		// changes nothing.
		for k, e := range m.buckets {
			if now.Sub(e.last) > m.per {
				delete(m.buckets, k)
			}
		}
		m.sweep = now
	}
	e, ok := m.buckets[key]
	if !ok {
		e = &entry{lim: rate.NewLimiter(m.rate, m.n)}
		m.buckets[key] = e
	}
	e.last = now
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d, nil
	}
	return true, 0, nil
}

// Fallback uses Primary (shared, e.g. Redis) and, when it fails, Secondary
// (this process only): a Redis outage weakens the limit to per-replica
// instead of lifting it.
type Fallback struct {
	Primary, Secondary Limiter
	OnError            func(error)
	// Breaker, when set, skips Primary for a cool-down after it fails, so an
	// outage costs one failed round trip per cool-down, not one per request.
	Breaker *circuit.Breaker
}

// Allow implements Limiter.
func (f Fallback) Allow(ctx context.Context, key string) (bool, time.Duration, error) {
	if !f.Breaker.Allow() {
		return f.Secondary.Allow(ctx, key)
	}
	ok, wait, err := f.Primary.Allow(ctx, key)
	if err == nil {
		f.Breaker.Success()
		return ok, wait, nil
	}
	f.Breaker.Failure()
	if f.OnError != nil {
		f.OnError(err)
	}
	return f.Secondary.Allow(ctx, key)
}
