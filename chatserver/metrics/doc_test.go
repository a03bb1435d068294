package metrics

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every metric the server exports is listed in docs/operations.md, where
// operators look for what to alert on.
func TestEveryMetricIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	fqName := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	v := reflect.ValueOf(m).Elem()
	seen := 0
	for i := range v.NumField() {
		c, ok := v.Field(i).Interface().(prometheus.Collector)
		if !ok || v.Type().Field(i).Name == "Registry" {
			continue
		}
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			name := fqName.FindStringSubmatch(d.String())
			if name == nil {
				t.Fatalf("field %s: no name in %s", v.Type().Field(i).Name, d)
			}
			seen++
			if !strings.Contains(string(doc), "`"+name[1]) {
				t.Errorf("metric %s (field %s) is not in docs/operations.md", name[1], v.Type().Field(i).Name)
			}
		}
	}
	if seen < 30 {
		t.Fatalf("found only %d metrics: the walk over Metrics is broken", seen)
	}
}
