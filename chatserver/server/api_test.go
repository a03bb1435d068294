package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
)

func TestRefreshRotationAndReuseRevokesFamily(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	r1 := alice.Refresh

	r := ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": r1})
	must(t, r.Status == http.StatusOK, "first refresh: %d %s", r.Status, r.Body)
	var s session
	r.Decode(t, &s)
	r2 := s.RefreshToken
	must(t, r2 != "" && r2 != r1, "refresh token not rotated")

	// A stolen copy of r1 is replayed: the whole family dies.
	r = ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": r1})
	must(t, r.Status == http.StatusUnauthorized && r.Code() == "token_reused", "reuse: %d %s", r.Status, r.Body)
	r = ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": r2})
	must(t, r.Status == http.StatusUnauthorized && r.Code() == "invalid_refresh_token", "descendant survived reuse: %d %s", r.Status, r.Body)

	// Another login of the same user (another family) is untouched.
	r = ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": alice.PW, "session": "body"})
	must(t, r.Status == http.StatusOK, "login: %d", r.Status)

	// The reuse is in the audit log, and the chain verifies.
	var events []string
	entries, err := ts.srv.Store().AuditEntries(context.Background(), 0, 100)
	must(t, err == nil, "audit entries: %v", err)
	for _, e := range entries {
		events = append(events, e.Event)
	}
	must(t, strings.Contains(strings.Join(events, ","), audit.RefreshReuse), "audit events %v lack %s", events, audit.RefreshReuse)
	rep, err := audit.Verify(context.Background(), ts.srv.Store())
	must(t, err == nil && rep.OK && rep.Entries == int64(len(entries)), "audit verify %+v %v", rep, err)
}

func TestRefreshCookie(t *testing.T) {
	ts := start(t)
	r := ts.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": "carol",
		"email": "Carol@Example.com ", "password": "a perfectly fine passphrase"})
	must(t, r.Status == http.StatusCreated, "register %d %s", r.Status, r.Body)
	var s session
	r.Decode(t, &s)
	must(t, s.RefreshToken == "" && s.User.Email == "carol@example.com", "cookie mode leaked the token or kept the email as typed: %+v", s)
	ck := r.Header.Get("Set-Cookie")
	for _, attr := range []string{"parley_refresh=", "Path=/api/v1/auth", "HttpOnly", "Secure", "SameSite=Strict"} {
		must(t, strings.Contains(ck, attr), "Set-Cookie %q lacks %s", ck, attr)
	}
	cookie := strings.SplitN(ck, ";", 2)[0]

	r = ts.Do("POST", "/api/v1/auth/refresh", "", nil, "Cookie", cookie)
	must(t, r.Status == http.StatusOK, "cookie refresh %d %s", r.Status, r.Body)
	next := strings.SplitN(r.Header.Get("Set-Cookie"), ";", 2)[0]
	must(t, next != cookie, "cookie not rotated")

	r = ts.Do("POST", "/api/v1/auth/refresh", "", nil, "Cookie", next, "Origin", "https://evil.example")
	must(t, r.Status == http.StatusForbidden, "cross-site refresh: %d", r.Status)

	r = ts.Do("POST", "/api/v1/auth/logout", "", nil, "Cookie", next)
	must(t, r.Status == http.StatusNoContent && strings.Contains(r.Header.Get("Set-Cookie"), "Max-Age=0"), "logout %d %v", r.Status, r.Header)
	r = ts.Do("POST", "/api/v1/auth/refresh", "", nil, "Cookie", next)
	must(t, r.Status == http.StatusUnauthorized, "refresh after logout: %d", r.Status)
}

