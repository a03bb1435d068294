package messaging

import (
	"unicode"
	"unicode/utf8"
)

// MaxEmojiBytes bounds a reaction's emoji (the longest standard ZWJ
// sequences, families with skin tones, are about 35 bytes).
const MaxEmojiBytes = 64

// maxEmojiParts bounds the parts of a ZWJ sequence.
const maxEmojiParts = 8

const (
	zwj       = '\u200d'
	vs16      = '\ufe0f'
	keycap    = '\u20e3'
	blackFlag = '\U0001F3F4'
	cancelTag = '\U000E007F'
)

func isRegionalIndicator(r rune) bool { return r >= 0x1F1E6 && r <= 0x1F1FF }
func isSkinTone(r rune) bool          { return r >= 0x1F3FB && r <= 0x1F3FF }
func isTag(r rune) bool               { return r >= 0xE0020 && r <= 0xE007E }

// isEmojiBase reports whether r can start an emoji: a symbol of category So
// at U+2000 or above. The standard library has no Emoji property table;
// So above U+2000 holds every pictographic emoji (and some symbols such as
// arrows and dingbats, which people also react with) and none of letters,
// digits, punctuation or spaces.
func isEmojiBase(r rune) bool {
	return r >= 0x2000 && unicode.Is(unicode.So, r) && !isRegionalIndicator(r)
}

// ValidEmoji reports whether s is one emoji (docs/api.md, "Reactions"): a
// flag (two regional indicators), a subdivision flag (U+1F3F4 and tags up
// to U+E007F), or up to maxEmojiParts parts joined by ZWJ, each a base
// (isEmojiBase, or a keycap base # * 0-9 followed by U+FE0F U+20E3)
// optionally followed by U+FE0F and a skin-tone modifier; at most
// MaxEmojiBytes bytes of valid UTF-8.
func ValidEmoji(s string) bool {
	if s == "" || len(s) > MaxEmojiBytes || !utf8.ValidString(s) {
		return false
	}
	rs := []rune(s)
	if len(rs) == 2 && isRegionalIndicator(rs[0]) && isRegionalIndicator(rs[1]) {
		return true
	}
	if rs[0] == blackFlag && len(rs) > 2 {
		i := 1
		for i < len(rs)-1 && isTag(rs[i]) {
			i++
		}
		if i > 1 && i == len(rs)-1 && rs[i] == cancelTag {
			return true
		}
	}
	parts := 0
	for i := 0; i < len(rs); {
		if parts > 0 {
			if rs[i] != zwj {
				return false
			}
			i++
			if i == len(rs) {
				return false
			}
		}
		parts++
		if parts > maxEmojiParts {
			return false
		}
		r := rs[i]
		switch {
		case r == '#' || r == '*' || (r >= '0' && r <= '9'):
			if i+2 >= len(rs) || rs[i+1] != vs16 || rs[i+2] != keycap {
				return false
			}
			i += 3
			continue
		case isEmojiBase(r):
			i++
		default:
			return false
		}
		if i < len(rs) && rs[i] == vs16 {
			i++
		}
		if i < len(rs) && isSkinTone(rs[i]) {
			i++
		}
	}
	return true
}
