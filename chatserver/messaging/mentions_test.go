package messaging

import (
	"slices"
	"strings"
	"testing"
)

func TestParseMentions(t *testing.T) {
	members := map[string]string{"bob": "u_bob", "carol": "u_carol", "d.e-f_1": "u_def", "eve.": "u_evedot"}
	cases := []struct {
		text string
		want []string
	}{
		{"@bob", []string{"u_bob"}},
		{"hi @Bob and @BOB", []string{"u_bob"}},
		{"@carol, @bob: look", []string{"u_carol", "u_bob"}},
		{"ping @bob.", []string{"u_bob"}},
		{"@d.e-f_1!", []string{"u_def"}},
		{"(@bob)", []string{"u_bob"}},
		{"mail bob@example.com or x@bob", nil},
		{"@@bob", nil},
		{"@nobody @bo @bobby", nil},
		{"@", nil},
		{"email@", nil},
		{"ü@bob", []string{"u_bob"}},
		{"@eve. is trimmed to eve, not a member", nil},
	}
	for _, tc := range cases {
		if got := ParseMentions(tc.text, members); !slices.Equal(got, tc.want) {
			t.Errorf("ParseMentions(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	// At most MaxMentions distinct members.
	many := map[string]string{}
	var b strings.Builder
	for i := range 30 {
		name := "user" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		many[name] = "u_" + name
		b.WriteString("@" + name + " ")
	}
	if got := ParseMentions(b.String(), many); len(got) != MaxMentions {
		t.Fatalf("%d mentions, want at most %d", len(got), MaxMentions)
	}
}

// Whatever the text: at most MaxMentions ids, each a member's, none twice,
// and each member found has its "@username" in the text.
func FuzzParseMentions(f *testing.F) {
	for _, s := range []string{"@bob", "hi @Bob. @carol!", "x@bob @@bob", "@bob-", "@d.e-f_1.", "é@bob"} {
		f.Add(s)
	}
	members := map[string]string{"bob": "u_bob", "carol": "u_carol", "d.e-f_1": "u_def"}
	names := map[string]string{}
	for n, id := range members {
		names[id] = n
	}
	f.Fuzz(func(t *testing.T, text string) {
		got := ParseMentions(text, members)
		if len(got) > MaxMentions {
			t.Fatalf("%d mentions", len(got))
		}
		seen := map[string]bool{}
		for _, id := range got {
			name, ok := names[id]
			if !ok || seen[id] {
				t.Fatalf("ParseMentions(%q) = %v: unknown or repeated id %s", text, got, id)
			}
			seen[id] = true
			if !strings.Contains(strings.ToLower(text), "@"+name) {
				t.Fatalf("ParseMentions(%q) found %s without @%s in the text", text, id, name)
			}
		}
	})
}