func TestAccountRules(t *testing.T) {
	ts := start(t)
	ts.Register("alice")
	reg := func(u, e, p string) apiResp {
		return ts.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": u, "email": e, "password": p})
	}
	cases := []struct {
		name   string
		r      apiResp
		status int
		code   string
	}{
		{"short password", reg("bob", "bob@example.com", "short"), 400, "weak_password"},
		{"common password", reg("bob", "bob@example.com", "Password123"), 400, "weak_password"},
		{"129 characters", reg("bob", "bob@example.com", strings.Repeat("x", 129)), 400, "weak_password"},
		{"bad username", reg("b!", "bob@example.com", "good enough passphrase"), 400, "invalid_request"},
		{"bad email", reg("bob", "not-an-email", "good enough passphrase"), 400, "invalid_request"},
		{"taken username", reg("ALICE", "other@example.com", "good enough passphrase"), 409, "conflict"},
		{"taken email", reg("other", "ALICE@example.com", "good enough passphrase"), 409, "conflict"},
		{"unknown field", ts.Do("POST", "/api/v1/auth/register", "", `{"username":"x","admin":true}`), 400, "invalid_request"},
		{"not JSON", ts.Do("POST", "/api/v1/auth/register", "", `{"username":`), 400, "invalid_request"},
		{"64 characters ok", reg("bob", "bob@example.com", strings.Repeat("ab", 32)), 201, ""},
	}
	for _, c := range cases {
		if c.r.Status != c.status || c.r.Code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, c.r.Status, c.r.Body, c.status, c.code)
		}
	}
	// Unknown account and wrong password look the same.
	a := ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "nobody", "password": "whatever it is"})
	b := ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": "whatever it is"})
	must(t, a.Status == 401 && b.Status == 401 && string(a.Body) == string(b.Body), "enumeration: %s vs %s", a.Body, b.Body)
	// Login works by username and by email, case-insensitively.
	for _, login := range []string{"alice", "ALICE", "Alice@Example.com"} {
		r := ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": login, "password": "pw-alice-long-enough-passphrase"})
		must(t, r.Status == 200, "login %q: %d", login, r.Status)
	}
}

