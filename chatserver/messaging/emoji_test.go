package messaging

import (
	"strings"
	"testing"
)

func TestValidEmoji(t *testing.T) {
	good := []string{"👍", "❤️", "🎉", "😂", "👍🏽", "👩‍👩‍👧", "👨🏿‍💻", "🏳️‍🌈", "🇫🇷", "#️⃣", "7️⃣",
		"🏴\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F", "✅", "☕"}
	for _, e := range good {
		if !ValidEmoji(e) {
			t.Errorf("ValidEmoji(%q) = false, want true", e)
		}
	}
	bad := []string{"", "a", "ab", "1", "👍👍", "👍 ", " 👍", "👍\u200d", "\u200d👍", "🇫", "🇫🇷🇩🇪", "\ufe0f",
		"🏽", "#", "#️", "<script>", "\xff", "👍a", "🏴\U000E007F", strings.Repeat("👍\u200d", 8) + "👍",
		"é", "→x", "\u00a9"}
	for _, e := range bad {
		if ValidEmoji(e) {
			t.Errorf("ValidEmoji(%q) = true, want false", e)
		}
	}
}
