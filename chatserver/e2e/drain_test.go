package e2e

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/parley-chat/parley/chatserver/internal/chattest"
)

// SIGTERM ends a replica within PARLEY_SHUTDOWN_TIMEOUT (docs/operations.md,
// "Graceful shutdown") whatever its clients do: reading ones get 1001, one
// that never reads (its socket and send queue full), and TCP connections
// that never send a request, must not hold the exit past the budget. 20
// rounds on one SQLite data folder; every exit time is printed (FIGURES) and
// each must be within the budget plus 1.5 s of slack for process exit on a
// loaded 2-core machine.
func TestDrainWithinBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 20 SIGTERMs of a real process take about a minute")
	}
	const (
		rounds = 20
		budget = 3 * time.Second
		slack  = 1500 * time.Millisecond
	)
	c := newCluster(t, "", "") // SQLite, in-process backplane
	env := []string{"PARLEY_DATA_DIR=" + t.TempDir(), "PARLEY_SHUTDOWN_TIMEOUT=" + budget.String()}
	var alice, bob *chattest.Client
	var convID string
	var times []time.Duration
	stop := time.Now().Add(2 * time.Minute) // bounded even when every exit is slow
	for i := 0; i < rounds && time.Now().Before(stop); i++ {
		r := c.start(env...)
		if alice == nil {
			// Tokens outlive the restarts (same keyring and database).
			alice, bob = r.Register("alice"), r.Register("bob")
			convID = alice.Direct(bob).ID
			big := strings.Repeat("x", 3900)
			for j := 0; j < 100; j++ {
				alice.Send(convID, fmt.Sprint(j, big))
			}
		}
		a, b := alice.On(r.API).Dial(), bob.On(r.API).Dial()

		// Bob's second device asks for the whole history ten times (about
		// 4 MB of answers) and never reads: the server's writes to it block.
		stuck, _, err := (&websocket.Dialer{HandshakeTimeout: 5 * time.Second}).Dial(
			r.WSURL("?ticket="+url.QueryEscape(bob.On(r.API).Ticket())), nil)
		must(t, err == nil, "dial: %v", err)
		for j := 0; j < 10; j++ {
			must(t, stuck.WriteJSON(map[string]any{"type": "sync", "id": fmt.Sprint(j), "cursors": map[string]int64{convID: 0}}) == nil, "write sync")
		}
		// Connections that never send a request.
		var idle []net.Conn
		for j := 0; j < 3; j++ {
			nc, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
			must(t, err == nil, "dial tcp: %v", err)
			idle = append(idle, nc)
		}
		a.SendMsg("m", convID, fmt.Sprint("drain-", i), "before the drain")
		a.WaitFor("ack", wait)
		time.Sleep(300 * time.Millisecond) // the sync answers fill the stuck socket

		begin := time.Now()
		must(t, r.cmd.Process.Signal(syscall.SIGTERM) == nil, "SIGTERM")
		done := make(chan struct{})
		go func() { r.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(budget + 15*time.Second):
			r.cmd.Process.Kill()
			<-done
		}
		took := time.Since(begin)
		r.dead = true
		times = append(times, took)
		for _, w := range []*chattest.WS{a, b} {
			code := w.ClosedWith(wait)
			must(t, code == websocket.CloseGoingAway, "round %d: a reading client was closed with %d, want 1001", i, code)
		}
		stuck.Close()
		for _, nc := range idle {
			nc.Close()
		}
	}
	sorted := append([]time.Duration(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var list []string
	for _, d := range times {
		list = append(list, fmt.Sprintf("%.2f", d.Seconds()))
	}
	t.Logf("FIGURES: drain with PARLEY_SHUTDOWN_TIMEOUT=%v, 2 reading WebSockets, 1 that never reads, 3 idle TCP connections: "+
		"%d exits, median %.2f s, max %.2f s; all (s): %s", budget, len(times), sorted[len(sorted)/2].Seconds(),
		sorted[len(sorted)-1].Seconds(), strings.Join(list, " "))
	must(t, len(times) == rounds, "only %d rounds within the time limit", len(times))
	for i, d := range times {
		must(t, d <= budget+slack, "round %d: exit took %v, budget %v + %v slack", i, d, budget, slack)
	}
}
