package ratelimit

import (
	"context"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	r, err := ParseRate("10/5m")
	if err != nil || r.N != 10 || r.Per != 5*time.Minute {
		t.Fatalf("ParseRate = %+v, %v", r, err)
	}
	for _, bad := range []string{"", "10", "0/1m", "-1/1m", "x/1m", "10/", "10/0s", "10/abc"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

func TestMemoryLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMemory(Rate{N: 10, Per: 5 * time.Minute}, func() time.Time { return now })
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		if ok, _, _ := m.Allow(ctx, "ip:1"); !ok {
			t.Fatalf("attempt %d refused; the first 10 must pass", i+1)
		}
	}
	ok, wait, _ := m.Allow(ctx, "ip:1")
	if ok {
		t.Fatal("11th attempt within 5 minutes allowed")
	}
	if wait <= 0 || wait > 30*time.Second {
		t.Fatalf("retry after %v, want (0, 30s]", wait)
	}
	if ok, _, _ := m.Allow(ctx, "ip:2"); !ok {
		t.Fatal("another key was limited")
	}
	now = now.Add(wait)
	if ok, _, _ := m.Allow(ctx, "ip:1"); !ok {
		t.Fatal("refused after waiting Retry-After")
	}
	if ok, _, _ := m.Allow(ctx, "ip:1"); ok {
		t.Fatal("a refused attempt must not be banked")
	}
	// idle keys are swept once a period has passed
	now = now.Add(6 * time.Minute)
	m.Allow(ctx, "ip:3")
	if _, ok := m.buckets["ip:2"]; ok {
		t.Fatal("idle bucket not swept")
	}
}
