// Package audit writes and verifies Parley's append-only, hash-chained audit
// log. Each entry's hash covers its fields and the previous entry's hash, so
// changing, removing or reordering any entry breaks every hash after it.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/store"
)

// Events.
const (
	Register        = "account.register"
	LoginOK         = "login.ok"
	LoginFailed     = "login.failed"
	Refresh         = "token.refresh"
	RefreshReuse    = "token.reuse_detected"
	Logout          = "logout"
	LogoutAll       = "logout.all"
	PasswordChanged = "password.changed"
	ConvCreated     = "conversation.created"
	ConvRenamed     = "conversation.renamed"
	ProfileChanged  = "account.profile_changed"
	MemberAdded     = "member.added"
	MemberRemoved   = "member.removed"
	MessageDeleted  = "message.deleted"
	OwnerChanged    = "group.owner_changed"
	AccountDeleted  = "account.deleted"
	AccountPurged   = "account.purged"
	AccountExported = "account.exported"
	// Attachments: an upload stored, and the blobs of attachments deleted.
	AttachmentUploaded = "attachment.uploaded"
	AttachmentsDeleted = "attachment.deleted"
)

// Store is the part of store.Store the log uses.
type Store interface {
	AppendAudit(ctx context.Context, e *store.AuditEntry, hash func(*store.AuditEntry) string) error
	AuditEntries(ctx context.Context, afterSeq int64, limit int) ([]store.AuditEntry, error)
}

// Log appends audit entries.
type Log struct {
	store   Store
	log     *slog.Logger
	metrics *metrics.Metrics
	now     func() time.Time
}

// New returns a Log.
func New(s Store, logger *slog.Logger, m *metrics.Metrics) *Log {
	return &Log{store: s, log: logger, metrics: metrics.OrNew(m), now: time.Now}
}

// Record appends one entry. detail must hold no secrets. A failure is logged
// and returned; callers decide whether the action may proceed.
func (l *Log) Record(ctx context.Context, event, actorID, subject, ip string, detail map[string]any) error {
	d := ""
	if len(detail) > 0 {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("audit: detail: %w", err)
		}
		d = string(b)
	}
	e := &store.AuditEntry{At: l.now().UTC().Truncate(time.Microsecond), Event: event, ActorID: actorID, Subject: subject, IP: ip, Detail: d}
	if err := l.store.AppendAudit(ctx, e, Hash); err != nil {
		l.log.Error("audit append failed", "event", event, "err", err)
		return fmt.Errorf("audit: %w", err)
	}
	l.metrics.AuditEvents.WithLabelValues(event).Inc()
	return nil
}

// Hash computes an entry's chain hash: SHA-256 over the length-prefixed fields
// and PrevHash (length prefixes make field boundaries unambiguous).
func Hash(e *store.AuditEntry) string {
	h := sha256.New()
	writeInt(h, e.Seq)
	writeInt(h, e.At.UnixMicro())
	for _, s := range []string{e.Event, e.ActorID, e.Subject, e.IP, e.Detail, e.PrevHash} {
		writeInt(h, int64(len(s)))
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

// Report is the result of Verify.
type Report struct {
	Entries int64 // entries checked
	OK      bool
	BadSeq  int64  // first entry that does not verify, when !OK
	Reason  string // why
}

// Verify walks the whole chain and reports the first entry whose sequence,
// link or hash is wrong.
func Verify(ctx context.Context, s Store) (Report, error) {
	var r Report
	prev := ""
	var after int64
	for {
		page, err := s.AuditEntries(ctx, after, 500)
		if err != nil {
			return r, fmt.Errorf("audit: verify: %w", err)
		}
		for i := range page {
			e := &page[i]
			switch {
			case e.Seq != after+1:
				return Report{Entries: r.Entries, BadSeq: after + 1, Reason: fmt.Sprintf("entry %d missing (found %d next)", after+1, e.Seq)}, nil
			case e.PrevHash != prev:
				return Report{Entries: r.Entries, BadSeq: e.Seq, Reason: "link to the previous entry broken"}, nil
			case Hash(e) != e.Hash:
				return Report{Entries: r.Entries, BadSeq: e.Seq, Reason: "hash does not match the entry"}, nil
			}
			prev, after = e.Hash, e.Seq
			r.Entries++
		}
		if len(page) < 500 {
			r.OK = true
			return r, nil
		}
	}
}
