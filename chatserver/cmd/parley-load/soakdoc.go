package main

import (
	"bufio"
	"errors"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// writeSoakDoc writes the chart (-soak-svg) and the soak section of the
// document (-soak-doc, between <!-- soak --> and <!-- /soak -->; the markers
// are added before <!-- analysis --> or at the end when absent).
func writeSoakDoc(so soakOptions, rep *report) error {
	link := ""
	if so.svg != "" {
		if err := writeFileAtomic(so.svg, []byte(soakSVG(rep.Soak.Samples))); err != nil {
			return err
		}
		link = so.svg
		if so.doc != "" {
			if rel, err := filepath.Rel(filepath.Dir(so.doc), so.svg); err == nil {
				link = filepath.ToSlash(rel)
			}
		}
	}
	if so.doc == "" {
		return nil
	}
	var meta [][2]string
	if so.meta != "" {
		f, err := os.Open(so.meta)
		if err != nil {
			return fmt.Errorf("-soak-meta: %w", err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ": "); ok {
				meta = append(meta, [2]string{k, v})
			}
		}
		f.Close()
	}
	raw, err := os.ReadFile(so.doc)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", so.doc, err)
	}
	text := setSection(string(raw), "soak", soakSection(rep, meta, link))
	return writeFileAtomic(so.doc, []byte(text))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// setSection replaces what is between <!-- name --> and <!-- /name -->, or
// adds the marked section before <!-- analysis --> (else at the end).
func setSection(text, name, body string) string {
	open, end := "<!-- "+name+" -->", "<!-- /"+name+" -->"
	block := open + "\n" + strings.TrimSpace(body) + "\n" + end
	i, j := strings.Index(text, open), strings.Index(text, end)
	if i >= 0 && j > i {
		return text[:i] + block + text[j+len(end):]
	}
	if k := strings.Index(text, "<!-- analysis -->"); k >= 0 {
		return text[:k] + block + "\n\n" + text[k:]
	}
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text + "\n" + block + "\n"
}

func soakSection(rep *report, meta [][2]string, chart string) string {
	s, t := rep.Soak, rep.Traffic
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("## Soak (`make soak`)\n\n")
	verdict := "**PASS**: no series grew beyond its tolerance"
	if !s.Pass {
		verdict = "**FAIL**: " + failedChecks(s.Checks)
	}
	p("%s (last third of the samples against the first third).\n\n", verdict)
	p("| | |\n|---|---|\n")
	for _, kv := range meta {
		p("| %s | %s |\n", kv[0], strings.ReplaceAll(kv[1], "|", "\\|"))
	}
	p("| command | `parley-load %s` |\n", strings.Join(rep.Args, " "))
	if t != nil {
		p("| traffic | %.0f s at %.0f messages/s (open loop), %.0f%% to groups (%d groups of %d), the rest to %d direct pairs |\n",
			t.Seconds, s.Rate, s.GroupFraction*100, t.Groups, t.GroupSize, t.Directs)
		p("| connections | %d of %d at the start; every %.0f s %.0f%% of the open ones closed and reopened, resuming by cursor: %d reopened on purpose, %d reopened after the server or the network closed them, %d reopenings failed; %d access tokens refreshed and extended in-band; %d open at the end |\n",
			rep.Connect.Established, rep.Connect.Attempted, s.ChurnSeconds, s.Churn*100, s.Churned, s.Lost, s.ReconnectFails, s.Renewed, rep.StillOpen)
		p("| messages | %d sent, %d acked (%.1f/s) |\n", t.Sent, t.Acked, t.AckedPerSecond)
		p("| deliveries | %d of %d expected (%.4f), live or by the sync after a reopening; %d duplicates dropped by cursor, %d resyncs answered |\n",
			t.Delivered, t.Expected, t.DeliveryRatio, s.Duplicates, s.Resyncs)
		p("| delivery latency, whole run | %s |\n", fmtLat(t.Delivery))
		p("| ack latency, whole run | %s |\n", fmtLat(t.Ack))
	}
	var cpu []string
	for _, c := range rep.CPU {
		cpu = append(cpu, fmt.Sprintf("%s %.2f", c.Name, c.Cores))
	}
	p("| CPU (cores, whole run) | %s |\n", strings.Join(cpu, ", "))
	errs := "none"
	if len(rep.Errors) > 0 {
		keys := make([]string, 0, len(rep.Errors))
		for k := range rep.Errors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s: %d", k, rep.Errors[k]))
		}
		errs = strings.Join(parts, ", ")
	}
	p("| errors | %s |\n", errs)
	p("| load average at the end | %s |\n\n", rep.LoadAvgEnd)

	p("### Growth checks\n\n| series | first third (mean) | last third (mean) | limit | tolerance | verdict |\n|---|---:|---:|---:|---|---|\n")
	for _, c := range s.Checks {
		v := "ok"
		if !c.Pass {
			v = "**FAIL**"
		}
		p("| %s | %.1f | %.1f | %.1f | %s | %s |\n", c.Series, c.First, c.Last, c.Limit, c.Tolerance, v)
	}
	if chart != "" {
		p("\n![soak samples](%s)\n", chart)
	}
	p("\n### Samples (every %.0f s)\n\n", s.SampleSeconds)
	p("| t (s) | messages/s | deliveries/s | delivery p99 (ms) | ack p99 (ms) | errors | reopened |")
	align := "|---:|---:|---:|---:|---:|---:|---:|"
	nrep := 0
	if len(s.Samples) > 0 {
		nrep = len(s.Samples[0].Replicas)
	}
	for r := range nrep {
		p(" r%d goroutines | r%d heap MiB | r%d RSS MiB | r%d files | r%d cores |", r+1, r+1, r+1, r+1, r+1)
		align += "---:|---:|---:|---:|---:|"
	}
	p(" Redis clients | PostgreSQL conns | Redis cores | PostgreSQL cores | load |\n%s---:|---:|---:|---:|---|\n", align)
	for _, m := range s.Samples {
		p("| %.0f | %.0f | %.0f | %.1f | %.1f | %d | %d |", m.Seconds, m.AckedPerSec, m.DeliveredPerSec, m.DeliveryP99Ms, m.AckP99Ms, m.Errors, m.Reopened)
		for _, r := range m.Replicas {
			p(" %.0f | %.1f | %.1f | %d | %.2f |", r.Goroutines, r.HeapInuseMiB, r.RSSMiB, r.FDs, r.Cores)
		}
		p(" %s | %s | %.2f | %.2f | %s |\n", orDash(m.RedisClients), orDash(m.PGConns), m.WatchCores["redis"], m.WatchCores["postgres"], m.LoadAvg)
	}
	return b.String()
}

