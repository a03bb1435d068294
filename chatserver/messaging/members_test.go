package messaging

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/chatserver/store"
)

func members(n int) []store.Member {
	ms := make([]store.Member, n)
	for i := range ms {
		ms[i].UserID = fmt.Sprint("u", i)
	}
	return ms
}

// The cache keeps the newest version it was given, counts the members it
// holds through replacements and drops, and starts over past its bound.
func TestMemberCache(t *testing.T) {
	c := newMemberCache(10)
	c.put("a", memberEntry{members: members(3), version: 2})
	c.put("a", memberEntry{members: members(4), version: 1}) // older: ignored
	if e, _ := c.get("a"); e.version != 2 || len(e.members) != 3 {
		t.Fatalf("a = version %d, %d members; want 2, 3", e.version, len(e.members))
	}
	c.put("a", memberEntry{members: members(5), version: 3})
	c.put("b", memberEntry{members: members(4), version: 1})
	if c.held != 9 {
		t.Fatalf("held %d, want 9", c.held)
	}
	c.drop("b")
	if _, ok := c.get("b"); ok || c.held != 5 {
		t.Fatalf("after drop: b cached %v, held %d; want false, 5", ok, c.held)
	}
	c.put("c", memberEntry{members: members(6), version: 1}) // 11 > 10: starts over
	if _, ok := c.get("a"); ok || c.held != 6 {
		t.Fatalf("past the bound: a cached %v, held %d; want false, 6", ok, c.held)
	}
	if e, ok := c.get("c"); !ok || len(e.members) != 6 {
		t.Fatalf("c = %v, %v", e, ok)
	}
}
