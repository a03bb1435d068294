// Package messaging holds the conversation and message use cases: membership
// checks, validation, encryption, persistence and publication. Both transports
// (REST and WebSocket) call it, so every rule holds whichever one is used.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/faults"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/presence"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/store"
)

// Limits.
const (
	// DefaultMaxGroupMembers is the group size limit when Config leaves it 0
	// (-max-group-members).
	DefaultMaxGroupMembers = 1000
	MaxTitleChars          = 100
	MaxHistoryLimit        = 200
	DefaultHistory         = 50
	MaxSyncConvs           = 1000
)

var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Store is the persistence the messaging use cases need.
type Store interface {
	UserByID(ctx context.Context, id string) (*store.User, error)
	UsersByIDs(ctx context.Context, ids []string) ([]store.User, error)
	SetDisplayName(ctx context.Context, userID, displayName string) error
	ConversationPeers(ctx context.Context, userID string) ([]string, error)

	CreateConversation(ctx context.Context, c *store.Conversation, members []store.Member) error
	Conversation(ctx context.Context, id string) (*store.Conversation, error)
	ConversationByDirectKey(ctx context.Context, directKey string) (*store.Conversation, error)
	ListConversations(ctx context.Context, userID string) ([]store.ConversationSummary, error)
	ConversationSummary(ctx context.Context, userID, convID string) (*store.ConversationSummary, error)
	MemberSummaries(ctx context.Context, convID string) ([]store.ConversationSummary, error)

	Member(ctx context.Context, convID, userID string) (*store.Member, error)
	Members(ctx context.Context, convID string) ([]store.Member, error)
	MembersVersioned(ctx context.Context, convID string) ([]store.Member, int64, error)
	AddMember(ctx context.Context, m store.Member) error
	RemoveMember(ctx context.Context, convID, userID string) error
	SetMemberRole(ctx context.Context, convID, userID, role string) error
	SetConversationTitle(ctx context.Context, convID, titleSealed string) error
	DeleteConversation(ctx context.Context, convID string) error

	AppendMessage(ctx context.Context, m *store.Message) (stored *store.Message, created bool, err error)
	MessagesAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]store.Message, error)
	MessagesBefore(ctx context.Context, convID string, beforeSeq int64, limit int) ([]store.Message, error)
	MarkRead(ctx context.Context, convID, userID string, seq int64) (int64, error)

	// Message lifecycle (lifecycle.go).
	MessageByID(ctx context.Context, convID, msgID string) (*store.Message, error)
	MessagesByIDs(ctx context.Context, convID string, ids []string) ([]store.Message, error)
	EditMessage(ctx context.Context, convID, msgID, sealed, keyID, actorID string, at time.Time) (*store.Message, *store.Event, error)
	DeleteMessage(ctx context.Context, convID, msgID, actorID, kind string, at time.Time) (*store.Message, *store.Event, error)
	SetReaction(ctx context.Context, convID, msgID, userID, emoji string, add bool, maxDistinct int, at time.Time) (*store.Event, error)
	ReactionCounts(ctx context.Context, msgIDs []string, userID string) ([]store.ReactionCount, error)
	SetExpireAfter(ctx context.Context, convID, actorID string, d time.Duration, at time.Time) (*store.Event, error)
	EventsAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]store.Event, error)
	ExpiredMessages(ctx context.Context, now time.Time, limit int) ([]store.Message, error)
	ExpiryBacklog(ctx context.Context, now time.Time) (int64, error)
	TakeLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)

	// Account deletion and export (account.go).
	UserMessages(ctx context.Context, userID, afterConv string, afterSeq int64, limit int) ([]store.Message, error)
	UserReactions(ctx context.Context, userID, afterMsg, afterEmoji string, limit int) ([]store.Reaction, error)
	AccountsToPurge(ctx context.Context, deletedBefore time.Time, limit int) ([]string, error)
	MarkAccountPurged(ctx context.Context, userID string, at time.Time) error

	// Attachments (attachments.go).
	AttachmentsOfMessages(ctx context.Context, msgIDs []string) ([]store.Attachment, error)
	UserAttachments(ctx context.Context, ownerID, afterID string, limit int) ([]store.Attachment, error)
	DoomUserUploads(ctx context.Context, ownerID string) (int64, error)

	// Notifications (notify.go).
	SetMute(ctx context.Context, convID, userID string, until time.Time) error
	NotifySettings(ctx context.Context, userIDs []string) (map[string]store.NotifySettings, error)
	SetNotifySettings(ctx context.Context, userID string, s store.NotifySettings) error

	// End-to-end encryption (mls.go).
	store.MLSStore
}

