package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	_ "modernc.org/sqlite" // the "sqlite" driver, to read the store behind the API's back

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/httpapi"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/password"
	"github.com/parley-chat/parley/chatserver/presence"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/realtime"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
	"github.com/parley-chat/parley/chatserver/token"
)

// The REST fuzz targets send fuzzed bodies to each POST endpoint of the real
// API (wired as server.New wires it, on a temporary SQLite store, in
// process, with argon2id at its cheapest so a body that passes validation
// costs about a millisecond). Every target checks each answer:
//   - never a 5xx, whatever the body;
//   - every 4xx is JSON {"error": {"code": ..., "message": ...}} with a code;
//   - a 4xx stores nothing: users, tokens, conversations, members, read
//     markers, messages and audit entries are unchanged (but a failed login
//     is audited, by design);
//   - a body that is not valid UTF-8 is answered 400 invalid_request (the
//     JSON decoder would otherwise store U+FFFD), by every endpoint that
//     reads a body;
//   - a 2xx body is JSON (or empty for 204).
//
// Bodies may name the fixture's values with placeholders, replaced before
// sending, so seeds stay meaningful in every fuzz worker (each builds its
// own fixture, with its own ids): $ALICE, $BOB, $CAROL (user ids), $PASSWORD
// (alice's current password), $REFRESH (a refresh token minted for this
// request), $GROUP, $DIRECT, $FOREIGN (conversation ids).

var fuzzHashing = password.Params{MemoryKiB: 1024, Time: 1, Threads: 1}

type fuzzAPI struct {
	handler  http.Handler
	acc      *accounts.Service
	raw      *sql.DB // the same SQLite file, read directly
	ids      map[string]string
	token    string // alice's access token
	password string // alice's current password

	logMu sync.Mutex
	log   bytes.Buffer
}

func (fx *fuzzAPI) Write(p []byte) (int, error) {
	fx.logMu.Lock()
	defer fx.logMu.Unlock()
	return fx.log.Write(p)
}

func (fx *fuzzAPI) takeLog() string {
	fx.logMu.Lock()
	defer fx.logMu.Unlock()
	s := fx.log.String()
	fx.log.Reset()
	return s
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	ctx := context.Background()
	fx := &fuzzAPI{ids: map[string]string{}, password: "correct horse battery alice"}
	log := slog.New(slog.NewTextHandler(fx, &slog.HandlerOptions{Level: slog.LevelWarn}))
	m := metrics.New()
	path := filepath.Join(tb.TempDir(), "parley.db")
	db, err := sqlstore.Open(ctx, "sqlite://"+path, sqlstore.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if fx.raw, err = sql.Open("sqlite", path); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fx.raw.Close() })
	keys, err := keyring.LoadOrGenerate(tb.TempDir(), keyring.Options{Reserver: db, Metrics: m})
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := password.NewHasher(1, fuzzHashing, m)
	if err != nil {
		tb.Fatal(err)
	}
	// Limits far above what a fuzzer sends: a 429 would hide the endpoint.
	unlimited := ratelimit.Rate{N: 1 << 30, Per: time.Hour}
	auditLog := audit.New(db, log, m)
	bp := backplane.NewMemory()
	codec := delivery.NewCodec(keys, nil)
	events := delivery.NewPublisher(bp, codec, log, m)
	pres := presence.NewService(presence.NewMemory(nil), db, events, log, nil)
	fx.acc = accounts.New(accounts.Config{Store: db, Hasher: hasher, Tokens: token.NewIssuer(keys, time.Hour, nil),
		Audit: auditLog, Sockets: events, Metrics: m, Logger: log, RefreshTTL: 24 * time.Hour})
	msgs := messaging.New(messaging.Config{Store: db, Keys: keys, Events: events, Presence: pres, Audit: auditLog,
		MessageLimit: ratelimit.NewMemory(unlimited, nil), Metrics: m, Logger: log, MaxBodyChars: 4000})
	hub := realtime.NewHub(realtime.Config{Logger: log, Metrics: m, Accounts: fx.acc, Messages: msgs, Presence: pres,
		Tickets: realtime.NewMemoryTickets(), Backplane: bp, Heads: db, Codec: codec})
	if err := bp.Start(hub); err != nil {
		tb.Fatal(err)
	}
	fx.handler = httpapi.New(httpapi.Config{Accounts: fx.acc, Messages: msgs, Hub: hub, Metrics: m, Logger: log,
		LoginLimit: ratelimit.NewMemory(unlimited, nil), RefreshTTL: 24 * time.Hour,
		Ready: map[string]httpapi.Checker{"database": db.Ping}}).Handler()

	users := map[string]*accounts.Session{}
	for _, name := range []string{"alice", "bob", "carol"} {
		pw := "correct horse battery " + name
		s, err := fx.acc.Register(ctx, accounts.RegisterInput{Username: name, Email: name + "@example.test", Password: pw}, accounts.Meta{})
		if err != nil {
			tb.Fatal(err)
		}
		users[name] = s
		fx.ids["$"+strings.ToUpper(name)] = s.User.ID
	}
	fx.token = users["alice"].AccessToken
	alice, bob, carol := users["alice"].User.ID, users["bob"].User.ID, users["carol"].User.ID
	g, err := msgs.CreateGroup(ctx, alice, "the group", []string{bob})
	if err != nil {
		tb.Fatal(err)
	}
	d, _, err := msgs.CreateDirect(ctx, alice, bob)
	if err != nil {
		tb.Fatal(err)
	}
	foreign, err := msgs.CreateGroup(ctx, bob, "not alice's", []string{carol})
	if err != nil {
		tb.Fatal(err)
	}
	if _, _, err := msgs.Send(ctx, alice, g.ID, "", "first"); err != nil {
		tb.Fatal(err)
	}
	fx.ids["$GROUP"], fx.ids["$DIRECT"], fx.ids["$FOREIGN"] = g.ID, d.ID, foreign.ID
	return fx
}

