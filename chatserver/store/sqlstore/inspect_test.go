package sqlstore

import (
	"testing"
)

// inspector reads a store's tables directly, for checks the interface cannot make.
type inspector struct {
	t  *testing.T
	db *DB
}

func inspect(t *testing.T, db *DB) inspector { return inspector{t: t, db: db} }

// count returns the number of rows in table.
func (in inspector) count(table string) int {
	in.t.Helper()
	var n int
	if err := in.db.w.QueryRowContext(in.t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		in.t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// wantMigrations checks that schema_migrations lists every embedded
// migration exactly once.
func (in inspector) wantMigrations() {
	in.t.Helper()
	ms, err := in.db.d.migrations()
	if err != nil {
		in.t.Fatal(err)
	}
	rows, err := in.db.w.QueryContext(in.t.Context(), "SELECT version, name FROM schema_migrations ORDER BY version")
	if err != nil {
		in.t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var got []migration
	for rows.Next() {
		var m migration
		if err := rows.Scan(&m.version, &m.name); err != nil {
			in.t.Fatal(err)
		}
		got = append(got, m)
	}
	if err := rows.Err(); err != nil {
		in.t.Fatal(err)
	}
	if len(got) != len(ms) {
		in.t.Fatalf("schema_migrations has %d rows, want %d (one per migration)", len(got), len(ms))
	}
	for i := range ms {
		if got[i].version != ms[i].version || got[i].name != ms[i].name {
			in.t.Errorf("schema_migrations[%d] = %d %s, want %d %s", i, got[i].version, got[i].name, ms[i].version, ms[i].name)
		}
	}
}
