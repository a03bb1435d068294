package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Logging one session out ends it at once, not when its access token
// expires: its access token is refused (the check is in the database, so it
// holds on every replica), its open sockets close with 1008, and the user's
// other session goes on.
func TestLogoutEndsThatSessionNow(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	other := ts.Login("alice")
	w, keep := alice.Dial(), other.Dial()

	res := ts.Do("POST", "/api/v1/auth/logout", "", map[string]string{"refreshToken": alice.Refresh})
	must(t, res.Status == http.StatusNoContent, "logout: %d %s", res.Status, res.Body)

	res = alice.Do("GET", "/api/v1/me", nil)
	must(t, res.Status == http.StatusUnauthorized, "the logged-out session's access token: %d", res.Status)
	must(t, w.ClosedWith(5*time.Second) == websocket.ClosePolicyViolation, "its socket was not closed with 1008")

	res = other.Do("GET", "/api/v1/me", nil)
	must(t, res.Status == http.StatusOK, "the other session: %d", res.Status)
	keep.Quiet("message", 300*time.Millisecond) // still open: no close within the wait
	select {
	case ce := <-keep.Closed:
		t.Fatalf("the other session's socket closed: %v", ce)
	default:
	}
}
