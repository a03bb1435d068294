package push

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/store"
)

// fakeStore answers the one query payloadFor makes.
type fakeStore struct {
	Store
	sum store.ConversationSummary
}

func (f *fakeStore) ConversationSummary(context.Context, string, string) (*store.ConversationSummary, error) {
	return &f.sum, nil
}

type fakeTexts struct{ title, text string }

func (f fakeTexts) ConversationTitle(*store.Conversation) string { return f.title }
func (f fakeTexts) MessageText(*store.Message) string            { return f.text }

func TestPayload(t *testing.T) {
	fs := &fakeStore{sum: store.ConversationSummary{Conversation: store.Conversation{ID: "c1", Kind: store.KindGroup}, Unread: 4}}
	long := strings.Repeat("é", 150)
	s := New(Config{Store: fs, Texts: fakeTexts{title: "Team", text: long}})
	m := &store.Message{ID: "m1", ConversationID: "c1", Seq: 9, SenderID: "u_a"}
	sender := Sender{ID: "u_a", DisplayName: "Alice"}

	p, err := s.payloadFor(t.Context(), "u_b", m, 2, true, store.NotifySettings{}, sender)
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Team" || p.Unread != 4 || p.Count != 2 || !p.Mention || p.Body != "" || p.Seq != 9 {
		t.Fatalf("payload %+v", p)
	}
	raw, _ := json.Marshal(p)
	if strings.Contains(string(raw), "é") || strings.Contains(string(raw), `"body"`) {
		t.Fatalf("text without pushPreview: %s", raw)
	}

	p, _ = s.payloadFor(t.Context(), "u_b", m, 1, false, store.NotifySettings{PushPreview: true}, sender)
	if p.Body != strings.Repeat("é", PreviewChars)+"…" {
		t.Fatalf("preview %q", p.Body)
	}

	fs.sum.Kind = store.KindDirect
	p, _ = s.payloadFor(t.Context(), "u_b", m, 1, false, store.NotifySettings{}, sender)
	if p.Title != "Alice" {
		t.Fatalf("a direct conversation's title is %q, want the sender's name", p.Title)
	}

	// The hook for end-to-end encrypted conversations (issue 17): nothing
	// but "a new message in this conversation", preview or not.
	s.endToEnd = func(*store.Conversation) bool { return true }
	p, _ = s.payloadFor(t.Context(), "u_b", m, 3, true, store.NotifySettings{PushPreview: true}, sender)
	raw, _ = json.Marshal(p)
	if string(raw) != `{"type":"message","conversationId":"c1"}` {
		t.Fatalf("end-to-end payload %s", raw)
	}
}

func TestTopic(t *testing.T) {
	a, b, c := Topic("ps1", "c1"), Topic("ps2", "c1"), Topic("ps1", "c2")
	if len(a) != 32 || a == b || a == c || Topic("ps1", "c1") != a {
		t.Fatalf("topics %q %q %q", a, b, c)
	}
	if strings.ContainsAny(a, "+/=") {
		t.Fatalf("topic %q is not base64url", a)
	}
}

func TestEndpointRules(t *testing.T) {
	strict, loop := New(Config{}), New(Config{AllowLoopbackHTTP: true})
	for _, e := range []string{"https://push.example/x", "https://fcm.googleapis.com/fcm/send/abc:def"} {
		if err := strict.validEndpoint(e); err != nil {
			t.Errorf("%s refused: %v", e, err)
		}
	}
	for _, e := range []string{"http://127.0.0.1:9/x", "http://localhost/x", "", "https://", "/relative",
		"https://a@push.example/x", "https://push.example/x#f", "javascript:alert(1)"} {
		if err := strict.validEndpoint(e); !apperr.Is(err, apperr.InvalidRequest) {
			t.Errorf("%q accepted (%v)", e, err)
		}
	}
	if err := loop.validEndpoint("http://127.0.0.1:9/x"); err != nil {
		t.Errorf("loopback http refused with the test flag: %v", err)
	}
	if err := loop.validEndpoint("http://push.example/x"); err == nil {
		t.Error("http to another host accepted with the loopback flag")
	}
}

// Endpoints are chosen by users: without the test flag the push client
// refuses to connect to loopback (and private) addresses, whatever name
// they are reached by.
func TestClientRefusesPrivateAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(201) }))
	defer srv.Close()
	for _, u := range []string{srv.URL, strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)} {
		_, err := newClient(false).Post(u, "text/plain", nil)
		if err == nil || !strings.Contains(err.Error(), "non-public") {
			t.Errorf("POST %s: %v, want a refusal", u, err)
		}
	}
	res, err := newClient(true).Post(srv.URL, "text/plain", nil)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("with loopback allowed: %v", err)
	}
	res.Body.Close()
	for ip, public := range map[string]bool{"10.1.2.3": false, "192.168.0.1": false, "169.254.169.254": false,
		"::1": false, "fd00::1": false, "0.0.0.0": false, "8.8.8.8": true, "2606:4700::1111": true} {
		if got := publicIP(parseIP(t, ip)); got != public {
			t.Errorf("publicIP(%s) = %v", ip, got)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "3": 3 * time.Second, "x": 0, "-1": 0,
		now.Add(5 * time.Second).Format(http.TimeFormat): 5 * time.Second} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

func parseIP(t *testing.T, s string) net.IP {
	t.Helper()
	ip := net.ParseIP(s)
	if ip == nil {
		t.Fatalf("bad IP %s", s)
	}
	return ip
}