// conversation picks the conversation a conversation endpoint is called on.
func (fx *fuzzAPI) conversation(which uint8) string {
	switch which % 4 {
	case 0:
		return fx.ids["$GROUP"]
	case 1:
		return fx.ids["$DIRECT"]
	case 2:
		return fx.ids["$FOREIGN"] // alice is not a member
	default:
		return "c_does_not_exist"
	}
}

// snapshot sums up what the store holds, to see that a 4xx changed nothing.
// Failed logins are left out of the audit count: they are recorded by design.
func (fx *fuzzAPI) snapshot(t *testing.T) string {
	t.Helper()
	const q = `SELECT
		(SELECT count(*) FROM users), (SELECT coalesce(max(tokens_valid_after), 0) FROM users),
		(SELECT count(*) FROM refresh_tokens), (SELECT count(used_at) FROM refresh_tokens), (SELECT count(revoked_at) FROM refresh_tokens),
		(SELECT count(*) FROM conversations), (SELECT coalesce(sum(last_seq), 0) FROM conversations),
		(SELECT coalesce(max(last_activity), 0) FROM conversations),
		(SELECT count(*) FROM members), (SELECT coalesce(sum(read_seq), 0) FROM members),
		(SELECT count(*) FROM messages),
		(SELECT count(*) FROM audit_log WHERE event <> 'login.failed')`
	v := make([]int64, 12)
	ptrs := make([]any, len(v))
	for i := range v {
		ptrs[i] = &v[i]
	}
	if err := fx.raw.QueryRow(q).Scan(ptrs...); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return fmt.Sprint(v)
}

// endpoint is one POST endpoint under fuzz.
type endpoint struct {
	path     func(fx *fuzzAPI, which uint8) string
	conv     bool // the path names a conversation, chosen by which
	auth     bool // sent with alice's access token
	readBody bool // the handler reads the body (ws/ticket does not)
	seeds    []string
}

func fixed(p string) func(*fuzzAPI, uint8) string { return func(*fuzzAPI, uint8) string { return p } }

func inConversation(suffix string) func(*fuzzAPI, uint8) string {
	return func(fx *fuzzAPI, which uint8) string {
		return "/api/v1/conversations/" + fx.conversation(which) + suffix
	}
}

