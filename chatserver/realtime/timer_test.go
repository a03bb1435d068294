package realtime

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// renewing authenticates in-band "auth" frames: the new access token
// expires after renew.
type renewing struct{ renew time.Duration }

func (r renewing) Authenticate(context.Context, string) (*accounts.Principal, error) {
	return &accounts.Principal{UserID: "u_timer", SessionID: "f_timer", ExpiresAt: time.Now().Add(r.renew)}, nil
}

func (renewing) StillValid(context.Context, string, string, time.Time) error { return nil }

type nopPresence struct{}

func (nopPresence) Connect(context.Context, string, string)                {}
func (nopPresence) Disconnect(context.Context, string, string)             {}
func (nopPresence) Heartbeat(context.Context, map[string][]string) error   { return nil }
func (nopPresence) SetVisible(context.Context, string, string, bool) error { return nil }

type nopSubscriber struct{}

func (nopSubscriber) Subscribe(context.Context, string) error   { return nil }
func (nopSubscriber) Unsubscribe(context.Context, string) error { return nil }

// One timer per connection sends the pings and ends the connection when
// its access token expires; an in-band re-authentication moves the expiry.
// Over a real socket, so the reader also parks in its idle wait between
// frames.
func TestPingsAndExpiryShareOneTimer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		reauth  bool
		minLife time.Duration
	}{{"expires", false, 400 * time.Millisecond}, {"renewed", true, 900 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewHub(Config{Logger: slog.New(slog.DiscardHandler), Metrics: metrics.New(), Accounts: renewing{renew: time.Second},
				Presence: nopPresence{}, Tickets: NewMemoryTickets(), Backplane: nopSubscriber{}, Codec: testCodec,
				Options: Options{PingInterval: 50 * time.Millisecond}})
			srv := httptest.NewServer(h)
			t.Cleanup(srv.Close)
			start := time.Now()
			secret, _, err := h.IssueTicket(t.Context(), Ticket{UserID: "u_timer", SessionID: "f_timer",
				AccessExpires: start.Add(400 * time.Millisecond), Issued: start})
			if err != nil {
				t.Fatal(err)
			}
			d := websocket.Dialer{Subprotocols: []string{protocol.Subprotocol}}
			ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/api/v1/ws?ticket="+url.QueryEscape(secret), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ws.Close()
			var pings atomic.Int32
			ws.SetPingHandler(func(data string) error {
				pings.Add(1)
				return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
			})
			if _, f, err := ws.ReadMessage(); err != nil || !strings.Contains(string(f), `"ready"`) {
				t.Fatalf("first frame %s, %v", f, err)
			}
			if tc.reauth {
				time.Sleep(200 * time.Millisecond)
				if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"auth","token":"renewed"}`)); err != nil {
					t.Fatal(err)
				}
			}
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				_, _, err := ws.ReadMessage() // the renewed "ready", then the close
				if err == nil {
					continue
				}
				life := time.Since(start)
				if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) || !strings.Contains(err.Error(), "expired") {
					t.Fatalf("after %v: %v, want 1008 access token expired", life, err)
				}
				if life < tc.minLife || life > tc.minLife+2*time.Second {
					t.Fatalf("closed after %v, want from %v on", life, tc.minLife)
				}
				if n := pings.Load(); n < int32(tc.minLife/(100*time.Millisecond)) {
					t.Fatalf("%d pings in %v at 50 ms intervals", n, life)
				}
				return
			}
		})
	}
}
