package controllers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	chatv1alpha1 "github.com/parley-chat/parley/api/v1alpha1"
	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/pkg/settings"
)

// crdPath is the generated CRD; the chart's copy is kept equal by make chart-manifests.
var crdPath = filepath.Join("..", "config", "crd", "bases", "chat.parley.dev_chatclusters.yaml")

// specSchema returns the OpenAPI schema of ChatCluster.spec in the generated CRD.
func specSchema(t *testing.T) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	b, err := os.ReadFile(crdPath)
	if err != nil {
		t.Fatalf("read the CRD: %v", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatalf("decode %s: %v", crdPath, err)
	}
	for _, v := range crd.Spec.Versions {
		if v.Name == chatv1alpha1.GroupVersion.Version && v.Schema != nil && v.Schema.OpenAPIV3Schema != nil {
			return v.Schema.OpenAPIV3Schema.Properties["spec"]
		}
	}
	t.Fatalf("%s has no %s schema", crdPath, chatv1alpha1.GroupVersion.Version)
	return apiextensionsv1.JSONSchemaProps{}
}

// field walks a dotted path ("server.maxMessageChars") down from spec.
func field(t *testing.T, spec apiextensionsv1.JSONSchemaProps, path string) apiextensionsv1.JSONSchemaProps {
	t.Helper()
	p := spec
	for _, name := range strings.Split(path, ".") {
		next, ok := p.Properties[name]
		if !ok {
			t.Fatalf("the CRD has no spec.%s", path)
		}
		p = next
	}
	return p
}

// intBounds is what admission takes for an int32 field: its minimum and maximum,
// or the int32 limits where the CRD sets none.
func intBounds(t *testing.T, spec apiextensionsv1.JSONSchemaProps, path string) (lo, hi int) {
	p := field(t, spec, path)
	lo, hi = math.MinInt32, math.MaxInt32
	if p.Minimum != nil {
		lo = int(*p.Minimum)
	}
	if p.Maximum != nil {
		hi = int(*p.Maximum)
	}
	return lo, hi
}

var durationRule = regexp.MustCompile(`^duration\(self\) >= duration\('([^']+)'\) && duration\(self\) <= duration\('([^']+)'\)$`)

// durationBounds reads the range of a duration field from its CEL rule.
func durationBounds(t *testing.T, spec apiextensionsv1.JSONSchemaProps, path string) (lo, hi time.Duration) {
	t.Helper()
	for _, r := range field(t, spec, path).XValidations {
		if m := durationRule.FindStringSubmatch(r.Rule); m != nil {
			return mustDuration(t, m[1]), mustDuration(t, m[2])
		}
	}
	t.Fatalf("spec.%s has no CEL range rule", path)
	return 0, 0
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("duration %q: %v", s, err)
	}
	return d
}

// crdDefault decodes the CRD's default of a field into v; false when it has none.
func crdDefault(t *testing.T, spec apiextensionsv1.JSONSchemaProps, path string, v any) bool {
	t.Helper()
	p := field(t, spec, path)
	if p.Default == nil {
		return false
	}
	if err := json.Unmarshal(p.Default.Raw, v); err != nil {
		t.Fatalf("default of spec.%s: %v", path, err)
	}
	return true
}

// The cross-field rule the CRD must carry for the server's token rule.
const tokenOrderRule = "duration(self.refreshTokenTTL) > duration(self.accessTokenTTL)"

func hasRule(p apiextensionsv1.JSONSchemaProps, fragment string) bool {
	for _, r := range p.XValidations {
		if strings.Contains(r.Rule, fragment) {
			return true
		}
	}
	return false
}

// serverValues are the server settings a ChatCluster asks for.
type serverValues struct {
	accessTTL, refreshTTL, shutdown time.Duration
	maxMessageChars, maxConnections int
	rateLogin, rateMessages         string
	logLevel                        string
}

