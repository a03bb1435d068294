package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// The MLS Delivery Service's persistence (store.MLSStore, issue 17).

const deviceCols = "id, user_id, name, signature_key, created_at"

func scanDevice(s scanner) (store.Device, error) {
	var (
		d       store.Device
		created int64
	)
	if err := s.Scan(&d.ID, &d.UserID, &d.Name, &d.SignatureKey, &created); err != nil {
		return store.Device{}, err
	}
	d.CreatedAt = fromMicros(created)
	return d, nil
}

// lockRow takes PostgreSQL's row lock on one row inside tx (SQLite runs one
// writer at a time, which is the lock): two writers counting against a cap
// take turns. NO KEY UPDATE: rows that only refer to it (a message by this
// user, a KeyPackage of this device) are written meanwhile without waiting.
// ErrNotFound (sql.ErrNoRows) when there is no such row.
func (db *DB) lockRow(ctx context.Context, tx *sql.Tx, table, id string) error {
	q := "SELECT id FROM " + table + " WHERE id = $1"
	if db.d == postgresDialect {
		q += " FOR NO KEY UPDATE"
	}
	var got string
	return tx.QueryRowContext(ctx, q, id).Scan(&got)
}

// CreateDevice implements store.MLSStore.
func (db *DB) CreateDevice(ctx context.Context, d *store.Device, max int) error {
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockRow(ctx, tx, "users", d.UserID); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM mls_devices WHERE user_id = $1", d.UserID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return store.ErrLimit
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO mls_devices ("+deviceCols+") VALUES ($1, $2, $3, $4, $5)",
			d.ID, d.UserID, d.Name, d.SignatureKey, micros(d.CreatedAt))
		return err
	})
	return db.wrap("create device", err)
}

// Device implements store.MLSStore.
func (db *DB) Device(ctx context.Context, id string) (*store.Device, error) {
	d, err := scanDevice(db.r.QueryRowContext(ctx, "SELECT "+deviceCols+" FROM mls_devices WHERE id = $1", id))
	if err != nil {
		return nil, db.wrap("device", err)
	}
	return &d, nil
}

