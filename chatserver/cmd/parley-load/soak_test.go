package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/server"
)

func TestCheckGrowth(t *testing.T) {
	flat := []float64{100, 104, 98, 101, 99, 103, 100, 102, 97}
	if c := checkGrowth("flat", flat, tolGoroutines); !c.Pass || c.First != mean(flat[:3]) || c.Last != mean(flat[6:]) {
		t.Errorf("flat series: %+v", c)
	}
	// A leak: +3 per sample on 100 is +18 between the thirds' means, within
	// the 25 absolute slack; +6 per sample is +36: a failure.
	slow, leak := make([]float64, 9), make([]float64, 9)
	for i := range leak {
		slow[i], leak[i] = 100+3*float64(i), 100+6*float64(i)
	}
	if c := checkGrowth("slow", slow, tolGoroutines); !c.Pass || c.Limit != 128 {
		t.Errorf("growth within tolerance: %+v", c)
	}
	if c := checkGrowth("leak", leak, tolGoroutines); c.Pass {
		t.Errorf("leak passed: %+v", c)
	}
	// The relative part wins for large values: 10,000 goroutines may grow by 1,000.
	if c := checkGrowth("big", []float64{10000, 10000, 10000, 10900, 10900, 10900}, tolGoroutines); !c.Pass || c.Limit != 11000 {
		t.Errorf("relative tolerance: %+v", c)
	}
	// Absolute-only tolerances (connections): +5 on 40 fails.
	if c := checkGrowth("pg", []float64{40, 40, 40, 45, 45, 45}, tolPostgres); c.Pass {
		t.Errorf("+5 connections passed: %+v", c)
	}
	if c := checkGrowth("short", []float64{1, 2}, tolHeap); c.Pass || c.Samples != 2 {
		t.Errorf("two samples gave a verdict: %+v", c)
	}
	// A sample that could not be read (-1) leaves no verdict, so a sampler
	// that reads nothing cannot pass.
	if c := checkGrowth("unread", []float64{600, 600, -1, 600, 600, 600}, tolGoroutines); c.Pass {
		t.Errorf("a missing sample passed: %+v", c)
	}
	// A drop is never a failure.
	if c := checkGrowth("drop", []float64{300, 300, 300, 200, 200, 200}, tolRSS); !c.Pass {
		t.Errorf("a drop failed: %+v", c)
	}
}

func TestSoakChecksCoverEverySeries(t *testing.T) {
	var samples []soakSample
	for i := range 6 {
		samples = append(samples, soakSample{RedisClients: 10, PGConns: 30 + 2*i,
			Replicas: []replicaSample{{Goroutines: 1300, HeapInuseMiB: 40, RSSMiB: 90, FDs: 640},
				{Goroutines: 1300, HeapInuseMiB: 40, RSSMiB: 90 + 30*float64(i), FDs: 640}}})
	}
	cs := soakChecks(samples, 2, true, true)
	if len(cs) != 10 {
		t.Fatalf("%d checks, want 4 per replica + Redis + PostgreSQL", len(cs))
	}
	failed := failedChecks(cs)
	if !strings.Contains(failed, "replica 2 RSS") || !strings.Contains(failed, "PostgreSQL connections") ||
		strings.Contains(failed, "replica 1") || strings.Contains(failed, "Redis") {
		t.Errorf("failed checks: %s", failed)
	}
}