// asked is what a ChatCluster asks the server for once the API server has applied
// the CRD's defaults; a setting without a CRD default gets the server's own.
func asked(t *testing.T, spec apiextensionsv1.JSONSchemaProps, cc *chatv1alpha1.ChatCluster) serverValues {
	t.Helper()
	dur := func(path string, d *metav1.Duration) time.Duration {
		if d != nil {
			return d.Duration
		}
		var s string
		if !crdDefault(t, spec, path, &s) {
			t.Fatalf("spec.%s has no default", path)
		}
		return mustDuration(t, s)
	}
	str := func(path, v string) string {
		if v == "" && !crdDefault(t, spec, path, &v) {
			t.Fatalf("spec.%s has no default", path)
		}
		return v
	}
	sv := cc.Spec.Server
	v := serverValues{
		accessTTL:      dur("security.accessTokenTTL", cc.Spec.Security.AccessTokenTTL),
		refreshTTL:     dur("security.refreshTokenTTL", cc.Spec.Security.RefreshTokenTTL),
		shutdown:       dur("server.shutdownTimeout", sv.ShutdownTimeout),
		rateLogin:      str("rateLimits.login", cc.Spec.RateLimits.Login),
		rateMessages:   str("rateLimits.messages", cc.Spec.RateLimits.Messages),
		logLevel:       str("server.logLevel", sv.LogLevel),
		maxConnections: settings.MaxConnections.Def,
	}
	v.maxMessageChars = int(sv.MaxMessageChars)
	if v.maxMessageChars == 0 && !crdDefault(t, spec, "server.maxMessageChars", &v.maxMessageChars) {
		t.Fatal("spec.server.maxMessageChars has no default")
	}
	if sv.MaxConnections != nil {
		v.maxConnections = int(*sv.MaxConnections)
	}
	return v
}

// serverCluster is a ChatCluster with only the database set: the rest is the
// server settings under test.
func serverCluster() *chatv1alpha1.ChatCluster {
	return &chatv1alpha1.ChatCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "prod", UID: "uid-1"},
		Spec: chatv1alpha1.ChatClusterSpec{Database: chatv1alpha1.DatabaseSpec{Postgres: &chatv1alpha1.PostgresSpec{
			DSNSecretRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}, Key: "dsn"},
		}}},
	}
}

