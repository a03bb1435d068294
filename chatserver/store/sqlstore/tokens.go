package sqlstore

import (
	"context"
	"database/sql"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

const tokenCols = "id, user_id, family_id, parent_id, token_hash, created_at, expires_at, used_at, revoked_at"

func insertToken(ctx context.Context, q querier, t *store.RefreshToken) error {
	_, err := q.ExecContext(ctx, "INSERT INTO refresh_tokens ("+tokenCols+") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
		t.ID, t.UserID, t.FamilyID, t.ParentID, t.TokenHash, micros(t.CreatedAt), micros(t.ExpiresAt),
		nullMicros(t.UsedAt), nullMicros(t.RevokedAt))
	return err
}

// CreateRefreshToken stores t; ErrConflict when its id or hash exists,
// ErrNotFound when its user does not.
func (db *DB) CreateRefreshToken(ctx context.Context, t *store.RefreshToken) error {
	return db.wrap("create refresh token", insertToken(ctx, db.w, t))
}

// RefreshTokenByHash implements store.Store.
func (db *DB) RefreshTokenByHash(ctx context.Context, tokenHash string) (*store.RefreshToken, error) {
	var (
		t                 store.RefreshToken
		created, expires  int64
		usedAt, revokedAt sql.NullInt64
	)
	err := db.r.QueryRowContext(ctx, "SELECT "+tokenCols+" FROM refresh_tokens WHERE token_hash = $1", tokenHash).
		Scan(&t.ID, &t.UserID, &t.FamilyID, &t.ParentID, &t.TokenHash, &created, &expires, &usedAt, &revokedAt)
	if err != nil {
		return nil, db.wrap("refresh token by hash", err)
	}
	t.CreatedAt, t.ExpiresAt = fromMicros(created), fromMicros(expires)
	t.UsedAt, t.RevokedAt = fromNullMicros(usedAt), fromNullMicros(revokedAt)
	return &t, nil
}

// RotateRefreshToken marks oldID used and stores next in one transaction. The
// UPDATE's WHERE is the compare-and-set: of two racing rotations only one
// matches the row (PostgreSQL re-checks it after the row lock; SQLite runs
// write transactions one at a time). ErrNotFound when oldID does not exist.
func (db *DB) RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *store.RefreshToken) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx,
			"UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
			micros(now), oldID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, "SELECT 1 FROM refresh_tokens WHERE id = $1", oldID).Scan(&one); err != nil {
				return err // sql.ErrNoRows: no such token
			}
			return store.ErrTokenSpent
		}
		return insertToken(ctx, tx, next)
	})
	return db.wrap("rotate refresh token", err)
}

// RevokeRefreshFamily implements store.Store.
func (db *DB) RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx,
		"UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL", micros(now), familyID)
	n, err := affected(res, err)
	return n, db.wrap("revoke refresh family", err)
}

// SessionRevoked implements store.Store (one indexed lookup).
func (db *DB) SessionRevoked(ctx context.Context, familyID string) (bool, error) {
	var live bool
	err := db.r.QueryRowContext(ctx,
		"SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL)", familyID).Scan(&live)
	return !live, db.wrap("session revoked", err)
}

// Credentials implements store.Store: the user's row and the login's state
// in one statement, where authentication used to read them in two.
func (db *DB) Credentials(ctx context.Context, userID, familyID string) (*store.Credentials, error) {
	var (
		c     store.Credentials
		after int64
		live  bool
	)
	err := db.r.QueryRowContext(ctx, `SELECT tokens_valid_after, deleted_at IS NOT NULL,
		EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $2 AND revoked_at IS NULL)
		FROM users WHERE id = $1`, userID, familyID).Scan(&after, &c.Deleted, &live)
	if err != nil {
		return nil, db.wrap("credentials", err)
	}
	c.TokensValidAfter, c.SessionEnded = fromMicros(after), !live
	return &c, nil
}

// RevokeUserRefreshTokens implements store.Store.
func (db *DB) RevokeUserRefreshTokens(ctx context.Context, userID, exceptFamily string, now time.Time) (int64, error) {
	res, err := db.w.ExecContext(ctx,
		"UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND family_id <> $3 AND revoked_at IS NULL",
		micros(now), userID, exceptFamily)
	n, err := affected(res, err)
	return n, db.wrap("revoke user refresh tokens", err)
}

func affected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
