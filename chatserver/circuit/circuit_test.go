package circuit

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBreakerOpensCoolsDownAndProbesOnce(t *testing.T) {
	now := time.Unix(0, 0)
	var changes []bool
	b := New(time.Second, func() time.Time { return now }, func(open bool) { changes = append(changes, open) })
	if !b.Allow() {
		t.Fatal("a new breaker refused a call")
	}
	b.Failure()
	if b.Allow() || !b.Open() {
		t.Fatal("an open breaker allowed a call during its cool-down")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no probe after the cool-down")
	}
	if b.Allow() {
		t.Fatal("a second call allowed while the probe runs")
	}
	b.Failure() // the probe failed: another cool-down
	if b.Allow() {
		t.Fatal("allowed right after a failed probe")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no probe after the second cool-down")
	}
	b.Success()
	if !b.Allow() || !b.Allow() || b.Open() {
		t.Fatal("a closed breaker refused calls")
	}
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Fatalf("changes = %v, want [open closed]", changes)
	}
}

func TestBackgroundProbeClosesAndCallersNeverProbe(t *testing.T) {
	b := New(time.Millisecond, nil, nil)
	healthy := make(chan bool, 1)
	healthy <- false
	check := func(context.Context) error {
		select {
		case ok := <-healthy:
			if ok {
				return nil
			}
		default:
		}
		return errors.New("down")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Probe(ctx, 5*time.Millisecond, check)
	time.Sleep(10 * time.Millisecond) // the loop has started
	b.Failure()
	time.Sleep(20 * time.Millisecond) // well past the cool-down
	if b.Allow() {
		t.Fatal("a caller was let through to probe while a background probe runs")
	}
	healthy <- true
	deadline := time.Now().Add(2 * time.Second)
	for b.Open() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if b.Open() || !b.Allow() {
		t.Fatal("the background probe did not close the breaker")
	}
}
