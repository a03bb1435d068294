package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
	"github.com/parley-chat/parley/chatserver/mlswire/mlswiretest"
)

// The MLS Delivery Service on two replicas over Redis and PostgreSQL
// (issue 17): what the server keeps and relays of an end-to-end encrypted
// conversation, and how it orders commits.

// monitor records every command Redis executes (MONITOR): the backplane
// traffic, envelopes included.
type monitor struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("MONITOR: %q %v", line, err)
	}
	m := &monitor{}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			m.mu.Lock()
			m.buf.Write(buf[:n])
			m.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return m
}

func (m *monitor) contains(s string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Contains(m.buf.Bytes(), []byte(s))
}

func (m *monitor) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.buf.Len()
}

// dumpDatabase returns every row of every table of the public schema as
// text (PostgreSQL's row-to-text cast covers every column).
func dumpDatabase(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.Query(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	must(t, slices.Contains(tables, "mls_commits") && slices.Contains(tables, "messages"), "tables %v", tables)
	var b strings.Builder
	for _, table := range tables {
		rs, err := db.Query(fmt.Sprintf(`SELECT t::text FROM %q t`, table))
		if err != nil {
			t.Fatal(err)
		}
		for rs.Next() {
			var row string
			if err := rs.Scan(&row); err != nil {
				t.Fatal(err)
			}
			b.WriteString(table + ": " + row + "\n")
		}
		rs.Close()
	}
	return b.String()
}

// fixture reads a file the web client's MLS library (ts-mls) wrote.
func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../mlswire/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMLSAcrossReplicas(t *testing.T) {
	skipShort(t)
	redis := startRedis(t)
	mon := startMonitor(t, fmt.Sprintf("127.0.0.1:%d", redis.port))
	dbURL := chattest.PostgresDatabase(t)
	// Debug logs: the most a replica ever writes about a request.
	c := newCluster(t, dbURL, redis.url(), "PARLEY_LOG_LEVEL=debug", "PARLEY_SHARED_FANOUT_MIN=3")
	r0, r1 := c.start(), c.start()
	db, err := sql.Open("pgx", dbURL)
	must(t, err == nil, "open database: %v", err)
	t.Cleanup(func() { db.Close() })

	alice, bob := r0.Register("alice"), r1.Register("bob")
	carol, dave, eve := r0.Register("carol"), r1.Register("dave"), r0.Register("eve")
	da, db1 := alice.NewDevice("alice laptop"), bob.On(r1.API).NewDevice("bob laptop")
	dc, dd, de := carol.NewDevice("carol"), dave.On(r1.API).NewDevice("dave"), eve.NewDevice("eve")
	for _, d := range []*chattest.Device{db1, dc, dd, de} {
		d.Upload(3)
	}
	g := alice.E2EEGroup("secret plans", bob, carol, dave)

	t.Run("KeyPackagesHandedOutOnce", func(t *testing.T) {
		// Alice claims Eve's (3) packages through both replicas at once:
		// each goes out once, then Eve's device is missing.
		var (
			mu   sync.Mutex
			refs []string
			wg   sync.WaitGroup
		)
		h := alice.E2EEGroup("claims", bob)
		for i := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				api := []*chattest.API{r0.API, r1.API}[i%2]
				got, r := alice.On(api).Claim(h.ID, eve.User.ID)
				if r.Status != http.StatusOK {
					t.Errorf("claim: %d %s", r.Status, r.Body)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, k := range got.KeyPackages {
					refs = append(refs, k.KeyPackage)
				}
			}()
		}
		wg.Wait()
		slices.Sort(refs)
		must(t, len(refs) == 3 && len(slices.Compact(slices.Clone(refs))) == 3,
			"6 concurrent claims of 3 packages handed out %d (%d distinct)", len(refs), len(slices.Compact(slices.Clone(refs))))
	})

	t.Run("NonMembersGetNothing", func(t *testing.T) {
		_, r := eve.On(r1.API).Claim(g.ID, bob.User.ID)
		must(t, r.Status == http.StatusNotFound, "a non-member claimed KeyPackages: %d %s", r.Status, r.Body)
		_, r = alice.Claim(g.ID, eve.User.ID)
		must(t, r.Status == http.StatusOK, "the owner claims someone she may add: %d %s", r.Status, r.Body)
		_, r = bob.On(r1.API).Claim(g.ID, eve.User.ID)
		must(t, r.Status == http.StatusForbidden, "a member claimed someone he may not add: %d %s", r.Status, r.Body)
		r = eve.On(r1.API).Do("GET", "/api/v1/devices/"+db1.ID+"/welcomes", nil)
		must(t, r.Status == http.StatusNotFound, "Eve read Bob's device's Welcomes: %d %s", r.Status, r.Body)
		r = alice.Do("DELETE", "/api/v1/devices/"+db1.ID+"/welcomes/"+g.ID, nil)
		must(t, r.Status == http.StatusNotFound, "Alice deleted Bob's Welcome: %d %s", r.Status, r.Body)
		r = eve.Do("POST", "/api/v1/conversations/"+g.ID+"/mls/commit", map[string]any{"deviceId": de.ID,
			"commit": chattest.B64(mlswiretest.Commit(g.ID, 0))})
		must(t, r.Status == http.StatusNotFound, "a non-member committed: %d %s", r.Status, r.Body)
	})

	// Alice's device commits the other members' devices into the group
	// (epoch 0 -> 1); their Welcomes wait on either replica.
	claimed, r := alice.Claim(g.ID, bob.User.ID, carol.User.ID, dave.User.ID)
	must(t, r.Status == http.StatusOK && len(claimed.KeyPackages) == 3, "claim: %d %s", r.Status, r.Body)
	res, r := da.Commit(g.ID, 0, claimed.Refs(t), nil, nil)
	must(t, r.Status == http.StatusOK && res.Epoch == 1, "first commit: %d %s", r.Status, r.Body)
	for _, d := range []*chattest.Device{db1.On(r0.API), dc.On(r1.API), dd.On(r0.API)} {
		ws, r := d.Welcomes()
		must(t, r.Status == http.StatusOK && len(ws) == 1 && ws[0].Epoch == 1 && ws[0].Seq == res.Seq, "welcomes of %s: %d %s", d.ID, r.Status, r.Body)
	}

	t.Run("StaleEpochRefused", func(t *testing.T) {
		// Made for epoch 0 on the other replica, after epoch 1 began.
		_, r := db1.On(r1.API).Commit(g.ID, 0, nil, nil, nil)
		must(t, r.Status == http.StatusConflict && r.Code() == "stale_epoch" && strings.Contains(string(r.Body), `"epoch":1`),
			"stale commit: %d %s", r.Status, r.Body)
		_, r = bob.On(r1.API).SendCiphertext(g.ID, mlswiretest.Application(g.ID, 0, 64))
		must(t, r.Status == http.StatusConflict && r.Code() == "stale_epoch", "message of an old epoch: %d %s", r.Status, r.Body)
	})

	t.Run("ConcurrentCommitsOneWins", func(t *testing.T) {
		for round := range 5 {
			var cur struct{ MLSEpoch uint64 }
			alice.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &cur)
			start := make(chan struct{})
			results := make([]chattest.Resp, 4)
			var wg sync.WaitGroup
			for i, d := range []*chattest.Device{da.On(r0.API), db1.On(r1.API), dc.On(r1.API), dd.On(r0.API)} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, results[i] = d.Commit(g.ID, cur.MLSEpoch, nil, nil, nil)
				}()
			}
			close(start)
			wg.Wait()
			won := 0
			for _, r := range results {
				switch {
				case r.Status == http.StatusOK:
					won++
				case r.Status == http.StatusConflict && r.Code() == "stale_epoch":
				default:
					t.Fatalf("round %d: %d %s", round, r.Status, r.Body)
				}
			}
			must(t, won == 1, "round %d: %d of 4 concurrent commits at epoch %d won", round, won, cur.MLSEpoch)
		}
		var n int
		must(t, db.QueryRow("SELECT COUNT(*) FROM mls_commits WHERE conversation_id = $1", g.ID).Scan(&n) == nil && n == 6,
			"%d commits stored, want 6 (1 + one per round)", n)
	})

	t.Run("MissedEpochsCatchUpInOrder", func(t *testing.T) {
		// Dave is offline; two epochs pass with messages around them.
		var cur struct{ MLSEpoch uint64 }
		alice.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &cur)
		var cursor struct{ LastSeq int64 }
		dave.On(r1.API).Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &cursor)
		e := cur.MLSEpoch
		var want []string
		m, r := alice.SendCiphertext(g.ID, mlswiretest.Application(g.ID, e, 40))
		must(t, r.Status == http.StatusCreated, "send: %d %s", r.Status, r.Body)
		want = append(want, fmt.Sprintf("message@%d", m.Seq))
		c1, r := db1.On(r1.API).Commit(g.ID, e, nil, nil, nil)
		must(t, r.Status == http.StatusOK, "commit: %d %s", r.Status, r.Body)
		want = append(want, fmt.Sprintf("mls@%d/%d", c1.Seq, c1.Epoch))
		m, r = bob.On(r1.API).SendCiphertext(g.ID, mlswiretest.Application(g.ID, e+1, 40))
		must(t, r.Status == http.StatusCreated, "send: %d %s", r.Status, r.Body)
		want = append(want, fmt.Sprintf("message@%d", m.Seq))
		c2, r := dc.Commit(g.ID, e+1, nil, nil, nil)
		must(t, r.Status == http.StatusOK, "commit: %d %s", r.Status, r.Body)
		want = append(want, fmt.Sprintf("mls@%d/%d", c2.Seq, c2.Epoch))
		m, r = carol.SendCiphertext(g.ID, mlswiretest.Application(g.ID, e+2, 40))
		must(t, r.Status == http.StatusCreated, "send: %d %s", r.Status, r.Body)
		want = append(want, fmt.Sprintf("message@%d", m.Seq))

		ws := dave.On(r0.API).Dial()
		ws.Sync("catch-up", map[string]int64{g.ID: cursor.LastSeq})
		var got []string
		for {
			f := ws.Next(wait)
			if f.Type == "synced" {
				break
			}
			switch f.Type {
			case "message":
				got = append(got, fmt.Sprintf("message@%d", f.Message.Seq))
			case "mls":
				mf, err := f.MLS()
				must(t, err == nil && mf.Commit != "", "mls frame %s", f.Raw)
				got = append(got, fmt.Sprintf("mls@%d/%d", mf.Seq, mf.Epoch))
			}
		}
		must(t, slices.Equal(got, want), "Dave caught up with %v, want %v", got, want)
	})

	t.Run("RemovedMemberGetsNothingAfter", func(t *testing.T) {
		carolWS := []*chattest.WS{carol.On(r0.API).Dial(), carol.On(r1.API).Dial()}
		var cur struct{ MLSEpoch uint64 }
		alice.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &cur)
		_, r := da.On(r1.API).Commit(g.ID, cur.MLSEpoch, nil, nil, []string{carol.User.ID})
		must(t, r.Status == http.StatusOK, "remove carol: %d %s", r.Status, r.Body)
		for _, w := range carolWS {
			w.WaitFor("removed", wait)
		}
		bobWS := bob.On(r0.API).Dial()
		m, r := bob.On(r1.API).SendCiphertext(g.ID, mlswiretest.Application(g.ID, cur.MLSEpoch+1, 40))
		must(t, r.Status == http.StatusCreated, "send after removal: %d %s", r.Status, r.Body)
		_, r = db1.Commit(g.ID, cur.MLSEpoch+1, nil, nil, nil)
		must(t, r.Status == http.StatusOK, "commit after removal: %d %s", r.Status, r.Body)
		bobWS.WaitForMessage(m.ID, wait)
		for _, w := range carolWS {
			w.Quiet("message", time.Second)
			w.Quiet("mls", 200*time.Millisecond)
		}
		_, r = carol.SendCiphertext(g.ID, mlswiretest.Application(g.ID, cur.MLSEpoch+2, 40))
		must(t, r.Status == http.StatusNotFound, "a removed member sent: %d %s", r.Status, r.Body)
		ws, r := dc.Welcomes()
		must(t, r.Status == http.StatusOK && len(ws) == 0, "a removed member's device keeps a Welcome: %s", r.Body)
	})

	t.Run("NoPlaintextAnywhere", func(t *testing.T) {
		// A real application message made by ts-mls (the web client's MLS
		// library) carrying a known plaintext, sent through the server as
		// it would be from a browser. Its group is the fixture's
		// conversation id, so that conversation is made here in the
		// database (ids are the server's to choose otherwise).
		app := fixture(t, "application.bin")
		var fx struct {
			GroupID string `json:"groupId"`
			Files   map[string]struct {
				Epoch     int64  `json:"epoch"`
				Plaintext string `json:"plaintext"`
			} `json:"files"`
		}
		must(t, json.Unmarshal(fixture(t, "fixtures.json"), &fx) == nil, "fixtures.json")
		plaintext := fx.Files["application.bin"].Plaintext
		var payload struct{ Text, ID string }
		must(t, json.Unmarshal([]byte(plaintext), &payload) == nil && payload.Text != "", "fixture plaintext %q", plaintext)
		now := time.Now().UnixMicro()
		_, err := db.Exec(`INSERT INTO conversations (id, kind, title_sealed, created_by, created_at, last_seq, last_activity, e2ee, mls_epoch)
			VALUES ($1, 'group', '', $2, $3, 0, $3, 1, $4)`, fx.GroupID, alice.User.ID, now, fx.Files["application.bin"].Epoch)
		must(t, err == nil, "insert the fixture's conversation: %v", err)
		for _, u := range []*chattest.Client{alice, bob} {
			_, err := db.Exec(`INSERT INTO members (conversation_id, user_id, role, joined_at) VALUES ($1, $2, 'member', $3)`, fx.GroupID, u.User.ID, now)
			must(t, err == nil, "insert member: %v", err)
		}
		bobWS := bob.On(r1.API).Dial()
		before := mon.len()
		m, r := alice.SendCiphertext(fx.GroupID, app)
		must(t, r.Status == http.StatusCreated && m.Body == "" && m.Ciphertext == chattest.B64(app), "send the ts-mls message: %d %s", r.Status, r.Body)
		got := bobWS.WaitForMessage(m.ID, wait)
		raw, err := base64.StdEncoding.DecodeString(got.Ciphertext)
		must(t, err == nil && bytes.Equal(raw, app), "Bob on the other replica got other bytes than sent")

		// A control: the same kind of traffic in a plain conversation does
		// carry its text through the backplane, so the capture would see a
		// leak. (Bodies are sealed at rest: the database holds neither.)
		control := "control-" + strings.ToLower(rand.Text())
		plain := alice.Group("plain", bob)
		pm := alice.Send(plain.ID, control)
		bobWS.WaitForMessage(pm.ID, wait)
		deadline := time.Now().Add(wait)
		for !mon.contains(control) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		must(t, mon.len() > before && mon.contains(control), "the Redis capture does not show the plain control message: the check below would prove nothing")

		markers := []string{payload.Text, payload.ID, plaintext}
		dump := dumpDatabase(t, db)
		must(t, strings.Contains(dump, bob.User.Username), "the dump does not show a known clear column (username)")
		logs := ""
		for _, rp := range []*replica{r0, r1} {
			b, err := os.ReadFile(rp.log)
			must(t, err == nil, "read log: %v", err)
			logs += string(b)
		}
		must(t, strings.Contains(logs, "listening"), "the replicas' logs were not captured: %.300s", logs)
		for _, marker := range markers {
			must(t, !strings.Contains(dump, marker), "the database holds the plaintext %q", marker)
			must(t, !strings.Contains(logs, marker), "a server log holds the plaintext %q", marker)
			must(t, !mon.contains(marker), "the backplane carried the plaintext %q", marker)
		}
		// The MLS bytes themselves are sealed at rest like bodies: neither
		// the message nor the commits appear in the database as sent.
		must(t, !strings.Contains(dump, chattest.B64(app)), "the database holds the MLS message as sent (not sealed)")
		var sealed, kid string
		must(t, db.QueryRow(`SELECT body_sealed, key_id FROM messages WHERE id = $1`, m.ID).Scan(&sealed, &kid) == nil &&
			strings.HasPrefix(sealed, "v1."+kid+"."), "the message is not keyring-sealed: %.40s", sealed)
		var commitSealed string
		must(t, db.QueryRow(`SELECT commit_sealed FROM mls_commits WHERE conversation_id = $1 ORDER BY seq LIMIT 1`, g.ID).Scan(&commitSealed) == nil &&
			strings.HasPrefix(commitSealed, "v1."), "the commit is not keyring-sealed: %.40s", commitSealed)
	})
}
