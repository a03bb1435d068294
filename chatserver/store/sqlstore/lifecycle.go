package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// errNoChange rolls back a change transaction that found nothing to change,
// which also undoes its seq increment.
var errNoChange = errors.New("no change")

// changeTx runs fn in a write transaction after taking the conversation's
// next seq. Taking the seq first locks the conversation's row (PostgreSQL;
// SQLite has one writer), so every change of a conversation (message,
// edit, deletion, reaction, setting) runs one at a time and sees the
// effects of the ones before. When fn returns errNoChange the transaction
// is rolled back and changeTx returns errNoChange.
func (db *DB) changeTx(ctx context.Context, convID string, fn func(tx *sql.Tx, seq int64) error) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		var seq int64
		if err := tx.QueryRowContext(ctx,
			"UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq", convID).Scan(&seq); err != nil {
			return err
		}
		return fn(tx, seq)
	})
}

func insertEvent(ctx context.Context, tx *sql.Tx, e *store.Event) error {
	if e.Data == "" {
		e.Data = "{}"
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO conversation_events
		(conversation_id, seq, kind, message_id, actor_id, data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		e.ConversationID, e.Seq, e.Kind, e.MessageID, e.ActorID, e.Data, micros(e.CreatedAt))
	return err
}

// messageState tells, inside a change transaction, whether convID has the
// message and whether it is a tombstone.
func messageState(ctx context.Context, tx *sql.Tx, convID, msgID string) (exists, tombstone bool, err error) {
	var deleted sql.NullInt64
	err = tx.QueryRowContext(ctx, "SELECT deleted_at FROM messages WHERE conversation_id = $1 AND id = $2",
		convID, msgID).Scan(&deleted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, false, nil
	}
	return err == nil, deleted.Valid, err
}

// MessageByID implements store.Store.
func (db *DB) MessageByID(ctx context.Context, convID, msgID string) (*store.Message, error) {
	m, err := scanMessage(db.r.QueryRowContext(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND id = $2", convID, msgID))
	if err != nil {
		return nil, db.wrap("message by id", err)
	}
	return &m, nil
}

// MessagesByIDs implements store.Store.
func (db *DB) MessagesByIDs(ctx context.Context, convID string, ids []string) ([]store.Message, error) {
	out := []store.Message{}
	for chunk := range slices.Chunk(ids, maxInList) {
		args := []any{convID}
		for _, id := range chunk {
			args = append(args, id)
		}
		ms, err := db.queryMessages(ctx, "SELECT "+messageCols+" FROM messages WHERE conversation_id = $1 AND id IN ("+
			placeholders(2, len(chunk))+")", args...)
		if err != nil {
			return nil, db.wrap("messages by ids", err)
		}
		out = append(out, ms...)
	}
	slices.SortFunc(out, func(a, b store.Message) int { return int(a.Seq - b.Seq) })
	return out, nil
}

func readMessage(ctx context.Context, tx *sql.Tx, convID, msgID string) (*store.Message, error) {
	m, err := scanMessage(tx.QueryRowContext(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND id = $2", convID, msgID))
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// missing turns "the update matched no row" into ErrNotFound or ErrGone.
func missing(ctx context.Context, tx *sql.Tx, convID, msgID string) error {
	exists, tomb, err := messageState(ctx, tx, convID, msgID)
	switch {
	case err != nil:
		return err
	case !exists:
		return store.ErrNotFound
	case tomb:
		return store.ErrGone
	}
	return errors.New("message changed during the update")
}

// EditMessage implements store.Store.
func (db *DB) EditMessage(ctx context.Context, convID, msgID, sealed, keyID, actorID string, at time.Time) (*store.Message, *store.Event, error) {
	var (
		m  *store.Message
		ev *store.Event
	)
	err := db.changeTx(ctx, convID, func(tx *sql.Tx, seq int64) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET body_sealed = $1, key_id = $2, edited_at = $3
			WHERE conversation_id = $4 AND id = $5 AND deleted_at IS NULL`, sealed, keyID, micros(at), convID, msgID)
		if n, err := affected(res, err); err != nil {
			return err
		} else if n == 0 {
			return missing(ctx, tx, convID, msgID)
		}
		ev = &store.Event{ConversationID: convID, Seq: seq, Kind: store.EventEdited, MessageID: msgID,
			ActorID: actorID, CreatedAt: truncMicros(at)}
		if err := insertEvent(ctx, tx, ev); err != nil {
			return err
		}
		m, err = readMessage(ctx, tx, convID, msgID)
		return err
	})
	if err != nil {
		return nil, nil, db.wrap("edit message", err)
	}
	return m, ev, nil
}

// DeleteMessage implements store.Store. The ciphertext is overwritten in
// the row (not flagged): history and sync cannot return what is not there.
func (db *DB) DeleteMessage(ctx context.Context, convID, msgID, actorID, kind string, at time.Time) (*store.Message, *store.Event, error) {
	if kind != store.EventDeleted && kind != store.EventExpired {
		return nil, nil, db.wrap("delete message", errors.New("kind must be deleted or expired"))
	}
	var ev *store.Event
	err := db.changeTx(ctx, convID, func(tx *sql.Tx, seq int64) error {
		res, err := tx.ExecContext(ctx, `UPDATE messages SET body_sealed = '', key_id = '', edited_at = NULL,
			deleted_at = $1, deleted_by = $2, delete_reason = $3
			WHERE conversation_id = $4 AND id = $5 AND deleted_at IS NULL`, micros(at), actorID, kind, convID, msgID)
		if n, err := affected(res, err); err != nil {
			return err
		} else if n == 0 {
			if err := missing(ctx, tx, convID, msgID); !errors.Is(err, store.ErrGone) {
				return err
			}
			return errNoChange
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM reactions WHERE message_id = $1", msgID); err != nil {
			return err
		}
		// Its attachments go with it: the purger deletes their blobs.
		if _, err := tx.ExecContext(ctx, "UPDATE attachments SET state = $1 WHERE message_id = $2",
			store.AttachmentDeleted, msgID); err != nil {
			return err
		}
		ev = &store.Event{ConversationID: convID, Seq: seq, Kind: kind, MessageID: msgID, ActorID: actorID,
			CreatedAt: truncMicros(at)}
		return insertEvent(ctx, tx, ev)
	})
	if err != nil && !errors.Is(err, errNoChange) {
		return nil, nil, db.wrap("delete message", err)
	}
	if errors.Is(err, errNoChange) {
		ev = nil
	}
	m, err := db.readAfterWrite(ctx, convID, msgID)
	if err != nil {
		return nil, nil, db.wrap("delete message", err)
	}
	return m, ev, nil
}

// readAfterWrite reads a message on the writer, so the read follows the
// write that just committed.
func (db *DB) readAfterWrite(ctx context.Context, convID, msgID string) (*store.Message, error) {
	m, err := scanMessage(db.w.QueryRowContext(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND id = $2", convID, msgID))
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// reactionData is the data of an EventReaction.
type reactionData struct {
	Emoji string `json:"emoji"`
	Added bool   `json:"added"`
}

// SetReaction implements store.Store.
func (db *DB) SetReaction(ctx context.Context, convID, msgID, userID, emoji string, add bool, maxDistinct int, at time.Time) (*store.Event, error) {
	var ev *store.Event
	err := db.changeTx(ctx, convID, func(tx *sql.Tx, seq int64) error {
		exists, tomb, err := messageState(ctx, tx, convID, msgID)
		switch {
		case err != nil:
			return err
		case !exists:
			return store.ErrNotFound
		case tomb:
			return store.ErrGone
		}
		var res sql.Result
		if add {
			var distinct int
			var mine int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(DISTINCT emoji),
				COALESCE(SUM(CASE WHEN emoji = $2 THEN 1 ELSE 0 END), 0)
				FROM reactions WHERE message_id = $1`, msgID, emoji).Scan(&distinct, &mine); err != nil {
				return err
			}
			if mine == 0 && distinct >= maxDistinct {
				return store.ErrLimit
			}
			res, err = tx.ExecContext(ctx, `INSERT INTO reactions (message_id, emoji, user_id, created_at)
				VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, msgID, emoji, userID, micros(at))
		} else {
			res, err = tx.ExecContext(ctx, "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
				msgID, emoji, userID)
		}
		if n, err := affected(res, err); err != nil {
			return err
		} else if n == 0 {
			return errNoChange
		}
		data, err := json.Marshal(reactionData{Emoji: emoji, Added: add})
		if err != nil {
			return err
		}
		ev = &store.Event{ConversationID: convID, Seq: seq, Kind: store.EventReaction, MessageID: msgID,
			ActorID: userID, Data: string(data), CreatedAt: truncMicros(at)}
		return insertEvent(ctx, tx, ev)
	})
	if errors.Is(err, errNoChange) {
		return nil, nil
	}
	if err != nil {
		return nil, db.wrap("set reaction", err)
	}
	return ev, nil
}

// ReactionCounts implements store.Store.
func (db *DB) ReactionCounts(ctx context.Context, msgIDs []string, userID string) ([]store.ReactionCount, error) {
	out := []store.ReactionCount{}
	for chunk := range slices.Chunk(msgIDs, maxInList) {
		args := []any{userID}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := db.r.QueryContext(ctx, `SELECT message_id, emoji, COUNT(*),
			MAX(CASE WHEN user_id = $1 THEN 1 ELSE 0 END), MIN(created_at) AS first_at
			FROM reactions WHERE message_id IN (`+placeholders(2, len(chunk))+`)
			GROUP BY message_id, emoji ORDER BY message_id, first_at, emoji`, args...)
		if err != nil {
			return nil, db.wrap("reaction counts", err)
		}
		for rows.Next() {
			var (
				rc    store.ReactionCount
				me    int
				first int64
			)
			if err := rows.Scan(&rc.MessageID, &rc.Emoji, &rc.Count, &me, &first); err != nil {
				rows.Close()
				return nil, db.wrap("reaction counts", err)
			}
			rc.Me = me == 1
			out = append(out, rc)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("reaction counts", err)
		}
	}
	return out, nil
}

// settingsData is the data of an EventSettings.
type settingsData struct {
	ExpireAfter int64 `json:"expireAfter"` // seconds
}

// SetExpireAfter implements store.Store.
func (db *DB) SetExpireAfter(ctx context.Context, convID, actorID string, d time.Duration, at time.Time) (*store.Event, error) {
	secs := int64(d / time.Second)
	var ev *store.Event
	err := db.changeTx(ctx, convID, func(tx *sql.Tx, seq int64) error {
		res, err := tx.ExecContext(ctx, "UPDATE conversations SET expire_after = $1 WHERE id = $2 AND expire_after <> $1",
			secs, convID)
		if n, err := affected(res, err); err != nil {
			return err
		} else if n == 0 {
			return errNoChange // the conversation exists: changeTx found it
		}
		data, err := json.Marshal(settingsData{ExpireAfter: secs})
		if err != nil {
			return err
		}
		ev = &store.Event{ConversationID: convID, Seq: seq, Kind: store.EventSettings, ActorID: actorID,
			Data: string(data), CreatedAt: truncMicros(at)}
		return insertEvent(ctx, tx, ev)
	})
	if errors.Is(err, errNoChange) {
		return nil, nil
	}
	if err != nil {
		return nil, db.wrap("set expire after", err)
	}
	return ev, nil
}

// EventsAfter implements store.Store.
func (db *DB) EventsAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]store.Event, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT conversation_id, seq, kind, message_id, actor_id, data, created_at
		FROM conversation_events WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		convID, afterSeq, max(limit, 0))
	if err != nil {
		return nil, db.wrap("events after", err)
	}
	defer rows.Close()
	out := []store.Event{}
	for rows.Next() {
		var (
			e       store.Event
			created int64
		)
		if err := rows.Scan(&e.ConversationID, &e.Seq, &e.Kind, &e.MessageID, &e.ActorID, &e.Data, &created); err != nil {
			return nil, db.wrap("events after", err)
		}
		e.CreatedAt = fromMicros(created)
		out = append(out, e)
	}
	return out, db.wrap("events after", rows.Err())
}

// ExpiredMessages implements store.Store (the messages_expiry index).
func (db *DB) ExpiredMessages(ctx context.Context, now time.Time, limit int) ([]store.Message, error) {
	ms, err := db.queryMessages(ctx, "SELECT "+messageCols+` FROM messages
		WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND expires_at <= $1
		ORDER BY expires_at, conversation_id, seq LIMIT $2`, micros(now), max(limit, 0))
	return ms, db.wrap("expired messages", err)
}

// ExpiryBacklog implements store.Store.
func (db *DB) ExpiryBacklog(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := db.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM messages
		WHERE expires_at IS NOT NULL AND deleted_at IS NULL AND expires_at <= $1`, micros(now)).Scan(&n)
	return n, db.wrap("expiry backlog", err)
}

// TakeLease implements store.Store with one upsert: the row changes only
// when the lease is free, expired or already the holder's.
func (db *DB) TakeLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	res, err := db.w.ExecContext(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= $4`,
		name, holder, micros(now.Add(ttl)), micros(now))
	n, err := affected(res, err)
	if err != nil {
		return false, db.wrap("take lease", err)
	}
	return n == 1, nil
}
