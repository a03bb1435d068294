// Package settings is the one definition of the chat server's settings, shared by
// the chat server (chatserver/config), which reads them from flags and environment
// variables, and the operator, which writes them into a ChatCluster's ConfigMap and
// bounds the ChatCluster CRD by them. For every setting it holds the flag, the
// variable, the default, the help text and, for numbers and durations, the allowed
// range; the rules that tie settings together (token lifetimes, frame size against
// message length) and the formats of rates, origins and proxies are here too. A
// value the operator admits is therefore a value the server starts with.
//
// The package depends on the standard library only, so that the operator can use
// it without pulling in the chat server.
package settings

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Setting is one chat server setting.
type Setting struct {
	Flag    string // flag name, without the dash
	Env     string // environment variable
	Default string // written as a flag value; "" leaves the setting unset
	Help    string
	// Range is "min–max" for numbers and durations, empty for other settings.
	Range string
}

// Name names the setting in messages: "-flag (VARIABLE)".
func (s Setting) Name() string { return fmt.Sprintf("-%s (%s)", s.Flag, s.Env) }

// Int is a whole-number setting with an inclusive range.
type Int struct {
	Setting
	Def, Min, Max int
}

// Parse reads a value of the setting and checks its range; 0 with the error.
func (s Int) Parse(v string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < s.Min || n > s.Max {
		return 0, fmt.Errorf("%s: %q must be a whole number from %d to %d", s.Name(), v, s.Min, s.Max)
	}
	return n, nil
}

// Duration is a duration setting with an inclusive range.
type Duration struct {
	Setting
	Def, Min, Max time.Duration
}

// Parse reads a value of the setting (Go duration syntax) and checks its range;
// 0 with the error.
func (s Duration) Parse(v string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < s.Min || d > s.Max {
		return 0, fmt.Errorf("%s: %q must be a duration from %s to %s (e.g. %s)",
			s.Name(), v, FormatDuration(s.Min), FormatDuration(s.Max), s.Default)
	}
	return d, nil
}

// Bool is a true/false setting.
type Bool struct {
	Setting
	Def bool
}

// Parse reads a value of the setting.
func (s Bool) Parse(v string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return false, fmt.Errorf("%s: %q must be true or false", s.Name(), v)
	}
	return b, nil
}

// RateSetting is a rate-limit setting written as N/duration.
type RateSetting struct {
	Setting
	Def Rate
}

// Parse reads a value of the setting.
func (s RateSetting) Parse(v string) (Rate, error) {
	r, err := ParseRate(v)
	if err != nil {
		return Rate{}, fmt.Errorf("%s: %w", s.Name(), err)
	}
	return r, nil
}

// Level is the log-level setting.
type Level struct {
	Setting
	// Values are the documented levels, and all the ChatCluster CRD admits.
	Values []string
	Def    slog.Level
}

// Parse reads a level. It accepts what log/slog reads (any case, offsets such as
// "info+2"), a superset of Values, so that existing deployments keep starting.
func (s Level) Parse(v string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
		return 0, fmt.Errorf("%s: %q is not %s", s.Name(), v, orList(s.Values))
	}
	return l, nil
}

// orList writes "a, b, c or d".
func orList(vs []string) string {
	if len(vs) < 2 {
		return strings.Join(vs, "")
	}
	return strings.Join(vs[:len(vs)-1], ", ") + " or " + vs[len(vs)-1]
}

func plain(flag, env, def, help string) Setting {
	return Setting{Flag: flag, Env: env, Default: def, Help: help}
}

func intSetting(flag, env string, def, lo, hi int, help string) Int {
	s := plain(flag, env, strconv.Itoa(def), help)
	s.Range = fmt.Sprintf("%d–%d", lo, hi)
	return Int{Setting: s, Def: def, Min: lo, Max: hi}
}

func durationSetting(flag, env string, def, lo, hi time.Duration, help string) Duration {
	s := plain(flag, env, FormatDuration(def), help)
	s.Range = FormatDuration(lo) + "–" + FormatDuration(hi)
	return Duration{Setting: s, Def: def, Min: lo, Max: hi}
}

func levelSetting(flag, env string, def slog.Level, values ...string) Level {
	return Level{Setting: plain(flag, env, strings.ToLower(def.String()), orList(values)), Values: values, Def: def}
}

func rateSetting(flag, env string, def Rate, help string) RateSetting {
	return RateSetting{Setting: plain(flag, env, def.String(), help), Def: def}
}

