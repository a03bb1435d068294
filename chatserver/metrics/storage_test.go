package metrics

import "testing"

func TestStatementKind(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT 1": "select", "  insert into t values (1)": "insert", "(select 1) union (select 2)": "select",
		"UPDATE t SET a=1": "update", "delete from t": "delete", "WITH x AS (SELECT 1) SELECT * FROM x": "with",
		"begin": "begin", "COMMIT;": "commit", "rollback": "rollback", "VACUUM": "other", "": "other",
	} {
		if got := statementKind(sql); got != want {
			t.Errorf("statementKind(%q) = %q, want %q", sql, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { statementKind("SELECT seq FROM messages") }); n != 0 {
		t.Errorf("statementKind allocates %v times per call", n)
	}
}
