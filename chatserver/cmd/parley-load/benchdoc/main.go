// Command benchdoc writes the figures of a `make bench` run (the JSON reports
// of parley-load, redis-benchmark's CSV and the machine description that
// hack/bench.sh collects) or the output of `go test -bench` into
// docs/benchmarks.md. Each source owns one marked section of the file; the
// other sections, including the hand-written analysis, are kept.
//
//	benchdoc -doc docs/benchmarks.md -run tmp/bench/run
//	benchdoc -doc docs/benchmarks.md -go-bench tmp/bench/go-bench.txt
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchdoc:", err)
		os.Exit(1)
	}
}

const skeleton = `# Benchmarks

Figures from ` + "`make bench`" + ` (load test: 2 chat-server replicas + Redis + PostgreSQL on
loopback, driven by ` + "`chatserver/cmd/parley-load`" + `, with the baselines measured in the same
run) and ` + "`make bench-go`" + ` (Go benchmarks of the hot paths). Both regenerate their section of
this file; the analysis is written by hand and says which run it is about.

<!-- figures -->
<!-- /figures -->

<!-- go-bench -->
<!-- /go-bench -->

<!-- analysis -->
## Analysis

Not written yet.
<!-- /analysis -->
`

func run(args []string) error {
	fs := flag.NewFlagSet("benchdoc", flag.ContinueOnError)
	doc := fs.String("doc", "docs/benchmarks.md", "the document to update")
	runDir := fs.String("run", "", "folder of a `make bench` run: replaces the figures section")
	goBench := fs.String("go-bench", "", "output of go test -bench: replaces the go-bench section")
	if err := fs.Parse(args); err != nil {
		return err
	}
	raw, err := os.ReadFile(*doc)
	if errors.Is(err, os.ErrNotExist) {
		raw, err = []byte(skeleton), nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", *doc, err)
	}
	text := string(raw)
	if *runDir != "" {
		body, err := figures(*runDir)
		if err != nil {
			return err
		}
		if text, err = replace(text, "figures", body); err != nil {
			return err
		}
	}
	if *goBench != "" {
		out, err := os.ReadFile(*goBench)
		if err != nil {
			return fmt.Errorf("read go bench output: %w", err)
		}
		body := "## Go benchmarks (`make bench-go`)\n\n" + meta(filepath.Dir(*goBench), "go-bench-meta.txt") +
			"\n```\n" + strings.TrimSpace(string(out)) + "\n```\n"
		if text, err = replace(text, "go-bench", body); err != nil {
			return err
		}
	}
	tmp := *doc + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, *doc); err != nil {
		return fmt.Errorf("write %s: %w", *doc, err)
	}
	return nil
}

// replace sets the content between <!-- name --> and <!-- /name -->.
func replace(text, name, body string) (string, error) {
	open, end := "<!-- "+name+" -->", "<!-- /"+name+" -->"
	i, j := strings.Index(text, open), strings.Index(text, end)
	if i < 0 || j < i {
		return "", fmt.Errorf("markers %s ... %s not found in the document", open, end)
	}
	return text[:i+len(open)] + "\n" + strings.TrimSpace(body) + "\n" + text[j:], nil
}

// meta renders the "key: value" lines of a file as a table ("" when absent).
func meta(dir, name string) string {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return ""
	}
	defer f.Close()
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if ok {
			fmt.Fprintf(&b, "| %s | %s |\n", k, strings.ReplaceAll(v, "|", "\\|"))
		}
	}
	return b.String()
}

type lat struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50Ms"`
	P95   float64 `json:"p95Ms"`
	P99   float64 `json:"p99Ms"`
	Max   float64 `json:"maxMs"`
}

