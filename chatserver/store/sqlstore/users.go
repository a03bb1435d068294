package sqlstore

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/store"
)

const (
	userInsertCols = "id, username, email, display_name, password_hash, created_at, tokens_valid_after"
	userCols       = userInsertCols + ", deleted_at, " + avatarCols
	avatarCols     = "avatar_version, avatar_key, avatar_key_id, avatar_stored"
)

func scanUser(s scanner) (store.User, error) {
	var (
		u            store.User
		created, tva int64
		deleted      sql.NullInt64
	)
	if err := s.Scan(&u.ID, &u.Username, &u.Email, &u.DisplayName, &u.PasswordHash, &created, &tva, &deleted,
		&u.Avatar.Version, &u.Avatar.BlobKey, &u.Avatar.KeyID, &u.Avatar.Stored); err != nil {
		return store.User{}, err
	}
	u.CreatedAt, u.TokensValidAfter, u.DeletedAt = fromMicros(created), fromMicros(tva), fromNullMicros(deleted)
	return u, nil
}

// CreateUser stores u; ErrConflict when its id, username or email is taken.
func (db *DB) CreateUser(ctx context.Context, u *store.User) error {
	_, err := db.w.ExecContext(ctx, "INSERT INTO users ("+userInsertCols+", display_fold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
		u.ID, u.Username, u.Email, u.DisplayName, u.PasswordHash, micros(u.CreatedAt), micros(u.TokensValidAfter),
		store.FoldName(u.DisplayName))
	return db.wrap("create user", err)
}

func (db *DB) userBy(ctx context.Context, op, col, val string) (*store.User, error) {
	q := "SELECT " + userCols + " FROM users WHERE " + col + " = $1"
	if col != "id" {
		q += " AND deleted_at IS NULL"
	}
	u, err := scanUser(db.r.QueryRowContext(ctx, q, val))
	if err != nil {
		return nil, db.wrap(op, err)
	}
	return &u, nil
}

// UserByID implements store.Store.
func (db *DB) UserByID(ctx context.Context, id string) (*store.User, error) {
	return db.userBy(ctx, "user by id", "id", id)
}

// UserByEmail implements store.Store.
func (db *DB) UserByEmail(ctx context.Context, email string) (*store.User, error) {
	return db.userBy(ctx, "user by email", "email", email)
}

// UserByUsername implements store.Store.
func (db *DB) UserByUsername(ctx context.Context, username string) (*store.User, error) {
	return db.userBy(ctx, "user by username", "username", username)
}

// maxInList bounds the placeholders of one IN (...) list, well under both
// engines' limits on bound parameters.
const maxInList = 500

// UsersByIDs returns the users that exist among ids, ordered by id. Unknown
// ids are left out, duplicates collapse.
func (db *DB) UsersByIDs(ctx context.Context, ids []string) ([]store.User, error) {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	users := make([]store.User, 0, len(ids))
	for chunk := range slices.Chunk(ids, maxInList) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		got, err := db.queryUsers(ctx,
			"SELECT "+userCols+" FROM users WHERE id IN ("+placeholders(1, len(chunk))+") ORDER BY id", args...)
		if err != nil {
			return nil, db.wrap("users by ids", err)
		}
		users = append(users, got...)
	}
	return users, nil
}

// SearchUsers implements store.Store. Which rows are candidates is where the
// engines differ (an index each: see searchCandidates); the ranking is
// the same SQL on both.
func (db *DB) SearchUsers(ctx context.Context, query string, limit int) ([]store.User, error) {
	if limit <= 0 || query == "" {
		return []store.User{}, nil
	}
	q, args := db.searchQuery(query, limit)
	if db.d.planEachTime != nil {
		args = append([]any{db.d.planEachTime}, args...)
	}
	users, err := db.queryUsers(ctx, q, args...)
	if err != nil {
		return nil, db.wrap("search users", err)
	}
	return users, nil
}

// searchQuery builds SearchUsers' statement for a folded query.
//
// Arguments: $1 the query, $2 the query as a LIKE prefix, $3 as a LIKE word
// prefix inside a display name, $4 limit, then the candidates' own.
func (db *DB) searchQuery(query string, limit int) (string, []any) {
	esc := escapeLike(query)
	args := []any{query, esc + "%", "% " + esc + "%", limit}
	where, more := db.searchCandidates(query, len(args)+1)
	return "SELECT " + userCols + ` FROM users
		WHERE (` + where + `) AND deleted_at IS NULL
		ORDER BY CASE
			WHEN username = $1 OR email = $1 THEN 0
			WHEN username LIKE $2 ESCAPE '\' THEN 1
			WHEN display_fold LIKE $2 ESCAPE '\' OR display_fold LIKE $3 ESCAPE '\' THEN 2
			ELSE 3 END, username
		LIMIT $4`, append(args, more...)
}

