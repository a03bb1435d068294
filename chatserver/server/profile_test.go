package server_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/protocol"
)

// onBothEngines runs fn against a server on SQLite and one on PostgreSQL.
func onBothEngines(t *testing.T, fn func(t *testing.T, ts *testServer)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, start(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, start(t, withPostgres(t))) })
}

// registerAs creates a user with a display name of its own.
func registerAs(ts *testServer, username, displayName string) *client {
	ts.t.Helper()
	pw := "pw-" + username + "-long-enough-passphrase"
	r := ts.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": username,
		"email": username + "@example.com", "password": pw, "displayName": displayName, "session": "body"})
	must(ts.t, r.Status == 201, "register %s: %d %s", username, r.Status, r.Body)
	var s session
	r.Decode(ts.t, &s)
	return &client{API: ts.API, User: s.User, Token: s.AccessToken, Refresh: s.RefreshToken, PW: pw}
}

// searchNames runs the people search as c and returns the usernames found.
func searchNames(t *testing.T, c *client, q string, limit int) []string {
	t.Helper()
	path := "/api/v1/users?q=" + url.QueryEscape(q)
	if limit > 0 {
		path += "&limit=" + strconv.Itoa(limit)
	}
	r := c.Do("GET", path, nil)
	must(t, r.Status == 200, "search %q: %d %s", q, r.Status, r.Body)
	var out struct{ Users []protocol.User }
	r.Decode(t, &out)
	names := []string{}
	for _, u := range out.Users {
		must(t, u.Email == "", "search answer carries an email: %+v", u)
		names = append(names, u.Username)
	}
	return names
}

// People search over REST (issue 12, defect 7): display name and username,
// substring, case-insensitive, ranked, "@" stripped, never the caller.
func TestPeopleSearch(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		me := registerAs(ts, "bobcat", "Me Myself")
		registerAs(ts, "bob", "Bob Brown")
		registerAs(ts, "bobby", "Robert Tables")
		registerAs(ts, "carol", "Carol Brownlee")
		registerAs(ts, "zoe", "Zoë Ærø")
		cases := []struct {
			q     string
			limit int
			want  []string
		}{
			{"Bob Brown", 0, []string{"bob"}},
			{"brown", 0, []string{"bob", "carol"}},
			{"@bob", 0, []string{"bob", "bobby"}}, // never the caller (bobcat)
			{"@BOB", 1, []string{"bob"}},
			{"  bob  ", 0, []string{"bob", "bobby"}},
			{"ZOË ÆR", 0, []string{"zoe"}},
			{"carol@example.com", 0, []string{"carol"}},
			{"Carol@Example.com", 0, []string{"carol"}},
			{"myself", 0, []string{}}, // the caller's own name finds nobody
		}
		for _, c := range cases {
			got := searchNames(t, me, c.q, c.limit)
			must(t, strings.Join(got, ",") == strings.Join(c.want, ","), "search %q (limit %d) = %v, want %v", c.q, c.limit, got, c.want)
		}
		for _, q := range []string{"", "@", "   ", strings.Repeat("x", 101), "a\x01b"} {
			r := me.Do("GET", "/api/v1/users?q="+url.QueryEscape(q), nil)
			must(t, r.Status == 400 && r.Code() == "invalid_request" && r.Field() == "q", "search %q: %d %s", q, r.Status, r.Body)
		}
	})
}