// report is the part of parley-load's JSON report used here.
type report struct {
	Label   string `json:"label"`
	Targets []string
	Sources int `json:"sources"`
	Users   struct {
		Registered int64   `json:"registered"`
		LoggedIn   int64   `json:"loggedIn"`
		Refreshed  int64   `json:"refreshed"`
		Cached     int64   `json:"cached"`
		PerSecond  float64 `json:"registeredPerSecond"`
		Seconds    float64 `json:"seconds"`
	} `json:"users"`
	Connect struct {
		Attempted   int     `json:"attempted"`
		Established int     `json:"established"`
		Seconds     float64 `json:"seconds"`
		PerSecond   float64 `json:"perSecond"`
		Setup       lat     `json:"setupLatency"`
	} `json:"connect"`
	StillOpen int     `json:"stillOpen"`
	HoldSec   float64 `json:"holdSeconds"`
	Traffic   *struct {
		Mode          string  `json:"mode"`
		TargetRate    float64 `json:"targetRate"`
		GroupFraction float64 `json:"groupFraction"`
		Groups        int     `json:"groups"`
		GroupSize     int     `json:"groupSize"`
		Directs       int     `json:"directs"`
		Seconds       float64 `json:"seconds"`
		DrainSeconds  float64 `json:"drainSeconds"`
		Sent          int64   `json:"sent"`
		Acked         int64   `json:"acked"`
		Expected      int64   `json:"expectedDeliveries"`
		Delivered     int64   `json:"delivered"`
		Cross         int64   `json:"crossReplicaDelivered"`
		SentPS        float64 `json:"sentPerSecond"`
		AckedPS       float64 `json:"ackedPerSecond"`
		DeliveredPS   float64 `json:"deliveredPerSecond"`
		Ratio         float64 `json:"deliveryRatio"`
		Delivery      lat     `json:"deliveryLatency"`
		CrossLat      lat     `json:"crossReplicaLatency"`
		Ack           lat     `json:"ackLatency"`
		Behind        int64   `json:"loadGeneratorBehind"`
	} `json:"traffic"`
	Servers []struct {
		PID        int     `json:"pid"`
		Conns      int     `json:"conns"`
		Before     int64   `json:"rssBeforeKiB"`
		After      int64   `json:"rssAfterKiB"`
		Settled    int64   `json:"rssSettledKiB"`
		KiBPerConn float64 `json:"kibPerConn"`
	} `json:"servers"`
	CPU []struct {
		Name  string  `json:"name"`
		Cores float64 `json:"cores"`
	} `json:"cpu"`
	Blobs *struct {
		FileMiB     int `json:"fileMiB"`
		Files       int `json:"files"`
		Concurrency int `json:"concurrency"`
		Phases      []struct {
			Name      string             `json:"name"`
			Round     int                `json:"round"`
			MiB       float64            `json:"mib"`
			Seconds   float64            `json:"seconds"`
			MiBPerSec float64            `json:"mibPerSecond"`
			CPU       map[string]float64 `json:"cpuSeconds"`
		} `json:"phases"`
	} `json:"blobs"`
	Errors  map[string]int64 `json:"errors"`
	Args    []string         `json:"args"`
	LoadAvg string           `json:"loadavgEnd"`
}

func load(dir, name string) (*report, error) {
	raw, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	var r report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("parse %s.json: %w", name, err)
	}
	return &r, nil
}

// The runs hack/bench.sh makes, in order.
var runs = []struct{ file, title string }{
	{"idle", "Idle connections on one replica"},
	{"group-max-1", "Group fan-out, 2 replicas, as fast as acks allow (1 of 2)"},
	{"baseline-max-1", "Baseline: bare gorilla/websocket broadcast, as fast as acks allow (1 of 2)"},
	{"group-max-2", "Group fan-out, 2 replicas, as fast as acks allow (2 of 2)"},
	{"baseline-max-2", "Baseline: bare gorilla/websocket broadcast, as fast as acks allow (2 of 2)"},
	{"large-group", "One group of 1,000 members, 2 replicas, at a fixed rate"},
	{"baseline-large", "Baseline: bare gorilla/websocket broadcast to one group of 1,000, at the same rate"},
	{"group-half", "Group fan-out, 2 replicas, at half the maximum rate"},
	{"mixed", "Direct and group traffic, 2 replicas, at half the maximum rate"},
}

