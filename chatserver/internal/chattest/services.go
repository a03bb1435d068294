package chattest

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// PostgresDatabase creates a fresh database on the test PostgreSQL server
// (PARLEY_TEST_POSTGRES_URL, started by `make test`) and drops it after the
// test. Without the server the test fails; under -short it is skipped.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
	if admin == "" {
		if testing.Short() {
			t.Skip("-short: PostgreSQL tests need PARLEY_TEST_POSTGRES_URL")
		}
		t.Fatal("PARLEY_TEST_POSTGRES_URL is not set: run `make test`, which starts PostgreSQL (hack/postgres.sh)")
	}
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "parley_e2e_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP DATABASE " + name + " WITH (FORCE)")
		db.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// RedisURL is the test Redis (PARLEY_TEST_REDIS_URL, started by `make test`).
// Without it the test fails; under -short it is skipped.
func RedisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("PARLEY_TEST_REDIS_URL")
	if u == "" {
		if testing.Short() {
			t.Skip("-short: Redis tests need PARLEY_TEST_REDIS_URL")
		}
		t.Fatal("PARLEY_TEST_REDIS_URL is not set: run `make test`, which starts Redis (hack/redis.sh)")
	}
	return u
}
