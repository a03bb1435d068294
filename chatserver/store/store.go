// Package store defines Parley's persistence interface and the records it keeps.
//
// One interface, two engines (package sqlstore): SQLite for the embedded default and
// PostgreSQL shared by all replicas. The conformance suite in package storetest runs
// against both. Message bodies and other private text reach the store already sealed
// by the keyring: the store never sees plaintext.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors every engine returns (wrapped), so callers can use errors.Is.
var (
	// ErrNotFound: no such row, or the caller is not allowed to know it exists.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique constraint (username, email, direct pair) is taken.
	ErrConflict = errors.New("store: conflict")
	// ErrTokenSpent: a refresh token was already used or revoked (reuse).
	ErrTokenSpent = errors.New("store: refresh token already used or revoked")
	// ErrGone: the message is a tombstone (deleted or expired).
	ErrGone = errors.New("store: message deleted")
	// ErrLimit: the change would pass a limit the caller gave.
	ErrLimit = errors.New("store: limit reached")
	// ErrAttachment: a message names an attachment that is not the
	// sender's own ready upload (unknown, someone else's, still uploading,
	// already attached or deleted).
	ErrAttachment = errors.New("store: attachment not available")
	// ErrStaleEpoch: an MLS commit (or message) was made for an epoch that
	// is not the conversation's current one.
	ErrStaleEpoch = errors.New("store: stale MLS epoch")
	// ErrNoWelcomeTarget: a Welcome names no KeyPackage the server handed
	// out to a device of a member.
	ErrNoWelcomeTarget = errors.New("store: welcome names no known device")
)

// Attachment states.
const (
	AttachmentUploading = "uploading"
	AttachmentReady     = "ready"
	AttachmentAttached  = "attached"
	AttachmentDeleted   = "deleted"
)

// Attachment is an uploaded file. Its bytes are in the blob store, sealed;
// the row holds what a message shows and where the blobs are.
type Attachment struct {
	ID             string
	OwnerID        string
	State          string
	ConversationID string // "" until attached
	MessageID      string // "" until attached
	Position       int    // order among its message's attachments
	Name           string // sanitised display name; never a path
	ContentType    string // sniffed by the server
	Size           int64  // plaintext bytes
	StoredSize     int64  // sealed bytes in the blob store
	KeyID          string // data key of the sealed file
	BlobKey        string
	ThumbKey       string // "" when there is no thumbnail
	ThumbStored    int64
	Width, Height  int
	Duration       time.Duration // audio and video, when known
	Preview        []byte        // tiny blurred image (PNG), images only
	CreatedAt      time.Time
	AttachedAt     *time.Time
}

// Change event kinds (conversation_events.kind).
const (
	EventEdited   = "edited"
	EventDeleted  = "deleted"
	EventExpired  = "expired"
	EventReaction = "reaction"
	EventSettings = "settings"
)

// Conversation kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Member roles.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// User is an account.
type User struct {
	ID           string
	Username     string // unique, lower-case
	Email        string // unique, normalised
	DisplayName  string
	PasswordHash string // PHC string (argon2id)
	CreatedAt    time.Time
	// TokensValidAfter: access tokens issued before this instant are refused
	// (logout everywhere, password change).
	TokensValidAfter time.Time
	// DeletedAt is set when the account was deleted (see DeleteUser): the
	// row stays, anonymised, because messages and members refer to its id.
	DeletedAt *time.Time
	// Avatar is the profile photo; zero when there is none.
	Avatar Avatar
}

// Avatar is a user's profile photo: a JPEG sealed in the blob store.
type Avatar struct {
	Version string // random, new with every photo: clients refetch when it changes ("" = none)
	BlobKey string // the sealed JPEG in the blob store
	KeyID   string // data key it is sealed with
	Stored  int64  // sealed (stored) size in bytes
}

// DeletedDisplayName is the display name of a deleted account.
const DeletedDisplayName = "Deleted account"

// FoldName is the case-folded form people search compares: display names are
// stored folded beside the original, and queries are folded the same way, so
// matching is case-insensitive for every script Go's Unicode tables know, on
// every engine (SQLite's own lower() folds ASCII only).
func FoldName(s string) string { return strings.ToLower(s) }

// SearchMinSubstring is the shortest query (in characters) that SearchUsers
// matches anywhere in a name; shorter queries match the start of the
// username or display name only (a trigram index needs three characters).
const SearchMinSubstring = 3

// Reaction is one reaction of one user.
type Reaction struct {
	ConversationID string
	MessageID      string
	Emoji          string
	CreatedAt      time.Time
}