func TestChangePasswordRevokesOtherSessions(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	r := ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": alice.PW, "session": "body"})
	var other session
	r.Decode(t, &other)

	mine := alice.Dial()
	otherDevice := (&client{API: alice.API, User: alice.User, Token: other.AccessToken}).Dial()

	r = alice.Do("POST", "/api/v1/auth/password", map[string]string{"currentPassword": "wrong one here", "newPassword": "brand new passphrase"})
	must(t, r.Status == 401 && r.Code() == "invalid_credentials", "wrong current password: %d %s", r.Status, r.Body)
	r = alice.Do("POST", "/api/v1/auth/password", map[string]string{"currentPassword": alice.PW, "newPassword": "brand new passphrase", "session": "body"})
	must(t, r.Status == 200, "change: %d %s", r.Status, r.Body)
	var fresh session
	r.Decode(t, &fresh)
	// The other session's socket is closed; the caller's stays and renews in-band.
	must(t, otherDevice.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "other device's socket not closed with 1008")
	mine.Write(map[string]string{"type": "auth", "token": fresh.AccessToken})
	must(t, mine.WaitFor("ready", 5*time.Second).UserID == alice.User.ID, "the caller's socket did not survive the change")

	must(t, ts.Do("GET", "/api/v1/me", other.AccessToken, nil).Status == 401, "other session's access token still valid")
	must(t, ts.Do("GET", "/api/v1/me", alice.Token, nil).Status == 401, "old access token still valid")
	must(t, ts.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": other.RefreshToken}).Status == 401, "other refresh survived")
	must(t, ts.Do("GET", "/api/v1/me", fresh.AccessToken, nil).Status == 200, "new session refused")
	must(t, ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": "brand new passphrase"}).Status == 200, "new password refused")
	must(t, ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": alice.PW}).Status == 401, "old password accepted")
}

func TestNonMemberLearnsNothing(t *testing.T) {
	ts := start(t)
	alice, bob, mallory := ts.Register("alice"), ts.Register("bob"), ts.Register("mallory")
	conv := alice.Direct(bob)
	alice.Send(conv.ID, "private")
	ghost := "c_doesnotexist"

	probes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/v1/conversations/%s", nil},
		{"GET", "/api/v1/conversations/%s/messages", nil},
		{"POST", "/api/v1/conversations/%s/messages", map[string]string{"body": "let me in"}},
		{"POST", "/api/v1/conversations/%s/read", map[string]int{"seq": 1}},
		{"POST", "/api/v1/conversations/%s/members", map[string]string{"userId": mallory.User.ID}},
	}
	for _, p := range probes {
		real := mallory.Do(p.method, fmt.Sprintf(p.path, conv.ID), p.body)
		none := mallory.Do(p.method, fmt.Sprintf(p.path, ghost), p.body)
		if real.Status != 404 || real.Code() != "not_found" || string(real.Body) != string(none.Body) {
			t.Errorf("%s %s: non-member got %d %s; a missing conversation gives %s", p.method, p.path, real.Status, real.Body, none.Body)
		}
	}
	var list struct{ Conversations []protocol.Conversation }
	mallory.Do("GET", "/api/v1/conversations", nil).Decode(t, &list)
	must(t, len(list.Conversations) == 0, "mallory sees %d conversations", len(list.Conversations))

	w := mallory.Dial()
	w.SendMsg("x", conv.ID, "k", "let me in")
	must(t, w.WaitFor("error", 5e9).Code == "not_found", "ws send by non-member")
	w.Write(map[string]any{"type": "read", "id": "r", "conversationId": conv.ID, "seq": 1})
	must(t, w.WaitFor("error", 5e9).Code == "not_found", "ws read by non-member")
	w.Write(map[string]any{"type": "sync", "id": "s", "cursors": map[string]int{conv.ID: 0}})
	f := w.WaitFor("synced", 5e9)
	must(t, len(f.Cursors) == 0, "sync leaked %v", f.Cursors)
	w.Quiet("message", 200e6)

	r := bob.Do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil)
	must(t, strings.Count(string(r.Body), `"seq"`) == 1, "mallory's attempts were stored: %s", r.Body)
}

func TestMessageRulesOverREST(t *testing.T) {
	ts := start(t, withArgs("-max-message-chars", "4000"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	path := "/api/v1/conversations/" + conv.ID + "/messages"
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"empty", map[string]string{"body": ""}, 400, "message_empty"},
		{"blank", map[string]string{"body": "  \n "}, 400, "message_empty"},
		{"missing body", map[string]string{"clientId": "a"}, 400, "invalid_request"},
		{"4001 characters", map[string]string{"body": strings.Repeat("a", 4001)}, 413, "message_too_long"},
		{"bad client id", map[string]string{"body": "hi", "clientId": "has space"}, 400, "invalid_request"},
		{"over 64 KiB", []byte(`{"body":"` + strings.Repeat("a", 70000) + `"}`), 413, "request_too_large"},
		{"4000 four-byte characters", map[string]string{"body": strings.Repeat("😀", 4000)}, 201, ""},
	}
	for _, c := range cases {
		r := alice.Do("POST", path, c.body)
		if r.Status != c.status || r.Code() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.Status, r.Body, c.status, c.code)
		}
	}
	// Idempotent retry: same clientId stores once.
	r1 := alice.Do("POST", path, map[string]string{"body": "once", "clientId": "retry-1"})
	r2 := alice.Do("POST", path, map[string]string{"body": "once", "clientId": "retry-1"})
	var m1, m2 protocol.Message
	r1.Decode(t, &m1)
	r2.Decode(t, &m2)
	must(t, r1.Status == 201 && r2.Status == 200 && m1.ID == m2.ID && m1.Seq == m2.Seq, "retry: %d %d %+v %+v", r1.Status, r2.Status, m1, m2)
	var h struct{ Messages []protocol.Message }
	alice.Do("GET", path+"?limit=200", nil).Decode(t, &h)
	must(t, len(h.Messages) == 2, "stored %d messages, want 2", len(h.Messages))

	// Pagination bounds.
	for _, q := range []string{"?limit=0x", "?limit=201", "?before=-1", "?before=2&after=1"} {
		r := alice.Do("GET", path+q, nil)
		must(t, r.Status == 400, "history %s: %d", q, r.Status)
	}
}

func TestHistoryPagination(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	for i := 1; i <= 25; i++ {
		alice.Send(conv.ID, fmt.Sprint("n", i))
	}
	path := "/api/v1/conversations/" + conv.ID + "/messages"
	var page struct {
		Messages []protocol.Message
		HasMore  bool
	}
	bob.Do("GET", path+"?limit=10", nil).Decode(t, &page)
	must(t, page.HasMore && len(page.Messages) == 10 && page.Messages[0].Seq == 16 && page.Messages[9].Seq == 25, "newest page %+v", page)
	bob.Do("GET", path+"?limit=10&before=16", nil).Decode(t, &page)
	must(t, page.HasMore && page.Messages[0].Seq == 6 && page.Messages[9].Seq == 15, "second page %+v", page)
	bob.Do("GET", path+"?limit=10&before=6", nil).Decode(t, &page)
	must(t, !page.HasMore && len(page.Messages) == 5 && page.Messages[0].Seq == 1, "last page %+v", page)
	bob.Do("GET", path+"?limit=10&after=20", nil).Decode(t, &page)
	must(t, !page.HasMore && len(page.Messages) == 5 && page.Messages[0].Seq == 21, "forward page %+v", page)
}

