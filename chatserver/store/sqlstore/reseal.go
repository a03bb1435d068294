package sqlstore

import (
	"context"
	"strings"

	"github.com/parley-chat/parley/chatserver/store"
)

// SealedCounts counts stored ciphertexts (message bodies, group titles,
// attachments, profile photos, and the MLS KeyPackages, commits and
// Welcomes) per data key id.
func (db *DB) SealedCounts(ctx context.Context) (map[string]int64, error) {
	counts := map[string]int64{}
	// Message bodies, the files of live attachments and profile photos
	// (sealed blobs; their rows name the key).
	rows, err := db.r.QueryContext(ctx, `SELECT key_id, COUNT(*) FROM messages WHERE key_id <> '' GROUP BY key_id
		UNION ALL SELECT key_id, COUNT(*) FROM attachments WHERE key_id <> '' AND state IN ($1, $2) GROUP BY key_id
		UNION ALL SELECT avatar_key_id, COUNT(*) FROM users WHERE avatar_key_id <> '' GROUP BY avatar_key_id
		UNION ALL SELECT key_id, COUNT(*) FROM mls_key_packages WHERE package_sealed <> '' GROUP BY key_id
		UNION ALL SELECT key_id, COUNT(*) FROM mls_commits GROUP BY key_id
		UNION ALL SELECT key_id, COUNT(*) FROM mls_welcomes GROUP BY key_id`,
		store.AttachmentReady, store.AttachmentAttached)
	if err != nil {
		return nil, db.wrap("sealed counts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			k string
			n int64
		)
		if err := rows.Scan(&k, &n); err != nil {
			return nil, db.wrap("sealed counts", err)
		}
		counts[k] += n
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrap("sealed counts", err)
	}
	// Titles carry their key id in the ciphertext ("v1.<kid>.…"); groups are
	// few next to messages, so they are counted here rather than indexed.
	trows, err := db.r.QueryContext(ctx, "SELECT title_sealed FROM conversations WHERE title_sealed <> ''")
	if err != nil {
		return nil, db.wrap("sealed counts", err)
	}
	defer trows.Close()
	for trows.Next() {
		var t string
		if err := trows.Scan(&t); err != nil {
			return nil, db.wrap("sealed counts", err)
		}
		counts[sealedKeyID(t)]++
	}
	return counts, db.wrap("sealed counts", trows.Err())
}

func sealedKeyID(sealed string) string {
	parts := strings.SplitN(sealed, ".", 3)
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

// MessagesSealedWith returns up to limit messages sealed with keyID.
func (db *DB) MessagesSealedWith(ctx context.Context, keyID string, limit int) ([]store.Message, error) {
	ms, err := db.queryMessages(ctx, "SELECT "+messageCols+
		" FROM messages WHERE key_id = $1 AND deleted_at IS NULL ORDER BY conversation_id, seq LIMIT $2", keyID, max(limit, 0))
	return ms, db.wrap("messages sealed with", err)
}

// ResealMessage replaces a message's ciphertext when it still is oldSealed.
func (db *DB) ResealMessage(ctx context.Context, convID string, seq int64, oldSealed, newSealed, newKeyID string) (bool, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE messages SET body_sealed = $1, key_id = $2
		WHERE conversation_id = $3 AND seq = $4 AND body_sealed = $5`, newSealed, newKeyID, convID, seq, oldSealed)
	if err != nil {
		return false, db.wrap("reseal message", err)
	}
	n, err := res.RowsAffected()
	return n == 1, db.wrap("reseal message", err)
}

// ConversationsSealedWith returns up to limit groups whose title is sealed with keyID.
func (db *DB) ConversationsSealedWith(ctx context.Context, keyID string, limit int) ([]store.Conversation, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT "+convCols+` FROM conversations c WHERE c.title_sealed LIKE $1 ESCAPE '\' ORDER BY c.id LIMIT $2`,
		"v1."+escapeLike(keyID)+".%", max(limit, 0))
	if err != nil {
		return nil, db.wrap("conversations sealed with", err)
	}
	defer rows.Close()
	var out []store.Conversation
	for rows.Next() {
		var c store.Conversation
		dest, finish := convDest(&c)
		if err := rows.Scan(dest...); err != nil {
			return nil, db.wrap("conversations sealed with", err)
		}
		finish()
		out = append(out, c)
	}
	return out, db.wrap("conversations sealed with", rows.Err())
}

// ResealTitle replaces a group title's ciphertext when it still is oldSealed.
func (db *DB) ResealTitle(ctx context.Context, convID, oldSealed, newSealed string) (bool, error) {
	res, err := db.w.ExecContext(ctx, "UPDATE conversations SET title_sealed = $1 WHERE id = $2 AND title_sealed = $3",
		newSealed, convID, oldSealed)
	if err != nil {
		return false, db.wrap("reseal title", err)
	}
	n, err := res.RowsAffected()
	return n == 1, db.wrap("reseal title", err)
}