// best returns the name of the run of prefix-1, prefix-2 with the most
// deliveries per second ("" when neither was measured).
func best(rs map[string]*report, prefix string) string {
	name, top := "", -1.0
	for _, n := range []string{prefix + "-1", prefix + "-2"} {
		if r := rs[n]; r != nil && r.Traffic != nil && r.Traffic.DeliveredPS > top {
			name, top = n, r.Traffic.DeliveredPS
		}
	}
	return name
}

func figures(dir string) (string, error) {
	rs := map[string]*report{}
	for _, r := range runs {
		rep, err := load(dir, r.file)
		if err != nil {
			return "", err
		}
		rs[r.file] = rep
	}
	var b strings.Builder
	b.WriteString("## Load test (`make bench`)\n\n")
	b.WriteString(meta(dir, "meta.txt"))
	b.WriteString("\n### Against the targets\n\n")
	b.WriteString(targets(dir, rs))
	for _, r := range runs {
		fmt.Fprintf(&b, "\n### %s\n\n", r.title)
		rep := rs[r.file]
		if rep == nil {
			b.WriteString("Not measured in this run.\n")
			continue
		}
		b.WriteString(detail(rep))
	}
	blobs, err := load(dir, "blobs")
	if err != nil {
		return "", err
	}
	b.WriteString("\n### Attachments: upload and download through the replicas, against the S3 server's own PUT and GET\n\n")
	b.WriteString(blobSection(blobs))
	b.WriteString("\n### Redis\n\n")
	gm := best(rs, "group-max")
	b.WriteString(redisSection(dir, rs[gm], strings.TrimPrefix(gm, "group-max-")))
	return b.String(), nil
}

func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

func latRow(l lat) string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s ms, p95 %s ms, p99 %s ms, max %s ms (%d samples)", f2(l.P50), f2(l.P95), f2(l.P99), f2(l.Max), l.Count)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func cpuOf(r *report, name string) (float64, bool) {
	if r == nil {
		return 0, false
	}
	for _, c := range r.CPU {
		if c.Name == name {
			return c.Cores, true
		}
	}
	return 0, false
}

// cpuPerMessage is the server side's CPU per acked group message in the
// better maximum-rate run (replicas, PostgreSQL, Redis; the load generator
// left out) against the baseline server's, from the cores each used during
// the traffic.
type cpuLine struct {
	measured string
	ok       bool
}

func cpuPerMessage(gm, bm *report) (cpuLine, bool) {
	if gm == nil || bm == nil || gm.Traffic == nil || bm.Traffic == nil || gm.Traffic.AckedPS <= 0 || bm.Traffic.AckedPS <= 0 {
		return cpuLine{}, false
	}
	var srv, base float64
	for _, c := range gm.CPU {
		if strings.HasPrefix(c.Name, "server") {
			srv += c.Cores
		}
	}
	for _, c := range bm.CPU {
		if strings.HasPrefix(c.Name, "server") {
			base += c.Cores
		}
	}
	pg, _ := cpuOf(gm, "postgres")
	rc, _ := cpuOf(gm, "redis")
	ms := func(cores, rate float64) float64 { return cores / rate * 1000 }
	total := ms(srv+pg+rc, gm.Traffic.AckedPS)
	b := ms(base, bm.Traffic.AckedPS)
	if b <= 0 {
		return cpuLine{}, false
	}
	return cpuLine{fmt.Sprintf("replicas %s + PostgreSQL %s + Redis %s = %s ms vs %s ms for the baseline server: %s×",
		f2(ms(srv, gm.Traffic.AckedPS)), f2(ms(pg, gm.Traffic.AckedPS)), f2(ms(rc, gm.Traffic.AckedPS)), f2(total), f2(b),
		f1(total/b)), total <= 1.5*b}, true
}

// loadOf is the load average at the end of a run (its first figure: the
// last minute), printed beside each figure: the machine is shared.
func loadOf(r *report) string {
	if r == nil || r.LoadAvg == "" {
		return ""
	}
	return strings.Fields(r.LoadAvg)[0]
}

