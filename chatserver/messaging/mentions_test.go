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