func TestRateLimits(t *testing.T) {
	ts := start(t, withArgs("-rate-login", "10/5m", "-rate-messages", "5/1m", "-trusted-proxies", "127.0.0.1"))
	alice, bob := ts.Register("alice"), ts.Register("bob")
	login := func(login, ip string) apiResp {
		return ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": login, "password": "wrong password!"}, "X-Forwarded-For", ip)
	}
	// Per IP: 10 attempts against different accounts, the 11th is refused.
	for i := 0; i < 10; i++ {
		r := login(fmt.Sprint("user", i), "203.0.113.7")
		must(t, r.Status == 401, "attempt %d: %d", i+1, r.Status)
	}
	r := login("user99", "203.0.113.7")
	must(t, r.Status == 429 && r.Code() == "rate_limited", "11th from one IP: %d %s", r.Status, r.Body)
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	must(t, err == nil && secs > 0 && secs <= 30, "Retry-After %q", r.Header.Get("Retry-After"))

	// Per account: 10 attempts from 10 addresses, the 11th is refused.
	for i := 0; i < 10; i++ {
		login("bob", fmt.Sprintf("198.51.100.%d", i+1))
	}
	r = login("bob", "198.51.100.200")
	must(t, r.Status == 429, "11th against one account: %d", r.Status)

	// Messages: 5 a minute per user, over REST and WebSocket together.
	conv := alice.Direct(bob)
	for i := 0; i < 4; i++ {
		alice.Send(conv.ID, fmt.Sprint("m", i))
	}
	w := alice.Dial()
	w.SendMsg("fifth", conv.ID, "k5", "fifth")
	must(t, w.WaitFor("ack", 5e9).ID == "fifth", "5th refused")
	w.SendMsg("sixth", conv.ID, "k6", "sixth")
	f := w.WaitFor("error", 5e9)
	must(t, f.ID == "sixth" && f.Code == "rate_limited" && f.RetryAfter > 0, "ws 6th: %+v", f)
	r = alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", map[string]string{"body": "seventh"})
	must(t, r.Status == 429 && r.Header.Get("Retry-After") != "", "rest 7th: %d", r.Status)
	// Bob has his own allowance.
	bob.Send(conv.ID, "bob is fine")
}

func TestSecurityHeaders(t *testing.T) {
	ts := start(t, withArgs("-trusted-proxies", "127.0.0.1/32"))
	alice := ts.Register("alice")
	for _, path := range []string{"/", "/api/v1/me", "/healthz", "/api/v1/nope"} {
		r := alice.Do("GET", path, nil)
		h := r.Header
		csp := h.Get("Content-Security-Policy")
		for _, d := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'none'",
			"require-trusted-types-for 'script'", "trusted-types parley-sw",
			"frame-ancestors 'none'", "connect-src 'self' ws://" + strings.TrimPrefix(ts.Base, "http://")} {
			must(t, strings.Contains(csp, d), "%s: CSP %q lacks %q", path, csp, d)
		}
		must(t, !strings.Contains(csp, "unsafe-inline") && !strings.Contains(csp, "unsafe-eval"), "%s: unsafe CSP", path)
		must(t, h.Get("X-Content-Type-Options") == "nosniff", "%s: nosniff", path)
		must(t, h.Get("Referrer-Policy") == "strict-origin-when-cross-origin", "%s: referrer", path)
		must(t, h.Get("X-Xss-Protection") == "", "%s: X-XSS-Protection must not be sent", path)
		must(t, h.Get("Strict-Transport-Security") == "", "%s: HSTS over plain HTTP", path)
		if strings.HasPrefix(path, "/api/") {
			must(t, h.Get("Cache-Control") == "no-store", "%s: Cache-Control %q", path, h.Get("Cache-Control"))
		}
	}
	r := ts.Do("GET", "/healthz", "", nil, "X-Forwarded-Proto", "https")
	hsts := r.Header.Get("Strict-Transport-Security")
	must(t, strings.HasPrefix(hsts, "max-age=") && hsts >= "max-age=31536000", "HSTS behind a TLS proxy: %q", hsts)

	untrusted := start(t)
	r = untrusted.Do("GET", "/healthz", "", nil, "X-Forwarded-Proto", "https")
	must(t, r.Header.Get("Strict-Transport-Security") == "", "HSTS from an untrusted X-Forwarded-Proto")
}

