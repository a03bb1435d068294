package monitoring_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	chatmetrics "github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/config/monitoring"
	"github.com/parley-chat/parley/controllers"
)

type rule struct {
	Alert       string            `json:"alert"`
	For         string            `json:"for"`
	Expr        string            `json:"expr"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func alerts(t *testing.T) []rule {
	t.Helper()
	var f struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []rule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(monitoring.Alerts, &f); err != nil {
		t.Fatal(err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) < 10 {
		t.Fatalf("only %d alerts parsed", len(out))
	}
	return out
}

// dashboardExprs returns every PromQL expression of the dashboard's panels and
// template variables.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(read(t, "dashboard.json"), &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	for _, v := range d.Templating.List {
		out = append(out, v.Definition)
	}
	if len(out) < 30 {
		t.Fatalf("only %d dashboard expressions parsed", len(out))
	}
	return out
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// namesOf describes collectors and returns their metric names.
func namesOf(t *testing.T, cs ...prometheus.Collector) []string {
	t.Helper()
	fq := regexp.MustCompile(`fqName: "([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	var out []string
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 64)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fq.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("no name in %s", d)
			}
			out = append(out, m[1])
		}
	}
	return out
}

// recorder is a Registerer that keeps what is registered on it.
type recorder struct{ cs []prometheus.Collector }

func (r *recorder) Register(c prometheus.Collector) error { r.cs = append(r.cs, c); return nil }
func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	r.cs = append(r.cs, cs...)
}
func (r *recorder) Unregister(prometheus.Collector) bool { return false }

// exported builds the chat server's and the operator's metrics as they run and
// returns every metric name a scrape of either can show.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	// The chat server: every collector field of its Metrics (label vectors show
	// no series until used, so describe them), plus what its registry gathers
	// (the Go and process collectors).
	m := chatmetrics.New()
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		if c, ok := v.Field(i).Interface().(prometheus.Collector); ok && v.Type().Field(i).Name != "Registry" {
			for _, n := range namesOf(t, c) {
				names[n] = true
			}
		}
	}
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	// The operator: everything NewMetrics registers.
	rec := &recorder{}
	if _, err := controllers.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	for _, n := range namesOf(t, rec.cs...) {
		names[n] = true
	}
	if !names["parley_ws_connections"] || !names["parley_operator_chatcluster_ready"] || !names["process_cpu_seconds_total"] {
		t.Fatalf("the walk over the registries is broken: %d names", len(names))
	}
	return names
}

var metricRef = regexp.MustCompile(`\b((?:parley|process|go)_[a-zA-Z0-9_]+)`)

// Every metric the alerts and the dashboard read is one that the chat server
// or the operator exports: a renamed metric breaks this test, not the alert.
func TestEveryMetricInRulesAndDashboardIsExported(t *testing.T) {
	names := exported(t)
	check := func(where, expr string) {
		for _, m := range metricRef.FindAllString(expr, -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if b, ok := strings.CutSuffix(m, suffix); ok && names[b] {
					base = b
				}
			}
			if !names[base] {
				t.Errorf("%s reads %s, which neither the chat server nor the operator exports", where, m)
			}
		}
	}
	for _, r := range alerts(t) {
		check("alert "+r.Alert, r.Expr)
		check("alert "+r.Alert+" annotations", r.Annotations["description"])
	}
	for i, e := range dashboardExprs(t) {
		check(fmt.Sprintf("dashboard expression %d (%.40s…)", i, e), e)
	}
}

// Each alert has a severity and a runbook_url to docs/runbooks/<alert>.md that
// exists; every runbook there belongs to an alert.
func TestEveryAlertHasItsRunbook(t *testing.T) {
	const prefix = "https://github.com/parley-chat/parley/blob/main/"
	seen := map[string]bool{}
	for _, r := range alerts(t) {
		if r.Labels["severity"] != "critical" && r.Labels["severity"] != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, r.Labels["severity"])
		}
		url := r.Annotations["runbook_url"]
		want := prefix + "docs/runbooks/" + r.Alert + ".md"
		if url != want {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, url, want)
			continue
		}
		path := filepath.Join("..", "..", strings.TrimPrefix(url, prefix))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("alert %s: runbook %s: %v", r.Alert, path, err)
			continue
		}
		for _, section := range []string{"# " + r.Alert, "## What it means", "## Impact", "## Diagnose", "## Fix", "## Escalate"} {
			if !bytes.Contains(b, []byte(section)) {
				t.Errorf("runbook %s has no %q", path, section)
			}
		}
		if seen[r.Alert] {
			t.Errorf("alert %s is defined twice", r.Alert)
		}
		seen[r.Alert] = true
	}
	files, err := filepath.Glob(filepath.Join("..", "..", "docs", "runbooks", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		if name != "README" && !seen[name] {
			t.Errorf("runbook %s belongs to no alert", f)
		}
	}
	index := read(t, filepath.Join("..", "..", "docs", "runbooks", "README.md"))
	for a := range seen {
		if !bytes.Contains(index, []byte("("+a+".md)")) {
			t.Errorf("docs/runbooks/README.md does not list %s", a)
		}
	}
}

// Every selector of every alert carries the matcher the operator replaces to
// scope the rules to one ChatCluster; one without it would alert about every
// ChatCluster from each one's PrometheusRule.
func TestEverySelectorIsScoped(t *testing.T) {
	sel := regexp.MustCompile(`\b(?:parley|process|go)_[a-zA-Z0-9_]+(\{[^}]*\})?`)
	for _, r := range alerts(t) {
		for _, m := range sel.FindAllStringSubmatch(r.Expr, -1) {
			if !strings.Contains(m[1], monitoring.ScopeMatcher) {
				t.Errorf("alert %s: selector %s has no %s", r.Alert, m[0], monitoring.ScopeMatcher)
			}
		}
	}
}

// The chart ships copies of alerts.yaml and dashboard.json (make
// chart-manifests); they must be the same bytes.
func TestChartCopiesAreCurrent(t *testing.T) {
	for _, name := range []string{"alerts.yaml", "dashboard.json"} {
		src := read(t, name)
		cp := read(t, filepath.Join("..", "..", "charts", "parley-operator", "files", name))
		if !bytes.Equal(src, cp) {
			t.Errorf("charts/parley-operator/files/%s differs from config/monitoring/%s: run make chart-manifests", name, name)
		}
	}
}

// promtool checks the rule file and runs alerts_test.yaml: for each alert,
// series that fire it and series that must not.
func TestPromtoolRules(t *testing.T) {
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "promtool"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if testing.Short() {
			t.Skipf("short mode and no bin/promtool (%v): make test builds it", err)
		}
		t.Fatalf("bin/promtool is missing (%v): run `make promtool` (make test builds it with hack/promtool.sh)", err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a test case in the fixtures.
	fixtures := string(read(t, "alerts_test.yaml"))
	for _, r := range alerts(t) {
		if !strings.Contains(fixtures, "alertname: "+r.Alert+"\n") {
			t.Errorf("alerts_test.yaml has no case for %s", r.Alert)
		}
	}
}
