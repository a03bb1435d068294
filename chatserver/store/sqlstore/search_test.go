package sqlstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// People search at scale: the plans use the search indexes (no scan of
// users), on both engines. The plan, not a timing, is what is asserted: it
// is what keeps a search fast as users grow, on any machine.
func TestSearchPlanUsesIndexes(t *testing.T) {
	check := func(t *testing.T, db *DB, people int) {
		seedPeople(t, db, people)
		for _, tc := range []struct {
			name, query string
			want        []string // index names the plan must use
		}{
			{"substring", "brown", db.d.searchIndexes(false)},
			{"short prefix", "be", db.d.searchIndexes(true)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				plan := explainSearch(t, db, tc.query)
				t.Logf("plan of %q among %d people:\n%s", tc.query, people, plan)
				for _, idx := range tc.want {
					if !strings.Contains(plan, idx) {
						t.Errorf("plan of %q does not use %s:\n%s", tc.query, idx, plan)
					}
				}
				if scan := db.d.fullScan(plan); scan != "" {
					t.Errorf("plan of %q scans users (%s):\n%s", tc.query, scan, plan)
				}
				// And the plan answers: the seeded people whose name holds the query.
				got, err := db.SearchUsers(t.Context(), tc.query, 5)
				if err != nil || len(got) != 5 {
					t.Fatalf("SearchUsers(%q) = %d users, %v; want 5", tc.query, len(got), err)
				}
				for _, u := range got {
					if !strings.Contains(u.Username+" "+store.FoldName(u.DisplayName), tc.query) {
						t.Errorf("SearchUsers(%q) found %s (%s)", tc.query, u.Username, u.DisplayName)
					}
				}
			})
		}
	}
	t.Run("sqlite", func(t *testing.T) {
		check(t, openTestDB(t, sqliteEngine().newURL(t)), 20_000)
	})
	t.Run("postgres", func(t *testing.T) {
		check(t, openTestDB(t, postgresURL(t)), 100_000)
	})
}

// searchIndexes names the indexes a search plan must use: prefix (short)
// or substring.
func (d *dialect) searchIndexes(short bool) []string {
	switch {
	case short && d == postgresDialect:
		return []string{"users_username_key", "users_display_fold"}
	case short:
		return []string{"sqlite_autoindex_users_2", "users_display_fold"} // 2: the username UNIQUE
	case d == postgresDialect:
		return []string{"users_username_trgm", "users_display_fold_trgm"}
	default:
		return []string{"VIRTUAL TABLE INDEX", "sqlite_autoindex_users_1"} // FTS5, then users by id
	}
}

// fullScan returns the line of plan that reads the whole users table, or "".
func (d *dialect) fullScan(plan string) string {
	for line := range strings.SplitSeq(plan, "\n") {
		l := strings.TrimSpace(line)
		if d == postgresDialect && strings.Contains(l, "Seq Scan on users") ||
			d != postgresDialect && (l == "SCAN users" || strings.HasPrefix(l, "SCAN users ")) {
			return l
		}
	}
	return ""
}

