package protocol

import "testing"

func TestValidText(t *testing.T) {
	for in, want := range map[string]bool{
		`{"body":"café"}`:               true,
		`{"body":"caf\u00e9 \\u d800"}`: true, // an escaped backslash, then text
		`{"body":"\ud83d\ude00"}`:       true, // a surrogate pair: 😀
		`{"body":"\ud83d"}`:             false,
		`{"body":"\ud83dx"}`:            false,
		`{"body":"\ude00"}`:             false,
		`{"body":"\ud83d\u0041"}`:       false,
		"{\"body\":\"caf\xe9\"}":        false,
		`{"body":"\\ud83d"}`:            true, // not an escape: a backslash and text
		`{"body":"end\ud83d`:            false,
		`{"a":"\u12"}`:                  true, // malformed escape: left to the decoder
	} {
		if got := ValidText([]byte(in)); got != want {
			t.Errorf("ValidText(%s) = %v, want %v", in, got, want)
		}
	}
}
