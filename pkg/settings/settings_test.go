package settings

import (
	"math/rand/v2"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestNamesAreUniqueAndFollowTheFlag(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range All() {
		if seen[s.Flag] || seen[s.Env] {
			t.Errorf("%s is defined twice", s.Name())
		}
		seen[s.Flag], seen[s.Env] = true, true
		if want := "PARLEY_" + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")); s.Env != want {
			t.Errorf("-%s: variable %s, want %s", s.Flag, s.Env, want)
		}
		if s.Help == "" {
			t.Errorf("%s has no help", s.Name())
		}
	}
}

// Every default is a value its own parser accepts, and the typed default agrees.
func TestDefaultsParse(t *testing.T) {
	for _, s := range []Int{DBMaxConns, MaxMessageChars, MaxFrameBytes, MaxConnections, PasswordWorkers,
		MaxAttachment, AttachmentQuota, MaxImageMegapixels} {
		if v, err := s.Parse(s.Default); err != nil || v != s.Def || s.Min > s.Max {
			t.Errorf("%s: default %q parses to %d, %v; Def %d, range %s", s.Name(), s.Default, v, err, s.Def, s.Range)
		}
	}
	for _, s := range []Duration{KeyringReload, ResealInterval, AccessTokenTTL, RefreshTokenTTL, ShutdownTimeout,
		UploadExpiry, MaxVoiceLength} {
		if v, err := s.Parse(s.Default); err != nil || v != s.Def || s.Min > s.Max {
			t.Errorf("%s: default %q parses to %s, %v; Def %s, range %s", s.Name(), s.Default, v, err, s.Def, s.Range)
		}
	}
	for _, s := range []RateSetting{RateLogin, RateMessages} {
		if v, err := s.Parse(s.Default); err != nil || v != s.Def {
			t.Errorf("%s: default %q parses to %v, %v; Def %v", s.Name(), s.Default, v, err, s.Def)
		}
	}
	if v, err := LogLevel.Parse(LogLevel.Default); err != nil || v != LogLevel.Def {
		t.Errorf("log level default %q: %v, %v", LogLevel.Default, v, err)
	}
	if v, err := ParseAttachmentsStore(AttachmentsStore.Default); err != nil || v != "fs" {
		t.Errorf("attachments-store default %q: %v, %v", AttachmentsStore.Default, v, err)
	}
	if _, err := ParseAttachmentsStore("gcs"); err == nil || !strings.Contains(err.Error(), "-attachments-store") {
		t.Errorf("attachments-store gcs: %v", err)
	}
	if v, err := S3PathStyle.Parse(S3PathStyle.Default); err != nil || v != S3PathStyle.Def {
		t.Errorf("s3-path-style default %q: %v, %v", S3PathStyle.Default, v, err)
	}
	if v, err := RedisTLS.Parse(RedisTLS.Default); err != nil || v != RedisTLS.Def {
		t.Errorf("redis-tls default %q: %v, %v", RedisTLS.Default, v, err)
	}
	for _, l := range LogLevel.Values {
		if _, err := LogLevel.Parse(l); err != nil {
			t.Errorf("documented level %q refused: %v", l, err)
		}
	}
}

func TestRangesAreEnforcedAndNamed(t *testing.T) {
	for _, v := range []string{"0", "100001", "x", ""} {
		if _, err := MaxMessageChars.Parse(v); err == nil || !strings.Contains(err.Error(), "-max-message-chars (PARLEY_MAX_MESSAGE_CHARS)") {
			t.Errorf("max-message-chars %q: %v", v, err)
		}
	}
	for _, v := range []string{"0s", "2h", "1h1ns", "soon"} {
		if _, err := AccessTokenTTL.Parse(v); err == nil || !strings.Contains(err.Error(), "from 1s to 1h") {
			t.Errorf("access-token-ttl %q: %v", v, err)
		}
	}
	if d, err := AccessTokenTTL.Parse(" 1h "); err != nil || d != time.Hour {
		t.Errorf("the maximum is allowed: %v, %v", d, err)
	}
}