// searchCandidates is the WHERE condition that finds SearchUsers' rows
// through an index, with its arguments numbered from n.
func (db *DB) searchCandidates(query string, n int) (string, []any) {
	p := func(i int) string { return "$" + strconv.Itoa(n+i) }
	if utf8.RuneCountInString(query) < store.SearchMinSubstring {
		// Too short for trigrams: a prefix of the username or the display
		// name, as a range over their B-trees (both compare bytes), whose
		// upper bound sorts after every string that starts with query.
		return "(username >= " + p(0) + " AND username < " + p(1) + ") OR (display_fold >= " + p(0) +
			" AND display_fold < " + p(1) + ") OR email = " + p(0), []any{query, query + "\U0010FFFF"}
	}
	if db.d == postgresDialect {
		// pg_trgm's GIN indexes answer LIKE '%q%'.
		return "username LIKE " + p(0) + ` ESCAPE '\' OR display_fold LIKE ` + p(0) + ` ESCAPE '\' OR email = ` + p(1),
			[]any{"%" + escapeLike(query) + "%", query}
	}
	// FTS5's trigram tokenizer: a phrase query matches rows holding it as a
	// substring of either column (quoted, so query's characters are literal).
	return `id IN (SELECT k.user_id FROM users_search s JOIN user_search_keys k ON k.n = s.rowid
		WHERE users_search MATCH ` + p(0) + `) OR email = ` + p(1),
		[]any{`"` + strings.ReplaceAll(query, `"`, `""`) + `"`, query}
}

// SetDisplayName implements store.Store.
func (db *DB) SetDisplayName(ctx context.Context, userID, displayName string) error {
	res, err := db.w.ExecContext(ctx, "UPDATE users SET display_name = $1, display_fold = $2 WHERE id = $3 AND deleted_at IS NULL",
		displayName, store.FoldName(displayName), userID)
	return db.wrap("set display name", mustAffect(res, err))
}

func (db *DB) queryUsers(ctx context.Context, q string, args ...any) ([]store.User, error) {
	rows, err := db.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	users := []store.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, rows.Err()
}

// UpdatePassword sets the hash and TokensValidAfter together.
func (db *DB) UpdatePassword(ctx context.Context, userID, passwordHash string, tokensValidAfter time.Time) error {
	res, err := db.w.ExecContext(ctx, "UPDATE users SET password_hash = $1, tokens_valid_after = $2 WHERE id = $3",
		passwordHash, micros(tokensValidAfter), userID)
	return db.wrap("update password", mustAffect(res, err))
}

// SetTokensValidAfter implements store.Store.
func (db *DB) SetTokensValidAfter(ctx context.Context, userID string, t time.Time) error {
	res, err := db.w.ExecContext(ctx, "UPDATE users SET tokens_valid_after = $1 WHERE id = $2", micros(t), userID)
	return db.wrap("set tokens valid after", mustAffect(res, err))
}

// DeleteUser implements store.Store.
func (db *DB) DeleteUser(ctx context.Context, userID string, at time.Time) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE users SET username = $1, email = $1, display_name = $2,
			display_fold = $3, password_hash = '', tokens_valid_after = $4, deleted_at = $4
			WHERE id = $5 AND deleted_at IS NULL`, "deleted:"+userID, store.DeletedDisplayName,
			store.FoldName(store.DeletedDisplayName), micros(at), userID)
		if err := mustAffect(res, err); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM push_subscriptions WHERE user_id = $1", userID); err != nil {
			return err
		}
		// Its MLS devices (with their KeyPackages and Welcomes): nobody can
		// add a deleted account to a group any more.
		if _, err := tx.ExecContext(ctx, "DELETE FROM mls_devices WHERE user_id = $1", userID); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM refresh_tokens WHERE user_id = $1", userID)
		return err
	})
	return db.wrap("delete user", err)
}

// AccountsToPurge implements store.Store.
func (db *DB) AccountsToPurge(ctx context.Context, deletedBefore time.Time, limit int) ([]string, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT id FROM users
		WHERE deleted_at IS NOT NULL AND purged_at IS NULL AND deleted_at < $1
		ORDER BY deleted_at, id LIMIT $2`, micros(deletedBefore), max(limit, 0))
	if err != nil {
		return nil, db.wrap("accounts to purge", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, db.wrap("accounts to purge", err)
		}
		out = append(out, id)
	}
	return out, db.wrap("accounts to purge", rows.Err())
}

// MarkAccountPurged implements store.Store.
func (db *DB) MarkAccountPurged(ctx context.Context, userID string, at time.Time) error {
	res, err := db.w.ExecContext(ctx, "UPDATE users SET purged_at = $1 WHERE id = $2 AND deleted_at IS NOT NULL",
		micros(at), userID)
	return db.wrap("mark account purged", mustAffect(res, err))
}
