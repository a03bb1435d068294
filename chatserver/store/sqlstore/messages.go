package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

const messageCols = "conversation_id, seq, id, sender_id, client_id, body_sealed, key_id, created_at, " +
	"reply_to, edited_at, expires_at, deleted_at, deleted_by, delete_reason, mentions, mls"

func scanMessage(s scanner) (store.Message, error) {
	var (
		m                        store.Message
		clientID                 sql.NullString
		created                  int64
		edited, expires, deleted sql.NullInt64
		mentions                 string
		mls                      int64
	)
	if err := s.Scan(&m.ConversationID, &m.Seq, &m.ID, &m.SenderID, &clientID, &m.BodySealed, &m.KeyID, &created,
		&m.ReplyTo, &edited, &expires, &deleted, &m.DeletedBy, &m.DeleteReason, &mentions, &mls); err != nil {
		return store.Message{}, err
	}
	m.MLS = mls != 0
	m.Mentions = splitIDs(mentions)
	m.ClientID, m.CreatedAt = clientID.String, fromMicros(created)
	m.EditedAt, m.ExpiresAt, m.DeletedAt = fromNullMicros(edited), fromNullMicros(expires), fromNullMicros(deleted)
	return m, nil
}

func messageByClientID(ctx context.Context, q querier, convID, senderID, clientID string) (*store.Message, error) {
	m, err := scanMessage(q.QueryRowContext(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_id = $3",
		convID, senderID, clientID))
	if err != nil {
		return nil, err
	}
	return &m, nil
}

// AppendMessage stores m with the next seq of its conversation. The UPDATE of
// the conversation's last_seq is what serialises senders: PostgreSQL holds its
// row lock until commit, SQLite runs one write transaction at a time. A failed
// insert rolls the increment back, so seqs stay gapless. An empty ClientID
// (stored as NULL) means no idempotency. ErrNotFound when the conversation
// does not exist, ErrConflict when m.ID is taken.
func (db *DB) AppendMessage(ctx context.Context, m *store.Message) (*store.Message, bool, error) {
	stored := *m
	stored.CreatedAt = truncMicros(m.CreatedAt)
	if m.ExpiresAt != nil {
		e := truncMicros(*m.ExpiresAt)
		stored.ExpiresAt = &e
	}
	if db.d == postgresDialect && len(m.Attachments) == 0 {
		return db.appendOneStatement(ctx, &stored, m.PushDue)
	}
	var prev *store.Message
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if m.ClientID != "" {
			p, err := messageByClientID(ctx, tx, m.ConversationID, m.SenderID, m.ClientID)
			if err == nil {
				// A retry, answered only to a sender still a member (no
				// row: ErrNotFound).
				if err := tx.QueryRowContext(ctx, `SELECT members_version FROM conversations WHERE id = $1
					AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)`,
					m.ConversationID, m.SenderID).Scan(&p.MembersVersion); err != nil {
					return err
				}
				prev = p
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		// last_activity never moves backwards, whatever the clocks of the
		// replicas say.
		var expireAfter int64
		err := tx.QueryRowContext(ctx, `UPDATE conversations
			SET last_seq = last_seq + 1,
			    last_activity = CASE WHEN last_activity < $1 THEN $1 ELSE last_activity END
			WHERE id = $2 AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $2 AND user_id = $3)
			  AND e2ee = $4 AND ($4 = 0 OR mls_epoch = $5)
			RETURNING last_seq, expire_after, members_version`, micros(m.CreatedAt), m.ConversationID, m.SenderID,
			boolInt(m.MLS), m.MLSEpoch).Scan(&stored.Seq, &expireAfter, &stored.MembersVersion)
		if errors.Is(err, sql.ErrNoRows) {
			return db.whyNoSeq(ctx, tx, m)
		}
		if err != nil {
			return err
		}
		// The setting in force when the message takes its seq decides:
		// a change of it is ordered before or after this message.
		if stored.ExpiresAt == nil && expireAfter > 0 {
			e := stored.CreatedAt.Add(time.Duration(expireAfter) * time.Second)
			stored.ExpiresAt = &e
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO messages (conversation_id, seq, id, sender_id, client_id,
			body_sealed, key_id, created_at, reply_to, expires_at, mentions, mls)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			stored.ConversationID, stored.Seq, stored.ID, stored.SenderID, nullString(stored.ClientID),
			stored.BodySealed, stored.KeyID, micros(stored.CreatedAt), stored.ReplyTo, nullMicros(stored.ExpiresAt),
			joinIDs(stored.Mentions), boolInt(stored.MLS))
		if err != nil {
			return err
		}
		if m.PushDue != nil {
			if err := enqueuePush(ctx, tx, &stored, *m.PushDue); err != nil {
				return err
			}
		}
		if err := attach(ctx, tx, &stored); err != nil {
			return err
		}
		// Whoever writes has read everything up to their own message.
		_, err = tx.ExecContext(ctx, `UPDATE members SET read_seq = $1
			WHERE conversation_id = $2 AND user_id = $3 AND read_seq < $1`,
			stored.Seq, stored.ConversationID, stored.SenderID)
		return err
	})
	if prev != nil {
		return prev, false, nil
	}
	if err != nil && m.ClientID != "" && errors.Is(db.d.errKind(err), store.ErrConflict) {
		// Two sends of one client id raced past the lookup; the other one
		// committed first. Its transaction is over, so read it outside ours.
		if p, rerr := messageByClientID(ctx, db.w, m.ConversationID, m.SenderID, m.ClientID); rerr == nil {
			return p, false, nil
		}
	}
	if err != nil {
		return nil, false, db.wrap("append message", err)
	}
	return &stored, true, nil
}

