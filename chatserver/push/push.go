// Package push sends Web Push notifications (RFC 8030 delivery, RFC 8291
// payload encryption, RFC 8292 VAPID) about new messages to members who are
// not looking, and keeps the browsers' push subscriptions.
//
// When a push is sent (docs/api.md, "Notifications"): a message stored with
// PushDue enqueues a job in the push outbox, in its own transaction, when
// another member has a subscription. After the grace period any replica may
// claim the job under a lease (store.ClaimPushJobs), so exactly one replica
// handles it, and a replica that dies mid-push leaves it to another once the
// lease lapses. The claimer pushes each member other than the sender whose
// read marker is still before the message, who has no live connection with a
// visible page on any replica (presence, through Redis), who is not in
// do-not-disturb, and whose mute of the conversation is over (or who is
// mentioned and lets mentions break a mute).
//
// Encryption and VAPID signing are done by github.com/SherClockHolmes/
// webpush-go (see README, "Dependencies"); this package decides who is
// pushed, what the payload holds, and how the push service's answers are
// handled.
package push

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/store"
)

// Defaults and limits.
const (
	DefaultGrace        = 3 * time.Second
	DefaultTTL          = 24 * time.Hour
	DefaultPoll         = 500 * time.Millisecond
	MaxSubscriptions    = 20 // per user (devices)
	MaxEndpointBytes    = 2048
	PreviewChars        = 100
	claimLease          = 60 * time.Second
	sendBudget          = 45 * time.Second // a batch's sends end well within its lease
	sendParallel        = 16
	claimBatch          = 100
	maxAttempts         = 4 // per push: the first try and three retries on 429/5xx
	maxJobClaims        = 5 // a job whose claims keep failing (the store) is dropped
	maxRetryAfter       = 10 * time.Second
	defaultRetryBase    = time.Second
	defaultSendTimeout  = 10 * time.Second
	defaultContact      = "mailto:admin@localhost"
	topicPrefix         = "parley-push-topic|"
	p256PublicKeyLength = 65
	authSecretLength    = 16
)

// Store is the persistence the push service needs.
type Store interface {
	SavePushSubscription(ctx context.Context, sub *store.PushSubscription, max int) (*store.PushSubscription, error)
	PushSubscriptions(ctx context.Context, userIDs []string) ([]store.PushSubscription, error)
	DeletePushSubscription(ctx context.Context, userID, key string) error
	RemovePushSubscription(ctx context.Context, id string) (bool, error)
	ClaimPushJobs(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.PushJob, error)
	FinishPushJobs(ctx context.Context, holder string, messageIDs []string) error
	NotifySettings(ctx context.Context, userIDs []string) (map[string]store.NotifySettings, error)
	Members(ctx context.Context, convID string) ([]store.Member, error)
	MessagesByIDs(ctx context.Context, convID string, ids []string) ([]store.Message, error)
	ConversationSummary(ctx context.Context, userID, convID string) (*store.ConversationSummary, error)
	UsersByIDs(ctx context.Context, ids []string) ([]store.User, error)
}

// Presence tells who has a visible page on any replica.
type Presence interface {
	Attentive(ctx context.Context, userIDs []string) (map[string]bool, error)
}

// Texts opens what a push may show (package messaging implements it: only
// it knows how titles and messages are sealed).
type Texts interface {
	ConversationTitle(c *store.Conversation) string
	MessageText(m *store.Message) string
}

// Keys gives the active VAPID key (package keyring); nil: push is disabled.
type Keys interface {
	VAPID() *keyring.VAPID
}

// Config wires a Service.
type Config struct {
	Store    Store
	Keys     Keys
	Presence Presence
	Texts    Texts
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Holder names this replica in the outbox's leases.
	Holder string
	// Grace is how long after a message is stored its push waits (a member
	// who reads it meanwhile is not pushed) [DefaultGrace].
	Grace time.Duration
	// TTL is how long a push service keeps an undelivered push [DefaultTTL].
	TTL time.Duration
	// Poll is how often the outbox is checked for due jobs [DefaultPoll].
	Poll time.Duration
	// Contact is the VAPID "sub": a mailto: or https: URL where the push
	// service can reach the operator.
	Contact string
	// AllowLoopbackHTTP accepts http:// endpoints on loopback addresses and
	// lets pushes reach loopback (tests with a local push service). Never
	// in production: endpoints are chosen by users.
	AllowLoopbackHTTP bool
	// RetryBase is the first retry's wait on 429/5xx without Retry-After
	// [1s]; it doubles with each retry.
	RetryBase time.Duration
	Now       func() time.Time
}