// Attachments deletes the blobs of attachments whose message went, and
// collects what was left behind (package attachments).
type Attachments interface {
	Purge(ctx context.Context, as []store.Attachment)
	Collect(ctx context.Context) (int, error)
}

// Events is where the use cases send what happened (package delivery).
type Events interface {
	Publish(ctx context.Context, e delivery.Event)
}

// Presence answers who is online, for conversation views.
type Presence interface {
	Status(ctx context.Context, userIDs []string) (map[string]presence.Status, error)
}

// Service implements the messaging use cases.
type Service struct {
	store    Store
	keys     *keyring.Keyring
	events   Events
	presence Presence
	audit    *audit.Log
	limiter  ratelimit.Limiter
	metrics  *metrics.Metrics
	log      *slog.Logger
	maxChars int
	// maxMembers bounds a group's members.
	maxMembers int
	now        func() time.Time
	faults     *faults.Set
	// editWindow is how long after sending a sender may edit a message.
	editWindow  time.Duration
	members     *memberCache
	attachments Attachments // nil: none configured
	avatars     Avatars     // nil: none configured
	push        Pusher      // nil: no pushes
	// MLS (mls.go).
	maxDevices, maxKeyPackages int
	claimLimit                 ratelimit.Limiter // nil: claims are not limited
	e2ee                       e2eeCache
}

// Config wires a Service.
type Config struct {
	Store        Store
	Keys         *keyring.Keyring
	Events       Events
	Presence     Presence
	Audit        *audit.Log
	MessageLimit ratelimit.Limiter // per user
	Metrics      *metrics.Metrics
	Logger       *slog.Logger
	MaxBodyChars int
	// MaxGroupMembers bounds a group's members, its creator included
	// [DefaultMaxGroupMembers].
	MaxGroupMembers int
	Now             func() time.Time
	Faults          *faults.Set   // test builds only (package faults); nil: none
	EditWindow      time.Duration // 0: DefaultEditWindow
	Attachments     Attachments   // nil: blobs are not deleted (tests without a blob store)
	Avatars         Avatars       // nil: profile photos are not purged (tests without a blob store)
	Push            Pusher        // nil: new messages enqueue no push
	// MaxDevices bounds a user's devices [DefaultMaxDevices];
	// MaxKeyPackages a device's unclaimed KeyPackages
	// [DefaultMaxKeyPackages]; ClaimLimit KeyPackage claims per user (nil:
	// unlimited).
	MaxDevices     int
	MaxKeyPackages int
	ClaimLimit     ratelimit.Limiter
}

// DefaultEditWindow is how long a sender may edit a message by default.
const DefaultEditWindow = 24 * time.Hour

// New returns a Service.
func New(c Config) *Service {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	window := c.EditWindow
	if window <= 0 {
		window = DefaultEditWindow
	}
	return &Service{store: c.Store, keys: c.Keys, events: c.Events, presence: c.Presence, audit: c.Audit,
		limiter: c.MessageLimit, metrics: metrics.OrNew(c.Metrics), log: c.Logger, maxChars: c.MaxBodyChars, now: now,
		faults: c.Faults, editWindow: window, attachments: c.Attachments, avatars: c.Avatars, push: c.Push,
		members: newMemberCache(memberCacheSize), maxMembers: orDefault(c.MaxGroupMembers, DefaultMaxGroupMembers),
		maxDevices: orDefault(c.MaxDevices, DefaultMaxDevices), maxKeyPackages: orDefault(c.MaxKeyPackages, DefaultMaxKeyPackages),
		claimLimit: c.ClaimLimit}
}

func orDefault(v, def int) int {
	if v <= 0 {
		return def
	}
	return v
}