func orDash(n int) string {
	if n < 0 {
		return "–"
	}
	return fmt.Sprint(n)
}

// svgSeries is one line of a chart panel.
type svgSeries struct {
	name string
	ys   []float64
}

var svgColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// soakSVG draws the samples as six small panels (no external tools).
func soakSVG(samples []soakSample) string {
	xs := make([]float64, len(samples))
	for i, s := range samples {
		xs[i] = s.Seconds / 60
	}
	nrep := 0
	if len(samples) > 0 {
		nrep = len(samples[0].Replicas)
	}
	perReplica := func(f func(replicaSample) float64) []svgSeries {
		var out []svgSeries
		for r := range nrep {
			ys := make([]float64, len(samples))
			for i, s := range samples {
				if r < len(s.Replicas) {
					ys[i] = f(s.Replicas[r])
				}
			}
			out = append(out, svgSeries{name: fmt.Sprintf("replica %d", r+1), ys: ys})
		}
		return out
	}
	col := func(f func(soakSample) float64) []float64 {
		ys := make([]float64, len(samples))
		for i, s := range samples {
			ys[i] = f(s)
		}
		return ys
	}
	panels := []struct {
		title  string
		series []svgSeries
	}{
		{"goroutines", perReplica(func(r replicaSample) float64 { return r.Goroutines })},
		{"heap in use (MiB)", perReplica(func(r replicaSample) float64 { return r.HeapInuseMiB })},
		{"RSS (MiB)", perReplica(func(r replicaSample) float64 { return r.RSSMiB })},
		{"open files", perReplica(func(r replicaSample) float64 { return float64(r.FDs) })},
		{"Redis clients, PostgreSQL connections", []svgSeries{
			{"Redis clients", col(func(s soakSample) float64 { return float64(max(s.RedisClients, 0)) })},
			{"PostgreSQL connections", col(func(s soakSample) float64 { return float64(max(s.PGConns, 0)) })}}},
		{"messages/s acked, delivery p99 (ms)", []svgSeries{
			{"messages/s", col(func(s soakSample) float64 { return s.AckedPerSec })},
			{"delivery p99 ms", col(func(s soakSample) float64 { return s.DeliveryP99Ms })}}},
	}
	const pw, ph, cols = 420, 190, 2
	rows := (len(panels) + cols - 1) / cols
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", pw*cols, ph*rows)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, pn := range panels {
		ox, oy := float64((i%cols)*pw), float64((i/cols)*ph)
		drawPanel(&b, ox, oy, pw, ph, pn.title, xs, pn.series)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceMax rounds v up to 1, 2 or 5 × a power of ten.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func drawPanel(b *strings.Builder, ox, oy, w, h float64, title string, xs []float64, series []svgSeries) {
	left, right, top, bottom := 48.0, 12.0, 34.0, 28.0
	pw, ph := w-left-right, h-top-bottom
	xmax := 1.0
	if len(xs) > 0 {
		xmax = max(xs[len(xs)-1], 1e-9)
	}
	ymax := 0.0
	for _, s := range series {
		for _, y := range s.ys {
			ymax = max(ymax, y)
		}
	}
	ymax = niceMax(ymax * 1.05)
	X := func(x float64) float64 { return ox + left + x/xmax*pw }
	Y := func(y float64) float64 { return oy + top + ph - max(y, 0)/ymax*ph } // -1 (not read) drawn at 0
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", ox+left, oy+14, html.EscapeString(title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", ox+left, oy+top, pw, ph)
	for _, f := range []float64{0, 0.5, 1} {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", ox+left-4, Y(f*ymax)+4, fmtTick(f*ymax))
		if f == 0.5 {
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", ox+left, Y(f*ymax), ox+left+pw, Y(f*ymax))
		}
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f">0</text><text x="%.1f" y="%.1f" text-anchor="end">%s min</text>`+"\n",
		ox+left, oy+top+ph+14, ox+left+pw, oy+top+ph+14, fmtTick(xmax))
	lx := ox + left
	for i, s := range series {
		c := svgColors[i%len(svgColors)]
		var pts []string
		for j, y := range s.ys {
			if j < len(xs) {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(xs[j]), Y(y)))
			}
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", lx, oy+28, c, html.EscapeString(s.name))
		lx += float64(len(s.name))*6.2 + 14
	}
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
