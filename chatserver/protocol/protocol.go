// Package protocol defines the JSON shapes of Parley's API and of WebSocket
// protocol version 1 (docs/api.md), and the envelope events travel in over the
// backplane.
package protocol

import (
	"encoding/binary"
	"encoding/json"
	"strings"
	"time"
)

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
}

// Message is a message as clients see it.
type Message struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversationId"`
	Seq            int64     `json:"seq"`
	SenderID       string    `json:"senderId"`
	ClientID       string    `json:"clientId"`
	Body           string    `json:"body"`
	CreatedAt      time.Time `json:"createdAt"`
	// Undecryptable marks a stored message whose ciphertext failed to open
	// (tampered, or its key is gone). The body is empty; the server logged it.
	Undecryptable bool `json:"undecryptable,omitempty"`
}

// Member is a conversation member.
type Member struct {
	ID          string     `json:"id"`
	Username    string     `json:"username"`
	DisplayName string     `json:"displayName"`
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
}

// ClientFrame is any frame a client sends; Type selects which fields matter.
type ClientFrame struct {
	Type           string           `json:"type"`
	ID             string           `json:"id,omitempty"`
	Token          string           `json:"token,omitempty"`
	ConversationID string           `json:"conversationId,omitempty"`
	ClientID       string           `json:"clientId,omitempty"`
	Body           *string          `json:"body,omitempty"`
	Seq            int64            `json:"seq,omitempty"`
	Cursors        map[string]int64 `json:"cursors,omitempty"`
}

// ServerFrame is any frame the server sends.
type ServerFrame struct {
	Type           string           `json:"type"`
	ID             string           `json:"id,omitempty"`
	UserID         string           `json:"userId,omitempty"`
	SessionID      string           `json:"sessionId,omitempty"`
	Protocol       int              `json:"protocol,omitempty"`
	ExpiresAt      *time.Time       `json:"expiresAt,omitempty"`
	Message        *Message         `json:"message,omitempty"`
	Conversation   *Conversation    `json:"conversation,omitempty"`
	ConversationID string           `json:"conversationId,omitempty"`
	Seq            int64            `json:"seq,omitempty"`
	Status         string           `json:"status,omitempty"`
	LastSeen       *time.Time       `json:"lastSeen,omitempty"`
	Cursors        map[string]int64 `json:"cursors,omitempty"`
	Code           string           `json:"code,omitempty"`
	ErrMessage     string           `json:"-"` // "message" of error frames (see MarshalJSON)
	RetryAfter     int              `json:"retryAfter,omitempty"`
}

// MarshalJSON keeps "message" meaning the message object for message/ack
// frames and the error text for error frames.
func (f ServerFrame) MarshalJSON() ([]byte, error) {
	type plain ServerFrame
	if f.Type != "error" {
		return json.Marshal(plain(f))
	}
	return json.Marshal(struct {
		Type       string `json:"type"`
		ID         string `json:"id,omitempty"`
		Code       string `json:"code"`
		Message    string `json:"message"`
		RetryAfter int    `json:"retryAfter,omitempty"`
	}{f.Type, f.ID, f.Code, f.ErrMessage, f.RetryAfter})
}

// Backplane envelope kinds.
const (
	KindFrame      byte = 'F' // deliver the frame to the user's connections
	KindDisconnect byte = 'D' // close the user's connections (reason follows)
)

// DisconnectData is the data of a KindDisconnect envelope: the session to
// spare (may be empty), a newline, the reason.
func DisconnectData(exceptSession, reason string) []byte {
	return []byte(exceptSession + "\n" + reason)
}

// ParseDisconnect splits DisconnectData.
func ParseDisconnect(data []byte) (exceptSession, reason string) {
	e, r, ok := strings.Cut(string(data), "\n")
	if !ok {
		return "", string(data)
	}
	return e, r
}

// Envelope is a backplane payload: kind, the store time of a message in unix
// nanoseconds (0 for other events; for delivery-latency metrics), then data.
func Envelope(kind byte, stored time.Time, data []byte) []byte {
	b := make([]byte, 9+len(data))
	b[0] = kind
	var ns int64
	if !stored.IsZero() {
		ns = stored.UnixNano()
	}
	binary.BigEndian.PutUint64(b[1:9], uint64(ns))
	copy(b[9:], data)
	return b
}

// OpenEnvelope splits a backplane payload; ok is false when it is malformed.
func OpenEnvelope(p []byte) (kind byte, stored time.Time, data []byte, ok bool) {
	if len(p) < 9 {
		return 0, time.Time{}, nil, false
	}
	if ns := int64(binary.BigEndian.Uint64(p[1:9])); ns != 0 {
		stored = time.Unix(0, ns)
	}
	return p[0], stored, p[9:], true
}
