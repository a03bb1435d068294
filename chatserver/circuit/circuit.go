// Package circuit is a circuit breaker for calls to a shared dependency
// (Redis) that has a local fallback: after a failure, callers skip the
// dependency for a cool-down instead of paying a failed round trip each, then
// one call at a time probes it until one succeeds.
package circuit

import (
	"context"
	"sync"
	"time"
)

// Breaker is safe for concurrent use. The zero value is not usable: use New.
// A nil *Breaker is always closed (a dependency with no breaker).
type Breaker struct {
	cooldown time.Duration
	now      func() time.Time

	mu        sync.Mutex
	open      bool
	retryAt   time.Time
	probing   bool
	onChanged func(open bool)
	// background: a Probe loop decides when to close, so callers never
	// probe with a real call (which can wait on a dead dependency).
	background bool
}

// New returns a closed Breaker that stays open for cooldown after a failure.
// now may be nil (time.Now); onChanged (may be nil) is called, outside the
// lock, when the breaker opens or closes.
func New(cooldown time.Duration, now func() time.Time, onChanged func(open bool)) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{cooldown: cooldown, now: now, onChanged: onChanged}
}

// Allow reports whether to call the dependency now: always while closed;
// while open, once per cool-down (a probe), and never while a probe runs.
// A call allowed must be followed by Success or Failure.
func (b *Breaker) Allow() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.open {
		return true
	}
	if b.background || b.probing || b.now().Before(b.retryAt) {
		return false
	}
	b.probing = true
	return true
}

// Success records a call that worked: the breaker closes.
func (b *Breaker) Success() {
	if b == nil {
		return
	}
	b.mu.Lock()
	changed := b.open
	b.open, b.probing = false, false
	b.mu.Unlock()
	if changed && b.onChanged != nil {
		b.onChanged(false)
	}
}

// Failure records a call that failed: the breaker opens (again) for the
// cool-down.
func (b *Breaker) Failure() {
	if b == nil {
		return
	}
	b.mu.Lock()
	changed := !b.open
	b.open, b.probing = true, false
	b.retryAt = b.now().Add(b.cooldown)
	b.mu.Unlock()
	if changed && b.onChanged != nil {
		b.onChanged(true)
	}
}

// Open reports whether calls are being skipped.
func (b *Breaker) Open() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.open
}

// Probe checks the dependency with check every interval while the breaker is
// open, and closes it when check succeeds, until ctx ends. From the first
// call on, callers are never let through to probe themselves: a probe in a
// request's path would make that request wait on a dead dependency.
func (b *Breaker) Probe(ctx context.Context, interval time.Duration, check func(context.Context) error) {
	b.mu.Lock()
	b.background = true
	b.mu.Unlock()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !b.Open() {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, interval)
		err := check(cctx)
		cancel()
		if err == nil {
			b.Success()
		}
	}
}