func durationPtr(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// Issue 8: every value admission accepts starts the chat server. Each ChatCluster
// below is admissible: its server settings are at the CRD's minimum, its maximum or
// its defaults. The real ConfigMap builder renders it, and the real configuration
// loader reads that ConfigMap as its environment, as the pod would.
func TestAdmittedServerSettingsStartTheServer(t *testing.T) {
	spec := specSchema(t)
	accessLo, accessHi := durationBounds(t, spec, "security.accessTokenTTL")
	refreshLo, refreshHi := durationBounds(t, spec, "security.refreshTokenTTL")
	shutdownLo, shutdownHi := durationBounds(t, spec, "server.shutdownTimeout")
	charsLo, charsHi := intBounds(t, spec, "server.maxMessageChars")
	connsLo, connsHi := intBounds(t, spec, "server.maxConnections")
	for _, path := range []string{"rateLimits.login", "rateLimits.messages"} {
		pattern := regexp.MustCompile(field(t, spec, path).Pattern)
		for _, r := range []string{settings.RateMin, settings.RateMax} {
			if !pattern.MatchString(r) {
				t.Fatalf("spec.%s pattern %q does not admit %q: the extremes below are not the CRD's", path, pattern, r)
			}
		}
	}
	levels := field(t, spec, "server.logLevel").Enum

	cases := map[string]func(cc *chatv1alpha1.ChatCluster){
		"defaults (empty spec)": func(*chatv1alpha1.ChatCluster) {},
		"minimum": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Security.AccessTokenTTL = durationPtr(accessLo)
			cc.Spec.Security.RefreshTokenTTL = durationPtr(refreshLo)
			cc.Spec.Server = chatv1alpha1.ServerSpec{MaxMessageChars: int32(charsLo), MaxConnections: ptr.To(int32(connsLo)),
				ShutdownTimeout: durationPtr(shutdownLo)}
			cc.Spec.RateLimits = chatv1alpha1.RateLimitSpec{Login: settings.RateMin, Messages: settings.RateMin}
			cc.Spec.Security.AllowedOrigins = []string{"http://a"}
			cc.Spec.Security.TrustedProxies = []string{"::1"}
			cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{Address: "r:1"}}
		},
		"maximum": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Security.AccessTokenTTL = durationPtr(accessHi)
			cc.Spec.Security.RefreshTokenTTL = durationPtr(refreshHi)
			cc.Spec.Server = chatv1alpha1.ServerSpec{MaxMessageChars: int32(charsHi), MaxConnections: ptr.To(int32(connsHi)),
				ShutdownTimeout: durationPtr(shutdownHi)}
			cc.Spec.RateLimits = chatv1alpha1.RateLimitSpec{Login: settings.RateMax, Messages: settings.RateMax}
			cc.Spec.Security.AllowedOrigins = []string{"https://chat.example.com", "http://127.0.0.1:65535/", "https://a-b.example:8443"}
			cc.Spec.Security.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.7", "2001:db8::/32"}
			cc.Spec.Redis = &chatv1alpha1.RedisSpec{External: &chatv1alpha1.ExternalRedisSpec{
				Address: "redis-master.cache-system.svc.cluster.local:65535", TLS: true}}
		},
		"longest access token, shortest refresh token": func(cc *chatv1alpha1.ChatCluster) {
			refresh := refreshLo
			if hasRule(field(t, spec, "security"), tokenOrderRule) && refresh <= accessHi {
				refresh = accessHi + time.Second // the shortest the CRD's rule admits, to the second
			}
			cc.Spec.Security.AccessTokenTTL = durationPtr(accessHi)
			cc.Spec.Security.RefreshTokenTTL = durationPtr(refresh)
		},
		"longest message, no other setting": func(cc *chatv1alpha1.ChatCluster) {
			cc.Spec.Server.MaxMessageChars = int32(charsHi)
		},
		"attachments at their minimum, on a volume": func(cc *chatv1alpha1.ChatCluster) {
			lo := func(p string) int32 { l, _ := intBounds(t, spec, p); return int32(l) }
			exp, _ := durationBounds(t, spec, "attachments.uploadExpiry")
			voice, _ := durationBounds(t, spec, "attachments.maxVoiceLength")
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{Volume: &chatv1alpha1.AttachmentsVolumeSpec{},
				MaxAttachmentMiB: lo("attachments.maxAttachmentMiB"), QuotaMiB: lo("attachments.quotaMiB"),
				MaxImageMegapixels: lo("attachments.maxImageMegapixels"), UploadExpiry: durationPtr(exp), MaxVoiceLength: durationPtr(voice)}
		},
		"attachments at their maximum, in S3": func(cc *chatv1alpha1.ChatCluster) {
			hi := func(p string) int32 { _, h := intBounds(t, spec, p); return int32(h) }
			_, exp := durationBounds(t, spec, "attachments.uploadExpiry")
			_, voice := durationBounds(t, spec, "attachments.maxVoiceLength")
			cc.Spec.Attachments = &chatv1alpha1.AttachmentsSpec{
				S3:               &chatv1alpha1.S3Spec{Endpoint: "minio:9000", Insecure: true, Bucket: "b-1", PathStyle: true},
				MaxAttachmentMiB: hi("attachments.maxAttachmentMiB"), QuotaMiB: hi("attachments.quotaMiB"),
				MaxImageMegapixels: hi("attachments.maxImageMegapixels"), UploadExpiry: durationPtr(exp), MaxVoiceLength: durationPtr(voice)}
		},
	}
	for _, l := range levels {
		var level string
		if err := json.Unmarshal(l.Raw, &level); err != nil {
			t.Fatal(err)
		}
		cases["log level "+level] = func(cc *chatv1alpha1.ChatCluster) { cc.Spec.Server.LogLevel = level }
	}

	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cc := serverCluster()
			mutate(cc)
			cm := ConfigMap(cc, Resolve(cc, "v1"))
			cfg, err := config.Load(nil, func(k string) string { return cm.Data[k] })
			if err != nil {
				t.Fatalf("admission accepts this ChatCluster but the chat server would not start (crash loop):\n%v\nConfigMap: %v", err, cm.Data)
			}
			want := asked(t, spec, cc)
			got := serverValues{
				accessTTL: cfg.AccessTokenTTL, refreshTTL: cfg.RefreshTokenTTL, shutdown: cfg.ShutdownTimeout,
				maxMessageChars: cfg.MaxMessageChars, maxConnections: cfg.MaxConnections,
				rateLogin: rateString(t, want.rateLogin, cfg.RateLogin), rateMessages: rateString(t, want.rateMessages, cfg.RateMessages),
				logLevel: levelString(t, want.logLevel, cfg.LogLevel),
			}
			if got != want {
				t.Errorf("the server runs with\n%+v\nbut the ChatCluster asked for\n%+v", got, want)
			}
			if len(cfg.AllowedOrigins) != len(cc.Spec.Security.AllowedOrigins) || len(cfg.TrustedProxies) != len(cc.Spec.Security.TrustedProxies) {
				t.Errorf("origins %v and proxies %v, asked for %v and %v",
					cfg.AllowedOrigins, cfg.TrustedProxies, cc.Spec.Security.AllowedOrigins, cc.Spec.Security.TrustedProxies)
			}
		})
	}
}

