package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// replicaSample is one chat server at one sampling instant.
type replicaSample struct {
	Goroutines   float64 `json:"goroutines"`   // go_goroutines; -1: not read
	HeapInuseMiB float64 `json:"heapInuseMiB"` // go_memstats_heap_inuse_bytes; -1: not read
	RSSMiB       float64 `json:"rssMiB"`       // VmRSS from /proc; -1: not read
	FDs          int     `json:"fds"`          // entries of /proc/<pid>/fd; -1: not read
	Cores        float64 `json:"cores"`        // CPU used since the previous sample
	Conns        int     `json:"conns"`        // this generator's open connections to it
}

// soakSample is one sampling instant of a soak, and what happened in the
// interval before it.
type soakSample struct {
	Seconds         float64            `json:"seconds"` // since the traffic started
	Replicas        []replicaSample    `json:"replicas"`
	RedisClients    int                `json:"redisClients"`  // connected_clients, -1 when not sampled
	PGConns         int                `json:"postgresConns"` // backends of the servers' database, -1 when not sampled
	WatchCores      map[string]float64 `json:"watchCores,omitempty"`
	Acked           int64              `json:"acked"`
	Delivered       int64              `json:"delivered"`
	AckedPerSec     float64            `json:"ackedPerSecond"`
	DeliveredPerSec float64            `json:"deliveredPerSecond"`
	DeliveryP99Ms   float64            `json:"deliveryP99Ms"`
	AckP99Ms        float64            `json:"ackP99Ms"`
	Errors          int64              `json:"errors"`   // of every kind, in the interval
	Reopened        int64              `json:"reopened"` // churned or lost connections opened again, in the interval
	LoadAvg         string             `json:"loadavg"`
}

func (m soakSample) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%.0f msg/s, %.0f deliveries/s, p99 %.1f ms, %d errors, %d reopened", m.AckedPerSec, m.DeliveredPerSec,
		m.DeliveryP99Ms, m.Errors, m.Reopened)
	for i, r := range m.Replicas {
		fmt.Fprintf(&b, "; r%d %.0f goroutines, heap %.1f MiB, RSS %.1f MiB, %d fds", i+1, r.Goroutines, r.HeapInuseMiB, r.RSSMiB, r.FDs)
	}
	if m.RedisClients >= 0 {
		fmt.Fprintf(&b, "; redis %d clients", m.RedisClients)
	}
	if m.PGConns >= 0 {
		fmt.Fprintf(&b, "; postgres %d conns", m.PGConns)
	}
	return b.String() + "; load " + m.LoadAvg
}

// sampler reads the servers' /metrics and /proc, Redis's INFO and
// PostgreSQL's pg_stat_activity.
type sampler struct {
	o     *options
	apis  []*api
	hc    *http.Client
	rdb   *redis.Client
	pg    *pgx.Conn
	start time.Time

	// state at the previous sample
	prevAt        time.Time
	prevCPU       []float64
	prevWatch     []float64
	prevAcked     int64
	prevDelivered int64
	prevErrors    int64
	prevReopened  int64
	prevDelivery  []int64
	prevAck       []int64
}

func newSampler(ctx context.Context, o *options, apis []*api) (*sampler, error) {
	sm := &sampler{o: o, apis: apis, hc: &http.Client{Timeout: 10 * time.Second}}
	if o.soak.redisURL != "" {
		opt, err := redis.ParseURL(o.soak.redisURL)
		if err != nil {
			return nil, fmt.Errorf("-soak-redis: %w", err)
		}
		opt.PoolSize = 1
		sm.rdb = redis.NewClient(opt)
	}
	if o.soak.pgURL != "" {
		conn, err := pgx.Connect(ctx, o.soak.pgURL)
		if err != nil {
			sm.close()
			return nil, fmt.Errorf("-soak-postgres %s: %w", redact(o.soak.pgURL), err)
		}
		sm.pg = conn
	}
	return sm, nil
}

func (sm *sampler) close() {
	if sm.rdb != nil {
		_ = sm.rdb.Close()
	}
	if sm.pg != nil {
		_ = sm.pg.Close(context.Background())
	}
}

// baseline records where the counters stand when the traffic starts.
func (sm *sampler) baseline(s *soakRun) {
	sm.start, sm.prevAt = s.t.start, time.Now()
	sm.prevCPU = make([]float64, len(sm.o.serverPIDs))
	for i, pid := range sm.o.serverPIDs {
		sm.prevCPU[i], _ = cpuSeconds(pid, false)
	}
	sm.prevWatch = make([]float64, len(sm.o.watch))
	for i, w := range sm.o.watch {
		sm.prevWatch[i], _ = cpuSeconds(w.PID, w.children)
	}
	sm.prevAcked, sm.prevDelivered = s.t.acked.Load(), s.t.delivered.Load()
	sm.prevErrors, sm.prevReopened = sumErrors(s.errs.snapshot()), s.churned.Load()+s.lost.Load()
	sm.prevDelivery, sm.prevAck = snapshotCounts(&s.t.delivery), snapshotCounts(&s.t.ack)
}