// Seeds every endpoint gets: empty, not an object, wrong shapes, invalid
// UTF-8 inside a string and outside one, unknown fields, trailing data.
var commonSeeds = []string{``, `{}`, `null`, `[]`, `"x"`, `{"a":1}`, `{} {}`, `{`, "{\"x\":\"\xff\"}", "\xff\xfe",
	"{\"userId\":\"\xc3\x28\"}", "{\"body\":\"caf\xe9\"}", `{"body":"ok"}x`}

func fuzzEndpoint(f *testing.F, ep endpoint) {
	fx := newFuzzAPI(f)
	choices := uint8(1)
	if ep.conv {
		choices = 4
	}
	for _, s := range append(ep.seeds, commonSeeds...) {
		for which := range choices {
			f.Add(which, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ctx := context.Background()
		if bytes.Contains(body, []byte("$REFRESH")) {
			s, err := fx.acc.Login(ctx, "alice", fx.password, accounts.Meta{})
			if err != nil {
				t.Fatalf("login for a refresh token: %v", err)
			}
			body = bytes.ReplaceAll(body, []byte("$REFRESH"), []byte(s.RefreshToken))
		}
		body = bytes.ReplaceAll(body, []byte("$PASSWORD"), []byte(fx.password))
		for k, v := range fx.ids {
			body = bytes.ReplaceAll(body, []byte(k), []byte(v))
		}
		before := fx.snapshot(t)
		req := httptest.NewRequest(http.MethodPost, ep.path(fx, which), bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if ep.auth {
			req.Header.Set("Authorization", "Bearer "+fx.token)
		}
		rec := httptest.NewRecorder()
		fx.handler.ServeHTTP(rec, req)
		status, answer := rec.Code, rec.Body.Bytes()
		logs := fx.takeLog()
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("POST %s %q: %d %s\n%s\nserver log:\n%s", req.URL.Path, body, status, answer, fmt.Sprintf(format, args...), logs)
		}

		if status >= 500 {
			fail("a server error")
		}
		if status >= 400 {
			var e struct {
				Error *struct {
					Code    string  `json:"code"`
					Message *string `json:"message"`
				} `json:"error"`
			}
			ct := rec.Header().Get("Content-Type")
			if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(answer, &e) != nil ||
				e.Error == nil || e.Error.Code == "" || e.Error.Message == nil {
				fail("a %d must be a JSON error with a code (Content-Type %q)", status, ct)
			}
			if after := fx.snapshot(t); after != before {
				fail("a %d changed the store: %s -> %s", status, before, after)
			}
		} else if status != http.StatusNoContent && !json.Valid(answer) {
			fail("a %d answer that is not JSON", status)
		}
		if ep.readBody && !utf8.Valid(body) && status != http.StatusBadRequest {
			fail("a body that is not valid UTF-8 must be answered 400")
		}

		// A password change ends the session the fixture signs in with: carry
		// on with the new password and the new session's token.
		if strings.HasSuffix(req.URL.Path, "/auth/password") && status == http.StatusOK {
			var in struct{ NewPassword string }
			var out struct{ AccessToken string }
			if json.Unmarshal(body, &in) != nil || json.Unmarshal(answer, &out) != nil || out.AccessToken == "" {
				fail("cannot follow the password change")
			}
			fx.password, fx.token = in.NewPassword, out.AccessToken
		}
	})
}

func FuzzRegisterBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/auth/register"), readBody: true, seeds: []string{
		`{"username":"dave","email":"dave@example.test","password":"correct horse battery dave"}`,
		`{"username":"erin","email":"erin@example.test","password":"correct horse battery erin","displayName":"Erin","session":"body"}`,
		`{"username":"alice","email":"new@example.test","password":"correct horse battery x"}`,
		`{"username":"frank","email":"not-an-email","password":"correct horse battery frank"}`,
		`{"username":"a b","email":"g@example.test","password":"password"}`,
		`{"username":"grace","email":"grace@example.test","password":"short"}`,
		`{"username":"heidi","email":"heidi@example.test","password":"correct horse battery heidi","session":"url"}`,
		`{"username":"ivan","email":"ivan@example.test","password":"correct horse battery ivan","displayName":"` + strings.Repeat("x", 200) + `"}`,
		`{"username":1,"email":"x@example.test","password":"correct horse battery"}`,
	}})
}

func FuzzLoginBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/auth/login"), readBody: true, seeds: []string{
		`{"login":"alice","password":"$PASSWORD"}`,
		`{"login":"ALICE@example.test","password":"$PASSWORD","session":"body"}`,
		`{"login":"alice","password":"wrong password"}`,
		`{"login":"nobody","password":"whatever it is"}`,
		`{"login":"","password":""}`,
		`{"login":"alice","password":"$PASSWORD","session":"cookies"}`,
		`{"login":["alice"],"password":"$PASSWORD"}`,
	}})
}

func FuzzRefreshBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/auth/refresh"), readBody: true, seeds: []string{
		`{"refreshToken":"$REFRESH"}`,
		`{"refreshToken":"not a token"}`,
		`{"refreshToken":""}`,
		`{"refreshToken":null}`,
		`{"refreshToken":"$REFRESH","session":"body"}`,
	}})
}

func FuzzLogoutBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/auth/logout"), readBody: true, seeds: []string{
		`{"refreshToken":"$REFRESH"}`,
		`{"refreshToken":"not a token"}`,
		`{"refreshToken":7}`,
	}})
}

func FuzzPasswordBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/auth/password"), auth: true, readBody: true, seeds: []string{
		`{"currentPassword":"$PASSWORD","newPassword":"another horse battery staple"}`,
		`{"currentPassword":"$PASSWORD","newPassword":"short"}`,
		`{"currentPassword":"$PASSWORD","newPassword":"password"}`,
		`{"currentPassword":"wrong","newPassword":"another horse battery staple"}`,
		`{"currentPassword":"$PASSWORD","newPassword":"yet another battery horse","session":"body"}`,
	}})
}

func FuzzDirectBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/conversations/direct"), auth: true, readBody: true, seeds: []string{
		`{"userId":"$BOB"}`, `{"userId":"$CAROL"}`, `{"userId":"$ALICE"}`, `{"userId":"u_nobody"}`, `{"userId":""}`,
	}})
}

func FuzzGroupBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/conversations/group"), auth: true, readBody: true, seeds: []string{
		`{"title":"team","memberIds":["$BOB","$CAROL"]}`,
		`{"title":"","memberIds":["$BOB"]}`,
		`{"title":"solo","memberIds":[]}`,
		`{"title":"dup","memberIds":["$BOB","$BOB","$ALICE"]}`,
		`{"title":"ghost","memberIds":["u_nobody"]}`,
		`{"title":"` + strings.Repeat("t", 300) + `","memberIds":["$BOB"]}`,
		`{"title":"nulls","memberIds":null}`,
	}})
}

func FuzzMembersBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: inConversation("/members"), conv: true, auth: true, readBody: true, seeds: []string{
		`{"userId":"$CAROL"}`, `{"userId":"$BOB"}`, `{"userId":"$ALICE"}`, `{"userId":"u_nobody"}`, `{"userId":""}`,
	}})
}

func FuzzMessagesBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: inConversation("/messages"), conv: true, auth: true, readBody: true, seeds: []string{
		`{"body":"hello"}`,
		`{"clientId":"k-1","body":"hello again"}`,
		`{"clientId":"k-1","body":"a retry with another body"}`,
		`{"body":""}`, `{"body":"   "}`, `{"body":null}`, `{"clientId":"bad id with spaces","body":"x"}`,
		`{"body":"` + strings.Repeat("é", 4001) + `"}`,
		`{"body":"\u0000\ud800"}`,
	}})
}

func FuzzReadBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: inConversation("/read"), conv: true, auth: true, readBody: true, seeds: []string{
		`{"seq":1}`, `{"seq":0}`, `{"seq":-1}`, `{"seq":1000000}`, `{"seq":9223372036854775807}`, `{"seq":1.5}`, `{"seq":"1"}`,
		`{"seq":1e3}`,
	}})
}

func FuzzTicketBody(f *testing.F) {
	fuzzEndpoint(f, endpoint{path: fixed("/api/v1/ws/ticket"), auth: true, seeds: []string{`{"anything":true}`}})
}
