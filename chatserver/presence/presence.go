// Package presence tracks who is online. Memory serves one process; a Redis
// tracker with TTL heartbeats serves many (a crashed replica's users go
// offline when their heartbeats lapse).
package presence

import (
	"context"
	"sync"
	"time"
)

// Status is a user's presence.
type Status struct {
	Online   bool
	LastSeen time.Time // when the user was last online; zero if never seen
}

// Tracker records connections and answers presence queries.
type Tracker interface {
	// Connect records one more connection of userID; first reports whether the
	// user was offline before it.
	Connect(ctx context.Context, userID, connID string) (first bool, err error)
	// Disconnect records one connection fewer; last reports whether the user is
	// now offline.
	Disconnect(ctx context.Context, userID, connID string) (last bool, err error)
	// Heartbeat refreshes the liveness of this process's connections, given
	// as user id to connection ids (no-op in memory).
	Heartbeat(ctx context.Context, conns map[string][]string) error
	Status(ctx context.Context, userIDs []string) (map[string]Status, error)
	// SetVisible records whether the page behind a connection is visible
	// (the client's visibility frame). A connection starts visible.
	SetVisible(ctx context.Context, userID, connID string, visible bool) error
	// Attentive reports, per user, whether any live connection of theirs,
	// on any replica, has a visible page: such a user needs no push.
	Attentive(ctx context.Context, userIDs []string) (map[string]bool, error)
}

// Memory is an in-process Tracker.
type Memory struct {
	now   func() time.Time
	mu    sync.Mutex
	conns map[string]map[string]struct{}
	seen  map[string]time.Time
	// hidden holds the connections whose page reported hidden.
	hidden map[string]bool
}

// NewMemory returns a Memory tracker. now may be nil (time.Now).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{now: now, conns: map[string]map[string]struct{}{}, seen: map[string]time.Time{}, hidden: map[string]bool{}}
}

// Connect implements Tracker.
func (m *Memory) Connect(_ context.Context, userID, connID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.conns[userID]
	if c == nil {
		c = map[string]struct{}{}
		m.conns[userID] = c
	}
	c[connID] = struct{}{}
	m.seen[userID] = m.now()
	return len(c) == 1, nil
}

// Disconnect implements Tracker.
func (m *Memory) Disconnect(_ context.Context, userID, connID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.conns[userID]
	if _, ok := c[connID]; !ok {
		return false, nil
	}
	delete(c, connID)
	delete(m.hidden, connID)
	m.seen[userID] = m.now()
	if len(c) == 0 {
		delete(m.conns, userID)
		return true, nil
	}
	return false, nil
}

// Heartbeat implements Tracker.
func (m *Memory) Heartbeat(context.Context, map[string][]string) error { return nil }

// Status implements Tracker.
func (m *Memory) Status(_ context.Context, userIDs []string) (map[string]Status, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Status, len(userIDs))
	for _, id := range userIDs {
		out[id] = Status{Online: len(m.conns[id]) > 0, LastSeen: m.seen[id]}
	}
	return out, nil
}

// SetVisible implements Tracker.
func (m *Memory) SetVisible(_ context.Context, userID, connID string, visible bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.conns[userID][connID]; !ok {
		return nil // gone already
	}
	if visible {
		delete(m.hidden, connID)
	} else {
		m.hidden[connID] = true
	}
	return nil
}

// Attentive implements Tracker.
func (m *Memory) Attentive(_ context.Context, userIDs []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]bool, len(userIDs))
	for _, id := range userIDs {
		for c := range m.conns[id] {
			if !m.hidden[c] {
				out[id] = true
				break
			}
		}
	}
	return out, nil
}