// RefreshToken is one link in a refresh-token family. Only the SHA-256 of the
// opaque token is stored.
type RefreshToken struct {
	ID        string
	UserID    string
	FamilyID  string // every token descended from one login shares it
	ParentID  string // empty for the first token of a family
	TokenHash string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    *time.Time // set when rotated
	RevokedAt *time.Time // set by logout, family revocation, password change
}

// Conversation is a direct (two people) or group conversation.
type Conversation struct {
	ID          string
	Kind        string // KindDirect or KindGroup
	TitleSealed string // group title, sealed by the keyring; empty for direct
	// DirectKey is "<smaller user id>:<larger user id>" for direct conversations
	// (unique: one per pair), empty for groups.
	DirectKey    string
	CreatedBy    string
	CreatedAt    time.Time
	LastSeq      int64 // seq of the newest message or change event; 0 when none
	LastActivity time.Time
	// ExpireAfter: messages sent while it is > 0 expire that long after
	// they were sent (disappearing messages).
	ExpireAfter time.Duration
	// E2EE: an end-to-end encrypted (MLS) conversation; fixed at creation.
	E2EE bool
	// MLSEpoch is the MLS group's current epoch as the server ordered its
	// commits (0: the creator's new group).
	MLSEpoch int64
}

// Member is a user's membership in a conversation.
type Member struct {
	ConversationID string
	UserID         string
	Role           string
	JoinedAt       time.Time
	ReadSeq        int64 // highest seq this member has read
	// MutedUntil: no push for this conversation before then (zero: not
	// muted; MuteForever: until unmuted). Private to the member.
	MutedUntil time.Time
}

// MuteForever is the MutedUntil of "always": a time no clock reaches.
var MuteForever = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Message is a stored message. Seq is assigned by the store: last + 1 in its
// conversation, inside the storing transaction.
type Message struct {
	ConversationID string
	Seq            int64
	ID             string // server-chosen, globally unique
	SenderID       string
	ClientID       string // client-chosen idempotency key, unique per (conversation, sender)
	BodySealed     string // keyring ciphertext; associated data binds it to ConversationID and ID
	KeyID          string // data key that sealed BodySealed (for re-encryption bookkeeping)
	CreatedAt      time.Time
	ReplyTo        string // id of the message this one answers (same conversation), or ""
	// Mentions are the ids of the members the text mentions (@username),
	// parsed by the server from the text as sent; stored with the message.
	Mentions []string
	// MembersVersion is the conversation's membership version when the
	// message took its seq (AppendMessage only; see MembersVersioned).
	MembersVersion int64
	// PushDue, on a new message, asks AppendMessage to enqueue a push job
	// (PushJob) due then, in the same transaction, when another member of
	// the conversation has a push subscription. Not read back.
	PushDue *time.Time
	// Attachments are the ids of the sender's ready uploads a new message
	// carries (AppendMessage attaches them); not read back (see
	// AttachmentsOfMessages).
	Attachments []string
	EditedAt    *time.Time // last edit
	ExpiresAt   *time.Time // disappearing message: when it is to be deleted
	// MLS: BodySealed seals an MLS PrivateMessage (an e2ee conversation),
	// not text.
	MLS bool
	// MLSEpoch, on a new MLS message, is the epoch it was encrypted in:
	// AppendMessage stores it only while that is the conversation's epoch
	// (else ErrStaleEpoch). Not read back.
	MLSEpoch int64
	// A tombstone has DeletedAt set, DeleteReason EventDeleted or
	// EventExpired, DeletedBy the deleting user ("" for an expiry), and an
	// empty BodySealed and KeyID: the ciphertext is gone from the row.
	DeletedAt    *time.Time
	DeletedBy    string
	DeleteReason string
}

// Event is a change event: it has its own seq in its conversation, taken
// from the counter messages use. It never holds message text.
type Event struct {
	ConversationID string
	Seq            int64
	Kind           string // EventEdited, EventDeleted, ...
	MessageID      string // the message changed; "" for EventSettings
	ActorID        string // who made the change; "" for an expiry
	Data           string // small JSON object (e.g. {"emoji":"👍","added":true})
	CreatedAt      time.Time
}

// ReactionCount is one emoji's reactions on one message.
type ReactionCount struct {
	MessageID string
	Emoji     string
	Count     int
	Me        bool // the user asked about reacted with it
}

// ConversationSummary is one row of a user's conversation list.
type ConversationSummary struct {
	Conversation
	Viewer      string // the member whose view this is (Role, ReadSeq, MutedUntil, Unread are theirs)
	Role        string
	ReadSeq     int64
	MutedUntil  time.Time // this user's mute of the conversation (Member.MutedUntil)
	Unread      int64     // messages with seq > ReadSeq not sent by this user
	LastMessage *Message  // nil when the conversation has no message
	MemberIDs   []string  // all members, sorted
	Members     []Member  // the same members with role and read marker, in the same order
}

