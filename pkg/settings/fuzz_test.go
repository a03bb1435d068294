package settings

import (
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The typed settings, for the fuzz targets; TestFuzzListsCoverEveryRange
// fails when a setting with a range is missing here.
var (
	fuzzInts      = []Int{DBMaxConns, MaxMessageChars, MaxFrameBytes, MaxConnections, PasswordWorkers, MaxAttachment, AttachmentQuota, MaxImageMegapixels, SharedFanoutMin, MaxGroupMembers, MaxDevices, MaxKeyPackages}
	fuzzDurations = []Duration{KeyringReload, ResealInterval, AccessTokenTTL, RefreshTokenTTL, ShutdownTimeout,
		DeliveryHold, PositionInterval, EditWindow, ExpiryInterval, UploadExpiry, MaxVoiceLength, PushGrace, PushTTL}
)

func TestFuzzListsCoverEveryRange(t *testing.T) {
	listed := map[string]bool{}
	for _, s := range fuzzInts {
		listed[s.Flag] = true
	}
	for _, s := range fuzzDurations {
		listed[s.Flag] = true
	}
	for _, s := range All() {
		if s.Range != "" && !listed[s.Flag] {
			t.Errorf("%s has a range but is not in fuzzInts or fuzzDurations", s.Name())
		}
	}
}

// FuzzSettingValue parses one value as every number, duration, true/false
// and level setting. Properties: no parser panics; an accepted number or
// duration is within the setting's range; every accepted value round-trips
// (formatted as the operator writes it, it parses to the same value).
func FuzzSettingValue(f *testing.F) {
	for _, s := range []string{"0", "1", "20", " 64 ", "-1", "4194304", "1e3", "0x10", "+5", "9223372036854775808",
		"5s", "1h", "8760h", "8760h0m1s", "1.5s", "-1s", "10ms", "1h30m", ".5m", "1µs", "0",
		"true", "FALSE", "t", "yes", "debug", "INFO", "warn+2", "error-4", "info+", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range fuzzInts {
			n, err := s.Parse(v)
			if err != nil {
				continue
			}
			if n < s.Min || n > s.Max {
				t.Fatalf("%s accepted %q as %d, outside %d–%d", s.Name(), v, n, s.Min, s.Max)
			}
			if m, err := s.Parse(strconv.Itoa(n)); err != nil || m != n {
				t.Fatalf("%s: %q gave %d, which reads back as %d, %v", s.Name(), v, n, m, err)
			}
		}
		for _, s := range fuzzDurations {
			d, err := s.Parse(v)
			if err != nil {
				continue
			}
			if d < s.Min || d > s.Max {
				t.Fatalf("%s accepted %q as %s, outside %s", s.Name(), v, d, s.Range)
			}
			if e, err := s.Parse(FormatDuration(d)); err != nil || e != d {
				t.Fatalf("%s: %q gave %s, written %q, which reads back as %s, %v", s.Name(), v, d, FormatDuration(d), e, err)
			}
		}
		if b, err := RedisTLS.Parse(v); err == nil {
			if c, err := RedisTLS.Parse(strconv.FormatBool(b)); err != nil || c != b {
				t.Fatalf("%s: %q gave %v, which reads back as %v, %v", RedisTLS.Name(), v, b, c, err)
			}
		}
		if l, err := LogLevel.Parse(v); err == nil {
			if m, err := LogLevel.Parse(l.String()); err != nil || m != l {
				t.Fatalf("%s: %q gave %v, which reads back as %v, %v", LogLevel.Name(), v, l, m, err)
			}
			for _, name := range LogLevel.Values {
				var want slog.Level
				_ = want.UnmarshalText([]byte(name))
				if strings.EqualFold(strings.TrimSpace(v), name) && l != want {
					t.Fatalf("%s: %q gave %v, want %v", LogLevel.Name(), v, l, want)
				}
			}
		}
	})
}

// FuzzParseRate: no panic; an accepted rate has a count >= 1 and a positive
// period and round-trips through String; whatever the CRD's RatePattern
// admits, ParseRate accepts.
func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"10/5m", "60/1m", RateMin, RateMax, " 1/1s ", "0/1s", "1/0s", "1/-1s", "-1/1s",
		"1/1h30m", "1/1.5s", "1/", "/1s", "1/1s/1s", "9999999999999999999/1s", "1/9223372036854775807ns", "1/1d"} {
		f.Add(s)
	}
	re := regexp.MustCompile(RatePattern)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			if re.MatchString(s) {
				t.Fatalf("RatePattern admits %q, ParseRate refuses it: %v", s, err)
			}
			return
		}
		if r.N < 1 || r.Per <= 0 {
			t.Fatalf("ParseRate(%q) = %+v", s, r)
		}
		if again, err := ParseRate(r.String()); err != nil || again != r {
			t.Fatalf("ParseRate(%q) = %+v, written %q, reads back as %+v, %v", s, r, r.String(), again, err)
		}
	})
}

// FuzzParseOrigin: no panic; an accepted origin is scheme://host with an
// http(s) scheme, and parses to itself; whatever the CRD's OriginPattern
// admits, ParseOrigin accepts.
func FuzzParseOrigin(f *testing.F) {
	for _, s := range []string{"https://chat.example.com", "https://chat.example.com/", "http://127.0.0.1:8080",
		"HTTPS://Chat.Example.com", "https://[::1]:443", "https://u:p@x", "https://x?q=1", "https://x#f", "https://x/p",
		"ftp://x", "https://", "//x", "https://x:bad", "https://%41", "https://a%2Fb", " http://x "} {
		f.Add(s)
	}
	re := regexp.MustCompile(OriginPattern)
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOrigin(s)
		if err != nil {
			if re.MatchString(s) {
				t.Fatalf("OriginPattern admits %q, ParseOrigin refuses it: %v", s, err)
			}
			return
		}
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") {
			t.Fatalf("ParseOrigin(%q) = %q: not http(s)", s, o)
		}
		if again, err := ParseOrigin(o); err != nil || again != o {
			t.Fatalf("ParseOrigin(%q) = %q, which parses to %q, %v", s, o, again, err)
		}
	})
}

// FuzzParseProxy: no panic; an accepted network parses to itself from its
// string form; a bare address (no "/") is that one address only, never a
// wider network.
func FuzzParseProxy(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "10.1.2.3/8", "192.168.1.7", "::1", "2001:db8::/32", "0.0.0.0/0", "::/0",
		"fe80::1", " 127.0.0.1 ", "1.2.3.4/33", "::/129", "1.2.3", "fe80::1%eth0", "01.2.3.4", "", "/", "1.2.3.4/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseProxy(s)
		if err != nil {
			if n != nil {
				t.Fatalf("ParseProxy(%q) returned %v with the error %v", s, n, err)
			}
			return
		}
		again, err := ParseProxy(n.String())
		if err != nil || again.String() != n.String() {
			t.Fatalf("ParseProxy(%q) = %v, which parses to %v, %v", s, n, again, err)
		}
		if addr := strings.TrimSpace(s); !strings.Contains(addr, "/") {
			ones, bits := n.Mask.Size()
			if ip := net.ParseIP(addr); ones != bits || ip == nil || !n.Contains(ip) {
				t.Fatalf("ParseProxy(%q) = %v: a bare address must trust that address only", s, n)
			}
		}
	})
}