// rateString returns asked when the loaded rate is the same rate, else the loaded one.
func rateString(t *testing.T, asked string, got fmt.Stringer) string {
	t.Helper()
	a, errA := settings.ParseRate(asked)
	g, errG := settings.ParseRate(got.String())
	if errA == nil && errG == nil && a == g {
		return asked
	}
	return got.String()
}

// levelString returns asked when the loaded level is that level, else the loaded one.
func levelString(t *testing.T, asked string, got slog.Level) string {
	t.Helper()
	var l slog.Level
	if err := l.UnmarshalText([]byte(asked)); err == nil && l == got {
		return asked
	}
	return fmt.Sprint(got)
}

// crdSetting ties a ChatCluster field to the server setting it becomes.
type crdSetting struct {
	path    string
	setting settings.Setting
}

// The ChatCluster CRD's markers are comments and cannot import pkg/settings, so
// this compares the generated CRD with it: bounds, defaults, formats and the
// cross-field rule, and that the field docs (kubectl explain) state them.
func TestCRDAgreesWithServerSettings(t *testing.T) {
	spec := specSchema(t)

	for _, c := range []struct {
		path string
		s    settings.Duration
	}{
		{"security.accessTokenTTL", settings.AccessTokenTTL},
		{"security.refreshTokenTTL", settings.RefreshTokenTTL},
		{"server.shutdownTimeout", settings.ShutdownTimeout},
		{"attachments.uploadExpiry", settings.UploadExpiry},
		{"attachments.maxVoiceLength", settings.MaxVoiceLength},
		{"notifications.grace", settings.PushGrace},
		{"notifications.ttl", settings.PushTTL},
	} {
		lo, hi := durationBounds(t, spec, c.path)
		if lo != c.s.Min || hi != c.s.Max {
			t.Errorf("spec.%s admits %s–%s, the server %s", c.path, lo, hi, c.s.Range)
		}
		var def string
		if !crdDefault(t, spec, c.path, &def) || mustDuration(t, def) != c.s.Def {
			t.Errorf("spec.%s defaults to %q, the server to %s", c.path, def, c.s.Default)
		}
		checkDoc(t, spec, c.path, c.s.Setting, "from "+settings.FormatDuration(c.s.Min)+" to "+settings.FormatDuration(c.s.Max))
	}

	for _, c := range []struct {
		path string
		s    settings.Int
	}{
		{"server.maxMessageChars", settings.MaxMessageChars},
		{"server.maxConnections", settings.MaxConnections},
		{"attachments.maxAttachmentMiB", settings.MaxAttachment},
		{"attachments.quotaMiB", settings.AttachmentQuota},
		{"attachments.maxImageMegapixels", settings.MaxImageMegapixels},
	} {
		lo, hi := intBounds(t, spec, c.path)
		if lo != c.s.Min || hi != c.s.Max {
			t.Errorf("spec.%s admits %d–%d, the server %s", c.path, lo, hi, c.s.Range)
		}
		// Without a CRD default the server's applies; the doc must say which.
		var def int
		if crdDefault(t, spec, c.path, &def) && def != c.s.Def {
			t.Errorf("spec.%s defaults to %d, the server to %d", c.path, def, c.s.Def)
		}
		checkDoc(t, spec, c.path, c.s.Setting, fmt.Sprintf("from %d to %d", c.s.Min, c.s.Max))
	}
	// The operator sets the frame size for the longest message; the server must take it.
	if _, err := settings.MaxFrameBytes.Parse(strconv.Itoa(settings.FrameBytesFor(settings.MaxMessageChars.Max))); err != nil {
		t.Errorf("the frame the longest admitted message needs is refused: %v", err)
	}

	for _, c := range []struct {
		path string
		s    settings.RateSetting
	}{
		{"rateLimits.login", settings.RateLogin},
		{"rateLimits.messages", settings.RateMessages},
	} {
		if p := field(t, spec, c.path); p.Pattern != settings.RatePattern {
			t.Errorf("spec.%s pattern %q, pkg/settings' RatePattern %q", c.path, p.Pattern, settings.RatePattern)
		}
		var def string
		if !crdDefault(t, spec, c.path, &def) || def != c.s.Default {
			t.Errorf("spec.%s defaults to %q, the server to %q", c.path, def, c.s.Default)
		}
		checkDoc(t, spec, c.path, c.s.Setting, "")
	}

	var levels []string
	for _, v := range field(t, spec, "server.logLevel").Enum {
		var l string
		if err := json.Unmarshal(v.Raw, &l); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, l)
	}
	if strings.Join(levels, ",") != strings.Join(settings.LogLevel.Values, ",") {
		t.Errorf("spec.server.logLevel admits %v, the server documents %v", levels, settings.LogLevel.Values)
	}
	var level string
	if !crdDefault(t, spec, "server.logLevel", &level) || level != settings.LogLevel.Default {
		t.Errorf("spec.server.logLevel defaults to %q, the server to %q", level, settings.LogLevel.Default)
	}
	checkDoc(t, spec, "server.logLevel", settings.LogLevel.Setting, strings.Join(settings.LogLevel.Values[:len(settings.LogLevel.Values)-1], ", "))

	if !hasRule(field(t, spec, "security"), tokenOrderRule) {
		t.Errorf("spec.security lacks the rule %q: the server refuses refresh tokens that do not outlive access tokens", tokenOrderRule)
	}
	if p := field(t, spec, "security.allowedOrigins"); p.Items == nil || p.Items.Schema == nil || p.Items.Schema.Pattern != settings.OriginPattern {
		t.Errorf("spec.security.allowedOrigins items must have pkg/settings' OriginPattern %q", settings.OriginPattern)
	}
	// pkg/settings' tests prove ParseProxy takes what isCIDR/isIP admit.
	if !hasRule(field(t, spec, "security.trustedProxies"), "self.all(p, isCIDR(p) || isIP(p))") {
		t.Error("spec.security.trustedProxies must admit only IPs and CIDRs")
	}
}

