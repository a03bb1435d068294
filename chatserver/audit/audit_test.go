package audit

import (
	"context"
	"log/slog"
	"testing"

	"github.com/parley-chat/parley/chatserver/store"
)

// memStore is an in-memory chain for testing Verify's logic; the real
// engines' chain is tested by the store conformance suite.
type memStore struct{ entries []store.AuditEntry }

func (m *memStore) AppendAudit(_ context.Context, e *store.AuditEntry, hash func(*store.AuditEntry) string) error {
	e.Seq = int64(len(m.entries)) + 1
	if len(m.entries) > 0 {
		e.PrevHash = m.entries[len(m.entries)-1].Hash
	}
	e.Hash = hash(e)
	m.entries = append(m.entries, *e)
	return nil
}

func (m *memStore) AuditEntries(_ context.Context, after int64, limit int) ([]store.AuditEntry, error) {
	var out []store.AuditEntry
	for _, e := range m.entries {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func chain(t *testing.T, n int) *memStore {
	t.Helper()
	m := &memStore{}
	l := New(m, slog.New(slog.DiscardHandler), nil)
	for i := 0; i < n; i++ {
		if err := l.Record(context.Background(), LoginOK, "u1", "u1", "127.0.0.1", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestVerifyDetectsEveryKindOfTampering(t *testing.T) {
	ctx := context.Background()
	rep, err := Verify(ctx, chain(t, 1200)) // spans several pages
	if err != nil || !rep.OK || rep.Entries != 1200 {
		t.Fatalf("intact chain: %+v %v", rep, err)
	}
	tamper := map[string]func(m *memStore){
		"edited field": func(m *memStore) { m.entries[700].IP = "10.0.0.1" },
		"edited and rehashed": func(m *memStore) {
			m.entries[700].Event = LogoutAll
			m.entries[700].Hash = Hash(&m.entries[700]) // the next entry's link breaks
		},
		"removed entry":  func(m *memStore) { m.entries = append(m.entries[:700], m.entries[701:]...) },
		"truncated head": func(m *memStore) { m.entries = m.entries[1:] },
		"swapped":        func(m *memStore) { m.entries[10], m.entries[11] = m.entries[11], m.entries[10] },
	}
	for name, f := range tamper {
		m := chain(t, 1200)
		f(m)
		rep, err := Verify(ctx, m)
		if err != nil || rep.OK || rep.BadSeq == 0 || rep.Reason == "" {
			t.Errorf("%s: %+v %v", name, rep, err)
		}
	}
}

func TestHashCoversEveryField(t *testing.T) {
	base := store.AuditEntry{Seq: 3, Event: "e", ActorID: "a", Subject: "s", IP: "i", Detail: "d", PrevHash: "p"}
	h := Hash(&base)
	muts := []func(*store.AuditEntry){
		func(e *store.AuditEntry) { e.Seq = 4 }, func(e *store.AuditEntry) { e.Event = "x" },
		func(e *store.AuditEntry) { e.ActorID = "x" }, func(e *store.AuditEntry) { e.Subject = "x" },
		func(e *store.AuditEntry) { e.IP = "x" }, func(e *store.AuditEntry) { e.Detail = "x" },
		func(e *store.AuditEntry) { e.PrevHash = "x" },
		// moving a boundary between fields changes the hash too
		func(e *store.AuditEntry) { e.Event, e.ActorID = "ea", "" },
	}
	for i, m := range muts {
		e := base
		m(&e)
		if Hash(&e) == h {
			t.Errorf("mutation %d leaves the hash unchanged", i)
		}
	}
}
