package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// Two limiters (two replicas) on one Redis share one allowance.
func TestRedisLimiterIsShared(t *testing.T) {
	o, err := redis.ParseURL(chattest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx := context.Background()
	rate := Rate{N: 10, Per: 5 * time.Minute}
	name := "test-" + time.Now().Format("150405.000000000")
	a, b := NewRedis(c, name, rate), NewRedis(c, name, rate)
	for i := 0; i < 10; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		if ok, _, err := l.Allow(ctx, "ip:1"); !ok || err != nil {
			t.Fatalf("attempt %d: %v %v", i+1, ok, err)
		}
	}
	for _, l := range []*Redis{a, b} {
		ok, wait, err := l.Allow(ctx, "ip:1")
		if ok || err != nil || wait <= 0 || wait > 30*time.Second {
			t.Fatalf("11th attempt: ok=%v wait=%v err=%v", ok, wait, err)
		}
	}
	if ok, _, _ := a.Allow(ctx, "ip:2"); !ok {
		t.Fatal("another key limited")
	}

	// With Redis unreachable, Fallback limits per process instead of failing open.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer dead.Close()
	errs := 0
	f := Fallback{Primary: NewRedis(dead, name, Rate{N: 2, Per: time.Minute}), Secondary: NewMemory(Rate{N: 2, Per: time.Minute}, nil),
		OnError: func(error) { errs++ }}
	ok1, _, _ := f.Allow(ctx, "k")
	ok2, _, _ := f.Allow(ctx, "k")
	ok3, _, _ := f.Allow(ctx, "k")
	if !ok1 || !ok2 || ok3 || errs != 3 {
		t.Fatalf("fallback: %v %v %v, errors seen %d", ok1, ok2, ok3, errs)
	}
}