// targets is the table of issue 15's targets against this run.
func targets(dir string, rs map[string]*report) string {
	var b strings.Builder
	b.WriteString("| target | measured | load | verdict |\n|---|---|---|---|\n")
	row := func(target, measured string, r *report, v string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", target, measured, loadOf(r), v)
	}
	if r := rs["idle"]; r != nil && len(r.Servers) > 0 {
		s := r.Servers[0]
		row("50,000 idle authenticated connections on one replica", fmt.Sprintf("%d held for %s s (%d still open at the end)",
			r.Connect.Established, f0(r.HoldSec), r.StillOpen), r, verdict(r.StillOpen >= 50000))
		row("≤ 8 KiB RSS per idle authenticated connection", fmt.Sprintf("%s KiB (RSS %s → %s MiB for %d connections)",
			f2(s.KiBPerConn), f1(float64(s.Before)/1024), f1(float64(s.After)/1024), s.Conns), r, verdict(s.KiBPerConn <= 8))
		row("≥ 2,000 connection set-ups per second on a fresh replica, authentication included",
			fmt.Sprintf("%s/s (%d connections in %s s; set-up p50 %s ms, p99 %s ms)",
				f0(r.Connect.PerSecond), r.Connect.Established, f1(r.Connect.Seconds), f2(r.Connect.Setup.P50), f2(r.Connect.Setup.P99)),
			r, verdict(r.Connect.PerSecond >= 2000))
	} else {
		row("idle connections, RSS per connection, set-up rate", "not measured", nil, "")
	}
	gmName, bmName := best(rs, "group-max"), best(rs, "baseline-max")
	gm, bm := rs[gmName], rs[bmName]
	if gm != nil && bm != nil && bm.Traffic.DeliveredPS > 0 {
		ratio := gm.Traffic.DeliveredPS / bm.Traffic.DeliveredPS
		row("group fan-out over 2 replicas, durable and encrypted, ≥ 70% of the bare broadcast",
			fmt.Sprintf("best of two each: %s deliveries/s (%s messages/s × %s recipient connections) vs %s/s (%s, load %s): %s%%",
				f0(gm.Traffic.DeliveredPS), f0(gm.Traffic.AckedPS), f1(float64(gm.Traffic.Expected)/float64(max(gm.Traffic.Acked, 1))),
				f0(bm.Traffic.DeliveredPS), bmName, loadOf(bm), f0(ratio*100)), gm, verdict(ratio >= 0.7))
	} else {
		row("group fan-out vs baseline", "not measured", nil, "")
	}
	if line, ok := cpuPerMessage(gm, bm); ok {
		row("server-side CPU per group message ≤ 1.5× the baseline's", line.measured, gm, verdict(line.ok))
	} else {
		row("server-side CPU per group message ≤ 1.5× the baseline's", "not measured", nil, "")
	}
	if gm != nil && bm != nil && gm.Traffic != nil && bm.Traffic != nil && bm.Traffic.Ack.Count > 0 {
		row("at the maximum, ack p50 within 1.5× the baseline's", fmt.Sprintf("%s ms vs %s ms: %s×",
			f2(gm.Traffic.Ack.P50), f2(bm.Traffic.Ack.P50), f1(gm.Traffic.Ack.P50/max(bm.Traffic.Ack.P50, 0.001))),
			gm, verdict(gm.Traffic.Ack.P50 <= 1.5*bm.Traffic.Ack.P50))
	}
	if gh := rs["group-half"]; gh != nil && gh.Traffic != nil {
		t := gh.Traffic
		row("at half of our maximum: ack p50 ≤ 2 ms, delivery p99 ≤ 15 ms",
			fmt.Sprintf("ack p50 %s ms; delivery p99 %s ms (cross-replica p99 %s ms) at %s messages/s, %s deliveries/s",
				f2(t.Ack.P50), f2(t.Delivery.P99), f2(t.CrossLat.P99), f0(t.SentPS), f0(t.DeliveredPS)),
			gh, verdict(t.Ack.P50 <= 2 && t.Delivery.P99 <= 15 && t.CrossLat.P99 <= 15))
	} else {
		row("at half the maximum rate", "not measured", nil, "")
	}
	if lg, lb := rs["large-group"], rs["baseline-large"]; lg != nil && lg.Traffic != nil {
		base := "no baseline"
		if lb != nil && lb.Traffic != nil && lb.Traffic.DeliveredPS > 0 {
			base = fmt.Sprintf("bare broadcast %s deliveries/s (load %s): %s%%", f0(lb.Traffic.DeliveredPS), loadOf(lb),
				f0(lg.Traffic.DeliveredPS/lb.Traffic.DeliveredPS*100))
		}
		row("a 1,000-member group's fan-out (a figure; the design choice in docs/architecture.md)",
			fmt.Sprintf("%s messages/s × %s recipient connections = %s deliveries/s, delivery p99 %s ms; %s",
				f1(lg.Traffic.AckedPS), f0(float64(lg.Traffic.Expected)/float64(max(lg.Traffic.Acked, 1))), f0(lg.Traffic.DeliveredPS),
				f2(lg.Traffic.Delivery.P99), base), lg, "figure")
	}
	pubs, secs, okPubs := redisPublishes(dir, gm, strings.TrimPrefix(gmName, "group-max-"))
	rb := redisBench(dir)
	if okPubs && len(rb) > 0 {
		rc, _ := cpuOf(gm, "redis")
		var srv float64
		for _, c := range gm.CPU {
			if strings.HasPrefix(c.Name, "server") {
				srv += c.Cores
			}
		}
		best := 0.0
		for _, v := range rb {
			best = max(best, v.rps)
		}
		rate := float64(pubs) / secs
		row("Redis is not the first to saturate", fmt.Sprintf("at the maximum rate Redis did %s publishes/s (%s%% of the %s/s redis-benchmark reached) using %s cores, the replicas %s cores",
			f0(rate), f0(rate/best*100), f0(best), f2(rc), f2(srv)), gm, verdict(rc < 0.8 && rate < best/2))
	} else {
		row("Redis not first to saturate", "not measured", nil, "")
	}
	return b.String()
}

