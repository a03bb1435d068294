package messaging

import (
	"context"
	"sync"

	"github.com/parley-chat/parley/chatserver/store"
)

// memberCache keeps each conversation's member list on this replica, with
// the membership version it was read at, so a send does not read the list
// again. It is never trusted blindly: AppendMessage checks in the same
// statement that the sender is a member and returns the version at the
// message's seq; a list whose version differs is read again before the
// fan-out. So a member removed on any replica before a message took its seq
// never gets it, and nothing on the backplane has to arrive first (a lost or
// late invalidation costs one read, not a wrong delivery).
type memberCache struct {
	mu      sync.Mutex
	entries map[string]memberEntry
	held    int // members in entries
	max     int // bound on held
}

type memberEntry struct {
	members []store.Member // shared: never modified
	version int64
}

// memberCacheSize bounds the members held, over all conversations; past it
// the cache starts over. A member costs ~200 bytes (ids, role, times), so
// this is ~40 MiB at most: 10,000 groups of 20, or 780 of 256.
const memberCacheSize = 200_000

func newMemberCache(max int) *memberCache {
	return &memberCache{entries: map[string]memberEntry{}, max: max}
}

func (c *memberCache) get(convID string) (memberEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[convID]
	return e, ok
}

// put keeps e unless a newer version is already there.
func (c *memberCache) put(convID string, e memberEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.entries[convID]
	if ok && old.version > e.version {
		return
	}
	c.held -= len(old.members)
	if c.held+len(e.members) > c.max {
		clear(c.entries)
		c.held = 0
	}
	c.entries[convID] = e
	c.held += len(e.members)
}

// drop forgets a conversation whose members this replica just changed.
func (c *memberCache) drop(convID string) {
	c.mu.Lock()
	c.held -= len(c.entries[convID].members)
	delete(c.entries, convID)
	c.mu.Unlock()
}

// readMembers reads a conversation's members and version and caches them.
func (s *Service) readMembers(ctx context.Context, convID string) (memberEntry, error) {
	ms, v, err := s.store.MembersVersioned(ctx, convID)
	if err != nil {
		return memberEntry{}, err
	}
	e := memberEntry{members: ms, version: v}
	s.members.put(convID, e)
	return e, nil
}

// cachedMembers returns the cached list, or reads it.
func (s *Service) cachedMembers(ctx context.Context, convID string) (e memberEntry, cached bool, err error) {
	if e, ok := s.members.get(convID); ok {
		return e, true, nil
	}
	e, err = s.readMembers(ctx, convID)
	return e, false, err
}