// take samples everything once; a source that cannot be read is counted as
// an error of kind sample_<source> and shows as 0 (or -1).
func (sm *sampler) take(ctx context.Context, s *soakRun) soakSample {
	now := time.Now()
	dt := now.Sub(sm.prevAt).Seconds()
	m := soakSample{Seconds: now.Sub(sm.start).Seconds(), RedisClients: -1, PGConns: -1}
	open := make([]int, len(sm.o.targets))
	for _, sc := range s.sc {
		if c := sc.cur.Load(); c != nil && !c.closed.Load() {
			open[c.target]++
		}
	}
	for i, pid := range sm.o.serverPIDs {
		// -1: could not be read (the growth check then gives no verdict).
		r := replicaSample{Conns: open[i], Goroutines: -1, HeapInuseMiB: -1, RSSMiB: -1, FDs: -1}
		if vals, err := sm.scrape(ctx, sm.apis[i].base+"/metrics"); err == nil {
			r.Goroutines = vals["go_goroutines"]
			r.HeapInuseMiB = vals["go_memstats_heap_inuse_bytes"] / (1 << 20)
		} else {
			s.errs.addErr("sample_metrics", err)
		}
		if kib, err := rssKiB(pid); err == nil {
			r.RSSMiB = float64(kib) / 1024
		} else {
			s.errs.addErr("sample_rss", err)
		}
		if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			r.FDs = len(fds)
		} else {
			s.errs.addErr("sample_fds", err)
		}
		if c, err := cpuSeconds(pid, false); err == nil {
			r.Cores = (c - sm.prevCPU[i]) / dt
			sm.prevCPU[i] = c
		}
		m.Replicas = append(m.Replicas, r)
	}
	if len(sm.o.watch) > 0 {
		m.WatchCores = map[string]float64{}
		for i, w := range sm.o.watch {
			if c, err := cpuSeconds(w.PID, w.children); err == nil {
				m.WatchCores[w.Name] = (c - sm.prevWatch[i]) / dt
				sm.prevWatch[i] = c
			}
		}
	}
	if sm.rdb != nil {
		info, err := sm.rdb.Info(ctx, "clients").Result()
		if n, ok := infoField(info, "connected_clients"); err == nil && ok {
			m.RedisClients = int(n)
		} else {
			s.errs.addErr("sample_redis", fmt.Errorf("INFO clients: %v", err))
		}
	}
	if sm.pg != nil {
		var n int
		err := sm.pg.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", sm.o.soak.pgDatabase).Scan(&n)
		if err == nil {
			m.PGConns = n
		} else {
			s.errs.addErr("sample_postgres", err)
		}
	}
	acked, delivered := s.t.acked.Load(), s.t.delivered.Load()
	m.Acked, m.Delivered = acked-sm.prevAcked, delivered-sm.prevDelivered
	m.AckedPerSec, m.DeliveredPerSec = float64(m.Acked)/dt, float64(m.Delivered)/dt
	dc, ac := snapshotCounts(&s.t.delivery), snapshotCounts(&s.t.ack)
	m.DeliveryP99Ms, m.AckP99Ms = deltaQuantile(sm.prevDelivery, dc, 0.99), deltaQuantile(sm.prevAck, ac, 0.99)
	errsNow, reopened := sumErrors(s.errs.snapshot()), s.churned.Load()+s.lost.Load()
	m.Errors, m.Reopened = errsNow-sm.prevErrors, reopened-sm.prevReopened
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		m.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	sm.prevAt, sm.prevAcked, sm.prevDelivered, sm.prevErrors, sm.prevReopened = now, acked, delivered, errsNow, reopened
	sm.prevDelivery, sm.prevAck = dc, ac
	return m
}

func (sm *sampler) scrape(ctx context.Context, u string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u, err)
	}
	res, err := sm.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", u, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %d", u, res.StatusCode)
	}
	return promValues(io.LimitReader(res.Body, 16<<20), "go_goroutines", "go_memstats_heap_inuse_bytes", "process_open_fds")
}

// promValues reads the unlabelled samples named in names from Prometheus's
// text exposition format.
func promValues(r io.Reader, names ...string) (map[string]float64, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || !want[f[0]] {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			return out, fmt.Errorf("metric %s: bad value %q", f[0], f[1])
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read metrics: %w", err)
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return out, fmt.Errorf("metric %s not exported", n)
		}
	}
	return out, nil
}

// infoField reads "name:value" from the answer of Redis INFO.
func infoField(info, name string) (int64, bool) {
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func sumErrors(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// snapshotCounts copies a histogram's buckets, so an interval's quantiles
// are those of the difference of two copies.
func snapshotCounts(h *histogram) []int64 {
	out := make([]int64, len(h.counts))
	for i := range h.counts {
		out[i] = h.counts[i].Load()
	}
	return out
}

// deltaQuantile is the q quantile, in milliseconds, of what was recorded
// between two snapshots (the upper edge of its bucket; 0 when nothing was).
func deltaQuantile(prev, cur []int64, q float64) float64 {
	var n int64
	for i := range cur {
		n += cur[i] - prev[i]
	}
	if n <= 0 {
		return 0
	}
	rank := max(int64(q*float64(n)+0.5), 1)
	var seen int64
	for i := range cur {
		if seen += cur[i] - prev[i]; seen >= rank {
			return float64(lowerBound(i+1)) / 1000
		}
	}
	return 0
}