func detail(r *report) string {
	var b strings.Builder
	b.WriteString("| | |\n|---|---|\n")
	row := func(k, v string) { fmt.Fprintf(&b, "| %s | %s |\n", k, v) }
	row("command", "`parley-load "+strings.Join(r.Args, " ")+"`")
	if r.Users.Registered > 0 {
		row("accounts registered", fmt.Sprintf("%d in %s s (%s/s, argon2id on the server)", r.Users.Registered, f1(r.Users.Seconds), f1(r.Users.PerSecond)))
	}
	row("connections", fmt.Sprintf("%d of %d in %s s: **%s/s** (ticket + upgrade + ready), from %d source address(es)",
		r.Connect.Established, r.Connect.Attempted, f2(r.Connect.Seconds), f0(r.Connect.PerSecond), max(r.Sources, 1)))
	row("connection set-up latency", latRow(r.Connect.Setup))
	if r.HoldSec > 0 {
		row("held", fmt.Sprintf("%s s; %d still open at the end", f0(r.HoldSec), r.StillOpen))
	}
	if t := r.Traffic; t != nil {
		rate := "as fast as acks allow (closed loop)"
		if t.Mode == "open" {
			rate = f0(t.TargetRate) + " messages/s (open loop)"
		}
		accounts := r.Users.Registered + r.Users.LoggedIn + r.Users.Refreshed + r.Users.Cached
		mix := fmt.Sprintf("all to groups (%d groups of %d; %d connections for %d accounts, a user's connections spread over the servers)",
			t.Groups, t.GroupSize, r.Connect.Established, accounts)
		if t.GroupFraction < 1 {
			mix = fmt.Sprintf("%s%% to groups (%d groups of %d), the rest to direct pairs (%d)", f0(t.GroupFraction*100), t.Groups, t.GroupSize, t.Directs)
		}
		row("traffic", fmt.Sprintf("%s s at %s; %s", f1(t.Seconds), rate, mix))
		row("messages sent / acked", fmt.Sprintf("%d / %d: **%s/s** sent, %s/s acked", t.Sent, t.Acked, f0(t.SentPS), f0(t.AckedPS)))
		row("deliveries", fmt.Sprintf("%d of %d expected (%s): **%s/s**; %d crossed replicas", t.Delivered, t.Expected,
			strconv.FormatFloat(t.Ratio, 'f', 4, 64), f0(t.DeliveredPS), t.Cross))
		row("delivery latency (send → receipt on another connection)", latRow(t.Delivery))
		row("… of which across replicas", latRow(t.CrossLat))
		row("ack latency (send → ack)", latRow(t.Ack))
		if t.Behind > 0 {
			row("sends skipped (in-flight limit)", strconv.FormatInt(t.Behind, 10))
		}
	}
	for i, s := range r.Servers {
		// Per connection only where the server started fresh: a replica that
		// already held connections reuses the heap they left behind.
		per := ""
		if r.Traffic == nil {
			per = ": " + f2(s.KiBPerConn) + " KiB per connection"
		}
		row(fmt.Sprintf("server %d RSS", i+1), fmt.Sprintf("%d connections: %s → %s MiB (%s MiB at the end)%s",
			s.Conns, f1(float64(s.Before)/1024), f1(float64(s.After)/1024), f1(float64(s.Settled)/1024), per))
	}
	var cpu []string
	for _, c := range r.CPU {
		cpu = append(cpu, c.Name+" "+f2(c.Cores))
	}
	if len(cpu) > 0 {
		row("CPU (cores, during the hold or the traffic)", strings.Join(cpu, ", "))
	}
	if len(r.Errors) == 0 {
		row("errors", "none")
	} else {
		var es []string
		for k, v := range r.Errors {
			es = append(es, fmt.Sprintf("%s: %d", k, v))
		}
		row("errors", strings.Join(es, ", "))
	}
	row("load average at the end", r.LoadAvg)
	return b.String()
}