// UserDevices implements store.MLSStore: one query per maxInList users.
func (db *DB) UserDevices(ctx context.Context, userIDs []string) ([]store.Device, error) {
	out := []store.Device{}
	for chunk := range slices.Chunk(userIDs, maxInList) {
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := db.r.QueryContext(ctx, "SELECT "+deviceCols+" FROM mls_devices WHERE user_id IN ("+
			placeholders(1, len(chunk))+") ORDER BY user_id, id", args...)
		if err != nil {
			return nil, db.wrap("user devices", err)
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, db.wrap("user devices", err)
			}
			out = append(out, d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("user devices", err)
		}
	}
	slices.SortFunc(out, func(a, b store.Device) int {
		if a.UserID != b.UserID {
			return strings.Compare(a.UserID, b.UserID)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// DeleteDevice implements store.MLSStore; its KeyPackages and Welcomes go
// with it (ON DELETE CASCADE).
func (db *DB) DeleteDevice(ctx context.Context, userID, deviceID string) error {
	res, err := db.w.ExecContext(ctx, "DELETE FROM mls_devices WHERE id = $1 AND user_id = $2", deviceID, userID)
	return db.wrap("delete device", mustAffect(res, err))
}

// AddKeyPackages implements store.MLSStore.
func (db *DB) AddKeyPackages(ctx context.Context, deviceID string, kps []store.KeyPackage, lastResort *store.KeyPackage, max int) (int, error) {
	var count int
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		if err := db.lockRow(ctx, tx, "mls_devices", deviceID); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM mls_key_packages
			WHERE device_id = $1 AND last_resort = 0 AND claimed_at IS NULL`, deviceID).Scan(&count); err != nil {
			return err
		}
		if count+len(kps) > max {
			return store.ErrLimit
		}
		insert := func(kp *store.KeyPackage, last bool) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO mls_key_packages
				(ref, device_id, last_resort, package_sealed, key_id, not_after, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				kp.Ref, deviceID, boolInt(last), kp.Sealed, kp.KeyID, micros(kp.NotAfter), micros(kp.CreatedAt))
			return err
		}
		for i := range kps {
			if err := insert(&kps[i], false); err != nil {
				return err
			}
		}
		if lastResort != nil {
			// The previous last-resort package stops being handed out; its
			// row stays (emptied) so Welcomes naming it still find the device.
			if _, err := tx.ExecContext(ctx, `UPDATE mls_key_packages SET last_resort = 0, package_sealed = '',
				claimed_at = $2 WHERE device_id = $1 AND last_resort = 1`, deviceID, micros(lastResort.CreatedAt)); err != nil {
				return err
			}
			if err := insert(lastResort, true); err != nil {
				return err
			}
		}
		count += len(kps)
		return nil
	})
	if err != nil {
		return 0, db.wrap("add key packages", err)
	}
	return count, nil
}

// KeyPackageCount implements store.MLSStore.
func (db *DB) KeyPackageCount(ctx context.Context, deviceID string, now time.Time) (int, bool, error) {
	var n, last int
	err := db.r.QueryRowContext(ctx, `SELECT
		COUNT(*) FILTER (WHERE last_resort = 0 AND claimed_at IS NULL),
		COUNT(*) FILTER (WHERE last_resort = 1)
		FROM mls_key_packages WHERE device_id = $1 AND not_after >= $2`, deviceID, micros(now)).Scan(&n, &last)
	if err != nil {
		return 0, false, db.wrap("key package count", err)
	}
	return n, last > 0, nil
}

// ClaimKeyPackages implements store.MLSStore. On PostgreSQL the unclaimed
// package is chosen with FOR UPDATE SKIP LOCKED, so two claims at once take
// two different ones instead of waiting; the UPDATE's claimed_at IS NULL
// condition is what makes a package go out once.
func (db *DB) ClaimKeyPackages(ctx context.Context, userIDs []string, now time.Time) ([]store.ClaimedKeyPackage, error) {
	devices, err := db.UserDevices(ctx, userIDs)
	if err != nil {
		return nil, err
	}
	out := make([]store.ClaimedKeyPackage, 0, len(devices))
	pick := `SELECT ref, package_sealed FROM mls_key_packages
		WHERE device_id = $1 AND last_resort = 0 AND claimed_at IS NULL AND not_after >= $2
		ORDER BY created_at, ref LIMIT 1`
	if db.d == postgresDialect {
		pick += " FOR UPDATE SKIP LOCKED"
	}
	err = db.inTx(ctx, func(tx *sql.Tx) error {
		out = out[:0]
		for _, d := range devices {
			c := store.ClaimedKeyPackage{UserID: d.UserID, DeviceID: d.ID}
			err := tx.QueryRowContext(ctx, pick, d.ID, micros(now)).Scan(&c.Ref, &c.Sealed)
			switch {
			case err == nil:
				res, err := tx.ExecContext(ctx, `UPDATE mls_key_packages SET claimed_at = $2, package_sealed = ''
					WHERE ref = $1 AND claimed_at IS NULL`, c.Ref, micros(now))
				if err := mustAffect(res, err); err != nil {
					return err
				}
			case errors.Is(err, sql.ErrNoRows):
				err := tx.QueryRowContext(ctx, `SELECT ref, package_sealed FROM mls_key_packages
					WHERE device_id = $1 AND last_resort = 1 AND not_after >= $2`, d.ID, micros(now)).Scan(&c.Ref, &c.Sealed)
				if errors.Is(err, sql.ErrNoRows) {
					break // nothing for this device: reported as missing
				}
				if err != nil {
					return err
				}
				c.LastResort = true
			default:
				return err
			}
			out = append(out, c)
		}
		return nil
	})
	if err != nil {
		return nil, db.wrap("claim key packages", err)
	}
	return out, nil
}

// ApplyCommit implements store.MLSStore. The conditional UPDATE of the
// conversation (e2ee, sender a member, mls_epoch = FromEpoch) is the
// compare-and-set: it takes the row lock on PostgreSQL (a concurrent commit
// waits, then re-checks mls_epoch under READ COMMITTED and matches no row),
// and SQLite runs one write transaction at a time.
func (db *DB) ApplyCommit(ctx context.Context, c *store.CommitChange) (*store.Commit, []store.Device, error) {
	stored := c.Commit
	stored.CreatedAt = truncMicros(c.Commit.CreatedAt)
	convID := stored.ConversationID
	var welcomed []store.Device
	err := db.inTx(ctx, func(tx *sql.Tx) error {
		membersChange := int64(0)
		if len(c.Add)+len(c.Remove) > 0 {
			membersChange = 1
		}
		err := tx.QueryRowContext(ctx, `UPDATE conversations
			SET mls_epoch = mls_epoch + 1, last_seq = last_seq + 1,
			    last_activity = CASE WHEN last_activity < $4 THEN $4 ELSE last_activity END,
			    members_version = members_version + $5
			WHERE id = $1 AND e2ee = 1 AND mls_epoch = $2
			  AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $3)
			RETURNING last_seq, mls_epoch`, convID, c.FromEpoch, stored.SenderID, micros(stored.CreatedAt),
			membersChange).Scan(&stored.Seq, &stored.Epoch)
		if errors.Is(err, sql.ErrNoRows) {
			var epoch int64
			err := tx.QueryRowContext(ctx, `SELECT mls_epoch FROM conversations WHERE id = $1 AND e2ee = 1
				AND EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2)`,
				convID, stored.SenderID).Scan(&epoch)
			if err == nil && epoch != c.FromEpoch {
				return store.ErrStaleEpoch
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO mls_commits
			(conversation_id, seq, epoch, sender_id, device_id, commit_sealed, key_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, convID, stored.Seq, stored.Epoch, stored.SenderID,
			stored.DeviceID, stored.Sealed, stored.KeyID, micros(stored.CreatedAt)); err != nil {
			return err
		}
		for _, userID := range c.Remove {
			res, err := tx.ExecContext(ctx, "DELETE FROM members WHERE conversation_id = $1 AND user_id = $2", convID, userID)
			if err := mustAffect(res, err); err != nil {
				return err
			}
			// Welcomes still waiting for the removed user's devices are void.
			if _, err := tx.ExecContext(ctx, `DELETE FROM mls_welcomes WHERE conversation_id = $1
				AND device_id IN (SELECT id FROM mls_devices WHERE user_id = $2)`, convID, userID); err != nil {
				return err
			}
		}
		for _, m := range c.Add {
			m.ConversationID = convID
			if err := insertMember(ctx, tx, m); err != nil {
				return err
			}
		}
		if len(c.WelcomeRefs) == 0 {
			return nil
		}
		welcomed, err = welcomeTargets(ctx, tx, convID, c.WelcomeRefs)
		if err != nil {
			return err
		}
		if len(welcomed) == 0 {
			return store.ErrNoWelcomeTarget
		}
		for _, d := range welcomed {
			if _, err := tx.ExecContext(ctx, `INSERT INTO mls_welcomes
				(device_id, conversation_id, seq, epoch, welcome_sealed, key_id, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (device_id, conversation_id) DO UPDATE SET seq = excluded.seq, epoch = excluded.epoch,
					welcome_sealed = excluded.welcome_sealed, key_id = excluded.key_id, created_at = excluded.created_at`,
				d.ID, convID, stored.Seq, stored.Epoch, c.WelcomeSealed, c.WelcomeKeyID, micros(stored.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, db.wrap("apply commit", err)
	}
	return &stored, welcomed, nil
}

// welcomeTargets returns the devices whose handed-out (or last-resort)
// KeyPackage is among refs and whose user is a member of convID, by id.
func welcomeTargets(ctx context.Context, tx *sql.Tx, convID string, refs []string) ([]store.Device, error) {
	var out []store.Device
	for chunk := range slices.Chunk(refs, maxInList) {
		args := []any{convID}
		for _, r := range chunk {
			args = append(args, r)
		}
		rows, err := tx.QueryContext(ctx, `SELECT DISTINCT d.id, d.user_id, d.name, d.signature_key, d.created_at
			FROM mls_key_packages k
			JOIN mls_devices d ON d.id = k.device_id
			JOIN members m ON m.user_id = d.user_id AND m.conversation_id = $1
			WHERE (k.claimed_at IS NOT NULL OR k.last_resort = 1) AND k.ref IN (`+placeholders(2, len(chunk))+`)
			ORDER BY d.id`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			d, err := scanDevice(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, d)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b store.Device) int { return strings.Compare(a.ID, b.ID) })
	return slices.CompactFunc(out, func(a, b store.Device) bool { return a.ID == b.ID }), nil
}

// CommitsAfter implements store.MLSStore.
func (db *DB) CommitsAfter(ctx context.Context, convID string, afterSeq int64, limit int) ([]store.Commit, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT conversation_id, seq, epoch, sender_id, device_id, commit_sealed,
		key_id, created_at FROM mls_commits WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`,
		convID, afterSeq, max(limit, 0))
	if err != nil {
		return nil, db.wrap("commits after", err)
	}
	defer rows.Close()
	out := []store.Commit{}
	for rows.Next() {
		var (
			c       store.Commit
			created int64
		)
		if err := rows.Scan(&c.ConversationID, &c.Seq, &c.Epoch, &c.SenderID, &c.DeviceID, &c.Sealed, &c.KeyID, &created); err != nil {
			return nil, db.wrap("commits after", err)
		}
		c.CreatedAt = fromMicros(created)
		out = append(out, c)
	}
	return out, db.wrap("commits after", rows.Err())
}

// Welcomes implements store.MLSStore.
func (db *DB) Welcomes(ctx context.Context, deviceID string) ([]store.Welcome, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT device_id, conversation_id, seq, epoch, welcome_sealed, key_id, created_at
		FROM mls_welcomes WHERE device_id = $1 ORDER BY conversation_id`, deviceID)
	if err != nil {
		return nil, db.wrap("welcomes", err)
	}
	defer rows.Close()
	out := []store.Welcome{}
	for rows.Next() {
		var (
			w       store.Welcome
			created int64
		)
		if err := rows.Scan(&w.DeviceID, &w.ConversationID, &w.Seq, &w.Epoch, &w.Sealed, &w.KeyID, &created); err != nil {
			return nil, db.wrap("welcomes", err)
		}
		w.CreatedAt = fromMicros(created)
		out = append(out, w)
	}
	return out, db.wrap("welcomes", rows.Err())
}

// DeleteWelcome implements store.MLSStore.
func (db *DB) DeleteWelcome(ctx context.Context, deviceID, convID string) error {
	res, err := db.w.ExecContext(ctx, "DELETE FROM mls_welcomes WHERE device_id = $1 AND conversation_id = $2", deviceID, convID)
	return db.wrap("delete welcome", mustAffect(res, err))
}

// E2EEPeers implements store.MLSStore.
func (db *DB) E2EEPeers(ctx context.Context, userID string) ([]string, error) {
	return db.userIDs(ctx, "e2ee peers", `SELECT DISTINCT o.user_id
		FROM members me
		JOIN conversations c ON c.id = me.conversation_id AND c.e2ee = 1
		JOIN members o ON o.conversation_id = me.conversation_id
		WHERE me.user_id = $1 AND o.user_id <> $1
		ORDER BY o.user_id`, userID)
}

// MLSSealedWith implements store.MLSStore.
func (db *DB) MLSSealedWith(ctx context.Context, keyID string, limit int) ([]store.MLSSealed, error) {
	var out []store.MLSSealed
	queries := []struct {
		kind, q string
		scan    func(s scanner, r *store.MLSSealed) error
	}{
		{store.SealedKeyPackage, `SELECT device_id, ref, package_sealed FROM mls_key_packages
			WHERE key_id = $1 AND package_sealed <> '' ORDER BY ref LIMIT $2`,
			func(s scanner, r *store.MLSSealed) error { return s.Scan(&r.DeviceID, &r.Ref, &r.Sealed) }},
		{store.SealedCommit, `SELECT conversation_id, seq, epoch, commit_sealed FROM mls_commits
			WHERE key_id = $1 ORDER BY conversation_id, seq LIMIT $2`,
			func(s scanner, r *store.MLSSealed) error {
				return s.Scan(&r.ConversationID, &r.Seq, &r.Epoch, &r.Sealed)
			}},
		{store.SealedWelcome, `SELECT device_id, conversation_id, welcome_sealed FROM mls_welcomes
			WHERE key_id = $1 ORDER BY device_id, conversation_id LIMIT $2`,
			func(s scanner, r *store.MLSSealed) error { return s.Scan(&r.DeviceID, &r.ConversationID, &r.Sealed) }},
	}
	for _, q := range queries {
		rows, err := db.r.QueryContext(ctx, q.q, keyID, max(limit, 0))
		if err != nil {
			return nil, db.wrap("mls sealed with", err)
		}
		for rows.Next() {
			r := store.MLSSealed{Kind: q.kind}
			if err := q.scan(rows, &r); err != nil {
				rows.Close()
				return nil, db.wrap("mls sealed with", err)
			}
			out = append(out, r)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, db.wrap("mls sealed with", err)
		}
	}
	return out, nil
}

// ResealMLS implements store.MLSStore.
func (db *DB) ResealMLS(ctx context.Context, r store.MLSSealed, newSealed, newKeyID string) (bool, error) {
	var (
		res sql.Result
		err error
	)
	switch r.Kind {
	case store.SealedKeyPackage:
		res, err = db.w.ExecContext(ctx, `UPDATE mls_key_packages SET package_sealed = $1, key_id = $2
			WHERE ref = $3 AND package_sealed = $4`, newSealed, newKeyID, r.Ref, r.Sealed)
	case store.SealedCommit:
		res, err = db.w.ExecContext(ctx, `UPDATE mls_commits SET commit_sealed = $1, key_id = $2
			WHERE conversation_id = $3 AND seq = $4 AND commit_sealed = $5`, newSealed, newKeyID, r.ConversationID, r.Seq, r.Sealed)
	case store.SealedWelcome:
		res, err = db.w.ExecContext(ctx, `UPDATE mls_welcomes SET welcome_sealed = $1, key_id = $2
			WHERE device_id = $3 AND conversation_id = $4 AND welcome_sealed = $5`, newSealed, newKeyID, r.DeviceID, r.ConversationID, r.Sealed)
	default:
		return false, fmt.Errorf("sqlstore: reseal mls: unknown kind %q", r.Kind)
	}
	n, err := affected(res, err)
	return n == 1, db.wrap("reseal mls", err)
}