// checkDoc asserts that a field's description (kubectl explain) gives the range
// and the server's default.
func checkDoc(t *testing.T, spec apiextensionsv1.JSONSchemaProps, path string, s settings.Setting, rangeText string) {
	t.Helper()
	d := strings.Join(strings.Fields(field(t, spec, path).Description), " ")
	if rangeText != "" && !strings.Contains(d, rangeText) {
		t.Errorf("spec.%s description %q does not say %q", path, d, rangeText)
	}
	if !strings.Contains(d, "Default "+s.Default+".") && !strings.Contains(d, "server's default applies: "+s.Default+".") {
		t.Errorf("spec.%s description %q does not give the default %s", path, d, s.Default)
	}
}

// The builders take every server variable name from pkg/settings.
func TestResourcesSpellNoVariableNames(t *testing.T) {
	b, err := os.ReadFile("resources.go")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`"PARLEY_[A-Z_]*"`).FindAllString(string(b), -1); len(m) > 0 {
		t.Errorf("resources.go spells %v; use pkg/settings", m)
	}
}

// docs/operator.md's spec table gives each server setting's default and range.
func TestOperatorDocAgreesWithServerSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "docs", "operator.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `") {
			name, _, _ := strings.Cut(strings.TrimPrefix(line, "| `"), "`")
			rows[name] = line
		}
	}
	for _, c := range []crdSetting{
		{"security.accessTokenTTL", settings.AccessTokenTTL.Setting},
		{"security.refreshTokenTTL", settings.RefreshTokenTTL.Setting},
		{"server.maxMessageChars", settings.MaxMessageChars.Setting},
		{"server.maxConnections", settings.MaxConnections.Setting},
		{"server.shutdownTimeout", settings.ShutdownTimeout.Setting},
		{"server.logLevel", settings.LogLevel.Setting},
		{"rateLimits.login", settings.RateLogin.Setting},
		{"rateLimits.messages", settings.RateMessages.Setting},
		{"attachments.maxAttachmentMiB", settings.MaxAttachment.Setting},
		{"attachments.quotaMiB", settings.AttachmentQuota.Setting},
		{"attachments.uploadExpiry", settings.UploadExpiry.Setting},
		{"attachments.maxImageMegapixels", settings.MaxImageMegapixels.Setting},
		{"attachments.maxVoiceLength", settings.MaxVoiceLength.Setting},
		{"notifications.contact", settings.PushContact},
		{"notifications.grace", settings.PushGrace.Setting},
		{"notifications.ttl", settings.PushTTL.Setting},
	} {
		row, ok := rows[c.path]
		if !ok {
			t.Errorf("docs/operator.md has no row for %s", c.path)
			continue
		}
		cells := strings.Split(row, " | ")
		if len(cells) < 3 || !strings.Contains(cells[1], c.setting.Default) {
			t.Errorf("docs/operator.md %s: default cell of %q is not %s", c.path, row, c.setting.Default)
		}
		if c.setting.Range != "" && !strings.Contains(row, c.setting.Range) {
			t.Errorf("docs/operator.md %s: %q does not give the range %s", c.path, row, c.setting.Range)
		}
		if !strings.Contains(row, c.setting.Env) {
			t.Errorf("docs/operator.md %s: %q does not name %s", c.path, row, c.setting.Env)
		}
	}
}