// AuditEntry is one record of the append-only, hash-chained audit log.
type AuditEntry struct {
	Seq      int64 // 1, 2, 3, ... assigned by the store
	At       time.Time
	Event    string // e.g. "login.ok", "refresh.reuse_detected", "member.added"
	ActorID  string // user id, or empty
	Subject  string // what it is about (user id, conversation id, family id)
	IP       string
	Detail   string // small JSON object, never secrets
	PrevHash string // Hash of entry Seq-1 ("" for the first entry)
	Hash     string // hex SHA-256 over the entry and PrevHash (see package audit)
}

// Store is the persistence interface. All methods are safe for concurrent use,
// including from several processes sharing one PostgreSQL database. Times are
// kept to the microsecond, in UTC.
type Store interface {
	// Users.
	CreateUser(ctx context.Context, u *User) error // ErrConflict when id, username or email is taken
	UserByID(ctx context.Context, id string) (*User, error)
	// UserByEmail and UserByUsername never return a deleted account;
	// UserByID and UsersByIDs do (anonymised, DeletedAt set).
	UserByEmail(ctx context.Context, email string) (*User, error)
	UserByUsername(ctx context.Context, username string) (*User, error)
	UsersByIDs(ctx context.Context, ids []string) ([]User, error) // ordered by id; unknown ids left out
	// SearchUsers finds people for query, which the caller has trimmed and
	// folded with FoldName: users whose username or display name contains
	// it (at least SearchMinSubstring characters; shorter: starts with it),
	// or whose email equals it. Ranked: exact username or email, then
	// username prefix, then a display-name word starting with it, then the
	// rest; ties by username. At most limit; deleted accounts never.
	SearchUsers(ctx context.Context, query string, limit int) ([]User, error)
	// SetDisplayName changes a user's display name; ErrNotFound for an
	// unknown or deleted account.
	SetDisplayName(ctx context.Context, userID, displayName string) error
	// UpdatePassword sets the hash and TokensValidAfter together.
	UpdatePassword(ctx context.Context, userID, passwordHash string, tokensValidAfter time.Time) error
	SetTokensValidAfter(ctx context.Context, userID string, t time.Time) error
	// DeleteUser anonymises an account in one transaction: username and
	// email become "deleted:<id>" (the originals are free again), the
	// display name DeletedDisplayName, the password hash empty,
	// TokensValidAfter and DeletedAt at, and its refresh tokens and MLS
	// devices are deleted. ErrNotFound for an unknown or already deleted account.
	DeleteUser(ctx context.Context, userID string, at time.Time) error
	// AccountsToPurge returns up to limit ids of accounts deleted before
	// deletedBefore whose content is not purged yet, oldest first.
	AccountsToPurge(ctx context.Context, deletedBefore time.Time, limit int) ([]string, error)
	// MarkAccountPurged records that a deleted account's content is gone.
	MarkAccountPurged(ctx context.Context, userID string, at time.Time) error

	// Refresh tokens.
	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	RefreshTokenByHash(ctx context.Context, tokenHash string) (*RefreshToken, error)
	// RotateRefreshToken marks oldID used at now and stores next, atomically. If
	// oldID was already used or revoked it stores nothing and returns
	// ErrTokenSpent (compare-and-set, so two racing refreshes cannot both win).
	// An unknown oldID gives ErrNotFound.
	RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *RefreshToken) error
	// RevokeRefreshFamily revokes every unrevoked token of the family.
	RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error)
	// SessionRevoked reports whether a login (refresh-token family) has
	// ended: none of its tokens is unrevoked (an unknown family counts as
	// ended). Access tokens of an ended login are refused.
	SessionRevoked(ctx context.Context, familyID string) (bool, error)
	// Credentials reads, in one round trip, what accepting credentials of
	// userID's login familyID depends on; ErrNotFound for an unknown user.
	Credentials(ctx context.Context, userID, familyID string) (*Credentials, error)
	// RevokeUserRefreshTokens revokes every token of the user except those of
	// exceptFamily (may be empty).
	RevokeUserRefreshTokens(ctx context.Context, userID, exceptFamily string, now time.Time) (int64, error)

	// Conversations and membership.
	// CreateConversation stores c with its first members. For a direct
	// conversation whose DirectKey exists it returns ErrConflict.
	CreateConversation(ctx context.Context, c *Conversation, members []Member) error
	Conversation(ctx context.Context, id string) (*Conversation, error)
	ConversationByDirectKey(ctx context.Context, directKey string) (*Conversation, error)
	// Member returns ErrNotFound when userID is not a member of convID.
	Member(ctx context.Context, convID, userID string) (*Member, error)
	Members(ctx context.Context, convID string) ([]Member, error) // ordered by user id
	// MembersVersioned is Members with the conversation's membership
	// version, read together: every AddMember and RemoveMember raises it, so
	// a list is current for a message when the versions are equal.
	MembersVersioned(ctx context.Context, convID string) ([]Member, int64, error)
	// AddMember: ErrConflict when already a member, ErrNotFound for an unknown
	// conversation or user.
	AddMember(ctx context.Context, m Member) error
	RemoveMember(ctx context.Context, convID, userID string) error
	// SetMemberRole changes a member's role; ErrNotFound when not a member.
	SetMemberRole(ctx context.Context, convID, userID, role string) error
	// SetConversationTitle replaces a conversation's sealed title;
	// ErrNotFound for an unknown conversation.
	SetConversationTitle(ctx context.Context, convID, titleSealed string) error
	// DeleteConversation deletes a conversation with its members, messages,
	// events and reactions; ErrNotFound when there is none.
	DeleteConversation(ctx context.Context, convID string) error
	// ListConversations returns the user's conversations, most recent activity first.
	ListConversations(ctx context.Context, userID string) ([]ConversationSummary, error)
	// ConversationSummary returns one conversation as ListConversations shows
	// it; ErrNotFound when userID is not a member of convID.
	ConversationSummary(ctx context.Context, userID, convID string) (*ConversationSummary, error)
	// MemberSummaries returns the conversation as each of its members sees
	// it (ConversationSummary of every member, ordered by user id), read in
	// one snapshot with the member list read once: announcing a change to a
	// large group costs two queries, not one per member.
	MemberSummaries(ctx context.Context, convID string) ([]ConversationSummary, error)
	// ConversationPeers returns the distinct ids of users sharing at least one
	// conversation with userID (not userID itself): the audience of presence.
	ConversationPeers(ctx context.Context, userID string) ([]string, error)
	// PresencePeers returns the users sharing with userID a conversation of
	// at most maxMembers members: the audience of their presence (pushing it
	// through larger groups would cost every member's arrival a frame to
	// every other member).
	PresencePeers(ctx context.Context, userID string, maxMembers int) ([]string, error)

	// Messages.
	// AppendMessage stores m with Seq = LastSeq+1 of its conversation, bumps
	// LastSeq and LastActivity, and raises the sender's ReadSeq to Seq (whoever
	// writes has read what came before), in one transaction. If (ConversationID, SenderID,
	// ClientID) was stored before, it returns that message and created=false and
	// writes nothing; an empty ClientID is never idempotent. An unknown
	// conversation, or a sender who is not a member of it, gives
	// ErrNotFound, a taken message id ErrConflict. The stored message
	// carries the conversation's MembersVersion at its seq. When
	// m.ExpiresAt is nil and the conversation's ExpireAfter is set, the
	// stored message expires at CreatedAt + ExpireAfter.
	AppendMessage(ctx context.Context, m *Message) (stored *Message, created bool, err error)
	// MessagesAfter returns messages with seq > afterSeq, ascending, at most
	// limit (none when limit <= 0).
	MessagesAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]Message, error)
	// MessagesBefore returns the newest messages with seq < beforeSeq, ascending, at most limit.
	MessagesBefore(ctx context.Context, convID string, beforeSeq int64, limit int) ([]Message, error)
	// ConversationHeads returns the LastSeq of each existing conversation
	// among ids (unknown ids left out): what positioning compares delivery with.
	ConversationHeads(ctx context.Context, ids []string) (map[string]int64, error)
	// MessageByID returns a message of convID (a tombstone too); ErrNotFound
	// when convID has no message with that id.
	MessageByID(ctx context.Context, convID, msgID string) (*Message, error)
	// MessagesByIDs returns the messages of convID among ids, by seq;
	// unknown ids and messages of other conversations are left out.
	MessagesByIDs(ctx context.Context, convID string, ids []string) ([]Message, error)
	// EditMessage replaces the message's ciphertext, sets EditedAt and
	// appends an EventEdited with the next seq, in one transaction.
	// ErrNotFound when convID has no such message, ErrGone for a tombstone.
	EditMessage(ctx context.Context, convID, msgID, sealed, keyID, actorID string, at time.Time) (*Message, *Event, error)
	// DeleteMessage makes the message a tombstone (ciphertext emptied,
	// reactions deleted) and appends an event of kind (EventDeleted or
	// EventExpired) with the next seq, in one transaction. A tombstone is
	// returned as it is with a nil event (nothing written). ErrNotFound when
	// convID has no such message.
	DeleteMessage(ctx context.Context, convID, msgID, actorID, kind string, at time.Time) (*Message, *Event, error)
	// SetReaction adds (add) or removes userID's reaction emoji on the
	// message and appends an EventReaction with the next seq. No change
	// (already there, or not there) gives a nil event and writes nothing.
	// ErrGone for a tombstone, ErrNotFound for no such message, ErrLimit
	// when adding a new emoji to a message that has maxDistinct already.
	SetReaction(ctx context.Context, convID, msgID, userID, emoji string, add bool, maxDistinct int, at time.Time) (*Event, error)
	// ReactionCounts counts reactions per message and emoji among msgIDs,
	// by message id, then by each emoji's oldest remaining reaction; Me is whether
	// userID is among them.
	ReactionCounts(ctx context.Context, msgIDs []string, userID string) ([]ReactionCount, error)
	// SetExpireAfter sets the conversation's ExpireAfter and appends an
	// EventSettings with the next seq; the same value gives a nil event and
	// writes nothing. ErrNotFound for an unknown conversation.
	SetExpireAfter(ctx context.Context, convID, actorID string, d time.Duration, at time.Time) (*Event, error)
	// UserMessages returns up to limit live (not tombstoned) messages sent
	// by userID after the position (afterConv, afterSeq), ordered by
	// conversation id then seq: what account export and deletion page through.
	UserMessages(ctx context.Context, userID, afterConv string, afterSeq int64, limit int) ([]Message, error)
	// UserReactions returns up to limit of userID's reactions after the
	// position (afterMsg, afterEmoji), ordered by message id then emoji.
	UserReactions(ctx context.Context, userID, afterMsg, afterEmoji string, limit int) ([]Reaction, error)
	// EventsAfter returns change events with seq > afterSeq, ascending, at most limit.
	EventsAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]Event, error)
	// ExpiredMessages returns up to limit live (not tombstoned) messages
	// whose ExpiresAt <= now, oldest expiry first, across conversations.
	ExpiredMessages(ctx context.Context, now time.Time, limit int) ([]Message, error)
	// ExpiryBacklog counts live messages whose ExpiresAt <= now.
	ExpiryBacklog(ctx context.Context, now time.Time) (int64, error)
	// TakeLease gives holder the named lease until now+ttl when it is free,
	// expired, or already holder's (renewal), and reports whether holder
	// has it. Clocks of the replicas are assumed to agree within ttl.
	TakeLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// MarkRead raises the member's ReadSeq to min(seq, LastSeq) (never lowers it)
	// and returns the resulting ReadSeq. ErrNotFound when not a member.
	MarkRead(ctx context.Context, convID, userID string, seq int64) (int64, error)

	// Audit log. AppendAudit assigns Seq and PrevHash under a lock on the chain's
	// head, calls hash(entry with Seq and PrevHash set) to compute Hash, and stores it.
	// hash runs inside that transaction: it must be quick and must not call the store.
	AppendAudit(ctx context.Context, e *AuditEntry, hash func(*AuditEntry) string) error
	AuditEntries(ctx context.Context, afterSeq int64, limit int) ([]AuditEntry, error)

	// Key usage: ReserveSeals adds n to the persisted seal count of keyID and
	// returns the new total (the caller may seal up to that many).
	ReserveSeals(ctx context.Context, keyID string, n int64) (int64, error)
	SealCounts(ctx context.Context) (map[string]int64, error)

	// Re-encryption to the active data key (package reseal).
	// SealedCounts counts stored ciphertexts (bodies, titles and live
	// attachments) per data key.
	SealedCounts(ctx context.Context) (map[string]int64, error)
	MessagesSealedWith(ctx context.Context, keyID string, limit int) ([]Message, error)
	// ResealMessage swaps a message's ciphertext only if it still is
	// oldSealed (compare-and-set), and reports whether it did.
	ResealMessage(ctx context.Context, convID string, seq int64, oldSealed, newSealed, newKeyID string) (bool, error)
	ConversationsSealedWith(ctx context.Context, keyID string, limit int) ([]Conversation, error)
	ResealTitle(ctx context.Context, convID, oldSealed, newSealed string) (bool, error)

	AttachmentStore
	AvatarStore
	PushStore
	MLSStore

	Ping(ctx context.Context) error
	Close() error
}

