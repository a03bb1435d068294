// Package protocol defines the JSON shapes of Parley's API and of WebSocket
// protocol version 1 (docs/api.md): the views of users, messages and
// conversations, and one type per WebSocket frame kind (frames.go).
package protocol

import "time"

// Version is the WebSocket protocol version.
const Version = 1

// Subprotocol is the WebSocket subprotocol name.
const Subprotocol = "parley.v1"

// User is another user as others see them (Email only for oneself).
type User struct {
	ID          string `json:"id"`
	Username    string `json:"username"`
	DisplayName string `json:"displayName"`
	Email       string `json:"email,omitempty"`
	// Avatar is the version of the user's profile photo (absent: none);
	// it changes with every new photo. Fetch it with GET
	// /api/v1/users/{id}/avatar.
	Avatar string `json:"avatar,omitempty"`
}

// Message is a message as clients see it.
type Message struct {
	ID             string `json:"id"`
	ConversationID string `json:"conversationId"`
	Seq            int64  `json:"seq"`
	SenderID       string `json:"senderId"`
	ClientID       string `json:"clientId"`
	Body           string `json:"body"`
	// Ciphertext, in an end-to-end encrypted conversation, is the MLS
	// PrivateMessage (base64) in place of Body (then empty): the server
	// cannot read it.
	Ciphertext string    `json:"ciphertext,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	// Undecryptable marks a stored message whose ciphertext failed to open
	// (tampered, or its key is gone). The body is empty; the server logged it.
	Undecryptable bool `json:"undecryptable,omitempty"`
	// ReplyTo quotes the message this one answers, as it is now (its
	// current text, or deleted).
	ReplyTo *ReplyRef `json:"replyTo,omitempty"`
	// EditedAt is set once the text was edited (the "edited" mark).
	EditedAt *time.Time `json:"editedAt,omitempty"`
	// Deleted is set on a tombstone: Body is empty and stays so.
	Deleted *Deletion `json:"deleted,omitempty"`
	// ExpiresAt is when a disappearing message will be deleted.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	// Reactions counts reactions per emoji, in the order they were first
	// added; Me says whether the user the view was built for is among them.
	Reactions []Reaction `json:"reactions,omitempty"`
	// Attachments are the files the message carries, in order (none on a
	// tombstone). Fetch their bytes with GET /api/v1/attachments/{id}.
	Attachments []Attachment `json:"attachments,omitempty"`
	// Mentions are the ids of the members the text mentions (@username),
	// parsed by the server from the text as sent (an edit changes neither
	// them nor who was notified). Absent when none.
	Mentions []string `json:"mentions,omitempty"`
}

// Device is one of a user's end-to-end encryption devices (an MLS client):
// its Ed25519 signature key (base64) is what a contact verifies.
type Device struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	SignatureKey string    `json:"signatureKey"`
	CreatedAt    time.Time `json:"createdAt"`
}

// ClaimedKeyPackage is one device's KeyPackage handed out by a claim
// (base64).
type ClaimedKeyPackage struct {
	UserID     string `json:"userId"`
	DeviceID   string `json:"deviceId"`
	KeyPackage string `json:"keyPackage"`
}

// MissingKeyPackage names a device that had none to hand out.
type MissingKeyPackage struct {
	UserID   string `json:"userId"`
	DeviceID string `json:"deviceId"`
}

// CommitResult is where an accepted commit stands.
type CommitResult struct {
	Seq   int64 `json:"seq"`
	Epoch int64 `json:"epoch"`
}

// Welcome is a Welcome waiting for a device (GET
// /api/v1/devices/{id}/welcomes).
type Welcome struct {
	ConversationID string `json:"conversationId"`
	Seq            int64  `json:"seq"`
	Epoch          int64  `json:"epoch"`
	Welcome        string `json:"welcome"`
}

// Attachment is an uploaded file as clients see it (docs/api.md,
// "Attachments"). Width, height and preview are set for images, duration
// for audio whose container says it.
type Attachment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"contentType"` // sniffed by the server, never the uploader's claim
	Size        int64  `json:"size"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	DurationMS  int64  `json:"durationMs,omitempty"`
	// Preview is a tiny blurred PNG of an image as a data: URL, shown while
	// the thumbnail loads.
	Preview   string `json:"preview,omitempty"`
	Thumbnail bool   `json:"thumbnail,omitempty"` // GET .../thumbnail serves one
}

// ReplyRef is the quoted original of a reply.
type ReplyRef struct {
	ID       string `json:"id"`
	Seq      int64  `json:"seq"`
	SenderID string `json:"senderId"`
	Excerpt  string `json:"excerpt"` // the first characters of the current text; empty once deleted
	Deleted  bool   `json:"deleted"`
}

// Deletion is a message's tombstone: who deleted it, when, and why.
type Deletion struct {
	By     string    `json:"by,omitempty"` // empty for an expiry
	At     time.Time `json:"at"`
	Reason string    `json:"reason"` // "deleted" or "expired"
}

// Reaction is one emoji's reactions on a message, for one viewer.
type Reaction struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
	Me    bool   `json:"me"`
}

// ReactionCount is one emoji's reaction count (frames for every member).
type ReactionCount struct {
	Emoji string `json:"emoji"`
	Count int    `json:"count"`
}

// Member is a conversation member.
type Member struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"displayName"`
	Avatar      string     `json:"avatar,omitempty"` // profile photo version, as User's
	Role        string     `json:"role"`
	ReadSeq     int64      `json:"readSeq"` // this member's read marker (for "seen")
	Online      bool       `json:"online"`
	LastSeen    *time.Time `json:"lastSeen,omitempty"`
}

// Conversation is a conversation as one member sees it.
type Conversation struct {
	ID           string    `json:"id"`
	Kind         string    `json:"kind"`
	Title        string    `json:"title,omitempty"`
	Members      []Member  `json:"members"`
	LastSeq      int64     `json:"lastSeq"`
	ReadSeq      int64     `json:"readSeq"`
	Unread       int64     `json:"unread"`
	LastMessage  *Message  `json:"lastMessage"`
	LastActivity time.Time `json:"lastActivity"`
	CreatedAt    time.Time `json:"createdAt"`
	// ExpireAfter is the disappearing-messages setting in seconds (0: off).
	ExpireAfter int64 `json:"expireAfter"`
	// MutedUntil is when the viewer's mute of this conversation ends
	// (absent: not muted; 9999-12-31T00:00:00Z: until unmuted).
	MutedUntil *time.Time `json:"mutedUntil,omitempty"`
	// E2EE marks an end-to-end encrypted (MLS) conversation; fixed at
	// creation. MLSEpoch is its group's current epoch as the server
	// ordered the commits (0: the creator's new group).
	E2EE     bool  `json:"e2ee"`
	MLSEpoch int64 `json:"mlsEpoch"`
}
