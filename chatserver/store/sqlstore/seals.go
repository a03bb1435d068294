package sqlstore

import (
	"context"
	"fmt"
)

// ReserveSeals adds n (>= 0) to keyID's seal count and returns the new total,
// in one upsert statement.
func (db *DB) ReserveSeals(ctx context.Context, keyID string, n int64) (int64, error) {
	if n < 0 {
		return 0, fmt.Errorf("sqlstore: reserve seals: negative count %d", n)
	}
	var total int64
	err := db.w.QueryRowContext(ctx, `INSERT INTO seal_counts (key_id, sealed) VALUES ($1, $2)
		ON CONFLICT (key_id) DO UPDATE SET sealed = seal_counts.sealed + excluded.sealed
		RETURNING sealed`, keyID, n).Scan(&total)
	return total, db.wrap("reserve seals", err)
}

// SealCounts returns every key's seal count.
func (db *DB) SealCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := db.r.QueryContext(ctx, "SELECT key_id, sealed FROM seal_counts")
	if err != nil {
		return nil, db.wrap("seal counts", err)
	}
	defer rows.Close()
	counts := map[string]int64{}
	for rows.Next() {
		var (
			k string
			n int64
		)
		if err := rows.Scan(&k, &n); err != nil {
			return nil, db.wrap("seal counts", err)
		}
		counts[k] = n
	}
	return counts, db.wrap("seal counts", rows.Err())
}
