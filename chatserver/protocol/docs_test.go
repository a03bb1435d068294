package protocol

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The WebSocket frame tables of docs/api.md list exactly the frame kinds and
// fields the code has, so the documentation and the protocol cannot drift.
func TestDocsListEveryFrameAndField(t *testing.T) {
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	var client []ClientFrame = ClientFrames()
	var server []ServerFrame = ServerFrames()
	check := func(section string, code map[FrameType][]string) {
		t.Helper()
		documented := frameTable(t, text, section)
		for typ, fields := range code {
			got, ok := documented[typ]
			if !ok {
				t.Errorf("%s: frame %q is not in docs/api.md", section, typ)
				continue
			}
			if !slices.Equal(got, fields) {
				t.Errorf("%s: frame %q: docs/api.md lists fields %v, the code has %v", section, typ, got, fields)
			}
		}
		for typ := range documented {
			if _, ok := code[typ]; !ok {
				t.Errorf("%s: docs/api.md lists frame %q, which the code does not have", section, typ)
			}
		}
	}
	cf := map[FrameType][]string{}
	for _, f := range client {
		cf[f.FrameType()] = jsonFields(f)
	}
	sf := map[FrameType][]string{}
	for _, f := range server {
		sf[f.FrameType()] = jsonFields(f)
	}
	check("### Client to server", cf)
	check("### Server to client", sf)
}

// jsonFields lists the JSON names of v's fields, sorted.
func jsonFields(v any) []string {
	rt := reflect.TypeOf(v)
	var out []string
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

var (
	parens = regexp.MustCompile(`\([^)]*\)`)
	ticked = regexp.MustCompile("`([A-Za-z]+)[^`]*`")
)

// frameTable reads the first table after heading: frame type -> its fields
// (the backticked names of the second column, outside parentheses), sorted.
func frameTable(t *testing.T, doc, heading string) map[FrameType][]string {
	t.Helper()
	i := strings.Index(doc, heading+"\n")
	if i < 0 {
		t.Fatalf("docs/api.md has no %q", heading)
	}
	out := map[FrameType][]string{}
	inTable := false
	for _, line := range strings.Split(doc[i:], "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(line, "|")
		if len(cells) < 4 || strings.HasPrefix(cells[1], "---") || strings.TrimSpace(cells[1]) == "type" {
			continue
		}
		typ := FrameType(strings.Trim(strings.TrimSpace(cells[1]), "`"))
		fields := []string{}
		for _, m := range ticked.FindAllStringSubmatch(parens.ReplaceAllString(cells[2], ""), -1) {
			fields = append(fields, m[1])
		}
		slices.Sort(fields)
		out[typ] = fields
	}
	if len(out) == 0 {
		t.Fatalf("docs/api.md: no frame table under %q", heading)
	}
	return out
}
