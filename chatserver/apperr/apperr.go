// Package apperr defines the errors the chat server shows to clients: a stable
// code (docs/api.md) and a message a person can read. REST and WebSocket turn
// them into the same JSON; anything else becomes "internal" and is logged.
package apperr

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Stable error codes.
const (
	InvalidRequest      = "invalid_request"
	MessageEmpty        = "message_empty"
	MessageTooLong      = "message_too_long"
	RequestTooLarge     = "request_too_large"
	WeakPassword        = "weak_password"
	Unauthorized        = "unauthorized"
	InvalidCredentials  = "invalid_credentials"
	InvalidRefreshToken = "invalid_refresh_token"
	TokenReused         = "token_reused"
	Forbidden           = "forbidden"
	NotFound            = "not_found"
	AccountDeleted      = "account_deleted"
	Conflict            = "conflict"
	RateLimited         = "rate_limited"
	AttachmentTooLarge  = "attachment_too_large"
	QuotaExceeded       = "quota_exceeded"
	ImageTooLarge       = "image_too_large"
	VoiceTooLong        = "voice_too_long"
	InvalidMedia        = "invalid_media"
	RangeNotSatisfiable = "range_not_satisfiable"
	Unavailable         = "unavailable"
	Internal            = "internal"
	// StaleEpoch: an MLS commit or message was made for an epoch that is
	// not the conversation's current one (Error.Epoch says which is).
	StaleEpoch = "stale_epoch"
)

var status = map[string]int{
	InvalidRequest:      http.StatusBadRequest,
	MessageEmpty:        http.StatusBadRequest,
	MessageTooLong:      http.StatusRequestEntityTooLarge,
	RequestTooLarge:     http.StatusRequestEntityTooLarge,
	WeakPassword:        http.StatusBadRequest,
	Unauthorized:        http.StatusUnauthorized,
	InvalidCredentials:  http.StatusUnauthorized,
	InvalidRefreshToken: http.StatusUnauthorized,
	TokenReused:         http.StatusUnauthorized,
	Forbidden:           http.StatusForbidden,
	NotFound:            http.StatusNotFound,
	AccountDeleted:      http.StatusGone,
	Conflict:            http.StatusConflict,
	RateLimited:         http.StatusTooManyRequests,
	AttachmentTooLarge:  http.StatusRequestEntityTooLarge,
	QuotaExceeded:       http.StatusRequestEntityTooLarge,
	ImageTooLarge:       http.StatusRequestEntityTooLarge,
	VoiceTooLong:        http.StatusRequestEntityTooLarge,
	InvalidMedia:        http.StatusBadRequest,
	RangeNotSatisfiable: http.StatusRequestedRangeNotSatisfiable,
	Unavailable:         http.StatusServiceUnavailable,
	Internal:            http.StatusInternalServerError,
	StaleEpoch:          http.StatusConflict,
}

// Error is an error a client may see.
type Error struct {
	Code       string
	Message    string
	RetryAfter time.Duration // with RateLimited
	// Field names the request field the error is about (its JSON name, e.g.
	// "username"), so a form can show the message beside it; "" when the
	// error is not about one field.
	Field string
	// Epoch, with StaleEpoch, is the conversation's current MLS epoch.
	Epoch *int64
	Cause error // for logs only, never shown
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return e.Code + ": " + e.Message + ": " + e.Cause.Error()
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Cause }

// Status is the HTTP status for the error's code.
func (e *Error) Status() int {
	if s, ok := status[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// New returns an Error with a formatted message.
func New(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// OnField returns an Error about the request field field (see Error.Field).
func OnField(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error that keeps cause for the logs.
func Wrap(code string, cause error, message string) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// From returns err as an *Error, or an Internal one when it is not.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: Internal, Message: "internal error", Cause: err}
}

// Is reports whether err is an *Error with code.
func Is(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}
