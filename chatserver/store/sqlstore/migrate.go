package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

//go:embed migrations
var migrationFiles embed.FS

// migration is one embedded NNNN_name.sql file.
type migration struct {
	version int64
	name    string
	sql     string
}

// migrations returns the dialect's migrations in version order.
func (d *dialect) migrations() ([]migration, error) {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and an underscore", name)
		}
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// migrate applies pending migrations in one transaction, under a lock that
// makes replicas starting together take turns: the first applies, the others
// then find nothing to do.
func (db *DB) migrate(ctx context.Context) (err error) {
	ms, err := db.d.migrations()
	if err != nil {
		return fmt.Errorf("sqlstore: migrations: %w", err)
	}
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer func() {
		if err != nil {
			// Never return a connection that may still hold the lock to the pool.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}()
	unlock, err := db.d.lockMigrations(ctx, conn)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	defer func() {
		if uerr := unlock(); uerr != nil && err == nil {
			err = fmt.Errorf("sqlstore: migrate: release lock: %w", uerr)
		}
	}()

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	applied, unknown, err := applyMigrations(ctx, tx, ms)
	if err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("sqlstore: migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: migrate: commit: %w", err)
	}
	for _, m := range applied {
		db.log.Info("applied database migration", "version", m.version, "name", m.name)
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		db.log.Warn("database has migrations this release does not know (a newer release ran)", "versions", unknown)
	}
	return nil
}

func applyMigrations(ctx context.Context, tx *sql.Tx, ms []migration) (applied []migration, unknown []int64, err error) {
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT NOT NULL PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return nil, nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	done := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return nil, nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		done[v] = true
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	known := map[int64]bool{}
	for _, m := range ms {
		known[m.version] = true
	}
	for v := range done {
		if !known[v] {
			// A newer release migrated this database: carry on, since
			// migrations are written to stay compatible with the release
			// before them during a rolling update.
			unknown = append(unknown, v)
		}
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return nil, nil, fmt.Errorf("apply %s: %w", m.name, err)
		}
		if fix := fixups[m.version]; fix != nil {
			if err := fix(ctx, tx); err != nil {
				return nil, nil, fmt.Errorf("apply %s: %w", m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
			m.version, m.name, time.Now().UnixMicro()); err != nil {
			return nil, nil, fmt.Errorf("record %s: %w", m.name, err)
		}
		applied = append(applied, m)
	}
	return applied, unknown, nil
}

// fixups are Go steps of a migration, run right after its SQL in the same
// transaction, for what SQL cannot do the same way on both engines.
var fixups = map[int64]func(ctx context.Context, tx *sql.Tx) error{
	5: refoldDisplayNames,
}

// refoldDisplayNames (migration 5) sets display_fold to store.FoldName of the
// display name where the engine's lower() folded it otherwise (SQLite's
// folds ASCII only).
func refoldDisplayNames(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, "SELECT id, display_name, display_fold FROM users")
	if err != nil {
		return fmt.Errorf("refold display names: %w", err)
	}
	type refold struct{ id, fold string }
	var todo []refold
	for rows.Next() {
		var id, name, fold string
		if err := rows.Scan(&id, &name, &fold); err != nil {
			rows.Close()
			return fmt.Errorf("refold display names: %w", err)
		}
		if f := store.FoldName(name); f != fold {
			todo = append(todo, refold{id, f})
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("refold display names: %w", err)
	}
	for _, r := range todo {
		if _, err := tx.ExecContext(ctx, "UPDATE users SET display_fold = $1 WHERE id = $2", r.fold, r.id); err != nil {
			return fmt.Errorf("refold display names: %w", err)
		}
	}
	return nil
}