type benchLine struct {
	test string
	rps  float64
}

// redisBench reads redis-benchmark --csv outputs redis-bench-*.csv.
func redisBench(dir string) map[string]benchLine {
	out := map[string]benchLine{}
	files, _ := filepath.Glob(filepath.Join(dir, "redis-bench-*.csv"))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			cols := strings.Split(line, ",")
			if len(cols) < 2 {
				continue
			}
			rps, err := strconv.ParseFloat(strings.Trim(cols[1], `"`), 64)
			if err != nil {
				continue
			}
			name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "redis-bench-"), ".csv")
			out[name] = benchLine{test: strings.Trim(cols[0], `"`), rps: rps}
		}
	}
	return out
}

// redisPublishes is the number of PUBLISH/SPUBLISH calls between the INFO
// snapshots taken around the maximum-rate run, and that run's length.
func redisPublishes(dir string, r *report, n string) (int64, float64, bool) {
	if r == nil || r.Traffic == nil {
		return 0, 0, false
	}
	before, err1 := publishCalls(filepath.Join(dir, "redis-info-before-"+n+".txt"))
	after, err2 := publishCalls(filepath.Join(dir, "redis-info-after-"+n+".txt"))
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return after - before, r.Traffic.Seconds + r.Traffic.DrainSeconds, true
}

func publishCalls(path string) (int64, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(string(raw), "\n") {
		for _, cmd := range []string{"cmdstat_publish:", "cmdstat_spublish:"} {
			rest, ok := strings.CutPrefix(strings.TrimSpace(line), cmd)
			if !ok {
				continue
			}
			calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
			v, err := strconv.ParseInt(calls, 10, 64)
			if err == nil {
				n += v
			}
		}
	}
	return n, nil
}