// The settings, in the order of the help text and the README's table.
var (
	Addr        = plain("addr", "PARLEY_ADDR", "127.0.0.1:8080", "listen address (host:port)")
	MetricsAddr = plain("metrics-addr", "PARLEY_METRICS_ADDR", "",
		"serve /metrics on this address only (e.g. :9090); empty: on the API address")
	DataDir     = plain("data-dir", "PARLEY_DATA_DIR", "data", "folder for the SQLite database and the generated keyring")
	DatabaseURL = plain("database-url", "PARLEY_DATABASE_URL", "",
		"sqlite:///path/file.db or postgres://... (default: SQLite in the data folder)")
	DBMaxConns = intSetting("db-max-conns", "PARLEY_DB_MAX_CONNS", 20, 1, 1000, "database connection pool size")
	RedisURL   = plain("redis-url", "PARLEY_REDIS_URL", "",
		"redis://[:password@]host:port/db or rediss:// (TLS); empty: in-process backplane, one replica only")
	RedisAddrs = plain("redis-addrs", "PARLEY_REDIS_ADDRS", "",
		"comma-separated Redis Sentinel (with -redis-master) or Cluster addresses, instead of -redis-url")
	RedisMaster   = plain("redis-master", "PARLEY_REDIS_MASTER", "", "Sentinel master name")
	RedisPassword = plain("redis-password", "PARLEY_REDIS_PASSWORD", "", "Redis password (overrides one in -redis-url)")
	RedisTLS      = Bool{Setting: plain("redis-tls", "PARLEY_REDIS_TLS", "false", "use TLS with -redis-addrs")}
	KeyringDir    = plain("keyring-dir", "PARLEY_KEYRING_DIR", "",
		"folder holding keyring.json (default: <data-dir>/keyring, generated on first start)")
	KeyringReload = durationSetting("keyring-reload", "PARLEY_KEYRING_RELOAD", 5*time.Second, time.Second, time.Hour,
		"how often the keyring file is checked for changes")
	ResealInterval = durationSetting("reseal-interval", "PARLEY_RESEAL_INTERVAL", time.Minute, time.Second, 24*time.Hour,
		"how often rows sealed with non-active data keys are re-encrypted, 500 per key per pass")
	AllowedOrigins = plain("allowed-origins", "PARLEY_ALLOWED_ORIGINS", "",
		"comma-separated origins allowed for WebSocket and cookie requests (default: the server's own)")
	AccessTokenTTL = durationSetting("access-token-ttl", "PARLEY_ACCESS_TOKEN_TTL", 15*time.Minute, time.Second, time.Hour,
		"access token lifetime")
	RefreshTokenTTL = durationSetting("refresh-token-ttl", "PARLEY_REFRESH_TOKEN_TTL", 720*time.Hour, time.Minute, 8760*time.Hour,
		"refresh token lifetime; longer than the access token's")
	MaxMessageChars = intSetting("max-message-chars", "PARLEY_MAX_MESSAGE_CHARS", 4000, 1, 100000,
		"longest message body, in characters")
	MaxFrameBytes = intSetting("max-frame-bytes", "PARLEY_MAX_FRAME_BYTES", 32768, 1024, 4<<20,
		fmt.Sprintf("largest WebSocket frame a client may send, in bytes; at least %d × -max-message-chars + %d",
			escapedCharBytes, frameOverheadBytes))
	MaxGroupMembers = intSetting("max-group-members", "PARLEY_MAX_GROUP_MEMBERS", 1000, 2, 100000,
		"most members of a group, its creator included")
	MaxDevices = intSetting("max-devices", "PARLEY_MAX_DEVICES", 10, 1, 100,
		"most end-to-end encryption devices (browsers, each an MLS client) per user")
	MaxKeyPackages = intSetting("max-key-packages", "PARLEY_MAX_KEY_PACKAGES", 100, 1, 10000,
		"most unclaimed MLS KeyPackages the server keeps per device")
	RateKeyPackageClaims = rateSetting("rate-key-package-claims", "PARLEY_RATE_KEY_PACKAGE_CLAIMS", Rate{N: 30, Per: time.Minute},
		"MLS KeyPackage claims per user, as N/duration (each claim takes one KeyPackage of every device of the users named)")
	MaxConnections = intSetting("max-connections", "PARLEY_MAX_CONNECTIONS", 10000, 1, 10000000,
		"most WebSocket connections this process accepts")
	RateLogin = rateSetting("rate-login", "PARLEY_RATE_LOGIN", Rate{N: 10, Per: 5 * time.Minute},
		"login and register attempts per IP and per account, as N/duration")
	RateMessages   = rateSetting("rate-messages", "PARLEY_RATE_MESSAGES", Rate{N: 60, Per: time.Minute}, "messages per user, as N/duration")
	TrustedProxies = plain("trusted-proxies", "PARLEY_TRUSTED_PROXIES", "",
		"comma-separated IPs or CIDRs of proxies whose X-Forwarded-For/-Proto are believed")
	ShutdownTimeout = durationSetting("shutdown-timeout", "PARLEY_SHUTDOWN_TIMEOUT", 25*time.Second, time.Second, 10*time.Minute,
		"how long a graceful shutdown may take")
	DeliveryHold = durationSetting("delivery-hold", "PARLEY_DELIVERY_HOLD", 500*time.Millisecond, 10*time.Millisecond, 5*time.Second,
		"how long a live message waits for its predecessor in its conversation before the client is told to sync it")
	SharedFanoutMin = intSetting("shared-fanout-min", "PARLEY_SHARED_FANOUT_MIN", 8, 0, 1000000,
		"an event for this many recipients or more crosses the backplane once, naming them, to every replica, instead of once per recipient; 0: never (see docs/architecture.md, \"One publish for many recipients\")")
	PositionInterval = durationSetting("position-interval", "PARLEY_POSITION_INTERVAL", 2*time.Second, 100*time.Millisecond, time.Minute,
		"how often each replica checks that its connections were sent every stored message (a hole is found within twice this plus -delivery-hold)")
	EditWindow = durationSetting("edit-window", "PARLEY_EDIT_WINDOW", 24*time.Hour, time.Minute, 30*24*time.Hour,
		"how long after sending a message its sender may edit it")
	ExpiryInterval = durationSetting("expiry-interval", "PARLEY_EXPIRY_INTERVAL", 30*time.Second, 100*time.Millisecond, time.Hour,
		"how often the replica holding the expiry lease deletes expired (disappearing) messages")
	AttachmentsStore = plain("attachments-store", "PARLEY_ATTACHMENTS_STORE", "fs",
		"where attachments are kept, sealed: fs (a folder, one replica or a shared volume) or s3 (S3-compatible object storage)")
	AttachmentsDir = plain("attachments-dir", "PARLEY_ATTACHMENTS_DIR", "",
		"folder of -attachments-store fs (default: <data-dir>/attachments)")
	S3Endpoint = plain("s3-endpoint", "PARLEY_S3_ENDPOINT", "",
		"S3 endpoint of -attachments-store s3, host:port or http(s)://host:port; credentials only from PARLEY_S3_ACCESS_KEY and PARLEY_S3_SECRET_KEY (or AWS_* / the pod's IAM role)")
	S3Bucket      = plain("s3-bucket", "PARLEY_S3_BUCKET", "", "S3 bucket of -attachments-store s3 (must exist)")
	S3Region      = plain("s3-region", "PARLEY_S3_REGION", "", "S3 region (empty: ask the server)")
	S3PathStyle   = Bool{Setting: plain("s3-path-style", "PARLEY_S3_PATH_STYLE", "false", "address the bucket in the path (most self-hosted servers) rather than as a subdomain")}
	MaxAttachment = intSetting("max-attachment-mib", "PARLEY_MAX_ATTACHMENT_MIB", 100, 1, 10240,
		"largest attachment, in MiB")
	AttachmentQuota = intSetting("attachment-quota-mib", "PARLEY_ATTACHMENT_QUOTA_MIB", 1024, 1, 1<<20,
		"attachments one user may keep, in MiB in total")
	UploadExpiry = durationSetting("upload-expiry", "PARLEY_UPLOAD_EXPIRY", 24*time.Hour, time.Minute, 30*24*time.Hour,
		"an upload not attached to a message within this long is deleted")
	MaxImageMegapixels = intSetting("max-image-megapixels", "PARLEY_MAX_IMAGE_MEGAPIXELS", 50, 1, 1000,
		"largest image (width × height) the server decodes for thumbnails; larger ones are refused before decoding")
	MaxVoiceLength = durationSetting("max-voice-length", "PARLEY_MAX_VOICE_LENGTH", 15*time.Minute, time.Second, 2*time.Hour,
		"longest voice message (Ogg or WebM audio)")
	PushGrace = durationSetting("push-grace", "PARLEY_PUSH_GRACE", 3*time.Second, 100*time.Millisecond, 10*time.Minute,
		"how long after a message is stored its Web Push waits: a member who reads it or opens the page meanwhile is not pushed")
	PushTTL = durationSetting("push-ttl", "PARLEY_PUSH_TTL", 24*time.Hour, time.Minute, 28*24*time.Hour,
		"how long a push service keeps a push for a device that is offline (the TTL header)")
	PushContact = plain("push-contact", "PARLEY_PUSH_CONTACT", "",
		"the VAPID contact push services may write to about this server's pushes: mailto:address or an https URL (default: mailto:admin@localhost)")
	PushAllowLoopback = Bool{Setting: plain("push-allow-loopback", "PARLEY_PUSH_ALLOW_LOOPBACK", "false",
		"for tests with a local push service only: accept http:// subscription endpoints on loopback and push to loopback addresses")}
	PasswordWorkers = intSetting("password-workers", "PARLEY_PASSWORD_WORKERS", 2, 1, 64,
		"password hashes computed at once, each using 19 MiB")
	LogLevel = levelSetting("log-level", "PARLEY_LOG_LEVEL", slog.LevelInfo, "debug", "info", "warn", "error")
	TLSCert  = plain("tls-cert", "PARLEY_TLS_CERT", "", "TLS certificate file (serve HTTPS directly)")
	TLSKey   = plain("tls-key", "PARLEY_TLS_KEY", "", "TLS private key file")
)