// AttachmentStore is the persistence of attachments. AppendMessage attaches
// (Message.Attachments, all or none: ErrAttachment), DeleteMessage and
// DeleteConversation mark theirs deleted in the same transaction.
type AttachmentStore interface {
	// CreateAttachment stores a new upload (State AttachmentUploading).
	CreateAttachment(ctx context.Context, a *Attachment) error
	// MarkAttachmentReady records a stored upload's metadata and makes it
	// ready, if it is still uploading (else ErrNotFound: collected
	// meanwhile) and its owner's ready, attached and uploading sizes with
	// a.Size stay within quota (else ErrLimit, nothing written).
	MarkAttachmentReady(ctx context.Context, a *Attachment, quota int64) error
	// Attachment returns one attachment, in any state.
	Attachment(ctx context.Context, id string) (*Attachment, error)
	// AttachmentsOfMessages returns the attachments of the messages among
	// msgIDs (not deleted ones), by message id then position.
	AttachmentsOfMessages(ctx context.Context, msgIDs []string) ([]Attachment, error)
	// AttachmentUsage sums the sizes of the owner's attachments that are
	// not deleted: what the quota counts.
	AttachmentUsage(ctx context.Context, ownerID string) (int64, error)
	// UserAttachments returns up to limit of the owner's attachments that
	// are not deleted with id > afterID, by id (account export).
	UserAttachments(ctx context.Context, ownerID, afterID string, limit int) ([]Attachment, error)
	// DoomStaleAttachments marks deleted the uploads (uploading or ready,
	// never attached) created before before, and returns how many.
	DoomStaleAttachments(ctx context.Context, before time.Time) (int64, error)
	// DoomUserUploads marks deleted the owner's uploads that no message
	// carries (account deletion; attached ones go with their messages).
	DoomUserUploads(ctx context.Context, ownerID string) (int64, error)
	// DoomUpload marks deleted the owner's upload id that no message
	// carries (its uploader removed it before sending); ErrNotFound when
	// it is not such an upload (someone else's, attached, or gone). A send
	// racing with it either attaches the upload first (then this fails) or
	// fails with ErrAttachment.
	DoomUpload(ctx context.Context, ownerID, id string) error
	// DoomedAttachments returns up to limit attachments marked deleted,
	// whose blobs are to be deleted, then the row (DeleteAttachment).
	DoomedAttachments(ctx context.Context, limit int) ([]Attachment, error)
	// DeleteAttachment deletes the row of an attachment marked deleted
	// (any other state: ErrNotFound, nothing deleted).
	DeleteAttachment(ctx context.Context, id string) error
	// DiscardUpload deletes the row of an upload that was refused or
	// failed (uploading or ready: no message carries it), after its caller
	// deleted whatever blob it wrote; ErrNotFound otherwise.
	DiscardUpload(ctx context.Context, id string) error
	// AttachmentsSealedWith returns up to limit live attachments whose file
	// is sealed with keyID (re-encryption).
	AttachmentsSealedWith(ctx context.Context, keyID string, limit int) ([]Attachment, error)
	// ResealAttachment points a live attachment at its re-encrypted blobs
	// if its BlobKey is still oldBlobKey (compare-and-set), and reports
	// whether it did.
	ResealAttachment(ctx context.Context, id, oldBlobKey string, next *Attachment) (bool, error)
}

