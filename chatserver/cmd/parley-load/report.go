package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

func printTable(w io.Writer, r *report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, format string, a ...any) {
		fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...)
	}
	row("run", "%s (%s) against %d server(s), %d source address(es)", r.Label, r.Mode, len(r.Targets), max(r.Sources, 1))
	row("accounts", "%d registered (%.1f/s), %d logged in, %d refreshed, %d cached, %d failed", r.Users.Registered,
		r.Users.PerSecond, r.Users.LoggedIn, r.Users.Refreshed, r.Users.Cached, r.Users.Failed)
	row("connections", "%d of %d in %.2fs: %.0f/s (ticket + upgrade + ready)", r.Connect.Established, r.Connect.Attempted,
		r.Connect.Seconds, r.Connect.PerSecond)
	row("set-up latency", "%s", fmtLat(r.Connect.SetupMs))
	row("still open at end", "%d", r.StillOpen)
	if t := r.Traffic; t != nil {
		rate := "as fast as acks allow"
		if t.Mode == "open" {
			rate = fmt.Sprintf("%.0f/s target", t.TargetRate)
		}
		row("traffic", "%.1fs, %s, %.0f%% group (%d groups of %d, %d directs)", t.Seconds, rate, t.GroupFraction*100,
			t.Groups, t.GroupSize, t.Directs)
		row("messages sent", "%d (%.0f/s), acked %d (%.0f/s)", t.Sent, t.SentPerSecond, t.Acked, t.AckedPerSecond)
		row("deliveries", "%d of %d expected (%.4f), %.0f/s; cross-server %d", t.Delivered, t.Expected, t.DeliveryRatio,
			t.DeliveredPerSecond, t.CrossDelivered)
		row("delivery latency", "%s", fmtLat(t.Delivery))
		row("  cross-server", "%s", fmtLat(t.CrossReplica))
		row("ack latency", "%s", fmtLat(t.Ack))
		if t.LoadGeneratorBehind > 0 {
			row("generator behind", "%d sends skipped (in-flight limit or queue full)", t.LoadGeneratorBehind)
		}
	}
	if b := r.Blobs; b != nil {
		row("blobs", "%d files of %d MiB per phase, %d at a time, S3 %s", b.Files, b.FileMiB, b.Concurrency, b.S3Endpoint)
		for _, p := range b.Phases {
			row("  "+p.Name, "round %d: %.1f MiB/s (%.1f MiB in %.2fs)", p.Round, p.MiBPerSec, p.MiB, p.Seconds)
		}
	}
	for _, s := range r.Servers {
		row("server RSS", "pid %d (%s): %d conns, %.1f MiB -> %.1f MiB (%.1f MiB at end): %.2f KiB/conn", s.PID, s.Target,
			s.Conns, float64(s.RSSBeforeKiB)/1024, float64(s.RSSAfterKiB)/1024, float64(s.RSSSettledKiB)/1024, s.KiBPerConn)
	}
	for _, c := range r.CPU {
		row("CPU", "%s: %.2f cores", c.Name, c.Cores)
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		row("errors", "none")
	}
	for _, k := range keys {
		row("error", "%s: %d (%.100s)", k, r.Errors[k], r.ErrorText[k])
	}
	row("load average", "%s", r.LoadAvgEnd)
	_ = tw.Flush()
}

func fmtLat(l latency) string {
	if l.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", l.P50Ms, l.P95Ms, l.P99Ms, l.MaxMs, l.Count)
}
