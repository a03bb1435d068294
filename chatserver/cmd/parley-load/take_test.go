package main

import "testing"

// A reconnected connection may take live frames above a hole before its sync
// answer fills it: the message in the hole is new, not a duplicate, and the
// cursor moves past the hole only once it is filled.
func TestTakeFillsHolesAndDropsOnlyRepeats(t *testing.T) {
	sc := &soakConn{seq: map[string]int64{"c": 106}}
	steps := []struct {
		seq    int64
		dup    bool
		cursor int64
	}{
		{108, false, 106}, // live, ahead of the hole at 107
		{109, false, 106},
		{107, false, 109}, // the sync answer fills it: the cursor jumps over what was ahead
		{108, true, 109},  // the sync answer repeats what came live
		{109, true, 109},
		{106, true, 109},
		{110, false, 110},
	}
	for i, s := range steps {
		if dup := sc.take("c", s.seq); dup != s.dup || sc.seq["c"] != s.cursor {
			t.Fatalf("step %d: take(%d) = dup %v, cursor %d; want dup %v, cursor %d", i, s.seq, dup, sc.seq["c"], s.dup, s.cursor)
		}
	}
	if n := len(sc.ahead["c"]); n != 0 {
		t.Fatalf("%d seqs still held ahead of the cursor", n)
	}
}
