// Package chattest is a test client for Parley's REST API and WebSocket
// protocol, shared by the chat server's end-to-end tests. It talks to a real
// server over loopback; every failure fails the test.
package chattest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/protocol"
)

// API is a server's base URL, e.g. "http://127.0.0.1:41234".
type API struct {
	T    testing.TB
	Base string
}

// Resp is an HTTP answer.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

// Code is the error code of an error answer.
func (r Resp) Code() string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Code
}

// Field is the "field" of an error answer: the request field it is about.
func (r Resp) Field() string {
	var e struct {
		Error struct{ Field string } `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &e)
	return e.Error.Field
}

// Decode unmarshals the body into v.
func (r Resp) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Do sends a request. body may be nil, a string, []byte or a value to encode
// as JSON; hdr are name, value pairs.
func (a *API) Do(method, path, tok string, body any, hdr ...string) Resp {
	a.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			a.T.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.Base+path, rd)
	if err != nil {
		a.T.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		a.T.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return Resp{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// Session is a register/login/refresh answer.
type Session struct {
	User                 protocol.User `json:"user"`
	AccessToken          string        `json:"accessToken"`
	AccessTokenExpiresAt time.Time     `json:"accessTokenExpiresAt"`
	RefreshToken         string        `json:"refreshToken"`
}

// Client is one signed-in user.
type Client struct {
	API     *API
	User    protocol.User
	Token   string
	Refresh string
	PW      string
	IP      string // sent as X-Forwarded-For when set
}

// Password is the password Register gives user name.
func Password(name string) string { return "pw-" + name + "-long-enough-passphrase" }

// Register creates user name (email name@example.com) and signs in.
func (a *API) Register(name string) *Client {
	a.T.Helper()
	pw := Password(name)
	r := a.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": name,
		"email": name + "@example.com", "password": pw, "displayName": strings.ToUpper(name[:1]) + name[1:], "session": "body"})
	if r.Status != http.StatusCreated {
		a.T.Fatalf("register %s: %d %s", name, r.Status, r.Body)
	}
	var s Session
	r.Decode(a.T, &s)
	return &Client{API: a, User: s.User, Token: s.AccessToken, Refresh: s.RefreshToken, PW: pw}
}

// Login signs in as an existing user name on this API.
func (a *API) Login(name string) *Client {
	a.T.Helper()
	r := a.Do("POST", "/api/v1/auth/login", "", map[string]string{"login": name, "password": Password(name), "session": "body"})
	if r.Status != http.StatusOK {
		a.T.Fatalf("login %s: %d %s", name, r.Status, r.Body)
	}
	var s Session
	r.Decode(a.T, &s)
	return &Client{API: a, User: s.User, Token: s.AccessToken, Refresh: s.RefreshToken, PW: Password(name)}
}

// On returns the same user talking to another server (replica).
func (c *Client) On(a *API) *Client {
	cp := *c
	cp.API = a
	return &cp
}

// Do sends an authenticated request.
func (c *Client) Do(method, path string, body any) Resp {
	c.API.T.Helper()
	if c.IP != "" {
		return c.API.Do(method, path, c.Token, body, "X-Forwarded-For", c.IP)
	}
	return c.API.Do(method, path, c.Token, body)
}

// Direct opens (or finds) the direct conversation with other.
func (c *Client) Direct(other *Client) protocol.Conversation {
	c.API.T.Helper()
	r := c.Do("POST", "/api/v1/conversations/direct", map[string]string{"userId": other.User.ID})
	if r.Status != http.StatusCreated && r.Status != http.StatusOK {
		c.API.T.Fatalf("direct: %d %s", r.Status, r.Body)
	}
	var conv protocol.Conversation
	r.Decode(c.API.T, &conv)
	return conv
}

// Group creates a group with the given members.
func (c *Client) Group(title string, members ...*Client) protocol.Conversation {
	c.API.T.Helper()
	return c.group(title, false, members)
}

// group creates a group, end-to-end encrypted when e2ee.
func (c *Client) group(title string, e2ee bool, members []*Client) protocol.Conversation {
	c.API.T.Helper()
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.User.ID
	}
	body := map[string]any{"title": title, "memberIds": ids}
	if e2ee {
		body["e2ee"] = true
	}
	r := c.Do("POST", "/api/v1/conversations/group", body)
	if r.Status != http.StatusCreated {
		c.API.T.Fatalf("group: %d %s", r.Status, r.Body)
	}
	var conv protocol.Conversation
	r.Decode(c.API.T, &conv)
	return conv
}

// Send posts a message over REST.
func (c *Client) Send(convID, body string) protocol.Message {
	c.API.T.Helper()
	r := c.Do("POST", "/api/v1/conversations/"+convID+"/messages", map[string]string{"body": body})
	if r.Status != http.StatusCreated {
		c.API.T.Fatalf("send: %d %s", r.Status, r.Body)
	}
	var m protocol.Message
	r.Decode(c.API.T, &m)
	return m
}

// History returns up to 200 messages after seq.
func (c *Client) History(convID string, after int64) []protocol.Message {
	c.API.T.Helper()
	var h struct{ Messages []protocol.Message }
	r := c.Do("GET", "/api/v1/conversations/"+convID+"/messages?limit=200&after="+strconv.FormatInt(after, 10), nil)
	if r.Status != http.StatusOK {
		c.API.T.Fatalf("history: %d %s", r.Status, r.Body)
	}
	r.Decode(c.API.T, &h)
	return h.Messages
}

// Ticket buys a WebSocket ticket.
func (c *Client) Ticket() string {
	c.API.T.Helper()
	r := c.Do("POST", "/api/v1/ws/ticket", nil)
	if r.Status != http.StatusOK {
		c.API.T.Fatalf("ticket: %d %s", r.Status, r.Body)
	}
	var tk struct{ Ticket string }
	r.Decode(c.API.T, &tk)
	return tk.Ticket
}

// Dial opens a WebSocket with a ticket and waits for "ready".
func (c *Client) Dial() *WS {
	c.API.T.Helper()
	w, res, err := c.API.DialRaw("?ticket="+url.QueryEscape(c.Ticket()), nil)
	if err != nil {
		c.API.T.Fatalf("dial: %v (%v)", err, res)
	}
	if f := w.Next(5 * time.Second); f.Type != "ready" || f.UserID != c.User.ID {
		c.API.T.Fatalf("first frame %+v, want ready for %s", f, c.User.ID)
	}
	return w
}

// WSURL is the WebSocket endpoint with query.
func (a *API) WSURL(query string) string {
	return "ws" + strings.TrimPrefix(a.Base, "http") + "/api/v1/ws" + query
}

// Frame is any server frame, decoded into the union of their fields (a test
// client's convenience; the server writes one struct per kind).
type Frame struct {
	Type           string                 `json:"type"`
	ID             string                 `json:"id,omitempty"`
	UserID         string                 `json:"userId,omitempty"`
	SessionID      string                 `json:"sessionId,omitempty"`
	Protocol       int                    `json:"protocol,omitempty"`
	ExpiresAt      *time.Time             `json:"expiresAt,omitempty"`
	Message        *protocol.Message      `json:"-"` // "message" of message and ack frames
	ErrMessage     string                 `json:"-"` // "message" of error frames
	Conversation   *protocol.Conversation `json:"conversation,omitempty"`
	User           *protocol.User         `json:"user,omitempty"`
	ConversationID string                 `json:"conversationId,omitempty"`
	Seq            int64                  `json:"seq,omitempty"`
	Status         string                 `json:"status,omitempty"`
	LastSeen       *time.Time             `json:"lastSeen,omitempty"`
	Cursors        map[string]int64       `json:"cursors,omitempty"`
	Code           string                 `json:"code,omitempty"`
	RetryAfter     int                    `json:"retryAfter,omitempty"`
	Raw            []byte                 `json:"-"` // the frame as received
}

// WS is a WebSocket client speaking protocol v1. Frames are read in the
// background into Frames; Closed gets the close error when the socket ends.
type WS struct {
	T      testing.TB
	Conn   *websocket.Conn
	Frames chan Frame
	Closed chan *websocket.CloseError
}

// DialRaw opens a WebSocket without waiting for anything.
func (a *API) DialRaw(query string, hdr http.Header) (*WS, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{protocol.Subprotocol}}
	c, res, err := d.Dial(a.WSURL(query), hdr)
	if err != nil {
		return nil, res, err
	}
	w := &WS{T: a.T, Conn: c, Frames: make(chan Frame, 4096), Closed: make(chan *websocket.CloseError, 1)}
	go w.read()
	a.T.Cleanup(func() { c.Close() })
	return w, res, nil
}

func (w *WS) read() {
	for {
		_, data, err := w.Conn.ReadMessage()
		if err != nil {
			ce, _ := err.(*websocket.CloseError)
			w.Closed <- ce
			close(w.Frames)
			return
		}
		var f struct {
			Frame
			Message json.RawMessage `json:"message"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			w.T.Errorf("bad frame %s", data)
			continue
		}
		sf := f.Frame
		if f.Type == "error" {
			_ = json.Unmarshal(f.Message, &sf.ErrMessage)
		} else if len(f.Message) > 0 {
			sf.Message = new(protocol.Message)
			_ = json.Unmarshal(f.Message, sf.Message)
		}
		sf.Raw = data
		w.Frames <- sf
	}
}

