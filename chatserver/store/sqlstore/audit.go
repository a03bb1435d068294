package sqlstore

import (
	"context"
	"database/sql"

	"github.com/parley-chat/parley/chatserver/store"
)

// AppendAudit appends e to the hash chain in one transaction: bumping the
// single audit_head row locks the chain (row lock on PostgreSQL, the write
// lock on SQLite), so seqs are gapless and each entry links to the one before.
// It sets e.Seq, e.PrevHash and e.Hash. hash runs inside the transaction: it
// must be quick and must not use the store.
func (db *DB) AppendAudit(ctx context.Context, e *store.AuditEntry, hash func(*store.AuditEntry) string) error {
	entry := *e
	entry.At = truncMicros(e.At)
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, "UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash").
			Scan(&entry.Seq, &entry.PrevHash)
		if err != nil {
			return err
		}
		entry.Hash = hash(&entry)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log
			(seq, at, event, actor_id, subject, ip, detail, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			entry.Seq, micros(entry.At), entry.Event, entry.ActorID, entry.Subject, entry.IP, entry.Detail,
			entry.PrevHash, entry.Hash); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE audit_head SET hash = $1 WHERE id = 1", entry.Hash)
		return err
	})
	if err != nil {
		return db.wrap("append audit", err)
	}
	*e = entry
	return nil
}

// AuditEntries returns entries with seq > afterSeq, ascending, at most limit.
func (db *DB) AuditEntries(ctx context.Context, afterSeq int64, limit int) ([]store.AuditEntry, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT seq, at, event, actor_id, subject, ip, detail, prev_hash, hash
		FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`, afterSeq, max(limit, 0))
	if err != nil {
		return nil, db.wrap("audit entries", err)
	}
	defer rows.Close()
	es := []store.AuditEntry{}
	for rows.Next() {
		var (
			e  store.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.Seq, &at, &e.Event, &e.ActorID, &e.Subject, &e.IP, &e.Detail, &e.PrevHash, &e.Hash); err != nil {
			return nil, db.wrap("audit entries", err)
		}
		e.At = fromMicros(at)
		es = append(es, e)
	}
	return es, db.wrap("audit entries", rows.Err())
}
