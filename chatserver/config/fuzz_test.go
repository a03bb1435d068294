package config

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/pkg/settings"
)

// The ranged settings and where Load puts them; TestFuzzTableCoversEveryRange
// fails when one is missing.
var (
	fuzzInts = []struct {
		s   settings.Int
		get func(*Config) int
	}{
		{settings.DBMaxConns, func(c *Config) int { return c.DBMaxConns }},
		{settings.MaxMessageChars, func(c *Config) int { return c.MaxMessageChars }},
		{settings.MaxFrameBytes, func(c *Config) int { return c.MaxFrameBytes }},
		{settings.MaxConnections, func(c *Config) int { return c.MaxConnections }},
		{settings.PasswordWorkers, func(c *Config) int { return c.PasswordWorkers }},
		{settings.MaxAttachment, func(c *Config) int { return int(c.MaxAttachmentBytes >> 20) }},
		{settings.AttachmentQuota, func(c *Config) int { return int(c.AttachmentQuota >> 20) }},
		{settings.MaxImageMegapixels, func(c *Config) int { return int(c.MaxImagePixels / 1_000_000) }},
		{settings.SharedFanoutMin, func(c *Config) int { return c.SharedFanoutMin }},
		{settings.MaxGroupMembers, func(c *Config) int { return c.MaxGroupMembers }},
		{settings.MaxDevices, func(c *Config) int { return c.MaxDevices }},
		{settings.MaxKeyPackages, func(c *Config) int { return c.MaxKeyPackages }},
	}
	fuzzDurations = []struct {
		s   settings.Duration
		get func(*Config) time.Duration
	}{
		{settings.KeyringReload, func(c *Config) time.Duration { return c.KeyringReload }},
		{settings.ResealInterval, func(c *Config) time.Duration { return c.ResealInterval }},
		{settings.AccessTokenTTL, func(c *Config) time.Duration { return c.AccessTokenTTL }},
		{settings.RefreshTokenTTL, func(c *Config) time.Duration { return c.RefreshTokenTTL }},
		{settings.ShutdownTimeout, func(c *Config) time.Duration { return c.ShutdownTimeout }},
		{settings.DeliveryHold, func(c *Config) time.Duration { return c.DeliveryHold }},
		{settings.PositionInterval, func(c *Config) time.Duration { return c.PositionInterval }},
		{settings.EditWindow, func(c *Config) time.Duration { return c.EditWindow }},
		{settings.ExpiryInterval, func(c *Config) time.Duration { return c.ExpiryInterval }},
		{settings.PushGrace, func(c *Config) time.Duration { return c.PushGrace }},
		{settings.PushTTL, func(c *Config) time.Duration { return c.PushTTL }},
		{settings.UploadExpiry, func(c *Config) time.Duration { return c.UploadExpiry }},
		{settings.MaxVoiceLength, func(c *Config) time.Duration { return c.MaxVoiceLength }},
	}
)

func TestFuzzTableCoversEveryRange(t *testing.T) {
	listed := map[string]bool{}
	for _, x := range fuzzInts {
		listed[x.s.Flag] = true
	}
	for _, x := range fuzzDurations {
		listed[x.s.Flag] = true
	}
	for _, s := range settings.All() {
		if s.Range != "" && !listed[s.Flag] {
			t.Errorf("%s has a range but is not in fuzzInts or fuzzDurations", s.Name())
		}
	}
}