// MaxBodyChars is the message length limit in characters.
func (s *Service) MaxBodyChars() int { return s.maxChars }

func notFound() error { return apperr.New(apperr.NotFound, "no such conversation") }

// member returns the caller's membership, or not_found: a non-member learns
// nothing, not even that the conversation exists.
func (s *Service) member(ctx context.Context, convID, userID string) (*store.Member, error) {
	m, err := s.store.Member(ctx, convID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	return m, nil
}

// allowed takes one from l's bucket key (nil l: no limit), or refuses with
// rate_limited, counted under label: "you are <doing> too fast". A failing
// limiter allows.
func (s *Service) allowed(ctx context.Context, l ratelimit.Limiter, key, label, doing string) error {
	if l == nil {
		return nil
	}
	ok, wait, err := l.Allow(ctx, key)
	if err != nil {
		s.log.Warn("rate limiter failed; allowing", "limit", label, "err", err)
		return nil
	}
	if !ok {
		s.metrics.RateLimited.WithLabelValues(label).Inc()
		return &apperr.Error{Code: apperr.RateLimited, RetryAfter: wait, Message: "you are " + doing + " too fast; wait a moment"}
	}
	return nil
}

func unavailable(err error) error {
	return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable; nothing was saved")
}

func msgAAD(convID, msgID string) []byte { return []byte("msg|" + convID + "|" + msgID) }
func titleAAD(convID string) []byte      { return []byte("conv-title|" + convID) }

// ValidateBody applies the message rules: not empty or blank, at most the
// configured number of characters, valid UTF-8.
func (s *Service) ValidateBody(body string) error {
	if strings.TrimSpace(body) == "" {
		return apperr.New(apperr.MessageEmpty, "a message cannot be empty")
	}
	if !utf8.ValidString(body) {
		return apperr.New(apperr.InvalidRequest, "message is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(body); n > s.maxChars {
		return apperr.New(apperr.MessageTooLong, "message is %d characters long; the limit is %d", n, s.maxChars)
	}
	return nil
}

// Send stores a message and delivers it to every member's connections. A
// clientID used before by the same sender in the same conversation returns
// the stored message with created=false and stores nothing.
func (s *Service) Send(ctx context.Context, userID, convID, clientID, body string) (*protocol.Message, bool, error) {
	return s.SendMessage(ctx, userID, convID, Draft{ClientID: clientID, Body: body})
}

// Draft is a message to send.
type Draft struct {
	ClientID string
	Body     string
	ReplyTo  string // id of a message of the same conversation, or ""
	// Attachments are ids of the sender's ready uploads (at most
	// MaxAttachments, no repeats); with one, Body may be empty.
	Attachments []string
	// Ciphertext replaces Body in an end-to-end encrypted conversation:
	// an MLS PrivateMessage (application), base64. Then ReplyTo must be
	// empty (the reply goes inside) and Attachments name opaque uploads.
	Ciphertext string
}

// SendMessage is Send with every option (a reply).
func (s *Service) SendMessage(ctx context.Context, userID, convID string, d Draft) (*protocol.Message, bool, error) {
	start := time.Now()
	m, created, err := s.sendMessage(ctx, userID, convID, d)
	if err != nil {
		code := apperr.Internal
		var ae *apperr.Error
		if errors.As(err, &ae) {
			code = ae.Code
		}
		s.metrics.SendFailures.WithLabelValues(code).Inc()
		return m, created, err
	}
	s.metrics.SendDuration.Observe(time.Since(start).Seconds())
	return m, created, nil
}

func (s *Service) sendMessage(ctx context.Context, userID, convID string, d Draft) (_ *protocol.Message, _ bool, err error) {
	clientID, body := d.ClientID, d.Body
	if clientID == "" {
		clientID = ids.New("c")
	}
	if !clientIDRE.MatchString(clientID) {
		return nil, false, apperr.New(apperr.InvalidRequest, "clientId must be 1 to 64 characters of A-Z a-z 0-9 _ -")
	}
	if err := validAttachments(d.Attachments); err != nil {
		return nil, false, err
	}
	var (
		mlsRaw   []byte // the MLS application message of an e2ee send
		mlsEpoch int64
	)
	if d.Ciphertext != "" {
		if body != "" || d.ReplyTo != "" {
			return nil, false, apperr.New(apperr.InvalidRequest,
				"a ciphertext comes without body or replyTo: they travel inside it")
		}
		if mlsRaw, mlsEpoch, err = s.checkCiphertext(convID, d.Ciphertext); err != nil {
			return nil, false, err
		}
	} else if len(d.Attachments) == 0 || body != "" {
		if err := s.ValidateBody(body); err != nil {
			return nil, false, err
		}
	}
	// The cached list serves the early membership check and the fan-out
	// below; AppendMessage checks membership again, authoritatively, and
	// says whether the list is still the one in force (memberCache).
	entry, cached, err := s.cachedMembers(ctx, convID)
	if err != nil {
		return nil, false, unavailable(err)
	}
	isMember := func(e memberEntry) bool {
		return slices.ContainsFunc(e.members, func(m store.Member) bool { return m.UserID == userID })
	}
	lookup := "miss"
	if cached {
		lookup = "hit"
	}
	if !isMember(entry) && cached {
		// Perhaps added on another replica since it was cached.
		lookup = "stale"
		if entry, err = s.readMembers(ctx, convID); err != nil {
			return nil, false, unavailable(err)
		}
	}
	if !isMember(entry) {
		return nil, false, notFound()
	}
	members := entry.members
	if err := s.refuseDeletedPeer(ctx, convID, userID, members); err != nil {
		return nil, false, err
	}
	if err := s.allowed(ctx, s.limiter, "msg:"+userID, "messages", "sending messages"); err != nil {
		return nil, false, err
	}
	var original *store.Message // what d.ReplyTo names
	if d.ReplyTo != "" {
		original, err = s.store.MessageByID(ctx, convID, d.ReplyTo)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, apperr.New(apperr.NotFound, "replyTo names no message of this conversation")
		} else if err != nil {
			return nil, false, unavailable(err)
		}
	}
	msgID := ids.New("m")
	plain := []byte(body)
	if mlsRaw != nil {
		plain = mlsRaw
	}
	sealed, kid, err := s.keys.Seal(ctx, msgAAD(convID, msgID), plain)
	if err != nil {
		return nil, false, fmt.Errorf("messaging: seal: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	msg := &store.Message{ConversationID: convID, ID: msgID,
		SenderID: userID, ClientID: clientID, BodySealed: sealed, KeyID: kid, CreatedAt: now, ReplyTo: d.ReplyTo,
		Attachments: d.Attachments, MLS: mlsRaw != nil, MLSEpoch: mlsEpoch}
	if mlsRaw == nil {
		// The server reads mentions in text it can read only.
		msg.Mentions = s.mentionsIn(ctx, body, members)
	}
	if s.push != nil && len(members) > 1 {
		if due, ok := s.push.Due(now); ok {
			msg.PushDue = &due
		}
	}
	stored, created, err := s.store.AppendMessage(ctx, msg)
	if errors.Is(err, store.ErrAttachment) {
		return nil, false, apperr.OnField(apperr.InvalidRequest, "attachments",
			"an attachment is not one of your uploads ready to send (unknown, still uploading, expired or already sent)")
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrStaleEpoch) {
		// Removed (or the conversation deleted) since the list was cached;
		// or the message does not fit the conversation (text in an e2ee
		// one, ciphertext in a plain one, an old epoch).
		s.members.drop(convID)
		return nil, false, s.whyRefused(ctx, userID, convID, mlsRaw != nil)
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	if stored.MembersVersion != entry.version {
		// The members changed since the list was read: deliver to those in
		// force now, never to someone removed before this message's seq.
		// If that read fails, nobody gets it live rather than perhaps
		// someone removed: the members catch up through their cursors.
		s.members.drop(convID)
		lookup = "stale"
		if entry, err = s.readMembers(ctx, convID); err != nil {
			s.log.Error("send: members lookup failed after storing; members catch up by sync", "conversation", convID, "err", err)
		}
		members = entry.members
	}
	s.metrics.MembersCache.WithLabelValues(lookup).Inc()
	if created {
		s.faults.Kill(faults.KillAfterStore)
	}
	var view protocol.Message
	if created {
		view = s.newView(ctx, stored, original)
	} else {
		// A retry: the original may have been edited, reacted to or replied
		// to since.
		view = s.viewsFor(ctx, "", []store.Message{*stored})[0]
	}
	if created && s.faults.Hit(faults.DropPublish) {
		return &view, true, nil
	}
	// A retry publishes again: the first attempt may have stored the message
	// and died before its publish left (clients de-duplicate by id). Publish
	// returns once the event is handed to the backplane, so the ack that
	// follows means the message is durable and on its way.
	s.events.Publish(ctx, delivery.Event{To: userIDs(members, ""), Frame: protocol.MessageFrame{Message: &view},
		Conversation: convID, Seq: view.Seq, Stored: stored.CreatedAt})
	return &view, created, nil
}

// userIDs lists the members' user ids, leaving out skip.
func userIDs(members []store.Member, skip string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if m.UserID != skip {
			out = append(out, m.UserID)
		}
	}
	return out
}

// publishToMembers sends a frame to every member except skip. A failed
// members lookup is logged: the event is ephemeral or recoverable by sync.
func (s *Service) publishToMembers(ctx context.Context, convID, skip string, f protocol.ServerFrame) {
	members, err := s.store.Members(ctx, convID)
	if err != nil {
		s.log.Error("publish: members lookup failed", "conversation", convID, "err", err)
		return
	}
	s.events.Publish(ctx, delivery.Event{To: userIDs(members, skip), Frame: f})
}

// Page selects a page of history.
type Page struct {
	// Forward pages forward from After (After = 0: from the first message);
	// otherwise the page ends before Before (0: the newest messages).
	Forward       bool
	Before, After int64
	Limit         int // 0: DefaultHistory
}

// History returns a page of messages, ascending, and whether more exist in
// that direction.
func (s *Service) History(ctx context.Context, userID, convID string, p Page) ([]protocol.Message, bool, error) {
	limit := p.Limit
	if limit == 0 {
		limit = DefaultHistory
	}
	if limit < 1 || limit > MaxHistoryLimit {
		return nil, false, apperr.New(apperr.InvalidRequest, "limit must be between 1 and %d", MaxHistoryLimit)
	}
	if p.Before < 0 || p.After < 0 || (p.Forward && p.Before > 0) {
		return nil, false, apperr.New(apperr.InvalidRequest, "use before or after (a seq >= 0), not both")
	}
	if _, err := s.member(ctx, convID, userID); err != nil {
		return nil, false, err
	}
	var rows []store.Message
	var err error
	if p.Forward {
		rows, err = s.store.MessagesAfter(ctx, convID, p.After, limit+1)
	} else {
		before := p.Before
		if before == 0 {
			before = 1 << 62
		}
		rows, err = s.store.MessagesBefore(ctx, convID, before, limit+1)
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	more := len(rows) > limit
	if more {
		if p.Forward {
			rows = rows[:limit]
		} else {
			rows = rows[1:] // ascending: the extra one is the oldest
		}
	}
	return s.viewsFor(ctx, userID, rows), more, nil
}

// MarkRead raises the caller's read marker and tells every member.
func (s *Service) MarkRead(ctx context.Context, userID, convID string, seq int64) (int64, error) {
	if seq < 0 {
		return 0, apperr.New(apperr.InvalidRequest, "seq must be >= 0")
	}
	read, err := s.store.MarkRead(ctx, convID, userID, seq)
	if errors.Is(err, store.ErrNotFound) {
		return 0, notFound()
	}
	if err != nil {
		return 0, unavailable(err)
	}
	s.publishToMembers(ctx, convID, "", protocol.ReadFrame{ConversationID: convID, UserID: userID, Seq: read})
	return read, nil
}

// Typing relays a typing indicator to the other members. Never stored.
func (s *Service) Typing(ctx context.Context, userID, convID string) error {
	if _, err := s.member(ctx, convID, userID); err != nil {
		return err
	}
	s.publishToMembers(ctx, convID, userID, protocol.TypingFrame{ConversationID: convID, UserID: userID})
	return nil
}
