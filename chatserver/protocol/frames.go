package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// FrameType is the "type" of a WebSocket frame.
type FrameType string

// Frame types a client sends.
const (
	TypeAuth FrameType = "auth"
	TypeSend FrameType = "send"
	TypeSync FrameType = "sync"
	// TypeTyping and TypeRead name a client request and the server's relay alike.
	TypeTyping FrameType = "typing"
	TypeRead   FrameType = "read"
	TypePing   FrameType = "ping"
	TypeEdit   FrameType = "edit"
	TypeDelete FrameType = "delete"
	TypeReact  FrameType = "react"
	// TypeVisibility reports whether the page behind the connection is
	// visible (push notifications go to users with no visible page).
	TypeVisibility FrameType = "visibility"
)

// Frame types the server sends.
const (
	TypeReady        FrameType = "ready"
	TypeAck          FrameType = "ack"
	TypeMessage      FrameType = "message"
	TypeSynced       FrameType = "synced"
	TypePresence     FrameType = "presence"
	TypeConversation FrameType = "conversation"
	TypeRemoved      FrameType = "removed"
	TypeResync       FrameType = "resync"
	TypeError        FrameType = "error"
	TypePong         FrameType = "pong"
	TypeUser         FrameType = "user"
	// Change events: each takes the next seq of its conversation, like a message.
	TypeMessageEdited        FrameType = "message_edited"
	TypeMessageDeleted       FrameType = "message_deleted"
	TypeReaction             FrameType = "reaction"
	TypeConversationSettings FrameType = "conversation_settings"
	// End-to-end encryption (MLS): a commit, in its conversation's seq
	// order; a Welcome waiting for one of the user's devices; a user's
	// device list changed.
	TypeMLS     FrameType = "mls"
	TypeWelcome FrameType = "welcome"
	TypeDevices FrameType = "devices"
)

// ServerFrame is a frame the server sends. Each kind is its own struct; the
// "type" field is written by Encode from FrameType, so it cannot disagree.
type ServerFrame interface {
	FrameType() FrameType
}

// ReadyFrame confirms authentication (first frame, and after in-band auth).
type ReadyFrame struct {
	UserID    string    `json:"userId"`
	SessionID string    `json:"sessionId"`
	Protocol  int       `json:"protocol"`
	ExpiresAt time.Time `json:"expiresAt"` // of the access token in use
}

// AckFrame answers a send with the stored message.
type AckFrame struct {
	ID      string   `json:"id"`
	Message *Message `json:"message"`
}

// MessageFrame carries a message, live or during a sync.
type MessageFrame struct {
	Message *Message `json:"message"`
}

// SyncedFrame ends a sync with where each conversation now stands.
type SyncedFrame struct {
	ID      string           `json:"id"`
	Cursors map[string]int64 `json:"cursors,omitempty"`
}

// TypingFrame relays a member's typing indicator.
type TypingFrame struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
}

// PresenceFrame tells that a user came online or went offline.
type PresenceFrame struct {
	UserID   string    `json:"userId"`
	Status   string    `json:"status"` // "online" or "offline"
	LastSeen time.Time `json:"lastSeen"`
}

// ReadFrame tells that a member's read marker moved.
type ReadFrame struct {
	ConversationID string `json:"conversationId"`
	UserID         string `json:"userId"`
	Seq            int64  `json:"seq"`
}

// ConversationFrame carries a conversation as the recipient sees it (added
// to it, or its members changed).
type ConversationFrame struct {
	Conversation *Conversation `json:"conversation"`
}

// RemovedFrame tells a user they left or were removed from a conversation.
type RemovedFrame struct {
	ConversationID string `json:"conversationId"`
}

// ResyncFrame asks the client to catch up through its cursors: events may
// have been missed, in one conversation (ConversationID) or in all.
type ResyncFrame struct {
	ConversationID string `json:"conversationId,omitempty"`
}

// ErrorFrame answers a request that failed (ID is the request's, when known).
type ErrorFrame struct {
	ID         string `json:"id,omitempty"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retryAfter,omitempty"` // seconds, with rate_limited
	Epoch      *int64 `json:"epoch,omitempty"`      // the current MLS epoch, with stale_epoch
}

