package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parley-chat/parley/chatserver/store"
)

// dialect is everything that differs between the engines, apart from the
// migrations folder's contents.
type dialect struct {
	name string // also the folder under migrations/
	// errKind maps a driver error to store.ErrConflict or store.ErrNotFound,
	// or returns nil.
	errKind func(error) error
	// lockMigrations serialises migrations across processes; the returned
	// func releases the lock.
	lockMigrations func(ctx context.Context, c *sql.Conn) (unlock func() error, err error)
	// snapshot opens a read-only transaction whose statements all see one
	// snapshot.
	snapshot *sql.TxOptions
	// planEachTime, when not nil, is a first query argument that has the
	// engine plan a statement with its parameter values every time, for
	// queries whose best plan depends on them (people search's LIKE
	// patterns): PostgreSQL may otherwise settle on a generic plan for a
	// cached prepared statement, which cannot see that '%brown%' is
	// selective and scans the table.
	planEachTime any
	// busy reports a lock another connection holds, worth retrying at open;
	// nil where the engine waits for locks itself.
	busy func(error) bool
}

var sqliteDialect = &dialect{
	name: "sqlite",
	errKind: func(err error) error {
		var se *sqlite.Error
		if !errors.As(err, &se) {
			return nil
		}
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return store.ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return store.ErrNotFound
		}
		return nil
	},
	// The migration runs in a write transaction, and _txlock=immediate makes
	// BEGIN take SQLite's write lock: that is the lock.
	lockMigrations: func(context.Context, *sql.Conn) (func() error, error) {
		return func() error { return nil }, nil
	},
	// A WAL read transaction keeps the snapshot of its first read.
	snapshot: &sql.TxOptions{ReadOnly: true},
	busy: func(err error) bool {
		var se *sqlite.Error
		return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
	},
}

// PostgreSQL error codes (Appendix A of the PostgreSQL manual).
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
)

// pgMigrationLock is the pg_advisory_lock key held while migrating: "parley" in ASCII.
const pgMigrationLock int64 = 0x7061726c6579

var postgresDialect = &dialect{
	name: "postgres",
	// An unnamed statement, planned with its parameters on each execution.
	planEachTime: pgx.QueryExecModeExec,
	errKind: func(err error) error {
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			return nil
		}
		switch pe.Code {
		case pgUniqueViolation:
			return store.ErrConflict
		case pgForeignKeyViolation:
			return store.ErrNotFound
		}
		return nil
	},
	lockMigrations: func(ctx context.Context, c *sql.Conn) (func() error, error) {
		if _, err := c.ExecContext(ctx, "SELECT pg_advisory_lock($1)", pgMigrationLock); err != nil {
			return nil, fmt.Errorf("take migration lock: %w", err)
		}
		return func() error {
			// Unlock even when the caller's context is done; if that fails
			// too, the lock goes away with the connection, which the caller
			// then discards.
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			_, err := c.ExecContext(ctx, "SELECT pg_advisory_unlock($1)", pgMigrationLock)
			return err
		}, nil
	},
	// READ COMMITTED takes a new snapshot per statement; REPEATABLE READ one
	// per transaction.
	snapshot: &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
}

// sqliteBusyTimeout is how long a writer waits for another process holding
// SQLite's write lock before giving up with SQLITE_BUSY.
const sqliteBusyTimeout = 10 * time.Second

// openSQLite opens two pools on one file: a single writer connection, so
// writers in this process queue in database/sql instead of spinning on
// SQLITE_BUSY, and a pool of readers, which WAL lets run beside the writer.
func openSQLite(raw string, opts Options) (w, r *sql.DB, err error) {
	path, query, err := sqlitePath(raw)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasPrefix(path, "file:") {
		if dir := filepath.Dir(path); dir != "." {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, nil, fmt.Errorf("create folder for database: %w", err)
			}
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, nil, fmt.Errorf("parse query of %q: %w", raw, err)
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// Freed space (a deleted message's ciphertext, the old text of an edit)
	// is overwritten with zeros instead of lingering in the file's pages.
	q.Add("_pragma", "secure_delete(1)")
	// Every write transaction takes the write lock at BEGIN: a deferred
	// transaction that reads then writes can fail with SQLITE_BUSY on lock
	// upgrade, which busy_timeout does not retry.
	q.Set("_txlock", "immediate")
	w, err = sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return nil, nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	// Readers never write, and a reader's transaction must not take the
	// write lock.
	q.Del("_txlock")
	q.Add("_pragma", "query_only(1)")
	r, err = sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	n := opts.MaxOpenConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxIdleTime(5 * time.Minute)
	return w, r, nil
}

// sqlitePath splits a sqlite:// URL or a file: URI into what modernc.org/sqlite
// opens and its query string. In-memory databases are refused: the reader and
// writer pools would each see a different, empty database.
func sqlitePath(raw string) (path, query string, err error) {
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		// sqlite:///abs/path.db keeps its leading slash; sqlite://rel/path.db is relative.
		path, query, _ = strings.Cut(strings.TrimPrefix(raw, "sqlite://"), "?")
	case strings.HasPrefix(raw, "file:"):
		// SQLite parses file: URIs itself (the driver opens with SQLITE_OPEN_URI).
		path, query, _ = strings.Cut(raw, "?")
	default:
		return "", "", fmt.Errorf("unsupported SQLite URL %q (want sqlite://path or file:path)", raw)
	}
	if path == "" || path == "file:" {
		return "", "", fmt.Errorf("no database path in %q", raw)
	}
	if strings.Contains(path, ":memory:") || strings.Contains(query, "mode=memory") {
		return "", "", fmt.Errorf("in-memory SQLite is not supported (%q): use a file", raw)
	}
	return path, query, nil
}

func openPostgres(raw string, opts Options) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return nil, err
	}
	cfg.Tracer = opts.Tracer
	db := stdlib.OpenDB(*cfg)
	n := opts.MaxOpenConns
	if n <= 0 {
		n = 10
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
	return db, nil
}
