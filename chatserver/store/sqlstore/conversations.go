package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

const convCols = "c.id, c.kind, c.title_sealed, c.direct_key, c.created_by, c.created_at, c.last_seq, c.last_activity, c.expire_after, c.e2ee, c.mls_epoch"

// convDest returns scan destinations for convCols and a func that finishes c
// after the scan.
func convDest(c *store.Conversation) ([]any, func()) {
	var (
		directKey           sql.NullString
		created, lastActive int64
		expireAfter, e2ee   int64
	)
	dest := []any{&c.ID, &c.Kind, &c.TitleSealed, &directKey, &c.CreatedBy, &created, &c.LastSeq, &lastActive, &expireAfter,
		&e2ee, &c.MLSEpoch}
	return dest, func() {
		c.E2EE = e2ee != 0
		c.ExpireAfter = time.Duration(expireAfter) * time.Second
		c.DirectKey = directKey.String
		c.CreatedAt, c.LastActivity = fromMicros(created), fromMicros(lastActive)
	}
}

// CreateConversation stores c (with LastSeq 0; LastActivity defaults to
// CreatedAt) and its first members in one transaction. Each member's
// ConversationID is taken from c.
func (db *DB) CreateConversation(ctx context.Context, c *store.Conversation, members []store.Member) error {
	lastActivity := c.LastActivity
	if lastActivity.IsZero() {
		lastActivity = c.CreatedAt
	}
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO conversations
			(id, kind, title_sealed, direct_key, created_by, created_at, last_seq, last_activity, e2ee)
			VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8)`,
			c.ID, c.Kind, c.TitleSealed, nullString(c.DirectKey), c.CreatedBy, micros(c.CreatedAt), micros(lastActivity),
			boolInt(c.E2EE))
		if err != nil {
			return err
		}
		for _, m := range members {
			m.ConversationID = c.ID
			if err := insertMember(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
	return db.wrap("create conversation", err)
}

func insertMember(ctx context.Context, q querier, m store.Member) error {
	_, err := q.ExecContext(ctx,
		"INSERT INTO members (conversation_id, user_id, role, joined_at, read_seq) VALUES ($1, $2, $3, $4, $5)",
		m.ConversationID, m.UserID, m.Role, micros(m.JoinedAt), m.ReadSeq)
	return err
}

func (db *DB) conversationWhere(ctx context.Context, op, where string, arg string) (*store.Conversation, error) {
	var c store.Conversation
	dest, finish := convDest(&c)
	if err := db.r.QueryRowContext(ctx, "SELECT "+convCols+" FROM conversations c WHERE "+where, arg).Scan(dest...); err != nil {
		return nil, db.wrap(op, err)
	}
	finish()
	return &c, nil
}

// Conversation implements store.Store.
func (db *DB) Conversation(ctx context.Context, id string) (*store.Conversation, error) {
	return db.conversationWhere(ctx, "conversation", "c.id = $1", id)
}

// ConversationByDirectKey implements store.Store.
func (db *DB) ConversationByDirectKey(ctx context.Context, directKey string) (*store.Conversation, error) {
	if directKey == "" {
		return nil, db.wrap("conversation by direct key", store.ErrNotFound)
	}
	return db.conversationWhere(ctx, "conversation by direct key", "c.direct_key = $1", directKey)
}

const memberCols = "conversation_id, user_id, role, joined_at, read_seq, muted_until"

func scanMember(s scanner) (store.Member, error) {
	var (
		m             store.Member
		joined, muted int64
	)
	if err := s.Scan(&m.ConversationID, &m.UserID, &m.Role, &joined, &m.ReadSeq, &muted); err != nil {
		return store.Member{}, err
	}
	m.JoinedAt, m.MutedUntil = fromMicros(joined), fromMuteMicros(muted)
	return m, nil
}

// Member implements store.Store.
func (db *DB) Member(ctx context.Context, convID, userID string) (*store.Member, error) {
	m, err := scanMember(db.r.QueryRowContext(ctx,
		"SELECT "+memberCols+" FROM members WHERE conversation_id = $1 AND user_id = $2", convID, userID))
	if err != nil {
		return nil, db.wrap("member", err)
	}
	return &m, nil
}

// Members returns the conversation's members ordered by user id; empty when
// the conversation does not exist.
func (db *DB) Members(ctx context.Context, convID string) ([]store.Member, error) {
	rows, err := db.r.QueryContext(ctx,
		"SELECT "+memberCols+" FROM members WHERE conversation_id = $1 ORDER BY user_id", convID)
	if err != nil {
		return nil, db.wrap("members", err)
	}
	defer rows.Close()
	ms := []store.Member{}
	for rows.Next() {
		m, err := scanMember(rows)
		if err != nil {
			return nil, db.wrap("members", err)
		}
		ms = append(ms, m)
	}
	return ms, db.wrap("members", rows.Err())
}

// AddMember stores m: ErrConflict when already a member, ErrNotFound when the
// conversation or the user does not exist.
func (db *DB) AddMember(ctx context.Context, m store.Member) error {
	return db.wrap("add member", db.inTx(ctx, func(tx *sql.Tx) error {
		if err := bumpMembersVersion(ctx, tx, m.ConversationID); err != nil {
			return err
		}
		return insertMember(ctx, tx, m)
	}))
}

// RemoveMember deletes the membership; ErrNotFound when there is none.
func (db *DB) RemoveMember(ctx context.Context, convID, userID string) error {
	return db.wrap("remove member", db.inTx(ctx, func(tx *sql.Tx) error {
		if err := bumpMembersVersion(ctx, tx, convID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2", convID, userID)
		return mustAffect(res, err)
	}))
}

// bumpMembersVersion raises the conversation's membership version. It runs
// first in its transaction: the conversation's row lock, then members, the
// order AppendMessage takes them in, so the two never deadlock.
func bumpMembersVersion(ctx context.Context, tx *sql.Tx, convID string) error {
	res, err := tx.ExecContext(ctx, "UPDATE conversations SET members_version = members_version + 1 WHERE id = $1", convID)
	return mustAffect(res, err)
}

// MembersVersioned implements store.Store in one statement (one snapshot).
func (db *DB) MembersVersioned(ctx context.Context, convID string) ([]store.Member, int64, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT c.members_version, m."+strings.ReplaceAll(memberCols, ", ", ", m.")+
		" FROM conversations c JOIN members m ON m.conversation_id = c.id WHERE c.id = $1 ORDER BY m.user_id", convID)
	if err != nil {
		return nil, 0, db.wrap("members", err)
	}
	defer rows.Close()
	var version int64
	ms := []store.Member{}
	for rows.Next() {
		m, err := scanMember(prefixScanner{rows, []any{&version}})
		if err != nil {
			return nil, 0, db.wrap("members", err)
		}
		ms = append(ms, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, db.wrap("members", err)
	}
	if len(ms) == 0 {
		// No members (or no conversation): say so by the version too.
		return ms, -1, nil
	}
	return ms, version, nil
}

// SetMemberRole implements store.Store.
func (db *DB) SetMemberRole(ctx context.Context, convID, userID, role string) error {
	res, err := db.w.ExecContext(ctx, "UPDATE members SET role = $1 WHERE conversation_id = $2 AND user_id = $3",
		role, convID, userID)
	return db.wrap("set member role", mustAffect(res, err))
}

// SetConversationTitle implements store.Store.
func (db *DB) SetConversationTitle(ctx context.Context, convID, titleSealed string) error {
	res, err := db.w.ExecContext(ctx, "UPDATE conversations SET title_sealed = $1 WHERE id = $2", titleSealed, convID)
	return db.wrap("set conversation title", mustAffect(res, err))
}

// DeleteConversation implements store.Store; the rows that refer to the
// conversation go with it (ON DELETE CASCADE).
func (db *DB) DeleteConversation(ctx context.Context, convID string) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// The attachments outlive the rows that name them until the purger
		// has deleted their blobs.
		if _, err := tx.ExecContext(ctx, "UPDATE attachments SET state = $1 WHERE conversation_id = $2",
			store.AttachmentDeleted, convID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, "DELETE FROM conversations WHERE id = $1", convID)
		return mustAffect(res, err)
	})
	return db.wrap("delete conversation", err)
}

// ConversationPeers returns, ordered, the users sharing a conversation with userID.
func (db *DB) ConversationPeers(ctx context.Context, userID string) ([]string, error) {
	return db.userIDs(ctx, "conversation peers", `SELECT DISTINCT o.user_id
		FROM members me JOIN members o ON o.conversation_id = me.conversation_id
		WHERE me.user_id = $1 AND o.user_id <> $1
		ORDER BY o.user_id`, userID)
}

// PresencePeers implements store.Store. The size of each of the user's
// conversations is counted on the members primary key.
func (db *DB) PresencePeers(ctx context.Context, userID string, maxMembers int) ([]string, error) {
	return db.userIDs(ctx, "presence peers", `SELECT DISTINCT o.user_id
		FROM members me JOIN members o ON o.conversation_id = me.conversation_id
		WHERE me.user_id = $1 AND o.user_id <> $1
		  AND (SELECT COUNT(*) FROM members n WHERE n.conversation_id = me.conversation_id) <= $2
		ORDER BY o.user_id`, userID, maxMembers)
}

// userIDs runs a query of one id column.
func (db *DB) userIDs(ctx context.Context, op, query string, args ...any) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	defer rows.Close()
	ids := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.wrap(op, err)
		}
		ids = append(ids, id)
	}
	return ids, db.wrap(op, rows.Err())
}

// ConversationHeads implements store.Store: one query per maxInList ids.
func (db *DB) ConversationHeads(ctx context.Context, ids []string) (map[string]int64, error) {
	out := make(map[string]int64, len(ids))
	for chunk := range slices.Chunk(ids, maxInList) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := db.r.QueryContext(ctx,
			"SELECT id, last_seq FROM conversations WHERE id IN ("+placeholders(1, len(chunk))+")", args...)
		if err != nil {
			return nil, db.wrap("conversation heads", err)
		}
		for rows.Next() {
			var id string
			var seq int64
			if err := rows.Scan(&id, &seq); err != nil {
				rows.Close()
				return nil, db.wrap("conversation heads", err)
			}
			out[id] = seq
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("conversation heads", err)
		}
	}
	return out, nil
}