// UserFrame tells that a user's public profile changed (their display
// name): sent to everyone sharing a conversation with them and to their own
// sessions. User never carries an email.
type UserFrame struct {
	User *User `json:"user"`
}

// PongFrame answers a ping.
type PongFrame struct {
	ID string `json:"id,omitempty"`
}

// MessageEditedFrame tells that a message's text changed. Seq is the edit
// event's own place in the conversation (not the message's seq). In a sync
// answer Body is the message's current text; empty when it was deleted since
// (its message_deleted frame follows in the same answer).
type MessageEditedFrame struct {
	ConversationID string    `json:"conversationId"`
	MessageID      string    `json:"messageId"`
	Seq            int64     `json:"seq"`
	Body           string    `json:"body"`
	EditedAt       time.Time `json:"editedAt"`
}

// MessageDeletedFrame tells that a message was deleted for everyone or
// expired; only its tombstone remains.
type MessageDeletedFrame struct {
	ConversationID string    `json:"conversationId"`
	MessageID      string    `json:"messageId"`
	Seq            int64     `json:"seq"`
	DeletedBy      string    `json:"deletedBy,omitempty"` // empty for an expiry
	DeletedAt      time.Time `json:"deletedAt"`
	Reason         string    `json:"reason"` // "deleted" or "expired"
}

// ReactionFrame tells that a member added or removed a reaction. Counts
// are the message's counts when the frame was built (live: just after the
// change; in a sync answer: now).
type ReactionFrame struct {
	ConversationID string          `json:"conversationId"`
	MessageID      string          `json:"messageId"`
	Seq            int64           `json:"seq"`
	Emoji          string          `json:"emoji"`
	UserID         string          `json:"userId"`
	Added          bool            `json:"added"`
	Counts         []ReactionCount `json:"counts"`
}

// ConversationSettingsFrame tells that a conversation setting changed.
type ConversationSettingsFrame struct {
	ConversationID string    `json:"conversationId"`
	Seq            int64     `json:"seq"`
	ExpireAfter    int64     `json:"expireAfter"` // seconds; 0: messages do not expire
	ChangedBy      string    `json:"changedBy"`
	ChangedAt      time.Time `json:"changedAt"`
}

// MLSFrame carries an MLS commit the server accepted, in its conversation's
// seq order (live, and from a sync interleaved with messages by seq). Epoch
// is the group's epoch after it; Commit the MLSMessage, base64.
type MLSFrame struct {
	ConversationID string `json:"conversationId"`
	Seq            int64  `json:"seq"`
	Epoch          int64  `json:"epoch"`
	SenderID       string `json:"senderId"`
	DeviceID       string `json:"deviceId"`
	Commit         string `json:"commit"`
}

// WelcomeFrame tells a user that a Welcome waits for one of their devices
// (GET /api/v1/devices/{id}/welcomes).
type WelcomeFrame struct {
	ConversationID string `json:"conversationId"`
	DeviceID       string `json:"deviceId"`
}

// DevicesFrame tells that a user's device list changed (a device was
// registered or removed): sent to the user and everyone sharing an
// end-to-end encrypted conversation with them.
type DevicesFrame struct {
	UserID string `json:"userId"`
}

func (ReadyFrame) FrameType() FrameType        { return TypeReady }
func (AckFrame) FrameType() FrameType          { return TypeAck }
func (MessageFrame) FrameType() FrameType      { return TypeMessage }
func (SyncedFrame) FrameType() FrameType       { return TypeSynced }
func (TypingFrame) FrameType() FrameType       { return TypeTyping }
func (PresenceFrame) FrameType() FrameType     { return TypePresence }
func (ReadFrame) FrameType() FrameType         { return TypeRead }
func (ConversationFrame) FrameType() FrameType { return TypeConversation }
func (RemovedFrame) FrameType() FrameType      { return TypeRemoved }
func (ResyncFrame) FrameType() FrameType       { return TypeResync }
func (ErrorFrame) FrameType() FrameType        { return TypeError }
func (PongFrame) FrameType() FrameType         { return TypePong }
func (UserFrame) FrameType() FrameType         { return TypeUser }

