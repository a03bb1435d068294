package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

const attachmentCols = "id, owner_id, state, conversation_id, message_id, position, name, content_type, size, " +
	"stored_size, key_id, blob_key, thumb_key, thumb_stored_size, width, height, duration_ms, preview, created_at, attached_at"

func scanAttachment(s scanner) (store.Attachment, error) {
	var (
		a              store.Attachment
		conv, msg      sql.NullString
		durMS, created int64
		attached       sql.NullInt64
	)
	if err := s.Scan(&a.ID, &a.OwnerID, &a.State, &conv, &msg, &a.Position, &a.Name, &a.ContentType, &a.Size,
		&a.StoredSize, &a.KeyID, &a.BlobKey, &a.ThumbKey, &a.ThumbStored, &a.Width, &a.Height, &durMS, &a.Preview,
		&created, &attached); err != nil {
		return store.Attachment{}, err
	}
	a.ConversationID, a.MessageID = conv.String, msg.String
	a.Duration = time.Duration(durMS) * time.Millisecond
	a.CreatedAt, a.AttachedAt = fromMicros(created), fromNullMicros(attached)
	if len(a.Preview) == 0 {
		a.Preview = nil
	}
	return a, nil
}

func (db *DB) queryAttachments(ctx context.Context, op, q string, args ...any) ([]store.Attachment, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	defer rows.Close()
	out := []store.Attachment{}
	for rows.Next() {
		a, err := scanAttachment(rows)
		if err != nil {
			return nil, db.wrap(op, err)
		}
		out = append(out, a)
	}
	return out, db.wrap(op, rows.Err())
}

// CreateAttachment implements store.Store.
func (db *DB) CreateAttachment(ctx context.Context, a *store.Attachment) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO attachments (id, owner_id, state, name, blob_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, a.ID, a.OwnerID, store.AttachmentUploading, a.Name, a.BlobKey, micros(a.CreatedAt))
	return db.wrap("create attachment", err)
}

// MarkAttachmentReady implements store.Store. The quota check and the
// update are one transaction; on PostgreSQL the owner's user row is locked
// first, so two uploads finishing at once are counted one after the other
// (SQLite runs one write transaction at a time anyway).
func (db *DB) MarkAttachmentReady(ctx context.Context, a *store.Attachment, quota int64) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if db.d == postgresDialect {
			var id string
			if err := tx.QueryRowContext(ctx, "SELECT id FROM users WHERE id = $1 FOR UPDATE", a.OwnerID).Scan(&id); err != nil {
				return err
			}
		}
		var used int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(size), 0) FROM attachments
			WHERE owner_id = $1 AND state <> $2 AND id <> $3`, a.OwnerID, store.AttachmentDeleted, a.ID).Scan(&used); err != nil {
			return err
		}
		if used+a.Size > quota {
			return fmt.Errorf("%w: %d bytes used, %d more, quota %d", store.ErrLimit, used, a.Size, quota)
		}
		res, err := tx.ExecContext(ctx, `UPDATE attachments SET state = $1, content_type = $2, size = $3,
			stored_size = $4, key_id = $5, thumb_key = $6, thumb_stored_size = $7, width = $8, height = $9,
			duration_ms = $10, preview = $11
			WHERE id = $12 AND owner_id = $13 AND state = $14`,
			store.AttachmentReady, a.ContentType, a.Size, a.StoredSize, a.KeyID, a.ThumbKey, a.ThumbStored,
			a.Width, a.Height, a.Duration.Milliseconds(), a.Preview, a.ID, a.OwnerID, store.AttachmentUploading)
		return mustAffect(res, err)
	})
	return db.wrap("mark attachment ready", err)
}

// Attachment implements store.Store.
func (db *DB) Attachment(ctx context.Context, id string) (*store.Attachment, error) {
	a, err := scanAttachment(db.r.QueryRowContext(ctx, "SELECT "+attachmentCols+" FROM attachments WHERE id = $1", id))
	if err != nil {
		return nil, db.wrap("attachment", err)
	}
	return &a, nil
}

// AttachmentsOfMessages implements store.Store.
func (db *DB) AttachmentsOfMessages(ctx context.Context, msgIDs []string) ([]store.Attachment, error) {
	if len(msgIDs) == 0 {
		return []store.Attachment{}, nil
	}
	args := []any{store.AttachmentAttached}
	for _, id := range msgIDs {
		args = append(args, id)
	}
	return db.queryAttachments(ctx, "attachments of messages", "SELECT "+attachmentCols+
		" FROM attachments WHERE state = $1 AND message_id IN ("+placeholders(2, len(msgIDs))+
		") ORDER BY message_id, position", args...)
}

// AttachmentUsage implements store.Store.
func (db *DB) AttachmentUsage(ctx context.Context, ownerID string) (int64, error) {
	var used int64
	err := db.r.QueryRowContext(ctx, "SELECT COALESCE(SUM(size), 0) FROM attachments WHERE owner_id = $1 AND state <> $2",
		ownerID, store.AttachmentDeleted).Scan(&used)
	return used, db.wrap("attachment usage", err)
}

// UserAttachments implements store.Store.
func (db *DB) UserAttachments(ctx context.Context, ownerID, afterID string, limit int) ([]store.Attachment, error) {
	return db.queryAttachments(ctx, "user attachments", "SELECT "+attachmentCols+
		" FROM attachments WHERE owner_id = $1 AND state <> $2 AND id > $3 ORDER BY id LIMIT $4",
		ownerID, store.AttachmentDeleted, afterID, max(limit, 0))
}

// DoomStaleAttachments implements store.Store. One UPDATE: an upload being
// attached at the same moment is either attached first (and not touched
// here) or finds itself deleted (and the send fails).
func (db *DB) DoomStaleAttachments(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE attachments SET state = $1
		WHERE state IN ($2, $3) AND created_at < $4`,
		store.AttachmentDeleted, store.AttachmentUploading, store.AttachmentReady, micros(before))
	n, err := affected(res, err)
	return n, db.wrap("doom stale attachments", err)
}

