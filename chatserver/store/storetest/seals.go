package storetest

import (
	"maps"
	"sync"
	"testing"

	"github.com/parley-chat/parley/chatserver/store"
)

var sealTests = []test{
	{"ReserveSeals", testReserveSeals},
}

func testReserveSeals(t *testing.T, s store.Store) {
	counts, err := s.SealCounts(ctx(t))
	wantNoErr(t, "SealCounts empty", err)
	wantEq(t, "keys in a new store", len(counts), 0)

	n, err := s.ReserveSeals(ctx(t), "k1", 1000)
	wantNoErr(t, "ReserveSeals", err)
	wantEq(t, "first reservation", n, int64(1000))
	n, err = s.ReserveSeals(ctx(t), "k1", 500)
	wantNoErr(t, "ReserveSeals again", err)
	wantEq(t, "second reservation", n, int64(1500))
	n, err = s.ReserveSeals(ctx(t), "k2", 7)
	wantNoErr(t, "ReserveSeals k2", err)
	wantEq(t, "other key", n, int64(7))
	n, err = s.ReserveSeals(ctx(t), "k1", 0)
	wantNoErr(t, "ReserveSeals 0", err)
	wantEq(t, "reserving nothing reads the total", n, int64(1500))

	// Concurrent reservations add up; every caller gets a distinct total.
	var wg sync.WaitGroup
	totals := make([]int64, 20)
	for i := range totals {
		wg.Go(func() {
			var err error
			if totals[i], err = s.ReserveSeals(ctx(t), "k3", 10); err != nil {
				t.Errorf("ReserveSeals k3: %v", err)
			}
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, v := range totals {
		if v%10 != 0 || v < 10 || v > 200 || seen[v] {
			t.Errorf("concurrent totals %v: want each of 10, 20, ..., 200 once", totals)
			break
		}
		seen[v] = true
	}

	counts, err = s.SealCounts(ctx(t))
	wantNoErr(t, "SealCounts", err)
	if want := map[string]int64{"k1": 1500, "k2": 7, "k3": 200}; !maps.Equal(counts, want) {
		t.Errorf("SealCounts = %v, want %v", counts, want)
	}
}