func (MessageEditedFrame) FrameType() FrameType        { return TypeMessageEdited }
func (MessageDeletedFrame) FrameType() FrameType       { return TypeMessageDeleted }
func (ReactionFrame) FrameType() FrameType             { return TypeReaction }
func (ConversationSettingsFrame) FrameType() FrameType { return TypeConversationSettings }
func (MLSFrame) FrameType() FrameType                  { return TypeMLS }
func (WelcomeFrame) FrameType() FrameType              { return TypeWelcome }
func (DevicesFrame) FrameType() FrameType              { return TypeDevices }

// ServerFrames lists one value of every server frame kind (docs and tests).
func ServerFrames() []ServerFrame {
	return []ServerFrame{ReadyFrame{}, AckFrame{}, MessageFrame{}, SyncedFrame{}, TypingFrame{},
		PresenceFrame{}, ReadFrame{}, ConversationFrame{}, RemovedFrame{}, ResyncFrame{}, ErrorFrame{}, PongFrame{},
		UserFrame{}, MessageEditedFrame{}, MessageDeletedFrame{}, ReactionFrame{}, ConversationSettingsFrame{},
		MLSFrame{}, WelcomeFrame{}, DevicesFrame{}}
}

// Encode writes a server frame as JSON with its "type" first.
func Encode(f ServerFrame) ([]byte, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s frame: %w", f.FrameType(), err)
	}
	t := f.FrameType()
	out := make([]byte, 0, len(body)+len(t)+11)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	if len(body) > 2 { // body is a JSON object: "{...}"
		out = append(out, ',')
		out = append(out, body[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}

// ClientFrame is a decoded client frame.
type ClientFrame interface {
	FrameType() FrameType
	// RequestID is the client's id for the request, echoed in its answer.
	RequestID() string
}

// AuthRequest authenticates a connection (first frame without a ticket) or
// extends it with a fresh access token.
type AuthRequest struct {
	ID    string `json:"id,omitempty"`
	Token string `json:"token"`
}

// SendRequest stores and delivers a message.
type SendRequest struct {
	ID             string  `json:"id,omitempty"`
	ConversationID string  `json:"conversationId"`
	ClientID       string  `json:"clientId,omitempty"`
	Body           *string `json:"body"`
	// Ciphertext replaces Body in an end-to-end encrypted conversation:
	// an MLS PrivateMessage, base64 (standard).
	Ciphertext string `json:"ciphertext,omitempty"`
	ReplyTo    string `json:"replyTo,omitempty"` // id of a message of the same conversation
	// Attachments are ids of the sender's ready uploads (at most
	// MaxAttachments); with one, body may be empty.
	Attachments []string `json:"attachments,omitempty"`
}

// EditRequest replaces the text of one of the sender's messages.
type EditRequest struct {
	ID             string  `json:"id,omitempty"`
	ConversationID string  `json:"conversationId"`
	MessageID      string  `json:"messageId"`
	Body           *string `json:"body"`
}

// DeleteRequest deletes a message for everyone.
type DeleteRequest struct {
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
}

// ReactRequest adds (or, with Remove, removes) the user's reaction.
type ReactRequest struct {
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversationId"`
	MessageID      string `json:"messageId"`
	Emoji          string `json:"emoji"`
	Remove         bool   `json:"remove,omitempty"`
}

// SyncRequest asks for every message after each cursor.
type SyncRequest struct {
	ID      string           `json:"id,omitempty"`
	Cursors map[string]int64 `json:"cursors"`
}

// TypingRequest tells the other members that the user is typing.
type TypingRequest struct {
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversationId"`
}

// ReadRequest raises the user's read marker.
type ReadRequest struct {
	ID             string `json:"id,omitempty"`
	ConversationID string `json:"conversationId"`
	Seq            int64  `json:"seq"`
}

// PingRequest asks for a pong.
type PingRequest struct {
	ID string `json:"id,omitempty"`
}

// VisibilityRequest reports whether the page behind this connection is
// visible to its user (document.visibilityState). Not answered unless it
// fails. A connection that never sends one counts as visible.
type VisibilityRequest struct {
	ID      string `json:"id,omitempty"`
	Visible *bool  `json:"visible"`
}

func (AuthRequest) FrameType() FrameType       { return TypeAuth }
func (SendRequest) FrameType() FrameType       { return TypeSend }
func (SyncRequest) FrameType() FrameType       { return TypeSync }
func (TypingRequest) FrameType() FrameType     { return TypeTyping }
func (ReadRequest) FrameType() FrameType       { return TypeRead }
func (PingRequest) FrameType() FrameType       { return TypePing }
func (EditRequest) FrameType() FrameType       { return TypeEdit }
func (DeleteRequest) FrameType() FrameType     { return TypeDelete }
func (ReactRequest) FrameType() FrameType      { return TypeReact }
func (VisibilityRequest) FrameType() FrameType { return TypeVisibility }

func (f AuthRequest) RequestID() string       { return f.ID }
func (f SendRequest) RequestID() string       { return f.ID }
func (f SyncRequest) RequestID() string       { return f.ID }
func (f TypingRequest) RequestID() string     { return f.ID }
func (f ReadRequest) RequestID() string       { return f.ID }
func (f PingRequest) RequestID() string       { return f.ID }
func (f EditRequest) RequestID() string       { return f.ID }
func (f DeleteRequest) RequestID() string     { return f.ID }
func (f ReactRequest) RequestID() string      { return f.ID }
func (f VisibilityRequest) RequestID() string { return f.ID }

// ClientFrames lists one value of every client frame kind (docs and tests).
func ClientFrames() []ClientFrame {
	return []ClientFrame{AuthRequest{}, SendRequest{}, SyncRequest{}, TypingRequest{}, ReadRequest{}, PingRequest{},
		EditRequest{}, DeleteRequest{}, ReactRequest{}, VisibilityRequest{}}
}

// ErrUnknownType is returned (wrapped) by DecodeClient for a frame whose type
// is not one of the client frame types.
var ErrUnknownType = errors.New("unknown frame type")

// DecodeClient decodes a client frame. When the frame is a JSON object whose
// "id" could be read, id is returned even if decoding failed, so the error
// can answer the request.
func DecodeClient(data []byte) (f ClientFrame, id string, err error) {
	// Both raw: a wrong-typed "type" must not stop the id from being read.
	var head struct {
		Type json.RawMessage `json:"type"`
		ID   json.RawMessage `json:"id"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, "", fmt.Errorf("frame is not a valid JSON object: %w", err)
	}
	_ = json.Unmarshal(head.ID, &id) // a non-string id is reported below
	var typ FrameType
	if len(head.Type) > 0 && json.Unmarshal(head.Type, &typ) != nil {
		return nil, id, errors.New(`field "type" must be a string`)
	}
	switch typ {
	case TypeAuth:
		f, err = decodeAs[AuthRequest](data)
	case TypeSend:
		f, err = decodeAs[SendRequest](data)
	case TypeSync:
		f, err = decodeAs[SyncRequest](data)
	case TypeTyping:
		f, err = decodeAs[TypingRequest](data)
	case TypeRead:
		f, err = decodeAs[ReadRequest](data)
	case TypePing:
		f, err = decodeAs[PingRequest](data)
	case TypeEdit:
		f, err = decodeAs[EditRequest](data)
	case TypeDelete:
		f, err = decodeAs[DeleteRequest](data)
	case TypeReact:
		f, err = decodeAs[ReactRequest](data)
	case TypeVisibility:
		f, err = decodeAs[VisibilityRequest](data)
	default:
		return nil, id, fmt.Errorf("%w %q", ErrUnknownType, typ)
	}
	return f, id, err
}

func decodeAs[T ClientFrame](data []byte) (ClientFrame, error) {
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, fmt.Errorf("field %q of a %s frame has the wrong type (want %s)", te.Field, v.FrameType(), te.Type)
		}
		return nil, fmt.Errorf("%s frame: %w", v.FrameType(), err)
	}
	return v, nil
}
