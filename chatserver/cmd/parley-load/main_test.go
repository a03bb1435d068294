package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/server"
)

func TestTargetsMustBeLoopback(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080", "http://127.8.9.10:1", "http://localhost:80", "http://[::1]:8080"} {
		if _, err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://example.com", "http://0.0.0.0:8080", "ftp://127.0.0.1", "http://[::2]:80", "http://127.0.0.1.example.com"} {
		if _, err := checkLoopback(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := parseSources("127.0.0.1,192.168.1.1"); err == nil {
		t.Error("non-loopback source address accepted")
	}
	if s, err := parseSources("3"); err != nil || len(s) != 3 || s[2].String() != "127.0.0.3" {
		t.Errorf("parseSources(3) = %v, %v", s, err)
	}
}

// The histogram agrees with exact quantiles of sorted samples within its
// bucket precision (< 1%).
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	rng := rand.New(rand.NewPCG(1, 2))
	samples := make([]time.Duration, 100000)
	for i := range samples {
		samples[i] = time.Duration(rng.ExpFloat64()*5000) * time.Microsecond
		h.record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.95, 0.99} {
		exact := float64(samples[int(q*float64(len(samples)))-1].Microseconds()) / 1000
		got := h.quantile(q)
		if got < exact*0.99-0.002 || got > exact*1.01+0.002 {
			t.Errorf("q%.2f = %.3f ms, exact %.3f ms", q, got, exact)
		}
	}
	if s := h.summary(); s.MaxMs != float64(samples[len(samples)-1].Microseconds())/1000 || s.Count != int64(len(samples)) {
		t.Errorf("summary %+v", s)
	}
	for v := int64(0); v < 1<<20; v += 997 {
		if lo, hi := lowerBound(bucketOf(v)), lowerBound(bucketOf(v)+1); v < lo || v >= hi {
			t.Fatalf("%d outside its bucket [%d, %d)", v, lo, hi)
		}
	}
}

func TestClientIDCarriesSendTimeSenderAndConversation(t *testing.T) {
	tr := &traffic{tag: "Labcdef", convs: make([]*conv, 50)}
	now := time.Now()
	id := tr.clientID(now, 1234, 42)
	if len(id) > 64 {
		t.Fatalf("clientId %q longer than 64", id)
	}
	sent, from, cv, ok := tr.parseID(id)
	if !ok || !sent.Equal(time.Unix(0, now.UnixNano())) || from != 1234 || cv != 42 {
		t.Fatalf("parseID(%q) = %v %d %d %v", id, sent, from, cv, ok)
	}
	if _, _, _, ok := (&traffic{tag: "Lother1", convs: tr.convs}).parseID(id); ok {
		t.Fatal("another run's clientId accepted")
	}
}

// parley-load against a real chat server on loopback: accounts, connections,
// direct and group traffic, every delivery matched.
func TestLoadAgainstRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts a chat server")
	}
	cfg, err := config.Load([]string{"-addr", "127.0.0.1:0", "-data-dir", t.TempDir(), "-log-level", "error",
		"-rate-login", "1000/1s", "-rate-messages", "1000/1s"}, func(string) string { return "" })
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
	var out, errOut bytes.Buffer
	args := []string{"-targets", "http://" + srv.Addr(), "-users", "6", "-conns", "12", "-group-size", "3",
		"-duration", "1s", "-rate", "40", "-drain", "5s", "-server-pids", strconv.Itoa(os.Getpid()),
		"-cache", t.TempDir() + "/users.json", "-json"}
	if err := run(args, &out, &errOut); err != nil {
		t.Fatalf("run: %v\n%s", err, errOut.String())
	}
	var rep report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	tr := rep.Traffic
	if rep.Users.Registered != 6 || rep.Connect.Established != 12 || tr == nil {
		t.Fatalf("report %s", out.String())
	}
	if tr.Sent < 30 || tr.Acked != tr.Sent || tr.Delivered != tr.Expected || tr.Delivery.Count != tr.Delivered {
		t.Fatalf("traffic %+v, errors %v", tr, rep.Errors)
	}
	if len(rep.Errors) != 0 || rep.StillOpen != 12 || len(rep.Servers) != 1 {
		t.Fatalf("errors %v, still open %d, servers %+v", rep.Errors, rep.StillOpen, rep.Servers)
	}
	// A second run reuses the cached accounts instead of registering again.
	out.Reset()
	if err := run(append(args, "-mode", "idle", "-hold", "100ms"), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Users.Cached != 6 || rep.Connect.Established != 12 {
		t.Fatalf("second run: %v %s", err, out.String())
	}
}