// DoomUserUploads implements store.Store.
func (db *DB) DoomUserUploads(ctx context.Context, ownerID string) (int64, error) {
	res, err := db.w.ExecContext(ctx, "UPDATE attachments SET state = $1 WHERE owner_id = $2 AND state IN ($3, $4)",
		store.AttachmentDeleted, ownerID, store.AttachmentUploading, store.AttachmentReady)
	n, err := affected(res, err)
	return n, db.wrap("doom user uploads", err)
}

// DoomUpload implements store.Store.
func (db *DB) DoomUpload(ctx context.Context, ownerID, id string) error {
	res, err := db.w.ExecContext(ctx, "UPDATE attachments SET state = $1 WHERE id = $2 AND owner_id = $3 AND state IN ($4, $5)",
		store.AttachmentDeleted, id, ownerID, store.AttachmentUploading, store.AttachmentReady)
	return db.wrap("doom upload", mustAffect(res, err))
}

// DoomedAttachments implements store.Store.
func (db *DB) DoomedAttachments(ctx context.Context, limit int) ([]store.Attachment, error) {
	return db.queryAttachments(ctx, "doomed attachments", "SELECT "+attachmentCols+
		" FROM attachments WHERE state = $1 ORDER BY created_at LIMIT $2", store.AttachmentDeleted, max(limit, 0))
}

// DeleteAttachment implements store.Store.
func (db *DB) DeleteAttachment(ctx context.Context, id string) error {
	res, err := db.w.ExecContext(ctx, "DELETE FROM attachments WHERE id = $1 AND state = $2", id, store.AttachmentDeleted)
	return db.wrap("delete attachment", mustAffect(res, err))
}

// DiscardUpload implements store.Store.
func (db *DB) DiscardUpload(ctx context.Context, id string) error {
	res, err := db.w.ExecContext(ctx, "DELETE FROM attachments WHERE id = $1 AND state IN ($2, $3)",
		id, store.AttachmentUploading, store.AttachmentReady)
	return db.wrap("discard upload", mustAffect(res, err))
}

// AttachmentsSealedWith implements store.Store.
func (db *DB) AttachmentsSealedWith(ctx context.Context, keyID string, limit int) ([]store.Attachment, error) {
	return db.queryAttachments(ctx, "attachments sealed with", "SELECT "+attachmentCols+
		" FROM attachments WHERE key_id = $1 AND state IN ($2, $3) ORDER BY id LIMIT $4",
		keyID, store.AttachmentReady, store.AttachmentAttached, max(limit, 0))
}

// ResealAttachment implements store.Store.
func (db *DB) ResealAttachment(ctx context.Context, id, oldBlobKey string, next *store.Attachment) (bool, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE attachments SET blob_key = $1, stored_size = $2, key_id = $3,
		thumb_key = $4, thumb_stored_size = $5
		WHERE id = $6 AND blob_key = $7 AND state IN ($8, $9)`,
		next.BlobKey, next.StoredSize, next.KeyID, next.ThumbKey, next.ThumbStored, id, oldBlobKey,
		store.AttachmentReady, store.AttachmentAttached)
	n, err := affected(res, err)
	return n == 1, db.wrap("reseal attachment", err)
}

// attach makes the sender's ready uploads ids the attachments of message m,
// inside AppendMessage's transaction: all of them or, with ErrAttachment,
// none (the caller rolls back).
func attach(ctx context.Context, tx *sql.Tx, m *store.Message) error {
	for i, id := range m.Attachments {
		res, err := tx.ExecContext(ctx, `UPDATE attachments SET state = $1, conversation_id = $2, message_id = $3,
			position = $4, attached_at = $5
			WHERE id = $6 AND owner_id = $7 AND state = $8`,
			store.AttachmentAttached, m.ConversationID, m.ID, i, micros(m.CreatedAt), id, m.SenderID, store.AttachmentReady)
		n, err := affected(res, err)
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%w: %s", store.ErrAttachment, id)
		}
	}
	return nil
}