// AvatarStore is the persistence of profile photos: columns of the user's
// row (User.Avatar), read with the user. SealedCounts counts them.
type AvatarStore interface {
	// SetAvatar replaces a user's photo with next (a zero Avatar removes it)
	// and returns the one it replaced, in one transaction, so the caller
	// deletes exactly the blob that is no longer named. Setting a photo
	// needs a live account (ErrNotFound otherwise); removing works on a
	// deleted one too (account purge).
	SetAvatar(ctx context.Context, userID string, next Avatar) (Avatar, error)
	// AvatarsSealedWith returns up to limit users whose photo is sealed
	// with keyID (re-encryption), ordered by id.
	AvatarsSealedWith(ctx context.Context, keyID string, limit int) ([]User, error)
	// ResealAvatar points a user's photo at its re-encrypted blob only if
	// it still names oldBlobKey (compare-and-set), and reports whether it did.
	ResealAvatar(ctx context.Context, userID, oldBlobKey string, next Avatar) (bool, error)
}

// PushSubscription is one browser's Web Push subscription (RFC 8030).
type PushSubscription struct {
	ID         string
	UserID     string
	Endpoint   string // the push service's URL for this subscription (https)
	P256DH     string // the browser's P-256 public key, base64url (65 bytes)
	Auth       string // the browser's auth secret, base64url (16 bytes)
	VAPIDKeyID string // the VAPID key active when it was made
	CreatedAt  time.Time
}

