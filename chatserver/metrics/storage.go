package metrics

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// Latency buckets for database statements and Redis commands: both are
// sub-millisecond when healthy, and an on-call person cares about the tail.
var storageBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// statementKinds are the labels of statementKind besides "other".
var statementKinds = []string{"select", "insert", "update", "delete", "with", "begin", "commit", "rollback"}

// statementKind labels a statement by its first keyword, so the label stays
// a handful of values whatever the SQL. It runs for every statement: no
// allocation.
func statementKind(sql string) string {
	sql = strings.TrimLeft(sql, " \t\r\n(")
	end := strings.IndexAny(sql, " \t\r\n(;")
	if end < 0 {
		end = len(sql)
	}
	for _, kw := range statementKinds {
		if strings.EqualFold(sql[:end], kw) {
			return kw
		}
	}
	return "other"
}

type queryStartKey struct{}

type queryStart struct {
	at   time.Time
	kind string
}

// PgxTracer times every statement the PostgreSQL pool sends
// (parley_db_query_duration_seconds{statement}); SQLite has no such hook.
func (m *Metrics) PgxTracer() pgx.QueryTracer { return pgxTracer{m} }

type pgxTracer struct{ m *Metrics }

func (t pgxTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{at: time.Now(), kind: statementKind(d.SQL)})
}

func (t pgxTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	if s, ok := ctx.Value(queryStartKey{}).(queryStart); ok {
		t.m.DBQueryDuration.WithLabelValues(s.kind).Observe(time.Since(s.at).Seconds())
	}
}

// RedisHook times every Redis command, pipelines as one
// (parley_redis_command_duration_seconds{command}).
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.m.RedisCommandDuration.WithLabelValues(redisCommand(cmd.Name())).Observe(time.Since(start).Seconds())
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.m.RedisCommandDuration.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		return err
	}
}

// redisCommand keeps the label to command names (go-redis gives them lower
// case); anything unexpected is "other".
func redisCommand(name string) string {
	if name == "" || len(name) > 24 || strings.ContainsFunc(name, func(r rune) bool { return (r < 'a' || r > 'z') && r != '_' }) {
		return "other"
	}
	return name
}