// Changing one's display name (issue 12): 200 with the user; everyone sharing
// a conversation, and the user's other sessions, get a "user" frame through
// the backplane; conversations and members read afterwards carry the name.
func TestChangeDisplayName(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		alice, bob, carol, dave := ts.Register("alice"), ts.Register("bob"), ts.Register("carol"), ts.Register("dave")
		direct := alice.Direct(bob)
		group := dave.Group("Team", alice)
		aliceOther := ts.Login("alice")
		bobWS, carolWS, daveWS, otherWS := bob.Dial(), carol.Dial(), dave.Dial(), aliceOther.Dial()

		r := alice.Do("PATCH", "/api/v1/me", map[string]string{"displayName": "  Alice Liddell  "})
		must(t, r.Status == 200, "PATCH /me: %d %s", r.Status, r.Body)
		var me protocol.User
		r.Decode(t, &me)
		must(t, me.ID == alice.User.ID && me.DisplayName == "Alice Liddell" && me.Email == "alice@example.com" && me.Username == "alice",
			"PATCH /me answer %+v", me)

		for name, w := range map[string]*wsConn{"bob (direct)": bobWS, "dave (group)": daveWS, "alice's other session": otherWS} {
			f := w.WaitFor("user", 5*time.Second)
			must(t, f.User != nil && f.User.ID == alice.User.ID && f.User.DisplayName == "Alice Liddell" && f.User.Username == "alice",
				"%s got user frame %s", name, f.Raw)
			must(t, !strings.Contains(string(f.Raw), "email"), "%s: user frame carries an email: %s", name, f.Raw)
		}
		carolWS.Quiet("user", 300*time.Millisecond) // shares nothing with alice

		// Reads afterwards carry the new name.
		var list struct{ Conversations []protocol.Conversation }
		r = bob.Do("GET", "/api/v1/conversations", nil)
		r.Decode(t, &list)
		found := false
		for _, c := range list.Conversations {
			if c.ID != direct.ID {
				continue
			}
			for _, m := range c.Members {
				if m.ID == alice.User.ID {
					found = m.DisplayName == "Alice Liddell"
				}
			}
		}
		must(t, found, "bob's conversation list does not show the new name: %s", r.Body)
		var g protocol.Conversation
		dave.Do("GET", "/api/v1/conversations/"+group.ID, nil).Decode(t, &g)
		must(t, slices.ContainsFunc(g.Members, func(m protocol.Member) bool {
			return m.ID == alice.User.ID && m.DisplayName == "Alice Liddell"
		}), "group members after the change: %+v", g.Members)
		alice.Do("GET", "/api/v1/me", nil).Decode(t, &me)
		must(t, me.DisplayName == "Alice Liddell", "GET /me after the change: %+v", me)
		must(t, strings.Join(searchNames(t, bob, "liddell", 0), ",") == "alice", "search by the new name")

		// Validation as at registration; blank means the username.
		for _, body := range []any{map[string]string{"displayName": strings.Repeat("x", 65)},
			map[string]string{"displayName": "a	b"}, map[string]string{}, `{"displayName":null}`} {
			r = alice.Do("PATCH", "/api/v1/me", body)
			must(t, r.Status == 400 && r.Code() == "invalid_request" && r.Field() == "displayName", "PATCH /me %v: %d %s", body, r.Status, r.Body)
		}
		r = alice.Do("PATCH", "/api/v1/me", map[string]string{"displayName": "   "})
		r.Decode(t, &me)
		must(t, r.Status == 200 && me.DisplayName == "alice", "blank display name: %d %s", r.Status, r.Body)
		must(t, ts.Do("PATCH", "/api/v1/me", "", map[string]string{"displayName": "x"}).Status == 401, "unauthenticated PATCH /me")
	})
}

// Renaming a group (issue 12): owner or admin only; every member gets the
// "conversation" frame with the new title.
func TestRenameGroup(t *testing.T) {
	onBothEngines(t, func(t *testing.T, ts *testServer) {
		owner, member, outsider := ts.Register("owner"), ts.Register("member"), ts.Register("outsider")
		g := owner.Group("Team", member)
		memberWS := member.Dial()

		r := owner.Do("PATCH", "/api/v1/conversations/"+g.ID, map[string]string{"title": "  Dream Team "})
		must(t, r.Status == 200, "owner rename: %d %s", r.Status, r.Body)
		var got protocol.Conversation
		r.Decode(t, &got)
		must(t, got.ID == g.ID && got.Title == "Dream Team" && len(got.Members) == 2, "rename answer %+v", got)
		f := memberWS.WaitFor("conversation", 5*time.Second)
		must(t, f.Conversation != nil && f.Conversation.ID == g.ID && f.Conversation.Title == "Dream Team", "member's frame %s", f.Raw)
		member.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &got)
		must(t, got.Title == "Dream Team", "member reads title %q", got.Title)

		r = member.Do("PATCH", "/api/v1/conversations/"+g.ID, map[string]string{"title": "Mine now"})
		must(t, r.Status == 403 && r.Code() == "forbidden", "plain member renamed: %d %s", r.Status, r.Body)
		r = outsider.Do("PATCH", "/api/v1/conversations/"+g.ID, map[string]string{"title": "Hi"})
		must(t, r.Status == 404 && r.Code() == "not_found", "outsider renamed: %d %s", r.Status, r.Body)
		r = owner.Do("PATCH", "/api/v1/conversations/c_doesnotexist", map[string]string{"title": "Hi"})
		must(t, r.Status == 404, "unknown conversation: %d %s", r.Status, r.Body)
		d := owner.Direct(member)
		r = owner.Do("PATCH", "/api/v1/conversations/"+d.ID, map[string]string{"title": "Us"})
		must(t, r.Status == 403 && r.Code() == "forbidden", "direct renamed: %d %s", r.Status, r.Body)
		for _, body := range []any{map[string]string{"title": "  "}, map[string]string{"title": strings.Repeat("t", 101)}, map[string]string{}} {
			r = owner.Do("PATCH", "/api/v1/conversations/"+g.ID, body)
			must(t, r.Status == 400 && r.Field() == "title", "title %v: %d %s", body, r.Status, r.Body)
		}
		owner.Do("GET", "/api/v1/conversations/"+g.ID, nil).Decode(t, &got)
		must(t, got.Title == "Dream Team", "refused renames changed the title to %q", got.Title)
	})
}