func redisSection(dir string, gm *report, n string) string {
	var b strings.Builder
	rb := redisBench(dir)
	if len(rb) == 0 {
		return "redis-benchmark: not measured in this run.\n"
	}
	b.WriteString("| redis-benchmark (same Redis, same run) | requests/s |\n|---|---|\n")
	for _, k := range []string{"publish-p1", "publish-p16"} {
		if v, ok := rb[k]; ok {
			fmt.Fprintf(&b, "| `%s` %s | %s |\n", v.test, map[string]string{"publish-p1": "(no pipelining, 50 clients)",
				"publish-p16": "(pipeline of 16, 50 clients)"}[k], f0(v.rps))
		}
	}
	if pubs, secs, ok := redisPublishes(dir, gm, n); ok {
		rc, _ := cpuOf(gm, "redis")
		fmt.Fprintf(&b, "\nDuring the better maximum-rate group run (%s of 2) Redis served", n)
		fmt.Fprintf(&b, " %d publishes in %s s (%s/s) and used %s cores.\n",
			pubs, f1(secs), f0(float64(pubs)/secs), f2(rc))
	}
	return b.String()
}

// blobPhases are the phases of the blobs run: a Parley transfer and the raw
// S3 operation it is compared with.
var blobPhases = []struct{ name, what, rawName string }{
	{"raw-put", "S3 PUT, raw (minio-go from the load generator, no Parley)", ""},
	{"upload", "upload through replica 1 (`POST /api/v1/attachments`: sniffed, sealed, stored in S3)", "raw-put"},
	{"raw-get", "S3 GET, raw", ""},
	{"download", "download through replica 2 (`GET /api/v1/attachments/{id}`: opened, checked, decrypted)", "raw-get"},
}

func blobSection(r *report) string {
	if r == nil || r.Blobs == nil || len(r.Blobs.Phases) == 0 {
		return "Not measured in this run.\n"
	}
	bs := r.Blobs
	var b strings.Builder
	fmt.Fprintf(&b, "%d files of %d MiB of random bytes per phase, %d at a time; the four phases alternate, "+
		"%d rounds. The bytes read back are checked (SHA-256) in every phase. CPU is per GiB moved: "+
		"both replicas together, and the S3 server (versitygw over a local folder).\n\n",
		bs.Files, bs.FileMiB, bs.Concurrency, len(bs.Phases)/len(blobPhases))
	b.WriteString("| phase | round | MiB/s | vs raw S3 | replicas CPU s/GiB | S3 server CPU s/GiB |\n|---|---|---|---|---|---|\n")
	best := map[string]float64{}
	for _, p := range bs.Phases {
		best[p.Name] = max(best[p.Name], p.MiBPerSec)
	}
	raw := map[int]map[string]float64{}
	for _, p := range bs.Phases {
		if raw[p.Round] == nil {
			raw[p.Round] = map[string]float64{}
		}
		raw[p.Round][p.Name] = p.MiBPerSec
	}
	for _, p := range bs.Phases {
		what, vs := p.Name, ""
		for _, bp := range blobPhases {
			if bp.name == p.Name {
				what = bp.what
				if r := raw[p.Round][bp.rawName]; bp.rawName != "" && r > 0 {
					vs = f0(100*p.MiBPerSec/r) + " %"
				}
			}
		}
		gib := p.MiB / 1024
		perGiB := func(names ...string) string {
			t, ok := 0.0, false
			for _, n := range names {
				if v, has := p.CPU[n]; has {
					t, ok = t+v, true
				}
			}
			if !ok || gib <= 0 {
				return "-"
			}
			return f2(t / gib)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s |\n", what, p.Round, f1(p.MiBPerSec), vs,
			perGiB("server1", "server2"), perGiB("s3"))
	}
	if best["raw-put"] > 0 && best["raw-get"] > 0 {
		fmt.Fprintf(&b, "\nBest of the rounds: upload %s MiB/s (%s %% of raw PUT's %s), download %s MiB/s (%s %% of raw GET's %s).\n",
			f1(best["upload"]), f0(100*best["upload"]/best["raw-put"]), f1(best["raw-put"]),
			f1(best["download"]), f0(100*best["download"]/best["raw-get"]), f1(best["raw-get"]))
	}
	return b.String()
}