// NotifySettings are a user's notification preferences.
type NotifySettings struct {
	PushPreview       bool      // pushes carry a short excerpt of the text (opt-in)
	MentionsBreakMute bool      // a mention pushes even in a muted conversation (default true)
	DNDUntil          time.Time // do not disturb until then (zero: off; MuteForever: always)
}

// PushJob is a pending push about one new message (the push outbox).
type PushJob struct {
	MessageID      string
	ConversationID string
	Seq            int64
	SenderID       string
	StoredAt       time.Time // when the message was stored (push latency)
	DueAt          time.Time
	Attempts       int // claims so far, this one included
}

// PushStore is the persistence of Web Push notifications.
type PushStore interface {
	// SavePushSubscription stores sub, replacing the row with the same
	// endpoint (the browser subscribed again, possibly for another account;
	// the stored row keeps its id). ErrLimit when the user already has max
	// other subscriptions. Returns the stored row.
	SavePushSubscription(ctx context.Context, sub *PushSubscription, max int) (*PushSubscription, error)
	// PushSubscriptions returns the subscriptions of the users, by user id then id.
	PushSubscriptions(ctx context.Context, userIDs []string) ([]PushSubscription, error)
	// DeletePushSubscription deletes the user's subscription whose id or
	// endpoint is key; ErrNotFound when the user has none such.
	DeletePushSubscription(ctx context.Context, userID, key string) error
	// RemovePushSubscription deletes a subscription by id, whoever owns it
	// (its push service answered 404 or 410), and reports whether it did.
	RemovePushSubscription(ctx context.Context, id string) (bool, error)
	// ClaimPushJobs leases up to limit jobs due at now whose lease is free
	// or lapsed to holder until now+lease, oldest due first, counting an
	// attempt on each. Two holders never get the same job while a lease runs.
	ClaimPushJobs(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]PushJob, error)
	// FinishPushJobs deletes the jobs (by message id) that holder still holds.
	FinishPushJobs(ctx context.Context, holder string, messageIDs []string) error
	// SetMute sets a member's MutedUntil (zero: unmute); ErrNotFound for a non-member.
	SetMute(ctx context.Context, convID, userID string, until time.Time) error
	// NotifySettings returns the settings of the users (defaults for those
	// never set); unknown users are left out.
	NotifySettings(ctx context.Context, userIDs []string) (map[string]NotifySettings, error)
	// SetNotifySettings replaces a user's settings; ErrNotFound for no such user.
	SetNotifySettings(ctx context.Context, userID string, s NotifySettings) error
}