// All lists every setting, in the order of the help text.
func All() []Setting {
	return []Setting{
		Addr, MetricsAddr, DataDir, DatabaseURL, DBMaxConns.Setting,
		RedisURL, RedisAddrs, RedisMaster, RedisPassword, RedisTLS.Setting,
		KeyringDir, KeyringReload.Setting, ResealInterval.Setting, AllowedOrigins,
		AccessTokenTTL.Setting, RefreshTokenTTL.Setting, MaxMessageChars.Setting, MaxFrameBytes.Setting,
		MaxGroupMembers.Setting, MaxDevices.Setting, MaxKeyPackages.Setting, RateKeyPackageClaims.Setting,
		MaxConnections.Setting, RateLogin.Setting, RateMessages.Setting, TrustedProxies,
		ShutdownTimeout.Setting, DeliveryHold.Setting, SharedFanoutMin.Setting, PositionInterval.Setting,
		EditWindow.Setting, ExpiryInterval.Setting,
		AttachmentsStore, AttachmentsDir, S3Endpoint, S3Bucket, S3Region, S3PathStyle.Setting,
		MaxAttachment.Setting, AttachmentQuota.Setting, UploadExpiry.Setting, MaxImageMegapixels.Setting, MaxVoiceLength.Setting,
		PushGrace.Setting, PushTTL.Setting, PushContact, PushAllowLoopback.Setting,
		PasswordWorkers.Setting, LogLevel.Setting, TLSCert, TLSKey,
	}
}

