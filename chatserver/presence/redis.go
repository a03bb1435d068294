package presence

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Tracker shared by replicas. Each connection is a member of the
// user's sorted set scored by its expiry; replicas refresh their connections'
// scores by heartbeat, so a crashed replica's connections lapse within TTL and
// its users read as offline.
type Redis struct {
	c   redis.UniversalClient
	ttl time.Duration
	now func() time.Time
}

// NewRedis returns a Redis tracker whose entries live ttl without a heartbeat.
func NewRedis(c redis.UniversalClient, ttl time.Duration, now func() time.Time) *Redis {
	if now == nil {
		now = time.Now
	}
	return &Redis{c: c, ttl: ttl, now: now}
}

func connsKey(user string) string { return "parley:presence:{" + user + "}:conns" }
func seenKey(user string) string  { return "parley:presence:{" + user + "}:seen" }

// hiddenKey is the set of the user's connections whose page is hidden. It
// lives as long as the connections set (refreshed by the same heartbeat); a
// member left by a crashed replica is harmless, as Attentive only looks at
// live connections.
func hiddenKey(user string) string { return "parley:presence:{" + user + "}:hidden" }

const seenTTL = 30 * 24 * time.Hour

var connectScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
return before`)

var disconnectScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local removed = redis.call('ZREM', KEYS[1], ARGV[2])
local after = redis.call('ZCARD', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('SREM', KEYS[3], ARGV[2])
return {removed, after}`)

func ms(t time.Time) int64 { return t.UnixMilli() }

// Connect implements Tracker.
func (r *Redis) Connect(ctx context.Context, userID, connID string) (bool, error) {
	now := r.now()
	before, err := connectScript.Run(ctx, r.c, []string{connsKey(userID), seenKey(userID)},
		ms(now), ms(now.Add(r.ttl)), connID, r.ttl.Milliseconds(), seenTTL.Milliseconds()).Int64()
	if err != nil {
		return false, fmt.Errorf("presence: connect: %w", err)
	}
	return before == 0, nil
}

// Disconnect implements Tracker.
func (r *Redis) Disconnect(ctx context.Context, userID, connID string) (bool, error) {
	now := r.now()
	res, err := disconnectScript.Run(ctx, r.c, []string{connsKey(userID), seenKey(userID), hiddenKey(userID)},
		ms(now), connID, seenTTL.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return false, fmt.Errorf("presence: disconnect: %w", err)
	}
	return res[0] == 1 && res[1] == 0, nil
}

// Heartbeat implements Tracker: one pipelined round trip for all connections.
func (r *Redis) Heartbeat(ctx context.Context, conns map[string][]string) error {
	if len(conns) == 0 {
		return nil
	}
	now := r.now()
	exp := float64(ms(now.Add(r.ttl)))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for user, ids := range conns {
			zs := make([]redis.Z, len(ids))
			for i, id := range ids {
				zs[i] = redis.Z{Score: exp, Member: id}
			}
			p.ZAdd(ctx, connsKey(user), zs...)
			p.PExpire(ctx, connsKey(user), r.ttl)
			p.PExpire(ctx, hiddenKey(user), r.ttl)
			p.Set(ctx, seenKey(user), ms(now), seenTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence: heartbeat: %w", err)
	}
	return nil
}

// Status implements Tracker.
func (r *Redis) Status(ctx context.Context, userIDs []string) (map[string]Status, error) {
	now := strconv.FormatInt(ms(r.now()), 10)
	counts := make([]*redis.IntCmd, len(userIDs))
	seen := make([]*redis.StringCmd, len(userIDs))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range userIDs {
			counts[i] = p.ZCount(ctx, connsKey(id), "("+now, "+inf")
			seen[i] = p.Get(ctx, seenKey(id))
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("presence: status: %w", err)
	}
	out := make(map[string]Status, len(userIDs))
	for i, id := range userIDs {
		st := Status{Online: counts[i].Val() > 0}
		if v, err := seen[i].Int64(); err == nil {
			st.LastSeen = time.UnixMilli(v).UTC()
		}
		out[id] = st
	}
	return out, nil
}

// SetVisible implements Tracker.
func (r *Redis) SetVisible(ctx context.Context, userID, connID string, visible bool) error {
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if visible {
			p.SRem(ctx, hiddenKey(userID), connID)
		} else {
			p.SAdd(ctx, hiddenKey(userID), connID)
			p.PExpire(ctx, hiddenKey(userID), r.ttl)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("presence: set visible: %w", err)
	}
	return nil
}

// Attentive implements Tracker: one pipelined round trip reads each user's
// live connections and hidden ones.
func (r *Redis) Attentive(ctx context.Context, userIDs []string) (map[string]bool, error) {
	now := strconv.FormatInt(ms(r.now()), 10)
	live := make([]*redis.StringSliceCmd, len(userIDs))
	hidden := make([]*redis.StringSliceCmd, len(userIDs))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range userIDs {
			live[i] = p.ZRangeByScore(ctx, connsKey(id), &redis.ZRangeBy{Min: "(" + now, Max: "+inf"})
			hidden[i] = p.SMembers(ctx, hiddenKey(id))
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("presence: attentive: %w", err)
	}
	out := make(map[string]bool, len(userIDs))
	for i, id := range userIDs {
		h := map[string]bool{}
		for _, c := range hidden[i].Val() {
			h[c] = true
		}
		for _, c := range live[i].Val() {
			if !h[c] {
				out[id] = true
				break
			}
		}
	}
	return out, nil
}