// Device is one MLS client of a user (a browser), with its own Ed25519
// signature key.
type Device struct {
	ID           string
	UserID       string
	Name         string
	SignatureKey string // base64 (standard) of the 32-byte Ed25519 public key; unique
	CreatedAt    time.Time
}

// KeyPackage is a device's MLS KeyPackage, sealed by the keyring. Whether
// it is the last-resort one is where AddKeyPackages is given it.
type KeyPackage struct {
	Ref       string // hex of the KeyPackageRef (RFC 9420 §5.2)
	DeviceID  string
	Sealed    string // keyring ciphertext of the KeyPackage encoding
	KeyID     string
	NotAfter  time.Time // end of its lifetime: never handed out after
	CreatedAt time.Time
}

// ClaimedKeyPackage is what a claim hands out for one device: a KeyPackage,
// or none (Sealed empty) when the device has none left.
type ClaimedKeyPackage struct {
	UserID, DeviceID string
	Ref              string
	Sealed           string
	LastResort       bool
}

// Commit is an MLS commit the server ordered: it has its own seq in its
// conversation, taken from the counter messages and change events use.
type Commit struct {
	ConversationID string
	Seq            int64
	Epoch          int64 // the group's epoch after this commit
	SenderID       string
	DeviceID       string
	Sealed         string // keyring ciphertext of the MLSMessage
	KeyID          string
	CreatedAt      time.Time
}

// Welcome is an MLS Welcome waiting for one device.
type Welcome struct {
	DeviceID       string
	ConversationID string
	Seq            int64 // the commit's: the device reads the conversation after it
	Epoch          int64
	Sealed         string
	KeyID          string
	CreatedAt      time.Time
}

// CommitChange is one commit and everything accepting it changes.
type CommitChange struct {
	// Commit: ConversationID, SenderID, DeviceID, Sealed, KeyID and
	// CreatedAt; ApplyCommit assigns Seq and Epoch.
	Commit Commit
	// FromEpoch is the epoch the commit was made in: it is accepted only
	// while that is the conversation's MLSEpoch.
	FromEpoch int64
	Add       []Member // members the commit adds (ConversationID taken from Commit)
	Remove    []string // user ids the commit removes
	// WelcomeRefs are the KeyPackageRefs (hex) a Welcome names; the Welcome
	// (WelcomeSealed, WelcomeKeyID) is stored for every device whose
	// handed-out KeyPackage is among them and whose user is a member once
	// the commit is applied. Empty: no Welcome.
	WelcomeRefs   []string
	WelcomeSealed string
	WelcomeKeyID  string
}

