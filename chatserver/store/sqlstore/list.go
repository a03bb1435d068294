package sqlstore

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/chatserver/store"
)

// ListConversations returns the user's conversations, most recent activity
// first, in two queries: one for the conversations with their unread count
// and last message, one for all their members.
func (db *DB) ListConversations(ctx context.Context, userID string) ([]store.ConversationSummary, error) {
	return db.summaries(ctx, userID, "")
}

// ConversationSummary returns one conversation as ListConversations would
// show it to userID; ErrNotFound when userID is not a member.
func (db *DB) ConversationSummary(ctx context.Context, userID, convID string) (*store.ConversationSummary, error) {
	list, err := db.summaries(ctx, userID, convID)
	if err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, db.wrap("conversation summary", store.ErrNotFound)
	}
	return &list[0], nil
}

// MemberSummaries implements store.Store.
func (db *DB) MemberSummaries(ctx context.Context, convID string) ([]store.ConversationSummary, error) {
	tx, err := db.r.BeginTx(ctx, db.d.snapshot)
	if err != nil {
		return nil, db.wrap("member summaries", err)
	}
	defer tx.Rollback() // read-only
	list, _, err := listSummariesWhere(ctx, tx, `m.conversation_id = $1 AND $2 = ''`, convID, "", `m.user_id`)
	if err != nil {
		return nil, db.wrap("member summaries", err)
	}
	if len(list) == 0 {
		return list, nil
	}
	// The member list once; every summary shares it (read-only).
	one := []store.ConversationSummary{{}}
	one[0].ID = convID
	if err := listMemberIDs(ctx, tx, list[0].Viewer, convID, one, map[string]int{convID: 0}); err != nil {
		return nil, db.wrap("member summaries: members", err)
	}
	for i := range list {
		list[i].MemberIDs, list[i].Members = one[0].MemberIDs, one[0].Members
	}
	return list, nil
}

// summaries reads userID's conversations, or only convID when it is not empty.
func (db *DB) summaries(ctx context.Context, userID, convID string) ([]store.ConversationSummary, error) {
	tx, err := db.r.BeginTx(ctx, db.d.snapshot)
	if err != nil {
		return nil, db.wrap("list conversations", err)
	}
	// One snapshot for both queries, so members match the conversations.
	// Read-only: rollback is the normal end.
	defer tx.Rollback()
	list, index, err := listSummaries(ctx, tx, userID, convID)
	if err != nil {
		return nil, db.wrap("list conversations", err)
	}
	if len(list) == 0 {
		return list, nil
	}
	if err := listMemberIDs(ctx, tx, userID, convID, list, index); err != nil {
		return nil, db.wrap("list conversation members", err)
	}
	return list, nil
}

// listSummaries reads the conversations. Unread counts walk the messages
// primary key (conversation_id, seq) from read_seq on; the last message is
// the one with the highest seq (last_seq may be a change event's), a walk
// of the same key from its end.
func listSummaries(ctx context.Context, q querier, userID, convID string) ([]store.ConversationSummary, map[string]int, error) {
	return listSummariesWhere(ctx, q, `m.user_id = $1 AND ($2 = '' OR c.id = $2)`, userID, convID, `c.last_activity DESC, c.id`)
}

// listSummariesWhere reads summaries of the member rows m that where selects
// (with two parameters), in order.
func listSummariesWhere(ctx context.Context, q querier, where, p1, p2, order string) ([]store.ConversationSummary, map[string]int, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+convCols+`, m.user_id, m.role, m.read_seq, m.muted_until,
			(SELECT COUNT(*) FROM messages u
			 WHERE u.conversation_id = c.id AND u.seq > m.read_seq AND u.sender_id <> m.user_id
			   AND u.deleted_at IS NULL),
			l.seq, l.id, l.sender_id, l.client_id, l.body_sealed, l.key_id, l.created_at,
			l.reply_to, l.edited_at, l.expires_at, l.deleted_at, l.deleted_by, l.delete_reason, l.mentions, l.mls
		FROM members m
		JOIN conversations c ON c.id = m.conversation_id
		LEFT JOIN messages l ON l.conversation_id = c.id AND l.seq =
			(SELECT MAX(n.seq) FROM messages n WHERE n.conversation_id = c.id)
		WHERE `+where+`
		ORDER BY `+order, p1, p2)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	list := []store.ConversationSummary{}
	index := map[string]int{}
	for rows.Next() {
		var (
			s        store.ConversationSummary
			lm       nullMessage
			lastSeq  sql.NullInt64
			lastTime sql.NullInt64
			edited   sql.NullInt64
			expires  sql.NullInt64
			deleted  sql.NullInt64
			muted    int64
			lastMLS  sql.NullInt64
		)
		dest, finish := convDest(&s.Conversation)
		dest = append(dest, &s.Viewer, &s.Role, &s.ReadSeq, &muted, &s.Unread,
			&lastSeq, &lm.id, &lm.senderID, &lm.clientID, &lm.body, &lm.keyID, &lastTime,
			&lm.replyTo, &edited, &expires, &deleted, &lm.deletedBy, &lm.deleteReason, &lm.mentions, &lastMLS)
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, err
		}
		finish()
		s.MutedUntil = fromMuteMicros(muted)
		if lastSeq.Valid {
			s.LastMessage = &store.Message{
				ConversationID: s.ID, Seq: lastSeq.Int64, ID: lm.id.String, SenderID: lm.senderID.String,
				ClientID: lm.clientID.String, BodySealed: lm.body.String, KeyID: lm.keyID.String,
				CreatedAt: fromMicros(lastTime.Int64), ReplyTo: lm.replyTo.String,
				EditedAt: fromNullMicros(edited), ExpiresAt: fromNullMicros(expires), DeletedAt: fromNullMicros(deleted),
				DeletedBy: lm.deletedBy.String, DeleteReason: lm.deleteReason.String,
				Mentions: splitIDs(lm.mentions.String), MLS: lastMLS.Int64 != 0,
			}
		}
		s.MemberIDs = []string{}
		index[s.ID] = len(list)
		list = append(list, s)
	}
	return list, index, rows.Err()
}

// nullMessage holds the columns of a LEFT JOINed message that may be absent.
type nullMessage struct {
	id, senderID, clientID, body, keyID, replyTo, deletedBy, deleteReason, mentions sql.NullString
}

func listMemberIDs(ctx context.Context, q querier, userID, convID string, list []store.ConversationSummary, index map[string]int) error {
	rows, err := q.QueryContext(ctx, `SELECT o.conversation_id, o.user_id, o.role, o.joined_at, o.read_seq
		FROM members me JOIN members o ON o.conversation_id = me.conversation_id
		WHERE me.user_id = $1 AND ($2 = '' OR me.conversation_id = $2)
		ORDER BY o.conversation_id, o.user_id`, userID, convID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m      store.Member
			joined int64
		)
		if err := rows.Scan(&m.ConversationID, &m.UserID, &m.Role, &joined, &m.ReadSeq); err != nil {
			return err
		}
		m.JoinedAt = fromMicros(joined)
		if i, ok := index[m.ConversationID]; ok {
			list[i].MemberIDs = append(list[i].MemberIDs, m.UserID)
			list[i].Members = append(list[i].Members, m)
		}
	}
	return rows.Err()
}