func TestPromValues(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 1234
go_gc_duration_seconds{quantile="0.5"} 1.2e-05
go_memstats_heap_inuse_bytes 4.5613056e+07
process_open_fds 642
parley_ws_connections{replica="a"} 600
`
	v, err := promValues(strings.NewReader(text), "go_goroutines", "go_memstats_heap_inuse_bytes", "process_open_fds")
	if err != nil || v["go_goroutines"] != 1234 || v["go_memstats_heap_inuse_bytes"] != 45613056 || v["process_open_fds"] != 642 {
		t.Fatalf("%v %v", v, err)
	}
	if _, err := promValues(strings.NewReader(text), "go_goroutines", "missing_metric"); err == nil {
		t.Error("a missing metric was not reported")
	}
	if _, err := promValues(strings.NewReader("go_goroutines abc\n"), "go_goroutines"); err == nil {
		t.Error("a malformed value was accepted")
	}
}

func TestInfoFieldAndFrameFields(t *testing.T) {
	info := "# Clients\r\nconnected_clients:17\r\ncluster_connections:0\r\nmaxclients:10000\r\n"
	if n, ok := infoField(info, "connected_clients"); !ok || n != 17 {
		t.Errorf("connected_clients = %d, %v", n, ok)
	}
	if _, ok := infoField(info, "blocked_clients"); ok {
		t.Error("absent field found")
	}
	// The message's own seq comes before its reply's.
	frame := []byte(`{"type":"message","message":{"id":"m_1","conversationId":"c_9","seq":42,"senderId":"u_1","replyTo":{"id":"m_0","seq":40}}}`)
	if c, s := field(frame, keyConvID), intField(frame, keySeq); c != "c_9" || s != 42 {
		t.Errorf("conversation %q seq %d", c, s)
	}
}

// An interval's quantile is that of the observations recorded in it only.
func TestDeltaQuantile(t *testing.T) {
	var h histogram
	for range 1000 {
		h.record(500 * time.Millisecond) // a slow first interval
	}
	before := snapshotCounts(&h)
	for i := range 1000 {
		h.record(time.Duration(i+1) * 10 * time.Microsecond) // 0.01 .. 10 ms
	}
	after := snapshotCounts(&h)
	if p99 := deltaQuantile(before, after, 0.99); p99 < 9.8 || p99 > 10.1 {
		t.Errorf("interval p99 = %.3f ms, want ~9.9", p99)
	}
	if p := deltaQuantile(after, after, 0.99); p != 0 {
		t.Errorf("empty interval p99 = %v", p)
	}
}

func TestSetSectionAndSVG(t *testing.T) {
	doc := "# B\n\n<!-- figures -->\nx\n<!-- /figures -->\n\n<!-- analysis -->\nA\n<!-- /analysis -->\n"
	once := setSection(doc, "soak", "S1")
	if !strings.Contains(once, "<!-- soak -->\nS1\n<!-- /soak -->\n\n<!-- analysis -->") {
		t.Fatalf("section not added before the analysis:\n%s", once)
	}
	twice := setSection(once, "soak", "S2")
	if strings.Contains(twice, "S1") || strings.Count(twice, "<!-- soak -->") != 1 || !strings.Contains(twice, "A\n<!-- /analysis -->") {
		t.Fatalf("section not replaced:\n%s", twice)
	}
	svg := soakSVG([]soakSample{{Seconds: 30, Replicas: []replicaSample{{Goroutines: 10}}}, {Seconds: 60, Replicas: []replicaSample{{Goroutines: 12}}}})
	if !strings.HasPrefix(svg, "<svg") || strings.Count(svg, "<polyline") != 8 || strings.Contains(svg, "NaN") {
		t.Errorf("svg:\n%s", svg)
	}
}

// A short soak against a real chat server: churned connections come back,
// resume by cursor, and every message still reaches every connection; tokens
// that expire every 4 s are renewed in-band, so no connection is lost; the
// samples come from the server's /metrics and /proc.
func TestSoakAgainstRealServer(t *testing.T) {
	cfg, err := config.Load([]string{"-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-log-level", "error",
		"-rate-login", "1000/1s", "-rate-messages", "1000/1s",
		// Access tokens expire every 4 s, within the run: the soak must refresh them and
		// extend its connections in-band, or the server closes them.
		"-access-token-ttl", "4s"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(slog.DiscardHandler), server.Options{})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	dir := t.TempDir()
	doc, svg := filepath.Join(dir, "benchmarks.md"), filepath.Join(dir, "images", "soak.svg")
	if err := os.MkdirAll(filepath.Dir(svg), 0o755); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	args := []string{"-mode", "soak", "-targets", "http://" + srv.Addr(), "-users", "8", "-conns", "16", "-group-size", "4",
		"-duration", "5s", "-rate", "40", "-drain", "5s", "-server-pids", strconv.Itoa(os.Getpid()),
		"-soak-sample", "1s", "-soak-churn", "0.25", "-soak-churn-every", "300ms",
		"-soak-doc", doc, "-soak-svg", svg, "-json"}
	// In-process, the "server" is this test binary, so its heap and goroutines
	// move with the test's own; the verdict is not asserted here, the mechanics are.
	_ = run(args, &out, &errOut)
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	tr, s := rep.Traffic, rep.Soak
	if tr == nil || s == nil {
		t.Fatalf("no traffic or soak in the report: %s", out.String())
	}
	t.Logf("sent %d, delivered %d of %d, churned %d, lost %d, renewed %d, duplicates %d, resyncs %d, %d samples",
		tr.Sent, tr.Delivered, tr.Expected, s.Churned, s.Lost, s.Renewed, s.Duplicates, s.Resyncs, len(s.Samples))
	if s.Churned < 20 || s.ReconnectFails != 0 || s.Lost != 0 || s.Renewed < 8 || rep.StillOpen != 16 {
		t.Errorf("churned %d, failed %d, lost %d, renewed %d, open at the end %d", s.Churned, s.ReconnectFails, s.Lost, s.Renewed, rep.StillOpen)
	}
	if tr.Sent < 100 || tr.Acked != tr.Sent || tr.Delivered != tr.Expected {
		t.Errorf("traffic %+v, errors %v", tr, rep.Errors)
	}
	for k, n := range rep.Errors {
		if k != "send_unanswered_at_close" { // none expected either; reported if seen
			t.Errorf("error %s: %d (%s)", k, n, rep.ErrorText[k])
		}
	}
	if len(s.Samples) < 3 || len(s.Checks) != 4 {
		t.Fatalf("%d samples, %d checks", len(s.Samples), len(s.Checks))
	}
	for _, m := range s.Samples {
		r := m.Replicas[0]
		if r.Goroutines < 16 || r.HeapInuseMiB <= 0 || r.RSSMiB <= 0 || r.FDs < 16 || m.AckedPerSec <= 0 || m.RedisClients != -1 {
			t.Errorf("sample %+v", m)
		}
	}
	raw, err := os.ReadFile(doc)
	if err != nil || !strings.Contains(string(raw), "<!-- soak -->") || !strings.Contains(string(raw), "](images/soak.svg)") {
		t.Errorf("doc: %v\n%s", err, raw)
	}
	if raw, err := os.ReadFile(svg); err != nil || !bytes.HasPrefix(raw, []byte("<svg")) {
		t.Errorf("svg: %v", err)
	}
}
