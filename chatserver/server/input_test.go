package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Invalid UTF-8 inside a JSON string is refused, not silently replaced with
// U+FFFD and stored (Go's decoder does that replacement), over REST and over
// the WebSocket; nothing is stored either way.
func TestInvalidUTF8IsRefused(t *testing.T) {
	ts := start(t)
	alice, bob := ts.Register("alice"), ts.Register("bob")
	conv := alice.Direct(bob)
	bad := []byte(`{"clientId":"bad-utf8","body":"caf` + "\xe9" + `!"}`)

	res := alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", bad)
	must(t, res.Status == http.StatusBadRequest && res.Code() == "invalid_request" &&
		strings.Contains(string(res.Body), "UTF-8"), "REST: %d %s", res.Status, res.Body)

	w := alice.Dial()
	frame := []byte(`{"type":"send","id":"u1","conversationId":"` + conv.ID + `","clientId":"bad-ws","body":"` + "\xff\xfe" + `"}`)
	if err := w.Conn.WriteMessage(websocket.TextMessage, frame); err != nil {
		t.Fatal(err)
	}
	f := w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "u1" && f.Code == "invalid_request" && strings.Contains(f.ErrMessage, "UTF-8"), "WS: %+v", f)

	// A lone surrogate escaped in JSON (\ud800) would become U+FFFD too.
	lone := []byte(`{"clientId":"lone","body":"a \ud800 b"}`)
	res = alice.Do("POST", "/api/v1/conversations/"+conv.ID+"/messages", lone)
	must(t, res.Status == http.StatusBadRequest && res.Code() == "invalid_request", "REST lone surrogate: %d %s", res.Status, res.Body)
	if err := w.Conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"send","id":"u2","conversationId":"`+conv.ID+`","clientId":"lone-ws","body":"\udc00"}`)); err != nil {
		t.Fatal(err)
	}
	f = w.WaitFor("error", 5*time.Second)
	must(t, f.ID == "u2" && f.Code == "invalid_request", "WS lone surrogate: %+v", f)

	must(t, len(alice.History(conv.ID, 0)) == 0, "a message was stored")
}

// An error frame answering a request carries the request's id even when the
// frame fails to decode, and says what was wrong.
func TestErrorFramesNameTheRequestAndTheFault(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	w := alice.Dial()
	for _, tc := range []struct {
		frame, id, says string
	}{
		{`{"type":"read","id":"r1","conversationId":"c","seq":"seven"}`, "r1", `field "seq"`},
		{`{"type":"sync","id":"s1","cursors":[1,2]}`, "s1", `field "cursors"`},
		{`{"type":"nope","id":"n1"}`, "n1", `unknown frame type "nope"`},
		{`{"type":"send","id":"x1",`, "", "not a valid JSON object"},
		{`[1,2,3]`, "", "not a valid JSON object"},
	} {
		if err := w.Conn.WriteMessage(websocket.TextMessage, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		f := w.WaitFor("error", 5*time.Second)
		must(t, f.ID == tc.id && f.Code == "invalid_request" && strings.Contains(f.ErrMessage, tc.says),
			"%s: error %+v, want id %q and a message with %q", tc.frame, f, tc.id, tc.says)
	}
}