// explainSearch returns the engine's plan of SearchUsers' statement.
func explainSearch(t *testing.T, db *DB, query string) string {
	t.Helper()
	q, args := db.searchQuery(query, 20)
	prefix := "EXPLAIN "
	if db.d != postgresDialect {
		prefix = "EXPLAIN QUERY PLAN "
	}
	rows, err := db.r.QueryContext(t.Context(), prefix+q, args...)
	if err != nil {
		t.Fatalf("explain: %v", err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		// PostgreSQL: one text column; SQLite: id, parent, notused, detail.
		fmt.Fprintf(&b, "%v\n", vals[len(vals)-1])
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var (
	firstNames = strings.Fields(`Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Karin Lars Mia Nils Olga Paul
		Rosa Sven Tina Uwe Vera Walter Xenia Yusuf Zoe Ali Bea Chen Dora Elif Femi Gus Hana Ivo Jana Kofi Lena Malik Nora Omar`)
	lastNames = strings.Fields(`Smith Jones Brown Taylor Wilson Davies Evans Thomas Johnson Roberts Walker Wright
		Robinson Thompson White Hughes Edwards Green Hall Wood Harris Lewis Martin Jackson Clarke Clark Turner Hill Scott
		Cooper Morris Ward Moore King Watson Baker Harrison Morgan Patel Young Allen Mitchell James Anderson Phillips Lee
		Bell Parker Davis Mueller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein
		Wolf Schroeder Neumann Schwarz Zimmermann Braun Krueger Hofmann Hartmann Lange Schmitt Werner Krause Meier Lehmann
		Schmid Schulze Maier Koehler Herrmann Koenig Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Moeller Weiss
		Jung Hahn Schubert Vogel Friedrich Keller Guenther Frank Berger Winkler Roth Beck Lorenz Baumann Franke Albrecht`)
)

// seedPeople inserts n users with realistic names ("Emma Brown",
// username emma_brown17, ...) in one transaction, then has the engine
// gather statistics and tidy up, as it would over time in production.
func seedPeople(tb testing.TB, db *DB, n int) {
	tb.Helper()
	ctx := context.Background()
	const batch = 500
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < n; start += batch {
			end := min(start+batch, n)
			var q strings.Builder
			q.WriteString("INSERT INTO users (" + userInsertCols + ", display_fold) VALUES ")
			args := make([]any, 0, (end-start)*8)
			for i := start; i < end; i++ {
				first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
				username := fmt.Sprintf("%s_%s%d", strings.ToLower(first), strings.ToLower(last), i)
				display := first + " " + last
				if i > start {
					q.WriteString(", ")
				}
				q.WriteString("(" + placeholders(len(args)+1, 8) + ")")
				args = append(args, fmt.Sprintf("u_seed%07d", i), username, username+"@example.test", display, "h",
					int64(1_700_000_000_000_000+i), int64(0), store.FoldName(display))
			}
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("seed %d people: %v", n, err)
	}
	// PostgreSQL: VACUUM also moves the GIN indexes' pending lists (where a
	// bulk insert's entries wait) into the index proper, as autovacuum soon
	// would; searched before that, every query scans the pending list.
	stats := "ANALYZE"
	if db.d == postgresDialect {
		stats = "VACUUM ANALYZE users"
	}
	if _, err := db.w.ExecContext(ctx, stats); err != nil {
		tb.Fatalf("%s: %v", stats, err)
	}
}

// BenchmarkSearchUsers measures people search among 100,000 users on each
// engine: a substring (trigram index), a short prefix (B-trees), an exact
// username, and a query that matches nobody.
func BenchmarkSearchUsers(b *testing.B) {
	const people = 100_000
	run := func(b *testing.B, db *DB) {
		start := time.Now()
		seedPeople(b, db, people)
		b.Logf("seeded %d people in %v", people, time.Since(start).Round(time.Millisecond))
		for _, q := range []struct{ name, query string }{
			{"substring", "brown"},
			{"display-name", "emma brown"},
			{"short-prefix", "em"},
			{"exact-username", "emma_brown1000"},
			{"no-match", "qqqzzz"},
		} {
			b.Run(q.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := db.SearchUsers(context.Background(), q.query, 20); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	b.Run("sqlite", func(b *testing.B) {
		db, err := Open(context.Background(), "sqlite://"+filepath.Join(b.TempDir(), "parley.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db)
	})
	b.Run("postgres", func(b *testing.B) {
		admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
		if admin == "" {
			b.Skip("PARLEY_TEST_POSTGRES_URL is not set (hack/postgres.sh start)")
		}
		db, err := Open(context.Background(), benchPostgresDB(b, admin), Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		run(b, db)
	})
}

// The pg_trgm migration needs no superuser: a database owner that is not
// one migrates a fresh database (pg_trgm is a trusted extension).
func TestPostgresMigratesWithoutSuperuser(t *testing.T) {
	admin := postgresAdmin(t)
	role := "parley_app_" + strings.ToLower(rand.Text())
	name := "parley_test_" + strings.ToLower(rand.Text())
	exec := func(q string) {
		t.Helper()
		if _, err := admin.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("CREATE ROLE " + role + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE")
	exec("CREATE DATABASE " + name + " OWNER " + role)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, q := range []string{"DROP DATABASE IF EXISTS " + name + " WITH (FORCE)", "DROP ROLE IF EXISTS " + role} {
			if _, err := admin.ExecContext(ctx, q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(os.Getenv("PARLEY_TEST_POSTGRES_URL"))
	if err != nil {
		t.Fatal(err)
	}
	u.User, u.Path = url.User(role), "/"+name
	db := openTestDB(t, u.String())
	var super bool
	if err := db.r.QueryRowContext(t.Context(), "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil {
		t.Fatal(err)
	}
	if super {
		t.Fatalf("role %s is a superuser; the test proves nothing", role)
	}
	mustPersonDB(t, db, "bob", "Bob Brown")
	got, err := db.SearchUsers(t.Context(), "brown", 10)
	if err != nil || len(got) != 1 || got[0].Username != "bob" {
		t.Fatalf("SearchUsers as %s: %v, %v", role, got, err)
	}
}

// Migration 5 re-folds display names in Go where SQL's lower() did not
// (SQLite's folds ASCII only).
func TestRefoldDisplayNames(t *testing.T) {
	db := openTestDB(t, sqliteEngine().newURL(t))
	u := mustPersonDB(t, db, "uwe", "ÄRGER Öztürk")
	// What the migration's backfill leaves for a name stored before it.
	if _, err := db.w.ExecContext(t.Context(), "UPDATE users SET display_fold = lower(display_name) WHERE id = $1", u.ID); err != nil {
		t.Fatal(err)
	}
	fold := func() string {
		var f string
		if err := db.r.QueryRowContext(t.Context(), "SELECT display_fold FROM users WHERE id = $1", u.ID).Scan(&f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	// A short query compares display_fold itself (a longer one goes through
	// FTS5, whose trigram tokenizer folds case on its own).
	if f := fold(); f != "Ärger Öztürk" {
		t.Fatalf("SQLite's lower() gave %q; the test assumes it folds ASCII only", f)
	}
	if got, _ := db.SearchUsers(t.Context(), "är", 10); len(got) != 0 {
		t.Fatalf("before the re-fold, %q was found: the test proves nothing", "är")
	}
	if err := db.inTx(t.Context(), func(tx *sql.Tx) error { return fixups[5](t.Context(), tx) }); err != nil {
		t.Fatal(err)
	}
	if f := fold(); f != "ärger öztürk" {
		t.Errorf("display_fold after the re-fold = %q, want %q", f, "ärger öztürk")
	}
	got, err := db.SearchUsers(t.Context(), "är", 10)
	if err != nil || len(got) != 1 || got[0].ID != u.ID {
		t.Fatalf("after the re-fold: %v, %v; want uwe", got, err)
	}
}

func mustPersonDB(t *testing.T, db *DB, username, display string) *store.User {
	t.Helper()
	u := &store.User{ID: "u-" + username, Username: username, Email: username + "@example.test", DisplayName: display,
		PasswordHash: "h", CreatedAt: time.Now()}
	if err := db.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func openTestDB(t *testing.T, u string) *DB {
	t.Helper()
	db, err := Open(t.Context(), u, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// postgresAdmin connects to PARLEY_TEST_POSTGRES_URL (failing like
// TestPostgres when it is not set).
func postgresAdmin(t *testing.T) *sql.DB {
	t.Helper()
	admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if admin == "" {
		if testing.Short() {
			t.Skip("PostgreSQL tests need PARLEY_TEST_POSTGRES_URL; skipped in -short mode")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set: `hack/postgres.sh start` and `set -a; source tmp/postgres/env`")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// postgresURL is a fresh PostgreSQL database for t.
func postgresURL(t *testing.T) string {
	t.Helper()
	postgresAdmin(t)
	return postgresEngine(t, os.Getenv("PARLEY_TEST_POSTGRES_URL")).newURL(t)
}

// The search index keeps no copy of a name that was changed or of a
// deleted account's: on SQLite the FTS5 table holds the names and their
// trigrams, so its deletions must erase like the users table's
// (secure_delete on the connection, FTS5's secure-delete option for its
// index; without the latter most of the old trigrams stay in the file).
func TestSQLiteSearchIndexForgetsOldNames(t *testing.T) {
	for _, op := range []string{"rename", "delete account"} {
		t.Run(op, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			db := openTestDB(t, "sqlite://"+path)
			random := strings.ToLower(rand.Text()) // 26 characters unlike anything else in the file
			name := "Zed " + random
			u := mustPersonDB(t, db, "zed", name)
			whole := [][]byte{[]byte(name), []byte(store.FoldName(name))}
			// trigrams counts the random part's trigrams found in the file; a
			// few may turn up by chance among the other bytes.
			trigrams := func() int {
				n, file := 0, sqliteFiles(t, path)["parley.db"]
				for i := 0; i+3 <= len(random); i++ {
					if bytes.Contains(file, []byte(random[i:i+3])) {
						n++
					}
				}
				return n
			}
			checkpoint(t, db)
			for _, b := range whole {
				if !bytes.Contains(sqliteFiles(t, path)["parley.db"], b) {
					t.Fatalf("%q is not in the database file before the change: the test cannot see it", b)
				}
			}
			if n := trigrams(); n != len(random)-2 {
				t.Fatalf("%d of the name's %d trigrams are in the file before the change: the test cannot see them", n, len(random)-2)
			}
			var err error
			if op == "rename" {
				err = db.SetDisplayName(t.Context(), u.ID, "Someone Else")
			} else {
				err = db.DeleteUser(t.Context(), u.ID, time.Now())
			}
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, db)
			for file, content := range sqliteFiles(t, path) {
				for _, b := range whole {
					if bytes.Contains(content, b) {
						t.Errorf("after %s and a checkpoint, %s still contains %q", op, file, b)
					}
				}
			}
			// Chance alone leaves about 3 of 24 (measured); the index's
			// leftovers, without secure-delete, 15 to 20.
			if n := trigrams(); n > (len(random)-2)/3 {
				t.Errorf("after %s, %d of the old name's %d trigrams are still in the file", op, n, len(random)-2)
			}
		})
	}
}
