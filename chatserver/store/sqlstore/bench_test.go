package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

// benchSealed is the size of a sealed 200-byte body: "v1.<kid>." + base64url(12 + 200 + 16).
var benchSealed = "v1.d-bench." + strings.Repeat("A", 304)

// BenchmarkAppendMessage measures the store half of a send: one transaction
// that assigns the seq, inserts the message and bumps the conversation. One
// conversation serialises on its row; "8convs" spreads writers over eight.
func BenchmarkAppendMessage(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		benchAppend(b, func(b *testing.B) string { return "sqlite://" + filepath.Join(b.TempDir(), "parley.db") })
	})
	b.Run("postgres", func(b *testing.B) {
		admin := os.Getenv("PARLEY_TEST_POSTGRES_URL")
		if admin == "" {
			b.Skip("PARLEY_TEST_POSTGRES_URL is not set (hack/postgres.sh start)")
		}
		benchAppend(b, func(b *testing.B) string { return benchPostgresDB(b, admin) })
	})
}

func benchAppend(b *testing.B, newURL func(*testing.B) string) {
	// push: 0 no push job asked for; 1 PushDue set but no other member is
	// subscribed (one EXISTS, no write); 2 another member is subscribed (a
	// push_jobs row per message).
	for _, tc := range []struct {
		name     string
		convs    int
		parallel bool
		push     int
	}{{"1conv", 1, false, 0}, {"8convs-parallel", 8, true, 0},
		{"1conv-push-nobody-subscribed", 1, false, 1}, {"1conv-push-subscribed", 1, false, 2}} {
		b.Run(tc.name, func(b *testing.B) {
			db, err := Open(context.Background(), newURL(b), Options{MaxOpenConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			u := &store.User{ID: "u-bench", Username: "bench", Email: "bench@example.test", PasswordHash: "h", CreatedAt: time.Now()}
			if err := db.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
			peer := &store.User{ID: "u-peer", Username: "peer", Email: "peer@example.test", PasswordHash: "h", CreatedAt: time.Now()}
			if err := db.CreateUser(ctx, peer); err != nil {
				b.Fatal(err)
			}
			for i := range tc.convs {
				c := &store.Conversation{ID: fmt.Sprintf("c%d", i), Kind: store.KindGroup, CreatedBy: u.ID, CreatedAt: time.Now()}
				if err := db.CreateConversation(ctx, c, []store.Member{{UserID: u.ID, Role: store.RoleOwner},
					{UserID: peer.ID, Role: store.RoleMember}}); err != nil {
					b.Fatal(err)
				}
			}
			if tc.push == 2 {
				if _, err := db.SavePushSubscription(ctx, &store.PushSubscription{ID: "ps-bench", UserID: peer.ID,
					Endpoint: "https://push.example/bench", P256DH: "k", Auth: "a", VAPIDKeyID: "v", CreatedAt: time.Now()}, 5); err != nil {
					b.Fatal(err)
				}
			}
			var n atomic.Int64
			appendOne := func() error {
				i := n.Add(1)
				m := &store.Message{ConversationID: fmt.Sprintf("c%d", i%int64(tc.convs)), ID: fmt.Sprintf("m%d", i),
					SenderID: u.ID, ClientID: fmt.Sprintf("k%d", i), BodySealed: benchSealed, KeyID: "d-bench", CreatedAt: time.Now()}
				if tc.push > 0 {
					due := m.CreatedAt.Add(3 * time.Second)
					m.PushDue = &due
				}
				_, created, err := db.AppendMessage(ctx, m)
				if err == nil && !created {
					err = fmt.Errorf("message %d not created", i)
				}
				return err
			}
			b.ReportAllocs()
			b.ResetTimer()
			if tc.parallel {
				b.SetParallelism(4) // 4 x GOMAXPROCS writers
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := appendOne(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			} else {
				for b.Loop() {
					if err := appendOne(); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// benchPostgresDB creates a database of its own and drops it afterwards.
func benchPostgresDB(b *testing.B, admin string) string {
	b.Helper()
	adminDB, err := sql.Open("pgx", admin)
	if err != nil {
		b.Fatalf("open admin connection: %v", err)
	}
	name := "parley_bench_" + strings.ToLower(rand.Text())
	if _, err := adminDB.Exec("CREATE DATABASE " + name); err != nil {
		adminDB.Close()
		b.Fatalf("create bench database: %v", err)
	}
	b.Cleanup(func() {
		if _, err := adminDB.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
			b.Errorf("drop bench database %s: %v", name, err)
		}
		adminDB.Close()
	})
	u, err := url.Parse(admin)
	if err != nil {
		b.Fatalf("parse PARLEY_TEST_POSTGRES_URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}
