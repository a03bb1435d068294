package presence

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	o, err := redis.ParseURL(chattest.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

// Shared presence: first and last connections are detected across replicas,
// and a crashed replica's connections lapse after the TTL without heartbeats.
func TestRedisPresence(t *testing.T) {
	ctx := context.Background()
	c := testRedis(t)
	now := time.Now()
	clock := func() time.Time { return now }
	replicaA := NewRedis(c, 45*time.Second, clock)
	replicaB := NewRedis(c, 45*time.Second, clock)
	user := "u_presence_" + now.Format("150405.000000000")

	first, err := replicaA.Connect(ctx, user, "a1")
	if err != nil || !first {
		t.Fatalf("first connect: %v %v", first, err)
	}
	if first, _ := replicaB.Connect(ctx, user, "b1"); first {
		t.Fatal("second connection on another replica reported as first")
	}
	if last, _ := replicaA.Disconnect(ctx, user, "a1"); last {
		t.Fatal("user still has b1, yet reported offline")
	}
	st, err := replicaA.Status(ctx, []string{user, "u_never_seen"})
	if err != nil || !st[user].Online || st["u_never_seen"].Online || !st["u_never_seen"].LastSeen.IsZero() {
		t.Fatalf("status %+v %v", st, err)
	}

	// Replica B crashes: no disconnect, no heartbeat. Within the TTL the user
	// is online; after it, offline, with the last-seen time kept.
	now = now.Add(44 * time.Second)
	if st, _ := replicaA.Status(ctx, []string{user}); !st[user].Online {
		t.Fatal("offline before the TTL")
	}
	now = now.Add(2 * time.Second)
	st, _ = replicaA.Status(ctx, []string{user})
	if st[user].Online || st[user].LastSeen.IsZero() {
		t.Fatalf("crashed replica's user: %+v, want offline with last seen", st[user])
	}

	// Heartbeats keep a live replica's connections online past the TTL.
	replicaA.Connect(ctx, user, "a2")
	for i := 0; i < 4; i++ {
		now = now.Add(30 * time.Second)
		if err := replicaA.Heartbeat(ctx, map[string][]string{user: {"a2"}}); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := replicaA.Status(ctx, []string{user}); !st[user].Online {
		t.Fatal("heartbeating connection went offline")
	}
	if last, _ := replicaA.Disconnect(ctx, user, "a2"); !last {
		t.Fatal("last connection's disconnect not reported as last")
	}
}