// A direct conversation whose other member deleted their account refuses new
// messages with account_deleted (410), over REST and the WebSocket; nor can
// a new one be started with them. Groups are not affected.
func TestDeletedPeerRefusesMessages(t *testing.T) {
	ts := start(t)
	alice, bob, carol := ts.Register("alice"), ts.Register("bob"), ts.Register("carol")
	d := alice.Direct(bob)
	alice.Send(d.ID, "before")
	g := alice.Group("Trio", bob, carol)
	r := bob.Do("DELETE", "/api/v1/me", map[string]string{"password": bob.PW})
	must(t, r.Status == 204, "delete bob: %d %s", r.Status, r.Body)

	r = alice.Do("POST", "/api/v1/conversations/"+d.ID+"/messages", map[string]string{"body": "are you there?"})
	must(t, r.Status == 410 && r.Code() == "account_deleted", "send to a deleted account: %d %s", r.Status, r.Body)
	w := alice.Dial()
	w.SendMsg("s1", d.ID, "k1", "over the socket")
	f := w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "s1" && f.Code == "account_deleted", "socket send: %s", f.Raw)
	must(t, len(alice.History(d.ID, 0)) == 1, "a refused message was stored")

	r = carol.Do("POST", "/api/v1/conversations/direct", map[string]string{"userId": bob.User.ID})
	must(t, r.Status == 410 && r.Code() == "account_deleted", "new direct with a deleted account: %d %s", r.Status, r.Body)
	r = alice.Do("POST", "/api/v1/conversations/direct", map[string]string{"userId": bob.User.ID})
	must(t, r.Status == 200, "the existing direct conversation stays readable: %d %s", r.Status, r.Body)
	alice.Send(g.ID, "the group goes on")
}

// Errors about one request field name it in "field", so a form can show the
// message beside that field (issue 12, defect 6).
func TestErrorsNameTheField(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	reg := func(u, e, p, d string) apiResp {
		return ts.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": u, "email": e, "password": p, "displayName": d})
	}
	const good = "good enough passphrase"
	cases := []struct {
		name   string
		r      apiResp
		status int
		code   string
		field  string
	}{
		{"taken username", reg("ALICE", "other@example.com", good, ""), 409, "conflict", "username"},
		{"taken email", reg("other", "Alice@Example.com", good, ""), 409, "conflict", "email"},
		{"both taken: username first", reg("alice", "alice@example.com", good, ""), 409, "conflict", "username"},
		{"weak password", reg("bob", "bob@example.com", "short", ""), 400, "weak_password", "password"},
		{"bad username", reg("b!", "bob@example.com", good, ""), 400, "invalid_request", "username"},
		{"bad email", reg("bob", "not-an-email", good, ""), 400, "invalid_request", "email"},
		{"long display name", reg("bob", "bob@example.com", good, strings.Repeat("é", 65)), 400, "invalid_request", "displayName"},
		{"control character in display name", reg("bob", "bob@example.com", good, "Bob\nBrown"), 400, "invalid_request", "displayName"},
		{"wrong current password", alice.Do("POST", "/api/v1/auth/password",
			map[string]string{"currentPassword": "not the password", "newPassword": "brand new passphrase"}), 401, "invalid_credentials", "currentPassword"},
		{"weak new password", alice.Do("POST", "/api/v1/auth/password",
			map[string]string{"currentPassword": alice.PW, "newPassword": "short"}), 400, "weak_password", "newPassword"},
		// Errors about no one field carry none.
		{"not JSON", ts.Do("POST", "/api/v1/auth/register", "", `{"username":`), 400, "invalid_request", ""},
		{"unauthenticated", ts.Do("GET", "/api/v1/me", "", nil), 401, "unauthorized", ""},
	}
	for _, c := range cases {
		if c.r.Status != c.status || c.r.Code() != c.code || c.r.Field() != c.field {
			t.Errorf("%s: %d %s, want %d %s field %q", c.name, c.r.Status, c.r.Body, c.status, c.code, c.field)
		}
	}
	// The exact shape of the example.
	r := reg("alice", "new@example.com", good, "")
	must(t, strings.Contains(string(r.Body), `"field":"username"`) && strings.Contains(string(r.Body), `"message":"That username is already taken."`),
		"taken username body: %s", r.Body)
	// A 64-character display name is still fine (the limit counts characters).
	r = reg("bob", "bob@example.com", good, strings.Repeat("é", 64))
	must(t, r.Status == 201, "64-character display name: %d %s", r.Status, r.Body)
}
