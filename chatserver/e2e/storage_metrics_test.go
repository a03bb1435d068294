package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// metricSample reads one series (name with its labels, as /metrics prints
// it) from a replica; ok is false when the series is not there.
func metricSample(t *testing.T, r *replica, series string) (v float64, ok bool) {
	t.Helper()
	res, err := http.Get(r.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), series+" "); found {
			n, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return n, true
		}
	}
	return 0, false
}

// The dashboard's database and Redis latency panels read
// parley_db_query_duration_seconds and parley_redis_command_duration_seconds:
// a replica on PostgreSQL and Redis times its statements and commands (the
// backplane publishes in pipelines, which count once as "pipeline").
func TestStorageLatencyMetrics(t *testing.T) {
	skipShort(t)
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r := c.start()
	alice, bob := r.Register("alice"), r.Register("bob")
	d := alice.Direct(bob)
	bobWS := bob.On(r.API).Dial()
	m := alice.On(r.API).Send(d.ID, "timed")
	bobWS.WaitForMessage(m.ID, wait)
	for _, series := range []string{
		`parley_db_query_duration_seconds_count{statement="select"}`,
		`parley_db_query_duration_seconds_count{statement="insert"}`,
		`parley_db_query_duration_seconds_count{statement="commit"}`,
		`parley_redis_command_duration_seconds_count{command="set"}`,      // the WebSocket ticket
		`parley_redis_command_duration_seconds_count{command="pipeline"}`, // the backplane's publishes
	} {
		if n, ok := metricSample(t, r, series); !ok || n < 1 {
			t.Errorf("%s = %v (present %v), want at least 1", series, n, ok)
		}
	}
}