// FuzzLoad runs Load with fuzzed values for every setting: values holds them
// NUL-separated in the order of settings.All() (missing or empty: unset),
// given as flags or as environment variables. Properties: Load never panics;
// it returns a configuration or an error, never both nor neither; an accepted
// configuration has every number and duration within its pkg/settings range
// and equal to what the setting's own parser makes of the value, rates with
// a count >= 1 and a positive period, origins that parse to themselves,
// proxies, a listen address, a known database URL scheme, Redis settings
// that do not contradict each other, token lifetimes and frame size that
// satisfy the cross-setting rules, and TLS files in pairs.
func FuzzLoad(f *testing.F) {
	all := settings.All()
	join := func(kv map[string]string) []byte {
		vals := make([][]byte, len(all))
		for i, s := range all {
			vals[i] = []byte(kv[s.Flag])
		}
		return bytes.Join(vals, []byte{0})
	}
	defaults := map[string]string{}
	for _, s := range all {
		defaults[s.Flag] = s.Default
	}
	f.Add(join(defaults), false)
	f.Add(join(nil), true)
	for _, kv := range []map[string]string{
		{"addr": ":0", "access-token-ttl": "1h", "refresh-token-ttl": "1h"},
		{"max-message-chars": "100000", "max-frame-bytes": "600512"},
		{"max-message-chars": "100000", "max-frame-bytes": "4194304"},
		{"redis-url": "redis://:pw@localhost:6379/0", "redis-addrs": "a:1,b:2"},
		{"redis-addrs": " a:1 , ,b:2 ", "redis-master": "mymaster", "redis-tls": "true"},
		{"redis-url": "rediss://[::1", "database-url": "mysql://x"},
		{"allowed-origins": "https://a.example, http://127.0.0.1:8080/, ftp://x", "trusted-proxies": "10.0.0.0/8, ::1, x"},
		{"rate-login": "0/1s", "rate-messages": "1/0s", "log-level": "info+2", "tls-cert": "c.pem"},
		{"data-dir": " ", "metrics-addr": "9090", "keyring-dir": "/k", "delivery-hold": "5s", "position-interval": "99ms"},
		{"password-workers": "64", "db-max-conns": "1000", "max-connections": "10000000", "shutdown-timeout": "10m"},
	} {
		f.Add(join(kv), false)
		f.Add(join(kv), true)
	}
	f.Fuzz(func(t *testing.T, values []byte, asFlags bool) {
		parts := bytes.Split(values, []byte{0})
		given := map[string]string{}
		env := map[string]string{}
		var args []string
		for i, s := range all {
			if i >= len(parts) || len(parts[i]) == 0 {
				continue
			}
			v := string(parts[i])
			given[s.Flag] = v
			if asFlags {
				args = append(args, "-"+s.Flag, v)
			} else {
				env[s.Env] = v
			}
		}
		c, err := Load(args, func(k string) string { return env[k] })
		if (c == nil) == (err == nil) {
			t.Fatalf("Load returned %+v and %v", c, err)
		}
		if err != nil {
			return
		}
		// The value the setting was given, as Load reads it.
		value := func(s settings.Setting) string {
			if v, ok := given[s.Flag]; ok {
				return strings.TrimSpace(v)
			}
			return s.Default
		}
		for _, x := range fuzzInts {
			got := x.get(c)
			want, err := x.s.Parse(value(x.s.Setting))
			if got < x.s.Min || got > x.s.Max || err != nil || got != want {
				t.Fatalf("%s = %d from %q (range %s; the setting's parser: %d, %v)", x.s.Name(), got, value(x.s.Setting), x.s.Range, want, err)
			}
		}
		for _, x := range fuzzDurations {
			got := x.get(c)
			want, err := x.s.Parse(value(x.s.Setting))
			if got < x.s.Min || got > x.s.Max || err != nil || got != want {
				t.Fatalf("%s = %s from %q (range %s; the setting's parser: %s, %v)", x.s.Name(), got, value(x.s.Setting), x.s.Range, want, err)
			}
		}
		for _, r := range []settings.Rate{c.RateLogin, c.RateMessages} {
			if r.N < 1 || r.Per <= 0 {
				t.Fatalf("accepted rate %+v", r)
			}
		}
		for _, o := range c.AllowedOrigins {
			if again, err := settings.ParseOrigin(o); err != nil || again != o {
				t.Fatalf("accepted origin %q reads back as %q, %v", o, again, err)
			}
		}
		for _, n := range c.TrustedProxies {
			if n == nil {
				t.Fatal("a nil trusted proxy network")
			}
		}
		if _, _, err := net.SplitHostPort(c.Addr); err != nil {
			t.Fatalf("accepted listen address %q: %v", c.Addr, err)
		}
		if c.MetricsAddr != "" {
			if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
				t.Fatalf("accepted metrics address %q: %v", c.MetricsAddr, err)
			}
		}
		if c.DataDir == "" || c.KeyringDir == "" {
			t.Fatalf("empty data folder %q or keyring folder %q", c.DataDir, c.KeyringDir)
		}
		if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
			!strings.HasPrefix(c.DatabaseURL, "postgresql://") {
			t.Fatalf("accepted database URL %q", c.DatabaseURL)
		}
		if c.RedisURL != "" && (len(c.RedisAddrs) > 0 || (!strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"))) {
			t.Fatalf("accepted Redis URL %q with addresses %q", c.RedisURL, c.RedisAddrs)
		}
		if c.RedisMaster != "" && len(c.RedisAddrs) == 0 {
			t.Fatalf("accepted Sentinel master %q without addresses", c.RedisMaster)
		}
		for _, a := range c.RedisAddrs {
			if a == "" || a != strings.TrimSpace(a) {
				t.Fatalf("accepted Redis address %q", a)
			}
		}
		if err := settings.CheckTokenTTLs(c.AccessTokenTTL, c.RefreshTokenTTL); err != nil {
			t.Fatalf("accepted token lifetimes: %v", err)
		}
		if err := settings.CheckFrame(c.MaxFrameBytes, c.MaxMessageChars); err != nil {
			t.Fatalf("accepted frame size: %v", err)
		}
		if (c.TLSCert == "") != (c.TLSKey == "") {
			t.Fatalf("accepted TLS certificate %q without key %q or the reverse", c.TLSCert, c.TLSKey)
		}
	})
}