// Variables of the s3 attachments store that have no flag: the credentials
// (a flag would show them in ps) and the CA bundle that goes with them, all
// read by chatserver/blob/s3blob's ConfigFromEnv. The operator fills them
// from Secrets: the keys by secretKeyRef, the CA as a mounted file.
const (
	S3AccessKeyEnv = "PARLEY_S3_ACCESS_KEY"
	S3SecretKeyEnv = "PARLEY_S3_SECRET_KEY"
	// S3CAFileEnv names a PEM file of certificate authorities trusted for the
	// S3 endpoint, on top of the system's.
	S3CAFileEnv = "PARLEY_S3_CA_FILE"
)

// AttachmentStores are the values of -attachments-store.
var AttachmentStores = []string{"fs", "s3"}

// ParseAttachmentsStore checks a value of -attachments-store.
func ParseAttachmentsStore(v string) (string, error) {
	v = strings.TrimSpace(v)
	for _, s := range AttachmentStores {
		if v == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("%s: %q is not %s", AttachmentsStore.Name(), v, orList(AttachmentStores))
}

// CheckTokenTTLs enforces that a refresh token outlives the access tokens it buys:
// otherwise a session could not be refreshed before its access token expires.
func CheckTokenTTLs(access, refresh time.Duration) error {
	if refresh <= access {
		return fmt.Errorf("-%s must be longer than -%s (%s is not longer than %s)",
			RefreshTokenTTL.Flag, AccessTokenTTL.Flag, FormatDuration(refresh), FormatDuration(access))
	}
	return nil
}

// A frame must hold the longest message even when every character is
// JSON-escaped (\uXXXX: 6 bytes), plus the frame's other fields.
const (
	escapedCharBytes   = 6
	frameOverheadBytes = 512
)

// MinFrameBytes is the smallest -max-frame-bytes that holds a message of chars
// characters.
func MinFrameBytes(chars int) int { return chars*escapedCharBytes + frameOverheadBytes }

// FrameBytesFor is the -max-frame-bytes to configure for messages of up to chars
// characters: the default when it is large enough, else the minimum that is.
func FrameBytesFor(chars int) int {
	return max(MaxFrameBytes.Def, MaxFrameBytes.Min, MinFrameBytes(chars))
}

// CheckFrame enforces that frames of frameBytes hold messages of chars characters.
func CheckFrame(frameBytes, chars int) error {
	if need := MinFrameBytes(chars); frameBytes < need {
		return fmt.Errorf("-%s is %d but -%s %d needs at least %d",
			MaxFrameBytes.Flag, frameBytes, MaxMessageChars.Flag, chars, need)
	}
	return nil
}

// Rate is N events per Per, with bursts of up to N.
type Rate struct {
	N   int
	Per time.Duration
}

func (r Rate) String() string { return fmt.Sprintf("%d/%s", r.N, FormatDuration(r.Per)) }

// ParseRate reads "N/duration", e.g. "10/5m" or "60/1m".
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return Rate{}, fmt.Errorf("rate %q: want N/duration, e.g. 10/5m", s)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return Rate{}, fmt.Errorf("rate %q: count must be a whole number >= 1", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil || d <= 0 {
		return Rate{}, fmt.Errorf("rate %q: period must be a positive duration such as 1m", s)
	}
	return Rate{N: count, Per: d}, nil
}

// RatePattern is the rate notation the ChatCluster CRD admits: a count of up to
// seven digits over a whole number of seconds, minutes or hours of up to five
// digits. It is narrower than ParseRate; RateMin and RateMax are its extremes, and
// the tests prove every match parses.
const RatePattern = `^[1-9][0-9]{0,6}/[1-9][0-9]{0,4}(s|m|h)$`

// The extremes of RatePattern.
const (
	RateMin = "1/1s"
	RateMax = "9999999/99999h"
)

// ParseOrigin reads a browser origin, scheme://host[:port], and returns it in the
// form browsers send (a trailing slash dropped).
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	// A "%" left in the host (from "%25", or an IPv6 zone) is in no browser's
	// Origin, and the result would not read back.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		(u.Path != "" && u.Path != "/") || strings.Contains(u.Host, "%") {
		return "", fmt.Errorf("%s: %q is not an origin like https://chat.example.com", AllowedOrigins.Name(), s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// OriginPattern is the origin notation the ChatCluster CRD admits, narrower than
// ParseOrigin: http or https, a DNS name or IPv4 address, an optional port and an
// optional trailing slash. IPv6 literals are left out: a pattern cannot tell a
// valid one from one the server refuses.
const OriginPattern = `^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?/?$`

// ParseProxy reads a trusted proxy: a CIDR, or one IP address (a /32 or /128).
func ParseProxy(s string) (*net.IPNet, error) {
	s = strings.TrimSpace(s)
	cidr := s
	if !strings.Contains(s, "/") {
		// Dotted IPv4 only: an IPv4-mapped IPv6 address ("::ffff:10.1.2.3") also
		// has a To4 form, but ParseCIDR reads it as IPv6, where /32 is a network
		// of 2^96 addresses.
		if ip := net.ParseIP(s); ip != nil && ip.To4() != nil && !strings.Contains(s, ":") {
			cidr += "/32"
		} else {
			cidr += "/128"
		}
	}
	_, n, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("%s: %q is not an IP or CIDR", TrustedProxies.Name(), s)
	}
	return n, nil
}

// List splits a comma-separated list setting; empty items are dropped.
func List(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// FormatDuration writes d as a setting would: 1h rather than 1h0m0s.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParsePushContact checks a value of -push-contact: empty, a mailto: address
// or an https URL (RFC 8292's "sub" claim).
func ParsePushContact(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
	case u.Scheme == "mailto" && u.Opaque != "" && strings.Contains(u.Opaque, "@"):
		return v, nil
	case u.Scheme == "https" && u.Host != "":
		return v, nil
	}
	return "", fmt.Errorf("%s: %q must be mailto:address or an https:// URL", PushContact.Name(), v)
}