// MLSStore is the persistence of the MLS Delivery Service (issue 17):
// devices, KeyPackages, commits and Welcomes.
type MLSStore interface {
	// CreateDevice stores d; ErrLimit when its user has max devices
	// already, ErrConflict when the signature key is taken, ErrNotFound
	// for an unknown user.
	CreateDevice(ctx context.Context, d *Device, max int) error
	// Device returns one device; ErrNotFound when there is none.
	Device(ctx context.Context, id string) (*Device, error)
	// UserDevices returns the devices of the users, by user id then id.
	UserDevices(ctx context.Context, userIDs []string) ([]Device, error)
	// DeleteDevice deletes the user's device with its KeyPackages and
	// Welcomes; ErrNotFound when the user has no such device.
	DeleteDevice(ctx context.Context, userID, deviceID string) error
	// AddKeyPackages stores KeyPackages of a device (and replaces its
	// last-resort package when lastResort is not nil), and returns how
	// many unclaimed ones it now holds (last resort not counted).
	// ErrLimit, nothing stored, when that would pass max; ErrConflict for
	// a ref stored before; ErrNotFound for an unknown device.
	AddKeyPackages(ctx context.Context, deviceID string, kps []KeyPackage, lastResort *KeyPackage, max int) (int, error)
	// KeyPackageCount counts the device's unclaimed KeyPackages still
	// valid at now, and whether it has a valid last-resort one.
	KeyPackageCount(ctx context.Context, deviceID string, now time.Time) (int, bool, error)
	// ClaimKeyPackages hands out one KeyPackage valid at now for every
	// device of the users, each at most once (concurrent claims never get
	// the same one); a device with none left gets its last-resort
	// package (not consumed), or nothing (Sealed empty). By user id then
	// device id.
	ClaimKeyPackages(ctx context.Context, userIDs []string, now time.Time) ([]ClaimedKeyPackage, error)
	// ApplyCommit, in one transaction: checks that the conversation is
	// e2ee, the sender a member and FromEpoch its MLSEpoch (else
	// ErrStaleEpoch; ErrNotFound for the rest), raises the epoch by one,
	// stores the commit with the conversation's next seq, applies Add and
	// Remove (ErrConflict: already a member; ErrNotFound: not one) and
	// stores the Welcome for its devices (ErrNoWelcomeTarget when it
	// names none). Two commits for one epoch: exactly one wins. Returns the
	// stored commit and the devices welcomed.
	ApplyCommit(ctx context.Context, c *CommitChange) (*Commit, []Device, error)
	// CommitsAfter returns commits with seq > afterSeq, ascending, at most limit.
	CommitsAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]Commit, error)
	// Welcomes returns the device's Welcomes, by conversation id.
	Welcomes(ctx context.Context, deviceID string) ([]Welcome, error)
	// DeleteWelcome deletes a device's Welcome; ErrNotFound when none.
	DeleteWelcome(ctx context.Context, deviceID, convID string) error
	// E2EEPeers returns the distinct users sharing an e2ee conversation
	// with userID (not userID itself), ordered.
	E2EEPeers(ctx context.Context, userID string) ([]string, error)
	// MLSSealedWith returns up to limit KeyPackages, commits and Welcomes
	// (each) sealed with keyID (re-encryption; SealedCounts counts them).
	MLSSealedWith(ctx context.Context, keyID string, limit int) ([]MLSSealed, error)
	// ResealMLS swaps one such row's ciphertext only if it still is
	// r.Sealed (compare-and-set), and reports whether it did.
	ResealMLS(ctx context.Context, r MLSSealed, newSealed, newKeyID string) (bool, error)
}

// MLS rows sealed by the keyring (MLSSealed.Kind).
const (
	SealedKeyPackage = "key_package"
	SealedCommit     = "commit"
	SealedWelcome    = "welcome"
)

// MLSSealed is one keyring-sealed MLS row, named for re-encryption.
type MLSSealed struct {
	Kind           string // SealedKeyPackage, SealedCommit or SealedWelcome
	ConversationID string // commits and Welcomes
	DeviceID       string // KeyPackages and Welcomes
	Ref            string // KeyPackages
	Seq, Epoch     int64  // commits
	Sealed         string
}

// Credentials is what accepting a user's credentials depends on.
type Credentials struct {
	TokensValidAfter time.Time // credentials issued before are refused (logout everywhere)
	Deleted          bool      // the account is deleted
	// SessionEnded: none of the login's refresh tokens is unrevoked (as
	// SessionRevoked reports).
	SessionEnded bool
}
