package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
	"github.com/parley-chat/parley/chatserver/store/storetest"
)

// engine opens fresh, isolated databases of one kind for tests.
type engine struct {
	name   string
	newURL func(t *testing.T) string
}

func sqliteEngine() engine {
	return engine{name: "sqlite", newURL: func(t *testing.T) string {
		return "sqlite://" + filepath.Join(t.TempDir(), "parley.db")
	}}
}

func TestSQLite(t *testing.T) {
	runEngine(t, sqliteEngine())
}

func TestPostgres(t *testing.T) {
	admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if admin == "" {
		if testing.Short() {
			t.Skip("PostgreSQL tests need PARLEY_TEST_POSTGRES_URL; skipped in -short mode")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set: run `make test`, which starts PostgreSQL " +
			"(or `hack/postgres.sh start` and `set -a; source tmp/postgres/env`)")
	}
	runEngine(t, postgresEngine(t, admin))
}

// postgresEngine gives every test a database of its own, created through the
// admin URL and dropped when the test ends.
func postgresEngine(t *testing.T, admin string) engine {
	adminDB, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	t.Cleanup(func() { adminDB.Close() })
	if err := adminDB.PingContext(t.Context()); err != nil {
		t.Fatalf("PostgreSQL at PARLEY_TEST_POSTGRES_URL does not answer (run `make test`, which starts it): %v", err)
	}
	return engine{name: "postgres", newURL: func(t *testing.T) string {
		name := "parley_test_" + strings.ToLower(rand.Text())
		if _, err := adminDB.ExecContext(t.Context(), "CREATE DATABASE "+name); err != nil {
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := adminDB.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("drop test database %s: %v", name, err)
			}
		})
		u, err := url.Parse(admin)
		if err != nil {
			t.Fatalf("parse PARLEY_TEST_POSTGRES_URL: %v", err)
		}
		u.Path = "/" + name
		return u.String()
	}}
}

func runEngine(t *testing.T, e engine) {
	open := func(t *testing.T, u string) *DB {
		t.Helper()
		db, err := Open(t.Context(), u, Options{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return db
	}
	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) store.Store { return open(t, e.newURL(t)) })
	})
	t.Run("ConcurrentOpenMigratesOnce", func(t *testing.T) {
		testConcurrentOpen(t, e.newURL(t))
	})
	t.Run("ReopenKeepsData", func(t *testing.T) {
		u := e.newURL(t)
		db := open(t, u)
		storetestUser(t, db)
		db.Close()
		db = open(t, u)
		if _, err := db.UserByUsername(t.Context(), "inspector"); err != nil {
			t.Fatalf("user after reopen: %v", err)
		}
		inspect(t, db).wantMigrations()
	})
	t.Run("AuditLogIsAppendOnly", func(t *testing.T) {
		testAuditAppendOnly(t, open(t, e.newURL(t)), e.name)
	})
	t.Run("IdempotentSendWritesOnce", func(t *testing.T) {
		db := open(t, e.newURL(t))
		u := storetestUser(t, db)
		c := &store.Conversation{ID: "c1", Kind: store.KindGroup, CreatedBy: u.ID, CreatedAt: time.Now()}
		if err := db.CreateConversation(t.Context(), c, []store.Member{{UserID: u.ID, Role: store.RoleOwner}}); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			m := &store.Message{ConversationID: "c1", ID: "m" + string(rune('a'+i)), SenderID: u.ID, ClientID: "same", BodySealed: "b", KeyID: "k"}
			if _, created, err := db.AppendMessage(t.Context(), m); err != nil || created != (i == 0) {
				t.Fatalf("send %d: created=%v err=%v", i, created, err)
			}
		}
		if n := inspect(t, db).count("messages"); n != 1 {
			t.Errorf("messages table has %d rows, want 1", n)
		}
	})
}

func storetestUser(t *testing.T, db *DB) *store.User {
	t.Helper()
	u := &store.User{ID: "u-inspector", Username: "inspector", Email: "inspector@example.test", PasswordHash: "h", CreatedAt: time.Now()}
	if err := db.CreateUser(t.Context(), u); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	return u
}

// testConcurrentOpen starts four replicas on one fresh database at once: all
// must open, and each migration must be recorded (and its seed row written)
// exactly once.
func testConcurrentOpen(t *testing.T, u string) {
	const replicas = 4
	dbs := make([]*DB, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			<-start
			dbs[i], errs[i] = Open(t.Context(), u, Options{MaxOpenConns: 2})
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: Open: %v", i, err)
			continue
		}
		t.Cleanup(func() { dbs[i].Close() })
	}
	if t.Failed() {
		t.FailNow()
	}
	in := inspect(t, dbs[0])
	in.wantMigrations()
	if n := in.count("audit_head"); n != 1 {
		t.Errorf("audit_head has %d rows, want 1 (seeded once)", n)
	}
	// Every replica works against the shared schema.
	for i, db := range dbs {
		if _, err := db.ReserveSeals(t.Context(), "k", 1); err != nil {
			t.Errorf("replica %d: ReserveSeals: %v", i, err)
		}
	}
	if counts, err := dbs[replicas-1].SealCounts(t.Context()); err != nil || counts["k"] != replicas {
		t.Errorf("SealCounts = %v, %v; want k=%d", counts, err, replicas)
	}
}

