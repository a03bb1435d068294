package sqlstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// BenchmarkMLS measures the MLS Delivery Service's store operations:
// accepting a commit (the epoch compare-and-bump with the seq, the commit
// row and, with "welcome", a Welcome for one device routed by its
// KeyPackageRef) and claiming one KeyPackage.
func BenchmarkMLS(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchMLS(b, func(b *testing.B) string { return "sqlite://" + filepath.Join(b.TempDir(), "parley.db") })
	})
	b.Run("postgres", func(b *testing.B) {
		admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
		if admin == "" {
			b.Skip("PARLEY_TEST_POSTGRES_URL is not set (hack/postgres.sh start)")
		}
		benchMLS(b, func(b *testing.B) string { return benchPostgresDB(b, admin) })
	})
}

func benchMLS(b *testing.B, newURL func(*testing.B) string) {
	setup := func(b *testing.B) (*DB, *store.Conversation, *store.Device) {
		db, err := Open(context.Background(), newURL(b), Options{MaxOpenConns: 16})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		ctx := context.Background()
		for _, id := range []string{"u-a", "u-b"} {
			if err := db.CreateUser(ctx, &store.User{ID: id, Username: id, Email: id + "@example.test", PasswordHash: "h", CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
		c := &store.Conversation{ID: "c-mls", Kind: store.KindGroup, CreatedBy: "u-a", CreatedAt: time.Now(), E2EE: true}
		if err := db.CreateConversation(ctx, c, []store.Member{{UserID: "u-a", Role: store.RoleOwner}, {UserID: "u-b", Role: store.RoleMember}}); err != nil {
			b.Fatal(err)
		}
		d := &store.Device{ID: "d-b", UserID: "u-b", Name: "b", SignatureKey: "k-b", CreatedAt: time.Now()}
		if err := db.CreateDevice(ctx, d, 10); err != nil {
			b.Fatal(err)
		}
		return db, c, d
	}
	// handedOut stores one KeyPackage of d and claims it: a Welcome naming
	// its ref is routed to d.
	handedOut := func(b *testing.B, db *DB, d *store.Device) []string {
		ref := fmt.Sprintf("%064x", 0)
		kp := store.KeyPackage{Ref: ref, DeviceID: d.ID, Sealed: "v1.d-bench." + strings.Repeat("K", 440),
			KeyID: "d-bench", NotAfter: time.Now().Add(time.Hour), CreatedAt: time.Now()}
		if _, err := db.AddKeyPackages(context.Background(), d.ID, []store.KeyPackage{kp}, nil, 1); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ClaimKeyPackages(context.Background(), []string{d.UserID}, time.Now()); err != nil {
			b.Fatal(err)
		}
		return []string{ref}
	}
	for _, welcome := range []bool{false, true} {
		name := "commit"
		if welcome {
			name = "commit-welcome"
		}
		b.Run(name, func(b *testing.B) {
			db, c, d := setup(b)
			var refs []string
			if welcome {
				refs = handedOut(b, db, d)
			}
			sealed := "v1.d-bench." + strings.Repeat("C", 2000) // a commit of a small group, sealed
			b.ReportAllocs()
			epoch := int64(0)
			for b.Loop() {
				cc := &store.CommitChange{FromEpoch: epoch, Commit: store.Commit{ConversationID: c.ID, SenderID: "u-a",
					DeviceID: "d-a", Sealed: sealed, KeyID: "d-bench", CreatedAt: time.Now()}}
				if welcome {
					cc.WelcomeRefs, cc.WelcomeSealed, cc.WelcomeKeyID = refs, sealed, "d-bench"
				}
				if _, _, err := db.ApplyCommit(context.Background(), cc); err != nil {
					b.Fatal(err)
				}
				epoch++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
	b.Run("claim", func(b *testing.B) {
		db, _, d := setup(b)
		// An unclaimed package for every iteration (the cap set to b.N).
		var kps []store.KeyPackage
		for i := range b.N {
			kps = append(kps, store.KeyPackage{Ref: fmt.Sprintf("%064x", i), DeviceID: d.ID, Sealed: "v1.d-bench." + strings.Repeat("K", 440),
				KeyID: "d-bench", NotAfter: time.Now().Add(time.Hour), CreatedAt: time.Now()})
		}
		if _, err := db.AddKeyPackages(context.Background(), d.ID, kps, nil, b.N); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			got, err := db.ClaimKeyPackages(context.Background(), []string{d.UserID}, time.Now())
			if err != nil || len(got) != 1 || got[0].Sealed == "" {
				b.Fatalf("claim: %v %+v", err, got)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
	})
}
