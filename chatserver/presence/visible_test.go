package presence

import (
	"context"
	"testing"
	"time"
)

// Attentive: a user is attentive while any live connection of theirs, on
// any replica, has a visible page; a connection that never reported counts
// as visible; a hidden one that closes or lapses stops counting.
func testAttentive(t *testing.T, a, b Tracker, advance func(time.Duration), user string) {
	t.Helper()
	ctx := context.Background()
	want := func(what string, v bool) {
		t.Helper()
		got, err := b.Attentive(ctx, []string{user, user + "-nobody"})
		if err != nil {
			t.Fatal(err)
		}
		if got[user] != v || got[user+"-nobody"] {
			t.Fatalf("%s: attentive = %v, want %v", what, got, v)
		}
	}
	want("no connection", false)
	if _, err := a.Connect(ctx, user, "a1"); err != nil {
		t.Fatal(err)
	}
	want("a connection that never reported", true)
	if err := a.SetVisible(ctx, user, "a1", false); err != nil {
		t.Fatal(err)
	}
	want("its page hidden", false)
	if _, err := b.Connect(ctx, user, "b1"); err != nil {
		t.Fatal(err)
	}
	want("a second, visible connection", true)
	if err := b.SetVisible(ctx, user, "b1", false); err != nil {
		t.Fatal(err)
	}
	want("both hidden", false)
	if err := a.SetVisible(ctx, user, "a1", true); err != nil {
		t.Fatal(err)
	}
	want("one visible again", true)
	if _, err := a.Disconnect(ctx, user, "a1"); err != nil {
		t.Fatal(err)
	}
	want("the visible one closed", false)
	if advance != nil {
		if err := b.SetVisible(ctx, user, "b1", true); err != nil {
			t.Fatal(err)
		}
		want("b visible", true)
		advance(time.Minute) // b's replica died: no heartbeat
		want("b lapsed", false)
	}
}

func TestMemoryAttentive(t *testing.T) {
	m := NewMemory(nil)
	testAttentive(t, m, m, nil, "u1")
}

func TestRedisAttentive(t *testing.T) {
	c := testRedis(t)
	now := time.Now()
	clock := func() time.Time { return now }
	a, b := NewRedis(c, 45*time.Second, clock), NewRedis(c, 45*time.Second, clock)
	testAttentive(t, a, b, func(d time.Duration) { now = now.Add(d) }, "u_attentive_"+now.Format("150405.000000000"))
}
