package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/store"
)

var auditTests = []test{
	{"AuditAppendAndList", testAuditAppendAndList},
	{"AuditConcurrentChain", testAuditConcurrentChain},
}

func testAuditAppendAndList(t *testing.T, s store.Store) {
	es, err := s.AuditEntries(ctx(t), 0, 10)
	wantNoErr(t, "AuditEntries empty", err)
	wantEq(t, "entries in a new store", len(es), 0)

	var appended []store.AuditEntry
	for i := range 5 {
		e := &store.AuditEntry{
			At: t0.Add(time.Duration(i) * time.Second), Event: "login.ok", ActorID: fmt.Sprintf("u%d", i),
			Subject: "u1", IP: "192.0.2.7", Detail: fmt.Sprintf(`{"n":%d}`, i),
		}
		var seen store.AuditEntry
		wantNoErr(t, "AppendAudit", s.AppendAudit(ctx(t), e, func(e *store.AuditEntry) string {
			seen = *e
			return auditHash(e)
		}))
		wantEq(t, "Seq", e.Seq, int64(i+1))
		wantEq(t, "hash callback saw Seq", seen.Seq, int64(i+1))
		wantEq(t, "hash callback saw PrevHash", seen.PrevHash, e.PrevHash)
		wantEq(t, "Hash", e.Hash, auditHash(e))
		if i == 0 {
			wantEq(t, "first PrevHash", e.PrevHash, "")
		} else {
			wantEq(t, "PrevHash", e.PrevHash, appended[i-1].Hash)
		}
		appended = append(appended, *e)
	}

	es, err = s.AuditEntries(ctx(t), 0, 10)
	wantNoErr(t, "AuditEntries", err)
	if len(es) != len(appended) {
		t.Fatalf("AuditEntries returned %d entries, want %d", len(es), len(appended))
	}
	for i, e := range es {
		w := appended[i]
		if e.Seq != w.Seq || !e.At.Equal(w.At) || e.Event != w.Event || e.ActorID != w.ActorID || e.Subject != w.Subject ||
			e.IP != w.IP || e.Detail != w.Detail || e.PrevHash != w.PrevHash || e.Hash != w.Hash {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	es, err = s.AuditEntries(ctx(t), 2, 2)
	wantNoErr(t, "AuditEntries page", err)
	if len(es) != 2 || es[0].Seq != 3 || es[1].Seq != 4 {
		t.Errorf("AuditEntries(2, 2) = %+v, want seqs 3 and 4", es)
	}
	es, err = s.AuditEntries(ctx(t), 5, 10)
	wantNoErr(t, "AuditEntries past the end", err)
	wantEq(t, "entries past the end", len(es), 0)
}

func testAuditConcurrentChain(t *testing.T, s store.Store) {
	const writers, each = 8, 25
	errs := make(chan error, writers*each)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range each {
				e := &store.AuditEntry{At: t0, Event: "member.added", ActorID: fmt.Sprintf("w%d", i), Subject: fmt.Sprint(j), Detail: "{}"}
				if err := s.AppendAudit(ctx(t), e, auditHash); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("AppendAudit: %v", err)
	}
	const total = writers * each
	var all []store.AuditEntry
	for after := int64(0); ; {
		page, err := s.AuditEntries(ctx(t), after, 64)
		wantNoErr(t, "AuditEntries", err)
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		after = page[len(page)-1].Seq
	}
	if len(all) != total {
		t.Fatalf("%d entries, want %d", len(all), total)
	}
	prev := ""
	for i, e := range all {
		if e.Seq != int64(i+1) {
			t.Fatalf("entry %d has seq %d: gap or duplicate", i, e.Seq)
		}
		if e.PrevHash != prev {
			t.Fatalf("entry %d: PrevHash %q, want previous Hash %q", e.Seq, e.PrevHash, prev)
		}
		if e.Hash != auditHash(&e) {
			t.Fatalf("entry %d: stored Hash does not match its content", e.Seq)
		}
		prev = e.Hash
	}
}