// appendPG is AppendMessage on PostgreSQL in one statement, so one round
// trip instead of seven (BEGIN, idempotency read, seq, insert, push outbox,
// read marker, COMMIT). Every part of one statement commits or rolls back
// together, and data-modifying CTEs all run whether or not the final SELECT
// reads them. The UPDATE of conversations still serialises senders: a
// concurrent one waits for the row lock and then re-reads last_seq (READ
// COMMITTED re-checks the updated row), so seqs stay gapless. Two sends of one
// client id that both miss "prev" (one snapshot) meet at the unique index:
// the later statement fails whole and AppendMessage reads the winner.
// $1 conversation, $2 sender, $3 client id (NULL: no idempotency), $4 id,
// $5 sealed body, $6 key id, $7 created (µs), $8 reply to, $9 expires (µs or
// NULL), $10 mentions, $11 push due (µs or NULL: no push job), $12 mls (0 or
// 1: must match the conversation's e2ee), $13 the MLS epoch (mls only).
const appendPG = `WITH prev AS (
	SELECT ` + messageCols + ` FROM messages
	WHERE conversation_id = $1 AND sender_id = $2 AND client_id = $3::text
		AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)
), conv AS (
	UPDATE conversations
	SET last_seq = last_seq + 1, last_activity = GREATEST(last_activity, $7::bigint)
	WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM prev)
		AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)
		AND e2ee = $12::bigint AND ($12::bigint = 0 OR mls_epoch = $13::bigint)
	RETURNING last_seq, expire_after, members_version
), ins AS (
	INSERT INTO messages (conversation_id, seq, id, sender_id, client_id,
		body_sealed, key_id, created_at, reply_to, expires_at, mentions, mls)
	SELECT $1, conv.last_seq, $4, $2, $3::text, $5, $6, $7::bigint, $8,
		CASE WHEN $9::bigint IS NULL AND conv.expire_after > 0
			THEN $7::bigint + conv.expire_after * 1000000 ELSE $9::bigint END,
		$10, $12::bigint
	FROM conv
	RETURNING ` + messageCols + `
), push AS (
	INSERT INTO push_jobs (message_id, conversation_id, seq, sender_id, stored_at, due_at)
	SELECT ins.id, ins.conversation_id, ins.seq, ins.sender_id, ins.created_at, $11::bigint FROM ins
	WHERE $11::bigint IS NOT NULL AND EXISTS (
		SELECT 1 FROM members mb JOIN push_subscriptions ps ON ps.user_id = mb.user_id
		WHERE mb.conversation_id = $1 AND mb.user_id <> $2)
), mark AS (
	UPDATE members SET read_seq = ins.seq FROM ins
	WHERE members.conversation_id = $1 AND members.user_id = $2 AND members.read_seq < ins.seq
)
SELECT true, (SELECT members_version FROM conv), ins.* FROM ins
UNION ALL SELECT false, (SELECT members_version FROM conversations WHERE id = $1), prev.* FROM prev`

// appendOneStatement runs appendPG; stored has the message with its times
// truncated to microseconds (what the database keeps).
func (db *DB) appendOneStatement(ctx context.Context, stored *store.Message, pushDue *time.Time) (*store.Message, bool, error) {
	var due sql.NullInt64
	if pushDue != nil {
		due = sql.NullInt64{Int64: micros(*pushDue), Valid: true}
	}
	var (
		created bool
		version int64
	)
	out, err := scanMessage(prefixScanner{db.w.QueryRowContext(ctx, appendPG,
		stored.ConversationID, stored.SenderID, nullString(stored.ClientID), stored.ID, stored.BodySealed,
		stored.KeyID, micros(stored.CreatedAt), stored.ReplyTo, nullMicros(stored.ExpiresAt),
		joinIDs(stored.Mentions), due, boolInt(stored.MLS), stored.MLSEpoch), []any{&created, &version}})
	if err != nil && stored.ClientID != "" && errors.Is(db.d.errKind(err), store.ErrConflict) {
		// Two sends of one client id raced past "prev"; the other committed.
		if p, rerr := messageByClientID(ctx, db.w, stored.ConversationID, stored.SenderID, stored.ClientID); rerr == nil {
			return p, false, nil
		}
	}
	if errors.Is(err, sql.ErrNoRows) && stored.MLS {
		err = db.whyNoSeq(ctx, db.r, stored)
	}
	if err != nil {
		// No row: the conversation does not exist or the sender is not a
		// member (ErrNotFound), or (MLS) the epoch moved (ErrStaleEpoch).
		return nil, false, db.wrap("append message", err)
	}
	out.MembersVersion = version
	return &out, created, nil
}

