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
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/ratelimit"
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
	TrustedProxies  []*net.IPNet
	ShutdownTimeout time.Duration
	PasswordWorkers int
	LogLevel        slog.Level
	TLSCert         string
	TLSKey          string
}

// setting is one configuration entry: its flag, its variable, default and help.
type setting struct {
	flag, env, def, help string
}

var settings = []setting{
	{"addr", "PARLEY_ADDR", "127.0.0.1:8080", "listen address (host:port)"},
	{"metrics-addr", "PARLEY_METRICS_ADDR", "", "serve /metrics on this address only (e.g. :9090); empty: on the API address"},
	{"data-dir", "PARLEY_DATA_DIR", "data", "folder for the SQLite database and the generated keyring"},
	{"database-url", "PARLEY_DATABASE_URL", "", "sqlite:///path/file.db or postgres://... (default: SQLite in the data folder)"},
	{"db-max-conns", "PARLEY_DB_MAX_CONNS", "20", "database connection pool size"},
	{"redis-url", "PARLEY_REDIS_URL", "", "redis://[:password@]host:port/db or rediss:// (TLS); empty: in-process backplane, one replica only"},
	{"redis-addrs", "PARLEY_REDIS_ADDRS", "", "comma-separated Redis Sentinel (with -redis-master) or Cluster addresses, instead of -redis-url"},
	{"redis-master", "PARLEY_REDIS_MASTER", "", "Sentinel master name"},
	{"redis-password", "PARLEY_REDIS_PASSWORD", "", "Redis password (overrides one in -redis-url)"},
	{"redis-tls", "PARLEY_REDIS_TLS", "false", "use TLS with -redis-addrs"},
	{"keyring-dir", "PARLEY_KEYRING_DIR", "", "folder holding keyring.json (default: <data-dir>/keyring, generated on first start)"},
	{"keyring-reload", "PARLEY_KEYRING_RELOAD", "5s", "how often the keyring file is checked for changes"},
	{"reseal-interval", "PARLEY_RESEAL_INTERVAL", "1m", "how often rows sealed with non-active data keys are re-encrypted (500 per key per pass)"},
	{"allowed-origins", "PARLEY_ALLOWED_ORIGINS", "", "comma-separated origins allowed for WebSocket and cookie requests (default: the server's own)"},
	{"access-token-ttl", "PARLEY_ACCESS_TOKEN_TTL", "15m", "access token lifetime (1s to 1h)"},
	{"refresh-token-ttl", "PARLEY_REFRESH_TOKEN_TTL", "720h", "refresh token lifetime"},
	{"max-message-chars", "PARLEY_MAX_MESSAGE_CHARS", "4000", "longest message body, in characters"},
	{"max-frame-bytes", "PARLEY_MAX_FRAME_BYTES", "32768", "largest WebSocket frame a client may send, in bytes"},
	{"max-connections", "PARLEY_MAX_CONNECTIONS", "10000", "most WebSocket connections this process accepts"},
	{"rate-login", "PARLEY_RATE_LOGIN", "10/5m", "login and register attempts per IP and per account"},
	{"rate-messages", "PARLEY_RATE_MESSAGES", "60/1m", "messages per user"},
	{"trusted-proxies", "PARLEY_TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies whose X-Forwarded-For/-Proto are believed"},
	{"shutdown-timeout", "PARLEY_SHUTDOWN_TIMEOUT", "25s", "how long a graceful shutdown may take"},
	{"password-workers", "PARLEY_PASSWORD_WORKERS", "2", "password hashes computed at once (each uses 19 MiB)"},
	{"log-level", "PARLEY_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"tls-cert", "PARLEY_TLS_CERT", "", "TLS certificate file (serve HTTPS directly)"},
	{"tls-key", "PARLEY_TLS_KEY", "", "TLS private key file"},
}

// Usage writes the settings table (flags, variables, defaults).
func Usage(w io.Writer) {
	fmt.Fprint(w, "Usage: chatserver [flags]\n\nEvery flag can also be set by its environment variable.\n\n")
	for _, s := range settings {
		fmt.Fprintf(w, "  -%s (%s, default %q)\n      %s\n", s.flag, s.env, s.def, s.help)
	}
}

// Load parses args (without the program name) and the environment.
func Load(args []string, getenv func(string) string) (*Config, error) {
	fs := flag.NewFlagSet("chatserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := map[string]*string{}
	for _, s := range settings {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		vals[s.flag] = fs.String(s.flag, def, s.help)
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
		Addr:            p.str("addr"),
		MetricsAddr:     p.str("metrics-addr"),
		DataDir:         p.str("data-dir"),
		DatabaseURL:     p.str("database-url"),
		DBMaxConns:      p.intIn("db-max-conns", 1, 1000),
		KeyringDir:      p.str("keyring-dir"),
		KeyringReload:   p.durIn("keyring-reload", time.Second, time.Hour),
		ResealInterval:  p.durIn("reseal-interval", time.Second, 24*time.Hour),
		AccessTokenTTL:  p.durIn("access-token-ttl", time.Second, time.Hour),
		RefreshTokenTTL: p.durIn("refresh-token-ttl", time.Minute, 365*24*time.Hour),
		MaxMessageChars: p.intIn("max-message-chars", 1, 100000),
		MaxFrameBytes:   p.intIn("max-frame-bytes", 1024, 4<<20),
		MaxConnections:  p.intIn("max-connections", 1, 10000000),
		RateLogin:       p.rate("rate-login"),
		RateMessages:    p.rate("rate-messages"),
		ShutdownTimeout: p.durIn("shutdown-timeout", time.Second, 10*time.Minute),
		PasswordWorkers: p.intIn("password-workers", 1, 64),
		TLSCert:         p.str("tls-cert"),
		TLSKey:          p.str("tls-key"),
	}
	c.RedisURL = p.str("redis-url")
	c.RedisAddrs = p.list("redis-addrs")
	c.RedisMaster = p.str("redis-master")
	c.RedisPassword = p.str("redis-password")
	c.RedisTLS = p.bool("redis-tls")
	switch {
	case c.RedisURL != "" && len(c.RedisAddrs) > 0:
		p.errs = append(p.errs, errors.New("-redis-url and -redis-addrs are alternatives: set one"))
	case c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://"):
		p.errs = append(p.errs, errors.New("-redis-url (PARLEY_REDIS_URL) must start with redis:// or rediss://"))
	case c.RedisMaster != "" && len(c.RedisAddrs) == 0:
		p.errs = append(p.errs, errors.New("-redis-master needs the Sentinel addresses in -redis-addrs"))
	}
	c.AllowedOrigins = p.origins("allowed-origins")
	c.TrustedProxies = p.cidrs("trusted-proxies")
	if err := c.LogLevel.UnmarshalText([]byte(p.str("log-level"))); err != nil {
		p.errs = append(p.errs, fmt.Errorf("-log-level (PARLEY_LOG_LEVEL): %q is not debug, info, warn or error", p.str("log-level")))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		p.errs = append(p.errs, fmt.Errorf("-addr (PARLEY_ADDR): %q is not host:port", c.Addr))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			p.errs = append(p.errs, fmt.Errorf("-metrics-addr (PARLEY_METRICS_ADDR): %q is not host:port", c.MetricsAddr))
		}
	}
	if c.DataDir == "" {
		p.errs = append(p.errs, errors.New("-data-dir (PARLEY_DATA_DIR) must not be empty"))
	}
	if c.DatabaseURL == "" {
		abs, err := filepath.Abs(filepath.Join(c.DataDir, "parley.db"))
		if err == nil {
			c.DatabaseURL = "sqlite://" + abs
		}
	} else if !strings.HasPrefix(c.DatabaseURL, "sqlite:") && !strings.HasPrefix(c.DatabaseURL, "postgres://") &&
		!strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		p.errs = append(p.errs, errors.New("-database-url (PARLEY_DATABASE_URL) must start with sqlite://, postgres:// or postgresql://"))
	}
	if c.KeyringDir == "" {
		c.KeyringDir = filepath.Join(c.DataDir, "keyring")
		c.GenerateKeyring = true
	}
	if c.RefreshTokenTTL > 0 && c.RefreshTokenTTL <= c.AccessTokenTTL {
		p.errs = append(p.errs, errors.New("-refresh-token-ttl must be longer than -access-token-ttl"))
	}
	// A frame must fit the longest message even when every character is
	// JSON-escaped (\uXXXX: 6 bytes), plus the frame's other fields.
	if need := c.MaxMessageChars*6 + 512; c.MaxFrameBytes > 0 && c.MaxFrameBytes < need {
		p.errs = append(p.errs, fmt.Errorf("-max-frame-bytes is %d but -max-message-chars %d needs at least %d",
			c.MaxFrameBytes, c.MaxMessageChars, need))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		p.errs = append(p.errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if len(p.errs) > 0 {
		return nil, fmt.Errorf("config: %w", errors.Join(p.errs...))
	}
	return c, nil
}

type parser struct {
	vals map[string]*string
	errs []error
}

func (p *parser) env(name string) string {
	for _, s := range settings {
		if s.flag == name {
			return s.env
		}
	}
	return ""
}

func (p *parser) str(name string) string { return strings.TrimSpace(*p.vals[name]) }

func (p *parser) intIn(name string, lo, hi int) int {
	v, err := strconv.Atoi(p.str(name))
	if err != nil || v < lo || v > hi {
		p.errs = append(p.errs, fmt.Errorf("-%s (%s): %q must be a whole number from %d to %d", name, p.env(name), p.str(name), lo, hi))
	}
	return v
}

func (p *parser) durIn(name string, lo, hi time.Duration) time.Duration {
	v, err := time.ParseDuration(p.str(name))
	if err != nil || v < lo || v > hi {
		p.errs = append(p.errs, fmt.Errorf("-%s (%s): %q must be a duration from %s to %s (e.g. 15m)", name, p.env(name), p.str(name), lo, hi))
	}
	return v
}

func (p *parser) bool(name string) bool {
	v, err := strconv.ParseBool(p.str(name))
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("-%s (%s): %q must be true or false", name, p.env(name), p.str(name)))
	}
	return v
}

// UsesRedis reports whether replicas share state through Redis.
func (c *Config) UsesRedis() bool { return c.RedisURL != "" || len(c.RedisAddrs) > 0 }

func (p *parser) rate(name string) ratelimit.Rate {
	r, err := ratelimit.ParseRate(p.str(name))
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("-%s (%s): %w", name, p.env(name), err))
	}
	return r
}

func (p *parser) list(name string) []string {
	var out []string
	for _, s := range strings.Split(p.str(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (p *parser) origins(name string) []string {
	out := p.list(name)
	for i, o := range out {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p.errs = append(p.errs, fmt.Errorf("-%s (%s): %q is not an origin like https://chat.example.com", name, p.env(name), o))
			continue
		}
		out[i] = u.Scheme + "://" + u.Host
	}
	return out
}

func (p *parser) cidrs(name string) []*net.IPNet {
	var out []*net.IPNet
	for _, s := range p.list(name) {
		if !strings.Contains(s, "/") {
			if ip := net.ParseIP(s); ip != nil && ip.To4() != nil {
				s += "/32"
			} else {
				s += "/128"
			}
		}
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("-%s (%s): %q is not an IP or CIDR", name, p.env(name), s))
			continue
		}
		out = append(out, n)
	}
	return out
}
