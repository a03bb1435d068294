package sqlstore

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// eraseFixture stores one message whose ciphertext is a recognisable random
// string, and returns it.
func eraseFixture(t *testing.T, db *DB) (conv *store.Conversation, m *store.Message) {
	t.Helper()
	ctx := t.Context()
	u := &store.User{ID: "u_erase", Username: "erase", Email: "erase@example.test", DisplayName: "E",
		PasswordHash: "x", CreatedAt: time.Now()}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	conv = &store.Conversation{ID: "c_erase", Kind: store.KindGroup, CreatedBy: u.ID, CreatedAt: time.Now()}
	if err := db.CreateConversation(ctx, conv, []store.Member{{UserID: u.ID, Role: store.RoleOwner}}); err != nil {
		t.Fatal(err)
	}
	sealed := "v1.k1." + rand.Text() + rand.Text() + rand.Text()
	m, _, err := db.AppendMessage(ctx, &store.Message{ConversationID: conv.ID, ID: "m_erase", SenderID: u.ID,
		BodySealed: sealed, KeyID: "k1", CreatedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return conv, m
}

// sqliteFiles reads the SQLite database file and its -wal file.
func sqliteFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func checkpoint(t *testing.T, db *DB) {
	t.Helper()
	var busy, log, done int
	if err := db.w.QueryRowContext(t.Context(), "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	if busy != 0 {
		t.Fatalf("wal_checkpoint(TRUNCATE) was blocked (busy=%d)", busy)
	}
}

// On SQLite (secure_delete on, set by Open), a deleted or edited message's
// old ciphertext is in neither the database file nor the WAL once the WAL
// is checkpointed with TRUNCATE.
func TestSQLiteEraseLeavesNoBytes(t *testing.T) {
	for _, op := range []string{"delete", "edit"} {
		t.Run(op, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "parley.db")
			db, err := Open(t.Context(), "sqlite://"+path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var secure int
			if err := db.w.QueryRowContext(t.Context(), "PRAGMA secure_delete").Scan(&secure); err != nil || secure != 1 {
				t.Fatalf("secure_delete = %d (%v), want 1", secure, err)
			}
			conv, m := eraseFixture(t, db)
			old := []byte(m.BodySealed)
			checkpoint(t, db)
			// The test can see the bytes where they are.
			if files := sqliteFiles(t, path); !bytes.Contains(files["parley.db"], old) {
				t.Fatal("the ciphertext is not in the database file before the change: the test cannot see it")
			}
			switch op {
			case "delete":
				_, _, err = db.DeleteMessage(t.Context(), conv.ID, m.ID, m.SenderID, store.EventDeleted, time.Now())
			case "edit":
				_, _, err = db.EditMessage(t.Context(), conv.ID, m.ID, "v1.k1.new", "k1", m.SenderID, time.Now())
			}
			if err != nil {
				t.Fatal(err)
			}
			checkpoint(t, db)
			for name, b := range sqliteFiles(t, path) {
				if bytes.Contains(b, old) {
					t.Errorf("after %s and a checkpoint, %s still contains the old ciphertext", op, name)
				}
			}
		})
	}
}

// On PostgreSQL an UPDATE leaves the old row version in the table's pages
// until VACUUM; this test shows what removes the bytes from the relation's
// file. It reads the files under PARLEY_TEST_POSTGRES_DATA (the server's
// data directory, local in tests).
func TestPostgresEraseLeavesNoBytes(t *testing.T) {
	admin, data := os.Getenv("PARLEY_TEST_POSTGRES_URL"), os.Getenv("PARLEY_TEST_POSTGRES_DATA")
	if admin == "" || data == "" {
		t.Skip("needs PARLEY_TEST_POSTGRES_URL and PARLEY_TEST_POSTGRES_DATA (a local server)")
	}
	db, err := Open(t.Context(), postgresEngine(t, admin).newURL(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conv, m := eraseFixture(t, db)
	old := []byte(m.BodySealed)
	ctx := t.Context()
	relFile := func() []byte {
		t.Helper()
		// CHECKPOINT writes dirty pages to the relation's file.
		if _, err := db.w.ExecContext(ctx, "CHECKPOINT"); err != nil {
			t.Fatalf("CHECKPOINT: %v", err)
		}
		var rel string
		if err := db.w.QueryRowContext(ctx, "SELECT pg_relation_filepath('messages')").Scan(&rel); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(data, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if !bytes.Contains(relFile(), old) {
		t.Fatal("the ciphertext is not in the relation file before the delete: the test cannot see it")
	}
	if _, _, err := db.DeleteMessage(ctx, conv.ID, m.ID, m.SenderID, store.EventDeleted, time.Now()); err != nil {
		t.Fatal(err)
	}
	// What each step leaves is logged; only VACUUM FULL is relied on.
	t.Logf("after delete: old ciphertext in the relation file: %v", bytes.Contains(relFile(), old))
	if _, err := db.w.ExecContext(ctx, "VACUUM messages"); err != nil {
		t.Fatal(err)
	}
	t.Logf("after VACUUM: old ciphertext in the relation file: %v", bytes.Contains(relFile(), old))
	if _, err := db.w.ExecContext(ctx, "VACUUM FULL messages"); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(relFile(), old) {
		t.Error("after VACUUM FULL the relation file still contains the old ciphertext")
	}
}