// whyNoSeq tells why a message took no seq: ErrStaleEpoch when the sender
// is a member of the e2ee conversation and only the epoch differs, else
// ErrNotFound (no conversation, not a member, or the message's kind does not
// fit the conversation, which callers check before).
func (db *DB) whyNoSeq(ctx context.Context, q querier, m *store.Message) error {
	if !m.MLS {
		return store.ErrNotFound
	}
	var epoch int64
	err := q.QueryRowContext(ctx, `SELECT mls_epoch FROM conversations WHERE id = $1 AND e2ee = 1
		AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)`,
		m.ConversationID, m.SenderID).Scan(&epoch)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return err
	case epoch != m.MLSEpoch:
		return store.ErrStaleEpoch
	}
	return store.ErrNotFound
}

// prefixScanner scans leading columns into first, then the rest as asked.
type prefixScanner struct {
	s     scanner
	first []any
}

func (p prefixScanner) Scan(dest ...any) error {
	return p.s.Scan(append(p.first, dest...)...)
}

// MessagesAfter returns messages with seq > afterSeq, ascending, at most limit.
func (db *DB) MessagesAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]store.Message, error) {
	ms, err := db.queryMessages(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
		convID, afterSeq, max(limit, 0))
	return ms, db.wrap("messages after", err)
}

// MessagesBefore returns the newest messages with seq < beforeSeq, ascending,
// at most limit.
func (db *DB) MessagesBefore(ctx context.Context, convID string, beforeSeq int64, limit int) ([]store.Message, error) {
	ms, err := db.queryMessages(ctx, "SELECT "+messageCols+
		" FROM messages WHERE conversation_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
		convID, beforeSeq, max(limit, 0))
	slices.Reverse(ms)
	return ms, db.wrap("messages before", err)
}

func (db *DB) queryMessages(ctx context.Context, q string, args ...any) ([]store.Message, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ms := []store.Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, rows.Err()
}

// MarkRead raises the member's read_seq to min(seq, last_seq). No transaction
// is needed: last_seq only grows, so the target stays valid, and the
// "read_seq < target" condition keeps the update monotonic against racing calls.
func (db *DB) MarkRead(ctx context.Context, convID, userID string, seq int64) (int64, error) {
	var readSeq, lastSeq int64
	// Read on the reader pool: on SQLite the single writer is the scarce resource.
	err := db.r.QueryRowContext(ctx, `SELECT m.read_seq, c.last_seq
		FROM members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.conversation_id = $1 AND m.user_id = $2`, convID, userID).Scan(&readSeq, &lastSeq)
	if err != nil {
		return 0, db.wrap("mark read", err)
	}
	target := min(seq, lastSeq)
	if target <= readSeq {
		return readSeq, nil
	}
	res, err := db.w.ExecContext(ctx,
		"UPDATE members SET read_seq = $1 WHERE conversation_id = $2 AND user_id = $3 AND read_seq < $1",
		target, convID, userID)
	n, err := affected(res, err)
	if err != nil {
		return 0, db.wrap("mark read", err)
	}
	if n == 1 {
		return target, nil
	}
	// A concurrent call raised it further (or the member just left).
	err = db.r.QueryRowContext(ctx, "SELECT read_seq FROM members WHERE conversation_id = $1 AND user_id = $2",
		convID, userID).Scan(&readSeq)
	return readSeq, db.wrap("mark read", err)
}

// UserMessages implements store.Store.
func (db *DB) UserMessages(ctx context.Context, userID, afterConv string, afterSeq int64, limit int) ([]store.Message, error) {
	ms, err := db.queryMessages(ctx, "SELECT "+messageCols+` FROM messages
		WHERE sender_id = $1 AND (conversation_id > $2 OR (conversation_id = $2 AND seq > $3)) AND deleted_at IS NULL
		ORDER BY conversation_id, seq LIMIT $4`, userID, afterConv, afterSeq, max(limit, 0))
	return ms, db.wrap("user messages", err)
}

// UserReactions implements store.Store.
func (db *DB) UserReactions(ctx context.Context, userID, afterMsg, afterEmoji string, limit int) ([]store.Reaction, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT m.conversation_id, r.message_id, r.emoji, r.created_at
		FROM reactions r JOIN messages m ON m.id = r.message_id
		WHERE r.user_id = $1 AND (r.message_id > $2 OR (r.message_id = $2 AND r.emoji > $3))
		ORDER BY r.message_id, r.emoji LIMIT $4`, userID, afterMsg, afterEmoji, max(limit, 0))
	if err != nil {
		return nil, db.wrap("user reactions", err)
	}
	defer rows.Close()
	out := []store.Reaction{}
	for rows.Next() {
		var (
			r  store.Reaction
			at int64
		)
		if err := rows.Scan(&r.ConversationID, &r.MessageID, &r.Emoji, &at); err != nil {
			return nil, db.wrap("user reactions", err)
		}
		r.CreatedAt = fromMicros(at)
		out = append(out, r)
	}
	return out, db.wrap("user reactions", rows.Err())
}
