package server_test

import (
	"fmt"
	"testing"

	"github.com/parley-chat/parley/chatserver/protocol"
)

// after=0 pages forward from the first message (docs/api.md), which is how a
// client with no cursor reads a conversation from the start; it must not fall
// back to the newest page, as "neither before nor after" does.
func TestHistoryAfterZeroIsTheFirstPage(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store, func(t *testing.T) {
			var opts []option
			if store == "postgres" {
				opts = append(opts, withPostgres(t)) // skipped under -short
			}
			ts := start(t, opts...)
			alice, bob := ts.Register("alice"), ts.Register("bob")
			conv := alice.Direct(bob)
			for i := 1; i <= 5; i++ {
				alice.Send(conv.ID, fmt.Sprint("n", i))
			}
			path := "/api/v1/conversations/" + conv.ID + "/messages"
			type page struct {
				Messages []protocol.Message
				HasMore  bool
			}
			seqs := func(p page) []int64 {
				out := make([]int64, len(p.Messages))
				for i, m := range p.Messages {
					out[i] = m.Seq
				}
				return out
			}

			var first page
			r := bob.Do("GET", path+"?after=0&limit=2", nil)
			must(t, r.Status == 200, "after=0: %d %s", r.Status, r.Body)
			r.Decode(t, &first)
			must(t, len(first.Messages) == 2 && first.Messages[0].Seq == 1 && first.Messages[1].Seq == 2 && first.HasMore,
				"after=0&limit=2 returned seqs %v (hasMore %v), want [1 2] with more", seqs(first), first.HasMore)
			must(t, first.Messages[0].Body == "n1", "first message body %q", first.Messages[0].Body)

			var all page
			bob.Do("GET", path+"?after=0&limit=50", nil).Decode(t, &all)
			must(t, len(all.Messages) == 5 && all.Messages[0].Seq == 1 && all.Messages[4].Seq == 5 && !all.HasMore,
				"after=0&limit=50 returned seqs %v (hasMore %v), want 1..5 and no more", seqs(all), all.HasMore)

			// Without before or after it is still the newest page.
			var newest page
			bob.Do("GET", path+"?limit=2", nil).Decode(t, &newest)
			must(t, len(newest.Messages) == 2 && newest.Messages[0].Seq == 4 && newest.Messages[1].Seq == 5 && newest.HasMore,
				"limit=2 returned seqs %v (hasMore %v), want the newest [4 5]", seqs(newest), newest.HasMore)
		})
	}
}