func TestTokenTTLRule(t *testing.T) {
	if err := CheckTokenTTLs(time.Hour, time.Hour); err == nil || !strings.Contains(err.Error(), "-refresh-token-ttl must be longer than -access-token-ttl") {
		t.Errorf("equal lifetimes: %v", err)
	}
	if err := CheckTokenTTLs(AccessTokenTTL.Def, RefreshTokenTTL.Def); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// The operator derives the frame size from the message length: the result must
// be a frame size the server accepts and holds the message, for every length.
func TestFrameBytesForEveryMessageLength(t *testing.T) {
	if err := CheckFrame(MaxFrameBytes.Def, MaxMessageChars.Def); err != nil {
		t.Errorf("the defaults disagree: %v", err)
	}
	if need := MinFrameBytes(MaxMessageChars.Max); need > MaxFrameBytes.Max {
		t.Fatalf("the longest message (%d chars) needs %d-byte frames; the server allows %d", MaxMessageChars.Max, need, MaxFrameBytes.Max)
	}
	for chars := MaxMessageChars.Min; chars <= MaxMessageChars.Max; chars++ {
		f := FrameBytesFor(chars)
		if _, err := MaxFrameBytes.Parse(strconv.Itoa(f)); err != nil {
			t.Fatalf("FrameBytesFor(%d) = %d: %v", chars, f, err)
		}
		if err := CheckFrame(f, chars); err != nil {
			t.Fatalf("FrameBytesFor(%d): %v", chars, err)
		}
	}
	if FrameBytesFor(MaxMessageChars.Def) != MaxFrameBytes.Def {
		t.Errorf("the default message length needs no frame change, got %d", FrameBytesFor(MaxMessageChars.Def))
	}
	if err := CheckFrame(32768, 10000); err == nil || !strings.Contains(err.Error(), "-max-frame-bytes is 32768 but -max-message-chars 10000 needs at least 60512") {
		t.Errorf("frame error: %v", err)
	}
}

func TestParseRate(t *testing.T) {
	r, err := ParseRate("10/5m")
	if err != nil || r.N != 10 || r.Per != 5*time.Minute || r.String() != "10/5m" {
		t.Fatalf("ParseRate = %+v (%s), %v", r, r, err)
	}
	for _, bad := range []string{"", "10", "0/1m", "-1/1m", "x/1m", "10/", "10/0s", "10/abc"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

// Everything the CRD's rate pattern admits, ParseRate reads; RateMin and RateMax
// are the pattern's extremes.
func TestRatePatternIsASubsetOfParseRate(t *testing.T) {
	re := regexp.MustCompile(RatePattern)
	for _, s := range []string{RateMin, RateMax, "10/5m", "60/1m"} {
		if !re.MatchString(s) {
			t.Errorf("pattern refuses %q", s)
		}
	}
	for _, s := range []string{"0/1s", "10000000/1s", "1/100000h", "1/0s", "1/1d", "1/1ms", "1/1m30s", " 1/1s"} {
		if re.MatchString(s) {
			t.Errorf("pattern admits %q beyond the extremes", s)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789/smh"
	for i := 0; i < 200000; i++ {
		b := make([]byte, 3+rng.IntN(12))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if s := string(b); re.MatchString(s) {
			if _, err := ParseRate(s); err != nil {
				t.Fatalf("pattern admits %q, ParseRate refuses it: %v", s, err)
			}
		}
	}
}

// Everything the CRD's origin pattern admits, ParseOrigin reads.
func TestOriginPatternIsASubsetOfParseOrigin(t *testing.T) {
	re := regexp.MustCompile(OriginPattern)
	good := []string{"http://a", "https://chat.example.com", "https://chat.example.com/", "http://127.0.0.1:8080",
		"https://x-y.example:65535"}
	for _, s := range good {
		if !re.MatchString(s) {
			t.Errorf("pattern refuses %q", s)
		}
		if _, err := ParseOrigin(s); err != nil {
			t.Errorf("ParseOrigin(%q): %v", s, err)
		}
	}
	for _, s := range []string{"chat.example.com", "ftp://x", "https://x/path", "https://u@x", "https://x?q", "https://x#f", "https://-x", "https://x,y", "https://[::1]"} {
		if re.MatchString(s) {
			t.Errorf("pattern admits %q", s)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const alphabet = "ab1.-:[]/f9"
	for i := 0; i < 200000; i++ {
		prefix := "http://"
		if rng.IntN(2) == 0 {
			prefix = "https://"
		}
		b := make([]byte, 1+rng.IntN(12))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		if s := prefix + string(b); re.MatchString(s) {
			if _, err := ParseOrigin(s); err != nil {
				t.Fatalf("pattern admits %q, ParseOrigin refuses it: %v", s, err)
			}
		}
	}
}

// The CRD admits a trusted proxy when Kubernetes' CEL isIP or isCIDR accepts it:
// net/netip parsing without zones or IPv4-mapped IPv6 addresses. ParseProxy must
// accept all of those.
func TestProxiesCELAdmitsParse(t *testing.T) {
	celAdmits := func(s string) bool {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Zone() == "" && !a.Is4In6()
		}
		p, err := netip.ParsePrefix(s)
		return err == nil && !p.Addr().Is4In6()
	}
	samples := []string{"10.0.0.0/8", "10.1.2.3/8", "192.168.1.7", "::1", "2001:db8::/32", "0.0.0.0/0", "::/0", "fe80::1"}
	rng := rand.New(rand.NewPCG(5, 6))
	const alphabet = "0123456789abcdef.:/"
	for i := 0; i < 200000; i++ {
		b := make([]byte, 1+rng.IntN(16))
		for j := range b {
			b[j] = alphabet[rng.IntN(len(alphabet))]
		}
		samples = append(samples, string(b))
	}
	admitted := 0
	for _, s := range samples {
		if !celAdmits(s) {
			continue
		}
		admitted++
		if _, err := ParseProxy(s); err != nil {
			t.Fatalf("CEL admits %q, ParseProxy refuses it: %v", s, err)
		}
	}
	if admitted < 8 {
		t.Fatalf("only %d samples admitted: the test proves little", admitted)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{time.Hour: "1h", 8760 * time.Hour: "8760h", 10 * time.Minute: "10m",
		25 * time.Second: "25s", 90 * time.Minute: "1h30m", time.Second: "1s", 1500 * time.Millisecond: "1.5s"} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// README's configuration table lists every setting once, with its variable, its
// default and its range as defined here.
func TestReadmeTableMatches(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	byFlag := map[string]Setting{}
	for _, s := range All() {
		byFlag[s.Flag] = s
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Errorf("row %q: want 4 cells", line)
			continue
		}
		flags, envs := strings.Split(cells[0], ", "), strings.Split(cells[1], ", ")
		if len(flags) != len(envs) {
			t.Errorf("row %q: %d flags, %d variables", line, len(flags), len(envs))
			continue
		}
		for i, f := range flags {
			s, ok := byFlag[strings.Trim(strings.TrimSpace(f), "`-")]
			if !ok {
				t.Errorf("README lists %s, which is not a setting", f)
				continue
			}
			listed[s.Flag] = true
			if env := strings.Trim(strings.TrimSpace(envs[i]), "`"); env != s.Env {
				t.Errorf("README: -%s reads %s, the server reads %s", s.Flag, env, s.Env)
			}
			if s.Default != "" && strings.TrimSpace(cells[2]) != "`"+s.Default+"`" {
				t.Errorf("README: -%s default %s, the server's is %q", s.Flag, cells[2], s.Default)
			}
			if s.Range != "" && !strings.Contains(cells[3], "("+s.Range) {
				t.Errorf("README: -%s meaning %q does not give the range (%s)", s.Flag, cells[3], s.Range)
			}
		}
	}
	for _, s := range All() {
		if !listed[s.Flag] {
			t.Errorf("README does not list -%s", s.Flag)
		}
	}
}

func TestParsePushContact(t *testing.T) {
	for _, ok := range []string{"", "mailto:ops@example.com", "https://example.com/contact"} {
		if _, err := ParsePushContact(ok); err != nil {
			t.Errorf("ParsePushContact(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"ops@example.com", "mailto:", "http://example.com", "https://", "mailto:nobody"} {
		if _, err := ParsePushContact(bad); err == nil {
			t.Errorf("ParsePushContact(%q) accepted it", bad)
		}
	}
}
