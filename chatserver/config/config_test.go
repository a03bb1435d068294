package config

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/pkg/settings"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsAreSafe(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.AccessTokenTTL != 15*time.Minute || c.MaxMessageChars != 4000 ||
		c.RateLogin.N != 10 || c.RateLogin.Per != 5*time.Minute || c.RateMessages.N != 60 ||
		!strings.HasPrefix(c.DatabaseURL, "sqlite://") || !c.GenerateKeyring || len(c.AllowedOrigins) != 0 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestFlagsBeatEnvironment(t *testing.T) {
	c, err := Load([]string{"-access-token-ttl", "5m"}, env(map[string]string{
		"PARLEY_ACCESS_TOKEN_TTL": "10m", "PARLEY_RATE_MESSAGES": "30/1m", "PARLEY_KEYRING_DIR": "/etc/parley/keys",
		"PARLEY_ALLOWED_ORIGINS": "https://a.example, https://b.example/", "PARLEY_TRUSTED_PROXIES": "10.0.0.0/8,127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessTokenTTL != 5*time.Minute || c.RateMessages.N != 30 || c.KeyringDir != "/etc/parley/keys" || c.GenerateKeyring {
		t.Fatalf("%+v", c)
	}
	if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" || len(c.TrustedProxies) != 2 {
		t.Fatalf("origins %v proxies %v", c.AllowedOrigins, c.TrustedProxies)
	}
}

func TestInvalidSettingsAreNamed(t *testing.T) {
	cases := map[string][]string{
		"PARLEY_ACCESS_TOKEN_TTL":  {"-access-token-ttl", "2h"},
		"PARLEY_RATE_LOGIN":        {"-rate-login", "ten"},
		"PARLEY_MAX_MESSAGE_CHARS": {"-max-message-chars", "0"},
		"PARLEY_ALLOWED_ORIGINS":   {"-allowed-origins", "chat.example.com"},
		"PARLEY_TRUSTED_PROXIES":   {"-trusted-proxies", "not-an-ip"},
		"PARLEY_DATABASE_URL":      {"-database-url", "mysql://x"},
		"PARLEY_LOG_LEVEL":         {"-log-level", "loud"},
		"PARLEY_ADDR":              {"-addr", "8080"},
		"PARLEY_MAX_CONNECTIONS":   {"-max-connections", "10000001"},
		"PARLEY_REDIS_URL":         {"-redis-url", "redis://bad%zz:6379/0"},
		"max-frame-bytes":          {"-max-message-chars", "10000", "-max-frame-bytes", "32768"},
		"refresh-token-ttl":        {"-access-token-ttl", "1h", "-refresh-token-ttl", "30m"},
		"tls-cert":                 {"-tls-cert", "cert.pem"},
		"unexpected argument":      {"extra"},
	}
	for want, args := range cases {
		_, err := Load(args, env(nil))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v should name %s", args, err, want)
		}
	}
	// Several problems are reported together.
	_, err := Load([]string{"-rate-login", "x", "-max-connections", "-1"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "rate-login") || !strings.Contains(err.Error(), "max-connections") {
		t.Errorf("joined errors: %v", err)
	}
}

// A value out of range is reported once, by its own setting, not again by a
// cross-field rule that depends on it.
func TestBadValueIsReportedOnce(t *testing.T) {
	_, err := Load([]string{"-access-token-ttl", "2h"}, env(nil))
	if err == nil || !strings.Contains(err.Error(), "-access-token-ttl (PARLEY_ACCESS_TOKEN_TTL)") ||
		strings.Contains(err.Error(), "refresh-token-ttl") {
		t.Errorf("error %v", err)
	}
}

// -h prints every setting of pkg/settings with its variable, default and range.
func TestUsageListsEverySetting(t *testing.T) {
	var b bytes.Buffer
	Usage(&b)
	for _, s := range settings.All() {
		line := "-" + s.Flag + " (" + s.Env + ", default \"" + s.Default + "\")"
		if !strings.Contains(b.String(), line) {
			t.Errorf("usage lacks %q", line)
		}
		if s.Range != "" && !strings.Contains(b.String(), "("+s.Range+")") {
			t.Errorf("usage lacks the range of -%s (%s)", s.Flag, s.Range)
		}
	}
}

func TestAttachmentSettings(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := Load([]string{"-data-dir", "/d"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.AttachmentsStore != "fs" || c.AttachmentsDir != "/d/attachments" || c.MaxAttachmentBytes != 100<<20 ||
		c.AttachmentQuota != 1<<30 || c.MaxImagePixels != 50_000_000 {
		t.Fatalf("defaults: %+v", c)
	}
	if _, err := Load([]string{"-attachments-store", "s3"}, env(nil)); err == nil ||
		!strings.Contains(err.Error(), "-attachments-store s3 needs -s3-endpoint and -s3-bucket") {
		t.Fatalf("s3 without endpoint: %v", err)
	}
	c, err = Load(nil, env(map[string]string{"PARLEY_ATTACHMENTS_STORE": "s3", "PARLEY_S3_ENDPOINT": "http://h:1",
		"PARLEY_S3_BUCKET": "b", "PARLEY_S3_PATH_STYLE": "true", "PARLEY_MAX_ATTACHMENT_MIB": "5"}))
	if err != nil || c.S3 != (S3{Endpoint: "http://h:1", Bucket: "b", PathStyle: true}) || c.MaxAttachmentBytes != 5<<20 {
		t.Fatalf("s3: %+v %v", c, err)
	}
	if _, err := Load([]string{"-attachments-store", "disk"}, env(nil)); err == nil {
		t.Fatal("unknown store accepted")
	}
}
