// Package config reads the chat server's configuration from flags and
// environment variables (a flag wins over its variable), applies safe defaults
// and validates everything at start with messages that name the setting.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/pkg/settings"
)

// Config is the chat server's configuration.
type Config struct {
	Addr            string
	MetricsAddr     string
	DataDir         string
	DatabaseURL     string
	DBMaxConns      int
	RedisURL        string   // single Redis: redis:// or rediss://
	RedisAddrs      []string // Sentinel (with RedisMaster) or Cluster addresses
	RedisMaster     string
	RedisPassword   string
	RedisTLS        bool
	KeyringDir      string
	GenerateKeyring bool // KeyringDir was not set: generate a keyring there on first start
	KeyringReload   time.Duration
	ResealInterval  time.Duration
	AllowedOrigins  []string
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
	MaxMessageChars int
	MaxFrameBytes   int
	MaxConnections  int
	RateLogin       ratelimit.Rate
	RateMessages    ratelimit.Rate
	EditWindow      time.Duration // how long a sender may edit a message
	ExpiryInterval  time.Duration // how often expired messages are purged
	TrustedProxies  []*net.IPNet
	ShutdownTimeout time.Duration
	DeliveryHold    time.Duration
	SharedFanoutMin int
	MaxGroupMembers int
	// End-to-end encryption (MLS): devices per user, stored KeyPackages
	// per device, KeyPackage claims per user.
	MaxDevices           int
	MaxKeyPackages       int
	RateKeyPackageClaims ratelimit.Rate
	PositionInterval     time.Duration
	PasswordWorkers      int
	LogLevel             slog.Level
	// Attachments: where blobs are kept and their limits.
	AttachmentsStore   string // "fs" or "s3"
	AttachmentsDir     string // the fs store's folder
	S3                 S3
	MaxAttachmentBytes int64
	AttachmentQuota    int64 // bytes per user
	UploadExpiry       time.Duration
	MaxImagePixels     int64
	MaxVoiceLength     time.Duration
	TLSCert            string
	TLSKey             string
	// Web Push (package push).
	PushGrace         time.Duration
	PushTTL           time.Duration
	PushContact       string
	PushAllowLoopback bool
}

// S3 is the s3 attachments store's location; the credentials are read from
// the environment when the store is opened (never from a flag).
type S3 struct {
	Endpoint, Bucket, Region string
	PathStyle                bool
}

// Usage writes the settings table (flags, variables, defaults, ranges).
func Usage(w io.Writer) {
	fmt.Fprint(w, "Usage: chatserver [flags]\n\nEvery flag can also be set by its environment variable.\n\n")
	for _, s := range settings.All() {
		help := s.Help
		if s.Range != "" {
			help += " (" + s.Range + ")"
		}
		fmt.Fprintf(w, "  -%s (%s, default %q)\n      %s\n", s.Flag, s.Env, s.Default, help)
	}
}