// spec.notifications reaches the server as asked, at the CRD's extremes and
// with the contact forms its pattern admits; unset, the ConfigMap carries
// none of it (so existing clusters are not rolled when the operator learns it).
func TestNotificationsReachTheServer(t *testing.T) {
	spec := specSchema(t)
	graceLo, graceHi := durationBounds(t, spec, "notifications.grace")
	ttlLo, ttlHi := durationBounds(t, spec, "notifications.ttl")
	contact := regexp.MustCompile(field(t, spec, "notifications.contact").Pattern)
	for _, c := range []chatv1alpha1.NotificationsSpec{
		{Grace: durationPtr(graceLo), TTL: durationPtr(ttlLo), Contact: "mailto:ops@example.com"},
		{Grace: durationPtr(graceHi), TTL: durationPtr(ttlHi), Contact: "https://status.example.com/push"},
		{Grace: durationPtr(settings.PushGrace.Def), TTL: durationPtr(settings.PushTTL.Def), Contact: "https://example.com"},
	} {
		if !contact.MatchString(c.Contact) {
			t.Fatalf("the CRD's pattern refuses %q", c.Contact)
		}
		cc := serverCluster()
		cc.Spec.Notifications = &c
		cm := ConfigMap(cc, Resolve(cc, "v1"))
		cfg, err := config.Load(nil, func(k string) string { return cm.Data[k] })
		if err != nil {
			t.Fatalf("admission accepts %+v but the chat server would not start: %v", c, err)
		}
		if cfg.PushGrace != c.Grace.Duration || cfg.PushTTL != c.TTL.Duration || cfg.PushContact != c.Contact {
			t.Errorf("asked for grace %s, ttl %s, contact %q; the server runs with %s, %s, %q",
				c.Grace.Duration, c.TTL.Duration, c.Contact, cfg.PushGrace, cfg.PushTTL, cfg.PushContact)
		}
	}
	// What the pattern refuses, the server would refuse too (a crash loop otherwise).
	for _, bad := range []string{"ops@example.com", "http://example.com", "mailto:nobody", "https://", "ftp://x"} {
		if contact.MatchString(bad) {
			if _, err := settings.ParsePushContact(bad); err != nil {
				t.Errorf("the CRD admits contact %q, which the server refuses: %v", bad, err)
			}
		}
	}
	cc := serverCluster()
	for _, s := range []settings.Setting{settings.PushGrace.Setting, settings.PushTTL.Setting, settings.PushContact} {
		if v, ok := ConfigMap(cc, Resolve(cc, "v1")).Data[s.Env]; ok {
			t.Errorf("without spec.notifications the ConfigMap sets %s=%q", s.Env, v)
		}
	}
}
