package e2e

import (
	"database/sql"
	"os/exec"
	"strings"
	"testing"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// `chatserver verify-audit` checks the hash chain of the audit log in the
// configured database, and finds a row changed behind the server's back
// (here by a superuser who first disabled the append-only triggers).
func TestVerifyAuditCommand(t *testing.T) {
	dsn := chattest.PostgresDatabase(t)
	c := newCluster(t, dsn, "")
	r := c.start()
	alice, bob := r.Register("alice"), r.Register("bob")
	alice.Direct(bob)
	r.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": "wrong password!!"})

	verify := func() (string, error) {
		out, err := exec.Command(serverBin, "verify-audit", "-database-url", dsn, "-data-dir", t.TempDir()).CombinedOutput()
		return string(out), err
	}
	out, err := verify()
	must(t, err == nil && strings.Contains(out, "audit log intact: 4 entries"), "intact chain: %v %s", err, out)

	db, err := sql.Open("pgx", dsn)
	must(t, err == nil, "open: %v", err)
	defer db.Close()
	_, err = db.Exec(`UPDATE audit_log SET ip = '10.9.9.9' WHERE seq = 2`)
	must(t, err != nil, "the append-only trigger let an UPDATE through")
	for _, q := range []string{`ALTER TABLE audit_log DISABLE TRIGGER USER`,
		`UPDATE audit_log SET ip = '10.9.9.9' WHERE seq = 2`, `ALTER TABLE audit_log ENABLE TRIGGER USER`} {
		_, err := db.Exec(q)
		must(t, err == nil, "%s: %v", q, err)
	}
	out, err = verify()
	must(t, err != nil && strings.Contains(out, "broken at entry 2"), "tampered chain: %v %s", err, out)
}
