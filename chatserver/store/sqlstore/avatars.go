package sqlstore

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/chatserver/store"
)

// SetAvatar implements store.Store. The old photo is read and replaced in
// one transaction (its row locked first on PostgreSQL), so two changes at
// once each get back the photo they replaced and no blob is left unnamed.
func (db *DB) SetAvatar(ctx context.Context, userID string, next store.Avatar) (store.Avatar, error) {
	var prev store.Avatar
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		q := "SELECT " + avatarCols + ", deleted_at FROM users WHERE id = $1"
		if db.d == postgresDialect {
			q += " FOR UPDATE"
		}
		var deleted sql.NullInt64
		if err := tx.QueryRowContext(ctx, q, userID).Scan(&prev.Version, &prev.BlobKey, &prev.KeyID, &prev.Stored, &deleted); err != nil {
			return err
		}
		if next.BlobKey != "" && deleted.Valid {
			return store.ErrNotFound // a deleted account gets no new photo
		}
		_, err := tx.ExecContext(ctx, `UPDATE users SET avatar_version = $1, avatar_key = $2, avatar_key_id = $3,
			avatar_stored = $4 WHERE id = $5`, next.Version, next.BlobKey, next.KeyID, next.Stored, userID)
		return err
	})
	if err != nil {
		return store.Avatar{}, db.wrap("set avatar", err)
	}
	return prev, nil
}

// AvatarsSealedWith implements store.Store.
func (db *DB) AvatarsSealedWith(ctx context.Context, keyID string, limit int) ([]store.User, error) {
	users, err := db.queryUsers(ctx, "SELECT "+userCols+" FROM users WHERE avatar_key_id = $1 ORDER BY id LIMIT $2",
		keyID, max(limit, 0))
	return users, db.wrap("avatars sealed with", err)
}

// ResealAvatar implements store.Store.
func (db *DB) ResealAvatar(ctx context.Context, userID, oldBlobKey string, next store.Avatar) (bool, error) {
	res, err := db.w.ExecContext(ctx, `UPDATE users SET avatar_version = $1, avatar_key = $2, avatar_key_id = $3,
		avatar_stored = $4 WHERE id = $5 AND avatar_key = $6 AND avatar_key <> ''`,
		next.Version, next.BlobKey, next.KeyID, next.Stored, userID, oldBlobKey)
	n, err := affected(res, err)
	return n == 1, db.wrap("reseal avatar", err)
}
