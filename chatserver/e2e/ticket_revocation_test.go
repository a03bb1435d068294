package e2e

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// A WebSocket ticket is redeemed without a database read (the revocations of
// its user and session are read from Redis with it, issue 15), so "log out
// everywhere" and "log out" must still hold at once on every replica: a
// ticket bought before is refused as soon as the logout has returned, on the
// replica that took the logout and on the other one, whichever replica sold
// it. Tickets of other sessions, and tickets bought after, still work.
func TestTicketsRefusedAfterLogoutAcrossReplicas(t *testing.T) {
	skipShort(t)
	redis := startRedis(t)
	c := newCluster(t, chattest.PostgresDatabase(t), redis.url())
	r0, r1 := c.start(), c.start()
	alice := r0.Register("alice")      // session 1
	alice2 := r1.Login("alice")        // session 2
	bob := r0.Register("bob")          // session 1
	bob2 := r1.Login("bob").On(r0.API) // session 2

	redeem := func(on *replica, ticket string) int {
		t.Helper()
		w, res, err := on.DialRaw("?ticket="+url.QueryEscape(ticket), nil)
		if err == nil {
			f := w.Next(wait)
			must(t, f.Type == "ready", "first frame %+v, want ready", f)
			w.Conn.Close()
			return http.StatusSwitchingProtocols
		}
		must(t, res != nil, "dial: %v", err)
		return res.StatusCode
	}

	// Without a revocation a ticket works on either replica.
	must(t, redeem(r1, alice.Ticket()) == http.StatusSwitchingProtocols, "a ticket from replica 0 on replica 1")
	must(t, redeem(r0, alice2.Ticket()) == http.StatusSwitchingProtocols, "a ticket from replica 1 on replica 0")

	// Tickets bought from both replicas, by both sessions, then log out
	// everywhere through replica 1.
	tickets := []struct {
		on *replica
		t  string
	}{
		{r0, alice.Ticket()}, {r1, alice.Ticket()}, {r0, alice2.Ticket()}, {r1, alice2.Ticket()},
	}
	bobTicket := bob.Ticket()
	r := alice2.Do("POST", "/api/v1/auth/logout-all", nil)
	must(t, r.Status == http.StatusNoContent, "logout-all: %d %s", r.Status, r.Body)
	for i, tk := range tickets {
		got := redeem(tk.on, tk.t)
		must(t, got == http.StatusUnauthorized, "ticket %d bought before logout-all: %d, want 401", i, got)
	}
	// Another user is not affected; a new sign-in gets working tickets.
	must(t, redeem(r1, bobTicket) == http.StatusSwitchingProtocols, "bob's ticket after alice's logout-all")
	again := r1.Login("alice").On(r0.API)
	must(t, redeem(r1, again.Ticket()) == http.StatusSwitchingProtocols, "a ticket of a sign-in after logout-all")

	// Logging out one session refuses that session's tickets only.
	gone, kept := bob.Ticket(), bob2.Ticket()
	r = r1.Do("POST", "/api/v1/auth/logout", "", map[string]string{"refreshToken": bob.Refresh})
	must(t, r.Status == http.StatusNoContent, "logout: %d %s", r.Status, r.Body)
	must(t, redeem(r1, gone) == http.StatusUnauthorized, "a ticket of the session logged out")
	must(t, redeem(r0, kept) == http.StatusSwitchingProtocols, "a ticket of bob's other session")
}
