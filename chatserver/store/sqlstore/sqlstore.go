// Package sqlstore implements store.Store on database/sql with two engines:
// SQLite (modernc.org/sqlite, pure Go, the embedded default) and PostgreSQL
// (pgx), shared by every replica.
//
// Both engines run the same SQL: placeholders are $N (modernc.org/sqlite binds
// $N by position), times are unix microseconds in 64-bit integers, and ids are
// text chosen by callers. What differs between engines lives in dialect.go and
// in the embedded migrations.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/parley-chat/parley/chatserver/store"
)

// Options tune Open.
type Options struct {
	// MaxOpenConns bounds the pool: PostgreSQL connections, or SQLite reader
	// connections (SQLite writes always go through a single connection).
	// 0 picks a default.
	MaxOpenConns int
	// Logger receives migration progress; nil discards it.
	Logger *slog.Logger
	// Tracer, PostgreSQL only, sees every statement the pool sends (BEGIN
	// and COMMIT included): tests count round trips with it.
	Tracer pgx.QueryTracer
	// OnError, when set, is told the operation of every store call that
	// failed: not the answers (not found, conflict, …), not cancelled or
	// timed-out requests. The server counts them (parley_db_errors_total).
	OnError func(op string)
}

// DB is a store.Store backed by SQLite or PostgreSQL.
type DB struct {
	w       *sql.DB // writes and transactions
	r       *sql.DB // reads; the same pool as w on PostgreSQL
	d       *dialect
	log     *slog.Logger
	onError func(op string)
}

var _ store.Store = (*DB)(nil)

// Open connects to the database named by url and applies pending migrations.
// url is sqlite:///abs/path.db, sqlite://relative/path.db, a file: URI (SQLite),
// or postgres:// / postgresql:// (PostgreSQL).
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var (
		d    *dialect
		w, r *sql.DB
		err  error
	)
	switch {
	case strings.HasPrefix(url, "sqlite:"), strings.HasPrefix(url, "file:"):
		d = sqliteDialect
		w, r, err = openSQLite(url, opts)
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		d = postgresDialect
		w, err = openPostgres(url, opts)
		r = w
	default:
		scheme, _, _ := strings.Cut(url, ":")
		return nil, fmt.Errorf("sqlstore: unknown database URL scheme %q (want sqlite://, file:, postgres:// or postgresql://)", scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %s: %w", d.name, err)
	}
	db := &DB{w: w, r: r, d: d, log: log.With("engine", d.name), onError: opts.OnError}
	if err := db.firstPing(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// firstPing is Ping for a pool that has not connected yet. Replicas that open
// a fresh SQLite file at the same time race to switch it to WAL, and SQLite
// answers the loser SQLITE_BUSY at once, without its busy handler (waiting
// could deadlock): the first connection is retried briefly instead.
func (db *DB) firstPing(ctx context.Context) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for wait := 5 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		err := db.Ping(ctx)
		if err == nil || db.d.busy == nil || !db.d.busy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlstore: ping %s: %w", db.d.name, err)
	}
	if db.r != db.w {
		if err := db.r.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlstore: ping %s reader: %w", db.d.name, err)
		}
	}
	return nil
}

// Close closes the pools.
func (db *DB) Close() error {
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	if err != nil {
		return fmt.Errorf("sqlstore: close: %w", err)
	}
	return nil
}

// inTx runs fn in a write transaction and commits when fn returns nil.
func (db *DB) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// wrap adds context to err and maps driver errors onto the store's errors.
func (db *DB) wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlstore: %s: %w", op, store.ErrNotFound)
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrTokenSpent),
		errors.Is(err, store.ErrGone), errors.Is(err, store.ErrLimit), errors.Is(err, store.ErrAttachment):
		return fmt.Errorf("sqlstore: %s: %w", op, err)
	}
	if kind := db.d.errKind(err); kind != nil {
		return fmt.Errorf("sqlstore: %s: %w: %w", op, kind, err)
	}
	if db.onError != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		db.onError(op)
	}
	return fmt.Errorf("sqlstore: %s: %w", op, err)
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}
