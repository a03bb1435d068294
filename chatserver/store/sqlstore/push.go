package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// splitIDs and joinIDs store a short list of ids (mentions) in one column.
func splitIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

func joinIDs(ids []string) string { return strings.Join(ids, " ") }

// fromMuteMicros reads a mute or do-not-disturb time: 0 is "off".
func fromMuteMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return fromMicros(v)
}

func muteMicros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return micros(t)
}

// enqueuePush writes the push job of a new message, in its transaction, only
// when another member has a subscription: a conversation nobody could be
// pushed about costs one indexed EXISTS and no write.
func enqueuePush(ctx context.Context, tx *sql.Tx, m *store.Message, due time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO push_jobs (message_id, conversation_id, seq, sender_id, stored_at, due_at)
		SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (
			SELECT 1 FROM members mb JOIN push_subscriptions ps ON ps.user_id = mb.user_id
			WHERE mb.conversation_id = $2 AND mb.user_id <> $4)`,
		m.ID, m.ConversationID, m.Seq, m.SenderID, micros(m.CreatedAt), micros(due))
	return err
}

const pushSubCols = "id, user_id, endpoint, p256dh, auth, vapid_key_id, created_at"

func scanPushSub(s scanner) (store.PushSubscription, error) {
	var (
		p       store.PushSubscription
		created int64
	)
	if err := s.Scan(&p.ID, &p.UserID, &p.Endpoint, &p.P256DH, &p.Auth, &p.VAPIDKeyID, &created); err != nil {
		return store.PushSubscription{}, err
	}
	p.CreatedAt = fromMicros(created)
	return p, nil
}

// SavePushSubscription implements store.Store.
func (db *DB) SavePushSubscription(ctx context.Context, sub *store.PushSubscription, max int) (*store.PushSubscription, error) {
	var out store.PushSubscription
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		// Lock the user's row on PostgreSQL so two subscribes at once
		// cannot both pass the count (SQLite runs one writer at a time).
		lock := "SELECT id FROM users WHERE id = $1"
		if db.d == postgresDialect {
			lock += " FOR UPDATE"
		}
		var id string
		if err := tx.QueryRowContext(ctx, lock, sub.UserID).Scan(&id); err != nil {
			return err
		}
		var others int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2",
			sub.UserID, sub.Endpoint).Scan(&others); err != nil {
			return err
		}
		if others >= max {
			return store.ErrLimit
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO push_subscriptions (`+pushSubCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, p256dh = excluded.p256dh,
				auth = excluded.auth, vapid_key_id = excluded.vapid_key_id, created_at = excluded.created_at`,
			sub.ID, sub.UserID, sub.Endpoint, sub.P256DH, sub.Auth, sub.VAPIDKeyID, micros(sub.CreatedAt))
		if err != nil {
			return err
		}
		out, err = scanPushSub(tx.QueryRowContext(ctx, "SELECT "+pushSubCols+" FROM push_subscriptions WHERE endpoint = $1",
			sub.Endpoint))
		return err
	})
	if err != nil {
		return nil, db.wrap("save push subscription", err)
	}
	return &out, nil
}

// PushSubscriptions implements store.Store.
func (db *DB) PushSubscriptions(ctx context.Context, userIDs []string) ([]store.PushSubscription, error) {
	out := []store.PushSubscription{}
	for chunk := range chunks(userIDs, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := db.r.QueryContext(ctx, "SELECT "+pushSubCols+" FROM push_subscriptions WHERE user_id IN ("+
			placeholders(1, len(chunk))+") ORDER BY user_id, id", args...)
		if err != nil {
			return nil, db.wrap("push subscriptions", err)
		}
		for rows.Next() {
			p, err := scanPushSub(rows)
			if err != nil {
				rows.Close()
				return nil, db.wrap("push subscriptions", err)
			}
			out = append(out, p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("push subscriptions", err)
		}
	}
	return out, nil
}

// chunks yields s in pieces of at most n.
func chunks(s []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

// DeletePushSubscription implements store.Store.
func (db *DB) DeletePushSubscription(ctx context.Context, userID, key string) error {
	res, err := db.w.ExecContext(ctx, "DELETE FROM push_subscriptions WHERE user_id = $1 AND (id = $2 OR endpoint = $2)",
		userID, key)
	return db.wrap("delete push subscription", mustAffect(res, err))
}

// RemovePushSubscription implements store.Store.
func (db *DB) RemovePushSubscription(ctx context.Context, id string) (bool, error) {
	res, err := db.w.ExecContext(ctx, "DELETE FROM push_subscriptions WHERE id = $1", id)
	n, err := affected(res, err)
	return n == 1, db.wrap("remove push subscription", err)
}

// ClaimPushJobs implements store.Store. One UPDATE both picks and leases the
// rows; on PostgreSQL the pick skips rows another replica is claiming at that
// moment (SKIP LOCKED), and the outer WHERE re-checks the lease on the locked
// row, so a job is never leased twice. SQLite runs one writer at a time.
func (db *DB) ClaimPushJobs(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]store.PushJob, error) {
	pick := `SELECT message_id FROM push_jobs WHERE due_at <= $3 AND claim_until <= $3 ORDER BY due_at LIMIT $4`
	if db.d == postgresDialect {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	rows, err := db.w.QueryContext(ctx, `UPDATE push_jobs SET claimed_by = $1, claim_until = $2, attempts = attempts + 1
		WHERE message_id IN (`+pick+`) AND due_at <= $3 AND claim_until <= $3
		RETURNING message_id, conversation_id, seq, sender_id, stored_at, due_at, attempts`,
		holder, micros(now.Add(lease)), micros(now), max(limit, 0))
	if err != nil {
		return nil, db.wrap("claim push jobs", err)
	}
	defer rows.Close()
	out := []store.PushJob{}
	for rows.Next() {
		var (
			j           store.PushJob
			stored, due int64
		)
		if err := rows.Scan(&j.MessageID, &j.ConversationID, &j.Seq, &j.SenderID, &stored, &due, &j.Attempts); err != nil {
			return nil, db.wrap("claim push jobs", err)
		}
		j.StoredAt, j.DueAt = fromMicros(stored), fromMicros(due)
		out = append(out, j)
	}
	return out, db.wrap("claim push jobs", rows.Err())
}

// FinishPushJobs implements store.Store.
func (db *DB) FinishPushJobs(ctx context.Context, holder string, messageIDs []string) error {
	for chunk := range chunks(messageIDs, 500) {
		args := []any{holder}
		for _, id := range chunk {
			args = append(args, id)
		}
		if _, err := db.w.ExecContext(ctx, "DELETE FROM push_jobs WHERE claimed_by = $1 AND message_id IN ("+
			placeholders(2, len(chunk))+")", args...); err != nil {
			return db.wrap("finish push jobs", err)
		}
	}
	return nil
}

// SetMute implements store.Store.
func (db *DB) SetMute(ctx context.Context, convID, userID string, until time.Time) error {
	res, err := db.w.ExecContext(ctx, "UPDATE members SET muted_until = $1 WHERE conversation_id = $2 AND user_id = $3",
		muteMicros(until), convID, userID)
	return db.wrap("set mute", mustAffect(res, err))
}

// NotifySettings implements store.Store.
func (db *DB) NotifySettings(ctx context.Context, userIDs []string) (map[string]store.NotifySettings, error) {
	out := make(map[string]store.NotifySettings, len(userIDs))
	for chunk := range chunks(userIDs, 500) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := db.r.QueryContext(ctx, "SELECT id, push_preview, mentions_break_mute, dnd_until FROM users WHERE id IN ("+
			placeholders(1, len(chunk))+")", args...)
		if err != nil {
			return nil, db.wrap("notify settings", err)
		}
		for rows.Next() {
			var (
				id           string
				preview, mbm int64
				dnd          int64
			)
			if err := rows.Scan(&id, &preview, &mbm, &dnd); err != nil {
				rows.Close()
				return nil, db.wrap("notify settings", err)
			}
			out[id] = store.NotifySettings{PushPreview: preview != 0, MentionsBreakMute: mbm != 0, DNDUntil: fromMuteMicros(dnd)}
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("notify settings", err)
		}
	}
	return out, nil
}

// SetNotifySettings implements store.Store.
func (db *DB) SetNotifySettings(ctx context.Context, userID string, s store.NotifySettings) error {
	res, err := db.w.ExecContext(ctx, "UPDATE users SET push_preview = $1, mentions_break_mute = $2, dnd_until = $3 WHERE id = $4",
		boolInt(s.PushPreview), boolInt(s.MentionsBreakMute), muteMicros(s.DNDUntil), userID)
	return db.wrap("set notify settings", mustAffect(res, err))
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