// Load parses args (without the program name) and the environment.
func Load(args []string, getenv func(string) string) (*Config, error) {
	fs := flag.NewFlagSet("chatserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := map[string]*string{}
	for _, s := range settings.All() {
		def := s.Default
		if v := getenv(s.Env); v != "" {
			def = v
		}
		vals[s.Flag] = fs.String(s.Flag, def, s.Help)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("config: unexpected argument %q", fs.Arg(0))
	}
	p := parser{vals: vals}
	c := &Config{
		Addr:             p.str(settings.Addr),
		MetricsAddr:      p.str(settings.MetricsAddr),
		DataDir:          p.str(settings.DataDir),
		DatabaseURL:      p.str(settings.DatabaseURL),
		DBMaxConns:       check(&p, settings.DBMaxConns.Parse, settings.DBMaxConns.Setting),
		KeyringDir:       p.str(settings.KeyringDir),
		KeyringReload:    check(&p, settings.KeyringReload.Parse, settings.KeyringReload.Setting),
		ResealInterval:   check(&p, settings.ResealInterval.Parse, settings.ResealInterval.Setting),
		AccessTokenTTL:   check(&p, settings.AccessTokenTTL.Parse, settings.AccessTokenTTL.Setting),
		RefreshTokenTTL:  check(&p, settings.RefreshTokenTTL.Parse, settings.RefreshTokenTTL.Setting),
		MaxMessageChars:  check(&p, settings.MaxMessageChars.Parse, settings.MaxMessageChars.Setting),
		MaxFrameBytes:    check(&p, settings.MaxFrameBytes.Parse, settings.MaxFrameBytes.Setting),
		MaxConnections:   check(&p, settings.MaxConnections.Parse, settings.MaxConnections.Setting),
		RateLogin:        check(&p, settings.RateLogin.Parse, settings.RateLogin.Setting),
		RateMessages:     check(&p, settings.RateMessages.Parse, settings.RateMessages.Setting),
		ShutdownTimeout:  check(&p, settings.ShutdownTimeout.Parse, settings.ShutdownTimeout.Setting),
		DeliveryHold:     check(&p, settings.DeliveryHold.Parse, settings.DeliveryHold.Setting),
		SharedFanoutMin:  check(&p, settings.SharedFanoutMin.Parse, settings.SharedFanoutMin.Setting),
		MaxGroupMembers:  check(&p, settings.MaxGroupMembers.Parse, settings.MaxGroupMembers.Setting),
		PositionInterval: check(&p, settings.PositionInterval.Parse, settings.PositionInterval.Setting),
		PasswordWorkers:  check(&p, settings.PasswordWorkers.Parse, settings.PasswordWorkers.Setting),
		EditWindow:       check(&p, settings.EditWindow.Parse, settings.EditWindow.Setting),
		ExpiryInterval:   check(&p, settings.ExpiryInterval.Parse, settings.ExpiryInterval.Setting),
		LogLevel:         check(&p, settings.LogLevel.Parse, settings.LogLevel.Setting),
		TLSCert:          p.str(settings.TLSCert),
		TLSKey:           p.str(settings.TLSKey),
	}
	c.MaxDevices = check(&p, settings.MaxDevices.Parse, settings.MaxDevices.Setting)
	c.MaxKeyPackages = check(&p, settings.MaxKeyPackages.Parse, settings.MaxKeyPackages.Setting)
	c.RateKeyPackageClaims = check(&p, settings.RateKeyPackageClaims.Parse, settings.RateKeyPackageClaims.Setting)
	c.PushGrace = check(&p, settings.PushGrace.Parse, settings.PushGrace.Setting)
	c.PushTTL = check(&p, settings.PushTTL.Parse, settings.PushTTL.Setting)
	c.PushContact = check(&p, settings.ParsePushContact, settings.PushContact)
	c.PushAllowLoopback = check(&p, settings.PushAllowLoopback.Parse, settings.PushAllowLoopback.Setting)
	c.RedisURL = p.str(settings.RedisURL)
	c.RedisAddrs = settings.List(p.str(settings.RedisAddrs))
	c.RedisMaster = p.str(settings.RedisMaster)
	c.RedisPassword = p.str(settings.RedisPassword)
	c.RedisTLS = check(&p, settings.RedisTLS.Parse, settings.RedisTLS.Setting)
	switch {
	case c.RedisURL != "" && len(c.RedisAddrs) > 0:
		p.fail(errors.New("-redis-url and -redis-addrs are alternatives: set one"))
	case c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"):
		p.fail(fmt.Errorf("%s must start with redis:// or rediss://", settings.RedisURL.Name()))
	case c.RedisURL != "" && !validURL(c.RedisURL):
		// Caught here rather than when the Redis client parses it, so the
		// message names the setting.
		p.fail(fmt.Errorf("%s is not a valid URL", settings.RedisURL.Name()))
	case c.RedisMaster != "" && len(c.RedisAddrs) == 0:
		p.fail(errors.New("-redis-master needs the Sentinel addresses in -redis-addrs"))
	}
	for _, o := range settings.List(p.str(settings.AllowedOrigins)) {
		if o = check(&p, settings.ParseOrigin, settings.AllowedOrigins, o); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	for _, s := range settings.List(p.str(settings.TrustedProxies)) {
		if n := check(&p, settings.ParseProxy, settings.TrustedProxies, s); n != nil {
			c.TrustedProxies = append(c.TrustedProxies, n)
		}
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p.fail(fmt.Errorf("%s: %q is not host:port", settings.Addr.Name(), c.Addr))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			p.fail(fmt.Errorf("%s: %q is not host:port", settings.MetricsAddr.Name(), c.MetricsAddr))
		}
	}
	if c.DataDir == "" {
		p.fail(fmt.Errorf("%s must not be empty", settings.DataDir.Name()))
	}
	if c.DatabaseURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.DataDir, "parley.db"))
		if err == nil {
			c.DatabaseURL = "sqlite://" + abs
		}
	} else if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		p.fail(fmt.Errorf("%s must start with sqlite://, postgres:// or postgresql://", settings.DatabaseURL.Name()))
	}
	if c.KeyringDir == "" {
		c.KeyringDir = filepath.Join(c.DataDir, "keyring")
		c.GenerateKeyring = true
	}
	// The cross-field rules apply only to values that parsed: a bad value is
	// reported once, by its own setting.
	if c.RefreshTokenTTL > 0 && c.AccessTokenTTL > 0 {
		p.fail(settings.CheckTokenTTLs(c.AccessTokenTTL, c.RefreshTokenTTL))
	}
	if c.MaxFrameBytes > 0 && c.MaxMessageChars > 0 {
		p.fail(settings.CheckFrame(c.MaxFrameBytes, c.MaxMessageChars))
	}
	c.AttachmentsStore = check(&p, settings.ParseAttachmentsStore, settings.AttachmentsStore)
	c.AttachmentsDir = p.str(settings.AttachmentsDir)
	if c.AttachmentsDir == "" {
		c.AttachmentsDir = filepath.Join(c.DataDir, "attachments")
	}
	c.S3 = S3{Endpoint: p.str(settings.S3Endpoint), Bucket: p.str(settings.S3Bucket), Region: p.str(settings.S3Region),
		PathStyle: check(&p, settings.S3PathStyle.Parse, settings.S3PathStyle.Setting)}
	if c.AttachmentsStore == "s3" && (c.S3.Endpoint == "" || c.S3.Bucket == "") {
		p.fail(fmt.Errorf("-%s s3 needs -%s and -%s", settings.AttachmentsStore.Flag, settings.S3Endpoint.Flag, settings.S3Bucket.Flag))
	}
	c.MaxAttachmentBytes = int64(check(&p, settings.MaxAttachment.Parse, settings.MaxAttachment.Setting)) << 20
	c.AttachmentQuota = int64(check(&p, settings.AttachmentQuota.Parse, settings.AttachmentQuota.Setting)) << 20
	c.UploadExpiry = check(&p, settings.UploadExpiry.Parse, settings.UploadExpiry.Setting)
	c.MaxImagePixels = int64(check(&p, settings.MaxImageMegapixels.Parse, settings.MaxImageMegapixels.Setting)) * 1_000_000
	c.MaxVoiceLength = check(&p, settings.MaxVoiceLength.Parse, settings.MaxVoiceLength.Setting)
	if (c.TLSCert == "") != (c.TLSKey == "") {
		p.fail(fmt.Errorf("-%s and -%s go together", settings.TLSCert.Flag, settings.TLSKey.Flag))
	}
	if len(p.errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(p.errs...))
	}
	return c, nil
}

// parser holds the flag values and collects every problem, so that one start
// reports them all.
type parser struct {
	vals map[string]*string
	errs []error
}

func (p *parser) str(s settings.Setting) string { return strings.TrimSpace(*p.vals[s.Flag]) }

func (p *parser) fail(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// check parses a setting's value (its own, or the item given) and records the error.
func check[T any](p *parser, parse func(string) (T, error), s settings.Setting, item ...string) T {
	v := p.str(s)
	if len(item) > 0 {
		v = item[0]
	}
	out, err := parse(v)
	p.fail(err)
	return out
}

// validURL reports whether s parses as a URL, as the Redis client needs. The
// value is not quoted in the message: it may hold a password.
func validURL(s string) bool {
	_, err := url.Parse(s)
	return err == nil
}

// UsesRedis reports whether replicas share state through Redis.
func (c *Config) UsesRedis() bool { return c.RedisURL != "" || len(c.RedisAddrs) > 0 }
