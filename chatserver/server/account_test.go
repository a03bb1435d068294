package server_test

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
)

type exportDoc struct {
	Profile struct {
		ID, Username, Email, DisplayName string
	} `json:"profile"`
	Conversations []struct {
		ID, Kind, Title string
		Members         []struct{ ID, Username, DisplayName, Role string }
	} `json:"conversations"`
	Messages []struct {
		ID, ConversationID, Body string
		Seq                      int64
		CreatedAt                time.Time
		EditedAt                 *time.Time
	} `json:"messages"`
	Reactions []struct{ ConversationID, MessageID, Emoji string } `json:"reactions"`
}

// Export holds the user's own messages decrypted, their reactions and
// conversations, and nothing of others' message text; deleting the account
// ends every session, frees the username, and leaves tombstones the other
// members see live, in history and through a gap-free sync.
func TestAccountExportAndDeletion(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			var opts []option
			if engine == "postgres" {
				opts = append(opts, withPostgres(t))
			}
			ts := start(t, opts...)
			alice, bob, carol := ts.Register("alice"), ts.Register("bob"), ts.Register("carol")
			d := alice.Direct(bob)
			g := alice.Group("team plans", bob, carol)
			a1 := alice.Send(d.ID, "alice secret one 5e1f")
			b1 := bob.Send(d.ID, "bob private words 77aa")
			a2 := alice.Send(d.ID, "alice secret two 5e1f")
			r := alice.Do("PATCH", "/api/v1/conversations/"+d.ID+"/messages/"+a2.ID, map[string]string{"body": "alice secret two edited 5e1f"})
			must(t, r.Status == 200, "edit %d %s", r.Status, r.Body)
			ga := alice.Send(g.ID, "alice group secret 5e1f")
			gb := bob.Send(g.ID, "bob group words 77aa")
			react := func(c *client, conv, msg, emoji string) {
				t.Helper()
				r := c.Do("PUT", "/api/v1/conversations/"+conv+"/messages/"+msg+"/reactions/"+url.PathEscape(emoji), nil)
				must(t, r.Status == 200, "react %d %s", r.Status, r.Body)
			}
			react(alice, d.ID, b1.ID, "👍")
			react(alice, g.ID, gb.ID, "🎉")
			react(bob, g.ID, gb.ID, "🎉")
			react(bob, d.ID, a1.ID, "😀")

			// Export.
			r = alice.Do("GET", "/api/v1/me/export", nil)
			must(t, r.Status == 200 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/json"), "export %d %s", r.Status, r.Body)
			must(t, !bytes.Contains(r.Body, []byte("77aa")), "export holds another person's message text: %s", r.Body)
			var ex exportDoc
			r.Decode(t, &ex)
			must(t, ex.Profile.ID == alice.User.ID && ex.Profile.Username == "alice" && ex.Profile.Email == "alice@example.com", "profile %+v", ex.Profile)
			var bodies []string
			for _, m := range ex.Messages {
				bodies = append(bodies, m.ConversationID+"/"+m.ID+"/"+m.Body)
				if m.ID == a2.ID {
					must(t, m.EditedAt != nil, "edited message without editedAt")
				}
			}
			slices.Sort(bodies)
			want := []string{d.ID + "/" + a1.ID + "/alice secret one 5e1f", d.ID + "/" + a2.ID + "/alice secret two edited 5e1f",
				g.ID + "/" + ga.ID + "/alice group secret 5e1f"}
			slices.Sort(want)
			must(t, slices.Equal(bodies, want), "exported messages %q, want %q", bodies, want)
			must(t, len(ex.Reactions) == 2, "exported reactions %+v", ex.Reactions)
			must(t, len(ex.Conversations) == 2, "exported conversations %+v", ex.Conversations)
			for _, c := range ex.Conversations {
				if c.ID == g.ID {
					must(t, c.Title == "team plans" && len(c.Members) == 3, "exported group %+v", c)
				}
			}

			// Ciphertexts of alice's messages, to look for in the file later.
			var sealed [][]byte
			var kept string // bob's, still there: the search can see ciphertext
			if engine == "sqlite" {
				raw, err := sqlDB(t, ts.cfg.DatabaseURL)
				must(t, err == nil, "open: %v", err)
				for _, id := range []string{a1.ID, a2.ID, ga.ID} {
					var s string
					must(t, raw.QueryRow("SELECT body_sealed FROM messages WHERE id = ?", id).Scan(&s) == nil, "read %s", id)
					sealed = append(sealed, []byte(s))
				}
				must(t, raw.QueryRow("SELECT body_sealed FROM messages WHERE id = ?", b1.ID).Scan(&kept) == nil, "read b1")
				raw.Close()
			}

			bw, aw := bob.Dial(), alice.Dial()
			r = alice.Do("DELETE", "/api/v1/me", map[string]string{"password": "wrong password here"})
			must(t, r.Status == 401 && r.Code() == "invalid_credentials", "wrong password: %d %s", r.Status, r.Body)
			r = alice.Do("DELETE", "/api/v1/me", map[string]string{"password": alice.PW})
			must(t, r.Status == 204, "delete account: %d %s", r.Status, r.Body)

			// Sessions end.
			aw.ClosedWith(5 * time.Second)
			r = alice.Do("GET", "/api/v1/me", nil)
			must(t, r.Status == 401, "old access token: %d", r.Status)
			r = ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": alice.Refresh})
			must(t, r.Status == 401, "old refresh token: %d %s", r.Status, r.Body)
			r = ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": alice.PW})
			must(t, r.Status == 401, "login after deletion: %d", r.Status)
			r = bob.Do("GET", "/api/v1/users?q=alice", nil)
			must(t, r.Status == 200 && !strings.Contains(string(r.Body), alice.User.ID), "search finds the deleted account: %s", r.Body)
			alice2 := ts.Register("alice") // the username and email are free again
			must(t, alice2.User.ID != alice.User.ID, "new alice has the old id")

			// Bob sees it live: three deletions (a1, a2, ga) and two reactions removed.
			seen := map[string]bool{}
			for len(seen) < 5 {
				f := bw.Next(5 * time.Second)
				c := decodeChange(t, f.Raw)
				switch {
				case c.Type == "message_deleted":
					must(t, c.DeletedBy == alice.User.ID && c.Reason == "deleted", "live deletion %+v", c)
					seen["del:"+c.MessageID] = true
				case c.Type == "reaction":
					must(t, !c.Added && c.UserID == alice.User.ID, "live reaction %+v", c)
					seen["react:"+c.MessageID] = true
				}
			}
			must(t, seen["del:"+a1.ID] && seen["del:"+a2.ID] && seen["del:"+ga.ID] && seen["react:"+b1.ID] && seen["react:"+gb.ID], "live %v", seen)

			// History: tombstones, bob's own message and reaction untouched.
			for _, conv := range []string{d.ID, g.ID} {
				for _, m := range bob.History(conv, 0) {
					must(t, !strings.Contains(m.Body, "5e1f"), "history shows deleted text %+v", m)
					switch m.SenderID {
					case alice.User.ID:
						must(t, m.Deleted != nil && m.Deleted.By == alice.User.ID && len(m.Reactions) == 0, "alice's message %+v", m)
					case bob.User.ID:
						must(t, m.Body != "" && m.Deleted == nil, "bob's message %+v", m)
						for _, rc := range m.Reactions {
							must(t, rc.Emoji != "👍" && !(rc.Emoji == "🎉" && rc.Count != 1), "reaction left %+v", rc)
						}
					}
				}
			}

			// Sync from 0: every seq once, in order, no text of alice's.
			var dv protocol.Conversation
			bob.Do("GET", "/api/v1/conversations/"+d.ID, nil).Decode(t, &dv)
			b2 := bob.Dial()
			b2.Sync("s", map[string]int64{d.ID: 0})
			for want := int64(1); want <= dv.LastSeq; want++ {
				f := b2.Next(5 * time.Second)
				for f.Type == "presence" {
					f = b2.Next(5 * time.Second)
				}
				must(t, !strings.Contains(string(f.Raw), "5e1f"), "sync carries deleted text: %s", f.Raw)
				seq := f.Seq
				if f.Type == "message" {
					seq = f.Message.Seq
				}
				must(t, seq == want, "sync frame %s has seq %d, want %d", f.Raw, seq, want)
			}
			synced := b2.WaitFor("synced", 5*time.Second)
			must(t, synced.Cursors[d.ID] == dv.LastSeq, "synced %v", synced.Cursors)

			// The direct conversation shows a deleted account; the group
			// has a new owner and no alice.
			var dm *protocol.Member
			for i := range dv.Members {
				if dv.Members[i].ID == alice.User.ID {
					dm = &dv.Members[i]
				}
			}
			must(t, dm != nil && dm.Username == "" && dm.DisplayName == store.DeletedDisplayName, "deleted member %+v", dm)
			var gv protocol.Conversation
			bob.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &gv)
			owners := 0
			for _, m := range gv.Members {
				must(t, m.ID != alice.User.ID, "alice still in the group")
				if m.Role == "owner" {
					owners++
				}
			}
			must(t, len(gv.Members) == 2 && owners == 1, "group after deletion %+v", gv.Members)

			dsn := ts.cfg.DatabaseURL
			ts.stop() // checkpoints and closes the database
			db, err := sqlstore.Open(context.Background(), dsn, sqlstore.Options{})
			must(t, err == nil, "reopen: %v", err)
			entries, err := db.AuditEntries(context.Background(), 0, 10000)
			db.Close()
			must(t, err == nil, "audit: %v", err)
			events := map[string]bool{}
			for _, e := range entries {
				events[e.Event] = true
				must(t, !strings.Contains(e.Detail, "5e1f") && !strings.Contains(e.Detail, "77aa"), "audit detail with text %+v", e)
			}
			must(t, events["account.deleted"] && events["account.exported"] && events["account.purged"], "audit events %v", events)
			if engine == "sqlite" {
				files, _ := filepath.Glob(filepath.Join(ts.cfg.DataDir, "parley.db*"))
				must(t, len(files) > 0, "no database files")
				var all []byte
				for _, f := range files {
					b, err := os.ReadFile(f)
					must(t, err == nil, "read %s: %v", f, err)
					all = append(all, b...)
					for _, s := range sealed {
						must(t, !bytes.Contains(b, s), "%s still holds a deleted message's ciphertext", filepath.Base(f))
					}
				}
				must(t, bytes.Contains(all, []byte(kept)), "sanity: a live message's ciphertext is not found in the files")
			}
		})
	}
}
