package protocol

import (
	"strconv"
	"unicode/utf8"
)

// ValidText reports whether a JSON document's bytes are valid UTF-8 and its
// \u escapes name no lone surrogate. Go's decoder silently replaces both
// with U+FFFD, so text would be stored other than it was sent: REST bodies
// and WebSocket frames are checked with this before decoding.
func ValidText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for i := 0; i < len(data); i++ {
		if data[i] != '\\' || i+1 >= len(data) {
			continue
		}
		if data[i+1] != 'u' {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		r, ok := hex4(data, i+2)
		if !ok {
			return true // not an escape JSON accepts: the decoder reports it
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF: // a high surrogate needs a low one next
			if i+12 > len(data) {
				return false
			}
			if data[i+6] != '\\' || data[i+7] != 'u' {
				return false
			}
			lo, ok := hex4(data, i+8)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF: // a low surrogate alone
			return false
		default:
			i += 5
		}
	}
	return true
}

func hex4(data []byte, at int) (rune, bool) {
	if at+4 > len(data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(data[at:at+4]), 16, 16)
	return rune(v), err == nil
}