// Write sends v as a JSON frame.
func (w *WS) Write(v any) {
	w.T.Helper()
	if err := w.Conn.WriteJSON(v); err != nil {
		w.T.Fatalf("ws write: %v", err)
	}
}

// SendMsg sends a "send" frame.
func (w *WS) SendMsg(id, convID, clientID, body string) {
	w.Write(map[string]any{"type": "send", "id": id, "conversationId": convID, "clientId": clientID, "body": body})
}

// Sync sends a "sync" frame.
func (w *WS) Sync(id string, cursors map[string]int64) {
	w.Write(map[string]any{"type": "sync", "id": id, "cursors": cursors})
}

// Next returns the next frame, failing the test after timeout.
func (w *WS) Next(timeout time.Duration) Frame {
	w.T.Helper()
	select {
	case f, ok := <-w.Frames:
		if !ok {
			w.T.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(timeout):
		w.T.Fatal("no frame within", timeout)
	}
	return Frame{}
}

// waitUntil skips frames until one satisfies match; what names it in failures.
func (w *WS) waitUntil(what string, timeout time.Duration, match func(Frame) bool) Frame {
	w.T.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f, ok := <-w.Frames:
			if !ok {
				w.T.Fatalf("connection closed while waiting for %s", what)
			}
			if match(f) {
				return f
			}
		case <-deadline:
			w.T.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// WaitFor skips frames until one of type typ arrives.
func (w *WS) WaitFor(typ string, timeout time.Duration) Frame {
	w.T.Helper()
	return w.waitUntil(fmt.Sprintf("%q frame", typ), timeout, func(f Frame) bool { return f.Type == typ })
}

// WaitForMessage skips frames until the "message" frame of message id arrives.
func (w *WS) WaitForMessage(id string, timeout time.Duration) *protocol.Message {
	w.T.Helper()
	return w.waitUntil("message "+id, timeout, func(f Frame) bool {
		return f.Type == "message" && f.Message != nil && f.Message.ID == id
	}).Message
}

// Quiet asserts that no frame of type typ arrives within d.
func (w *WS) Quiet(typ string, d time.Duration) {
	w.T.Helper()
	deadline := time.After(d)
	for {
		select {
		case f, ok := <-w.Frames:
			if !ok {
				return
			}
			if f.Type == typ {
				w.T.Fatalf("unexpected %q frame: %+v", typ, f)
			}
		case <-deadline:
			return
		}
	}
}

// ClosedWith waits for the connection to close and returns the close code
// (1006 when it ended without a close frame).
func (w *WS) ClosedWith(timeout time.Duration) int {
	w.T.Helper()
	select {
	case ce := <-w.Closed:
		if ce == nil {
			return websocket.CloseAbnormalClosure
		}
		return ce.Code
	case <-time.After(timeout):
		w.T.Fatalf("connection still open after %v", timeout)
	}
	return 0
}

// Must fails the test with the message unless ok.
func Must(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if !ok {
		t.Fatalf(format, args...)
	}
}