func testAuditAppendOnly(t *testing.T, db *DB, engine string) {
	ctx := t.Context()
	e := &store.AuditEntry{At: time.Now(), Event: "login.ok", ActorID: "u1"}
	if err := db.AppendAudit(ctx, e, func(*store.AuditEntry) string { return "h1" }); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	refused := []string{
		"UPDATE audit_log SET event = 'forged' WHERE seq = 1",
		"UPDATE audit_log SET hash = 'x'",
		"DELETE FROM audit_log WHERE seq = 1",
		"DELETE FROM audit_log",
		"UPDATE audit_head SET seq = 0",
		"DELETE FROM audit_head",
	}
	if engine == "postgres" {
		refused = append(refused, "TRUNCATE audit_log", "TRUNCATE audit_head")
	}
	for _, q := range refused {
		_, err := db.w.ExecContext(ctx, q)
		if err == nil {
			t.Errorf("%s: succeeded, want refused by trigger", q)
		} else if !strings.Contains(err.Error(), "audit_") {
			t.Errorf("%s: error %v does not come from the audit triggers", q, err)
		}
	}
	es, err := db.AuditEntries(ctx, 0, 10)
	if err != nil || len(es) != 1 || es[0].Event != "login.ok" || es[0].Hash != "h1" {
		t.Fatalf("after refused changes: entries %+v, err %v; want the original entry", es, err)
	}
	// The chain goes on from where it was.
	e2 := &store.AuditEntry{At: time.Now(), Event: "logout"}
	if err := db.AppendAudit(ctx, e2, func(*store.AuditEntry) string { return "h2" }); err != nil {
		t.Fatalf("AppendAudit after refused changes: %v", err)
	}
	if e2.Seq != 2 || e2.PrevHash != "h1" {
		t.Errorf("next entry seq %d prev %q, want 2 and h1", e2.Seq, e2.PrevHash)
	}
}

func TestOpenURLs(t *testing.T) {
	ctx := t.Context()
	for _, bad := range []string{"mysql://localhost/db", "parley.db", "", "sqlite:", "sqlite://", "sqlite://:memory:", "file::memory:", "file:x.db?mode=memory"} {
		db, err := Open(ctx, bad, Options{})
		if err == nil {
			db.Close()
			t.Errorf("Open(%q) succeeded, want an error", bad)
		} else if !strings.HasPrefix(err.Error(), "sqlstore: ") {
			t.Errorf("Open(%q) error %q lacks context", bad, err)
		}
	}
	_, err := Open(ctx, "mysql://localhost/db", Options{})
	if err == nil || !strings.Contains(err.Error(), `unknown database URL scheme "mysql"`) {
		t.Errorf("unknown scheme error = %v", err)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	for _, u := range []string{
		"sqlite://" + filepath.Join(dir, "abs", "a.db"), // sqlite:///abs/...
		"sqlite://rel/b.db",
		"file:" + filepath.Join(dir, "c.db") + "?cache=private",
		"file:d.db",
	} {
		db, err := Open(ctx, u, Options{MaxOpenConns: 1, Logger: nil})
		if err != nil {
			t.Errorf("Open(%q): %v", u, err)
			continue
		}
		if err := db.Ping(ctx); err != nil {
			t.Errorf("Ping(%q): %v", u, err)
		}
		var mode string
		if err := db.r.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
			t.Errorf("%s: journal_mode %q, %v; want wal", u, mode, err)
		}
		var fk int
		if err := db.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil || fk != 1 {
			t.Errorf("%s: foreign_keys %d, %v; want 1", u, fk, err)
		}
		if _, err := db.r.ExecContext(ctx, "INSERT INTO seal_counts (key_id, sealed) VALUES ('x', 1)"); err == nil {
			t.Errorf("%s: the reader pool accepted a write", u)
		}
		db.Close()
	}
	for _, f := range []string{"abs/a.db", "rel/b.db", "c.db", "d.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("database file %s: %v", f, err)
		}
	}
}

func TestErrorsWrapped(t *testing.T) {
	db, err := Open(t.Context(), sqliteEngine().newURL(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := storetestUser(t, db)
	err = db.CreateUser(t.Context(), u)
	if !errors.Is(err, store.ErrConflict) || !strings.HasPrefix(err.Error(), "sqlstore: create user: ") {
		t.Errorf("duplicate user error = %v", err)
	}
	_, err = db.UserByID(t.Context(), "nope")
	if !errors.Is(err, store.ErrNotFound) || err.Error() != "sqlstore: user by id: store: not found" {
		t.Errorf("missing user error = %v", err)
	}
	if _, err := db.ReserveSeals(t.Context(), "k", -1); err == nil {
		t.Error("ReserveSeals accepted a negative count")
	}
}

// OnError hears of failures only: not of answers (a conflict, a row not
// found) and not of requests cancelled by their caller.
func TestOnErrorCountsFailuresOnly(t *testing.T) {
	var failed []string
	db, err := Open(t.Context(), sqliteEngine().newURL(t), Options{OnError: func(op string) { failed = append(failed, op) }})
	if err != nil {
		t.Fatal(err)
	}
	u := storetestUser(t, db)
	if err := db.CreateUser(t.Context(), u); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := db.UserByID(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := db.UserByID(cancelled, u.ID); err == nil {
		t.Fatal("a cancelled read succeeded")
	}
	if len(failed) != 0 {
		t.Fatalf("answers and a cancelled request counted as failures: %q", failed)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UserByID(t.Context(), u.ID); err == nil {
		t.Fatal("a read on a closed store succeeded")
	}
	if !slices.Equal(failed, []string{"user by id"}) {
		t.Errorf("failures = %q, want [user by id]", failed)
	}
}