// Service holds subscriptions and sends pushes.
type Service struct {
	store     Store
	keys      Keys
	presence  Presence
	texts     Texts
	metrics   *metrics.Metrics
	log       *slog.Logger
	holder    string
	grace     time.Duration
	ttl       time.Duration
	poll      time.Duration
	contact   string
	loopback  bool
	retryBase time.Duration
	client    *http.Client
	now       func() time.Time
	// endToEnd reports a conversation whose content the server cannot read
	// (issue 17, MLS): an end-to-end encrypted one. Its pushes carry only
	// that a message arrived in it: see payloadFor.
	endToEnd func(c *store.Conversation) bool
}

// New returns a Service. It sends nothing until Run.
func New(c Config) *Service {
	s := &Service{store: c.Store, keys: c.Keys, presence: c.Presence, texts: c.Texts, metrics: metrics.OrNew(c.Metrics),
		log: c.Logger, holder: c.Holder, grace: c.Grace, ttl: c.TTL, poll: c.Poll, contact: c.Contact,
		loopback: c.AllowLoopbackHTTP, retryBase: c.RetryBase, now: c.Now,
		endToEnd: func(c *store.Conversation) bool { return c.E2EE }}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.holder == "" {
		s.holder = ids.New("r")
	}
	if s.grace <= 0 {
		s.grace = DefaultGrace
	}
	if s.ttl <= 0 {
		s.ttl = DefaultTTL
	}
	if s.poll <= 0 {
		s.poll = DefaultPoll
	}
	if s.contact == "" {
		s.contact = defaultContact
	}
	if s.retryBase <= 0 {
		s.retryBase = defaultRetryBase
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.client = newClient(s.loopback)
	return s
}

// newClient is the HTTP client pushes go through. Endpoints are chosen by
// users, so it refuses to connect to loopback, private, link-local and
// unspecified addresses (whatever a name resolves to, checked at connect
// time, so DNS rebinding cannot get around it) unless loopback is allowed
// for tests. No redirects are followed.
func newClient(allowLoopback bool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return fmt.Errorf("push: %s is not an IP address", host)
		}
		if allowLoopback && ip.IsLoopback() {
			return nil
		}
		if !publicIP(ip) {
			return fmt.Errorf("push: refusing to connect to non-public address %s", ip)
		}
		return nil
	}}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = d.DialContext
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: defaultSendTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func publicIP(ip net.IP) bool {
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

// SetTexts gives the service what opens titles and texts (package
// messaging, which is built after it since it asks it for Due).
func (s *Service) SetTexts(t Texts) { s.texts = t }

// Enabled reports whether pushes can be sent: the keyring has an active
// VAPID key.
func (s *Service) Enabled() bool { return s.keys.VAPID() != nil }

// Due is when a message stored at t is to be pushed about, and whether
// pushes are on at all (messaging sets store.Message.PushDue from it).
func (s *Service) Due(t time.Time) (time.Time, bool) {
	if !s.Enabled() {
		return time.Time{}, false
	}
	return t.Add(s.grace), true
}

// VAPIDKey is the answer of GET /api/v1/push/vapid-key.
type VAPIDKey struct {
	PublicKey string `json:"publicKey"` // base64url, no padding: applicationServerKey
	KeyID     string `json:"keyId"`
}

// PublicKey returns the active VAPID public key; not_found when push is off.
func (s *Service) PublicKey() (*VAPIDKey, error) {
	v := s.keys.VAPID()
	if v == nil {
		return nil, apperr.New(apperr.NotFound, "push notifications are not configured on this server (its keyring has no VAPID key)")
	}
	return &VAPIDKey{PublicKey: v.PublicKeyBase64(), KeyID: v.ID}, nil
}

// Subscription is a stored subscription as its owner sees it.
type Subscription struct {
	ID        string    `json:"id"`
	Endpoint  string    `json:"endpoint"`
	KeyID     string    `json:"keyId"` // the VAPID key it was made with
	CreatedAt time.Time `json:"createdAt"`
}

// SubscriptionKeys are PushSubscription.toJSON().keys.
type SubscriptionKeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// Subscribe stores the caller's browser subscription (the JSON of a
// PushSubscription). The same endpoint again replaces its keys (and its
// owner, when another account signed in on that browser).
func (s *Service) Subscribe(ctx context.Context, userID, endpoint string, keys SubscriptionKeys) (*Subscription, error) {
	v := s.keys.VAPID()
	if v == nil {
		return nil, apperr.New(apperr.NotFound, "push notifications are not configured on this server (its keyring has no VAPID key)")
	}
	if err := s.validEndpoint(endpoint); err != nil {
		return nil, err
	}
	p256dh, err := decodeKey(keys.P256DH)
	if err != nil || len(p256dh) != p256PublicKeyLength {
		return nil, apperr.OnField(apperr.InvalidRequest, "keys.p256dh",
			"keys.p256dh must be the subscription's P-256 public key: 65 bytes, base64url")
	}
	if _, err := ecdh.P256().NewPublicKey(p256dh); err != nil {
		return nil, apperr.OnField(apperr.InvalidRequest, "keys.p256dh", "keys.p256dh is not a point on the P-256 curve")
	}
	auth, err := decodeKey(keys.Auth)
	if err != nil || len(auth) != authSecretLength {
		return nil, apperr.OnField(apperr.InvalidRequest, "keys.auth", "keys.auth must be the subscription's 16-byte auth secret, base64url")
	}
	stored, err := s.store.SavePushSubscription(ctx, &store.PushSubscription{ID: ids.New("ps"), UserID: userID,
		Endpoint: endpoint, P256DH: base64.RawURLEncoding.EncodeToString(p256dh),
		Auth: base64.RawURLEncoding.EncodeToString(auth), VAPIDKeyID: v.ID, CreatedAt: s.now().UTC()}, MaxSubscriptions)
	if errors.Is(err, store.ErrLimit) {
		return nil, apperr.New(apperr.Conflict, "you have %d push subscriptions already; remove one first", MaxSubscriptions)
	}
	if err != nil {
		return nil, apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable; nothing was saved")
	}
	return &Subscription{ID: stored.ID, Endpoint: stored.Endpoint, KeyID: stored.VAPIDKeyID, CreatedAt: stored.CreatedAt}, nil
}

// Unsubscribe removes the caller's subscription named by its id or endpoint.
func (s *Service) Unsubscribe(ctx context.Context, userID, key string) error {
	if key == "" {
		return apperr.New(apperr.InvalidRequest, "name the subscription by its id or endpoint")
	}
	err := s.store.DeletePushSubscription(ctx, userID, key)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no such push subscription")
	}
	if err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	return nil
}

// validEndpoint accepts an absolute https URL (http only for a loopback
// host when AllowLoopbackHTTP is set), with a host, no credentials and no
// fragment, at most MaxEndpointBytes.
func (s *Service) validEndpoint(endpoint string) error {
	bad := func(why string) error {
		return apperr.OnField(apperr.InvalidRequest, "endpoint", "endpoint %s", why)
	}
	if endpoint == "" || len(endpoint) > MaxEndpointBytes {
		return bad(fmt.Sprintf("must be 1 to %d bytes", MaxEndpointBytes))
	}
	u, err := url.Parse(endpoint)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return bad("must be an absolute URL")
	}
	if u.User != nil || u.Fragment != "" {
		return bad("must not carry credentials or a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		ip := net.ParseIP(u.Hostname())
		if !s.loopback || !(u.Hostname() == "localhost" || ip != nil && ip.IsLoopback()) {
			return bad("must be https")
		}
	default:
		return bad("must be https")
	}
	return nil
}

// decodeKey reads a subscription key in base64url (as browsers give it),
// with or without padding; standard base64 is accepted too.
func decodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