// Opens the database file itself and looks for any message text or group
// title: nothing private may be stored in the clear.
func TestNoPlaintextInDatabase(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	secrets := []string{"attack at dawn 7f3c", "the vault code is 0451", "ünïcödé sëcret ✓"}
	for _, s := range secrets {
		alice.Send(conv.ID, s)
	}
	r := alice.Do("POST", "/api/v1/conversations/group", map[string]any{"title": "Project Nightingale 9d2e", "memberIds": []string{bob.User.ID}})
	must(t, r.Status == 201, "group %d", r.Status)
	// The API returns them in the clear: the search below can find them if stored.
	h := bob.Do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil)
	must(t, strings.Contains(string(h.Body), secrets[0]), "sanity: message not readable through the API")

	dataDir := ts.cfg.DataDir
	ts.stop() // checkpoint and close the database
	files, _ := filepath.Glob(filepath.Join(dataDir, "parley.db*"))
	must(t, len(files) > 0, "no database files in %s", dataDir)
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err == nil, "read %s: %v", f, err)
		all = append(all, b...)
	}
	for _, s := range append(secrets, "Project Nightingale 9d2e") {
		must(t, !bytes.Contains(all, []byte(s)), "plaintext %q found in the database file", s)
	}
	must(t, bytes.Contains(all, []byte("alice@example.com")), "sanity: the search reads the real file")

	// Every stored body is a keyring ciphertext naming its key.
	db, err := sqlstore.Open(context.Background(), ts.cfg.DatabaseURL, sqlstore.Options{})
	must(t, err == nil, "reopen: %v", err)
	defer db.Close()
	msgs, err := db.MessagesAfter(context.Background(), conv.ID, 0, 10)
	must(t, err == nil && len(msgs) == 3, "messages %d %v", len(msgs), err)
	for _, m := range msgs {
		must(t, strings.HasPrefix(m.BodySealed, "v1."+m.KeyID+"."), "stored body %q", m.BodySealed)
	}
}

// A ciphertext copied into another row no longer opens: the API flags it and
// never shows another message's text.
func TestMovedCiphertextIsRefused(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	a := alice.Send(conv.ID, "first secret")
	b := alice.Send(conv.ID, "second")
	dsn := ts.cfg.DatabaseURL
	ts.stop()

	raw, err := sqlDB(t, dsn)
	must(t, err == nil, "open: %v", err)
	var sealed string
	must(t, raw.QueryRow(`SELECT body_sealed FROM messages WHERE id = ?`, a.ID).Scan(&sealed) == nil, "read row")
	_, err = raw.Exec(`UPDATE messages SET body_sealed = ? WHERE id = ?`, sealed, b.ID)
	must(t, err == nil, "move ciphertext: %v", err)
	raw.Close()

	ts2 := start(t, withArgs("-data-dir", filepath.Dir(strings.TrimPrefix(dsn, "sqlite://"))))
	bob2 := &client{API: ts2.API}
	r := ts2.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "bob", "password": bob.PW, "session": "body"})
	var s session
	r.Decode(t, &s)
	bob2.Token = s.AccessToken
	var h struct{ Messages []protocol.Message }
	bob2.Do("GET", "/api/v1/conversations/"+conv.ID+"/messages", nil).Decode(t, &h)
	must(t, len(h.Messages) == 2, "messages %+v", h.Messages)
	must(t, h.Messages[0].Body == "first secret" && !h.Messages[0].Undecryptable, "untouched row %+v", h.Messages[0])
	must(t, h.Messages[1].Undecryptable && h.Messages[1].Body == "", "moved ciphertext opened: %+v", h.Messages[1])
}

func TestGroupMembership(t *testing.T) {
	ts := start(t)
	owner, m1, m2, out := ts.Register("owner"), ts.Register("member1"), ts.Register("member2"), ts.Register("outsider")
	r := owner.Do("POST", "/api/v1/conversations/group", map[string]any{"title": "  Team  ", "memberIds": []string{m1.User.ID}})
	must(t, r.Status == 201, "create %d %s", r.Status, r.Body)
	var g protocol.Conversation
	r.Decode(t, &g)
	must(t, g.Title == "Team" && len(g.Members) == 2, "group %+v", g)

	w := m2.Dial()
	r = m1.Do("POST", "/api/v1/conversations/"+g.ID+"/members", map[string]string{"userId": m2.User.ID})
	must(t, r.Status == 403 && r.Code() == "forbidden", "plain member added someone: %d", r.Status)
	r = owner.Do("POST", "/api/v1/conversations/"+g.ID+"/members", map[string]string{"userId": m2.User.ID})
	must(t, r.Status == 201, "owner add: %d %s", r.Status, r.Body)
	cf := w.WaitFor("conversation", 5e9)
	must(t, cf.Conversation != nil && cf.Conversation.ID == g.ID && cf.Conversation.Title == "Team", "new member told: %+v", cf)
	r = owner.Do("POST", "/api/v1/conversations/"+g.ID+"/members", map[string]string{"userId": m2.User.ID})
	must(t, r.Status == 409, "double add: %d", r.Status)

	owner.Send(g.ID, "hello team")
	must(t, w.WaitFor("message", 5e9).Message.Body == "hello team", "group message not delivered")

	must(t, m1.Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+m2.User.ID, nil).Status == 403, "member removed member")
	must(t, owner.Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+owner.User.ID, nil).Status == 403, "owner left")
	must(t, m1.Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+m1.User.ID, nil).Status == 204, "member could not leave")
	must(t, m1.Do("GET", "/api/v1/conversations/"+g.ID+"/messages", nil).Status == 404, "former member still reads")
	must(t, owner.Do("DELETE", "/api/v1/conversations/"+g.ID+"/members/"+m2.User.ID, nil).Status == 204, "owner remove")
	must(t, w.WaitFor("removed", 5e9).ConversationID == g.ID, "removed member not told")
	must(t, out.Do("GET", "/api/v1/conversations/"+g.ID, nil).Status == 404, "outsider sees group")

	r = owner.Do("POST", "/api/v1/conversations/group", map[string]any{"title": "x", "memberIds": []string{"u_nobody"}})
	must(t, r.Status == 400, "group with unknown member: %d", r.Status)

	// Direct conversations are one per pair, whoever starts them.
	d1 := m1.Direct(m2)
	d2 := m2.Direct(m1)
	must(t, d1.ID == d2.ID, "two direct conversations for one pair")
	must(t, m1.Do("POST", "/api/v1/conversations/direct", map[string]string{"userId": m1.User.ID}).Status == 400, "direct with self")
}

func TestMetricsAndHealth(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	b := bob.Dial()
	alice.Send(conv.ID, "count me")
	b.WaitFor("message", 5e9)
	ts.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": "alice", "password": "not the password"})
	must(t, ts.Do("GET", "/healthz", "", nil).Status == 200, "healthz")
	r := ts.Do("GET", "/readyz", "", nil)
	must(t, r.Status == 200 && strings.Contains(string(r.Body), `"database":"ok"`), "readyz %d %s", r.Status, r.Body)
	m := string(ts.Do("GET", "/metrics", "", nil).Body)
	for _, want := range []string{"parley_ws_connections 1", `parley_messages_sent_total{via="rest"} 1`,
		"parley_delivery_latency_seconds_count 1", `parley_auth_failures_total{reason="wrong_password"} 1`,
		"parley_keyring_seals{kid=", `parley_http_requests_total{code="201",method="POST",route="/api/v1/auth/register"} 2`} {
		must(t, strings.Contains(m, want), "metrics lack %q", want)
	}
	must(t, !strings.Contains(m, "count me"), "message text in metrics")
}

// With -metrics-addr, /metrics leaves the public port for its own listener.
func TestSeparateMetricsListener(t *testing.T) {
	ts := start(t, withArgs("-metrics-addr", "127.0.0.1:0"))
	// The path falls through to the web client; what matters is no metric leaks.
	must(t, !strings.Contains(string(ts.Do("GET", "/metrics", "", nil).Body), "parley_"), "metrics still on the API port")
	res, err := http.Get("http://" + ts.srv.MetricsAddr() + "/metrics")
	must(t, err == nil && res.StatusCode == http.StatusOK, "metrics listener: %v %v", err, res)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	must(t, strings.Contains(string(body), "parley_ws_connections"), "metrics listener serves no metrics")
}
