package realtime

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/metrics"
)

func orderHub(hold time.Duration) *Hub {
	return &Hub{opts: Options{WriteWait: time.Second, SendQueue: 1024, DeliveryHold: hold},
		log: slog.New(slog.DiscardHandler), metrics: metrics.New(), users: map[string]map[*conn]struct{}{}}
}

func live(conv string, seq int64) outFrame {
	return outFrame{data: fmt.Appendf(nil, `{"type":"message","seq":%d}`, seq), conv: conv, seq: seq}
}

// sent lists what the connection was sent: "c:5" for message seq 5 of c,
// "resync:c" for a resync of c.
func sent(c *conn) []string {
	var out []string
	for _, f := range c.take() {
		if f.conv != "" {
			out = append(out, fmt.Sprintf("%s:%d", f.conv, f.seq))
			continue
		}
		var v struct {
			Type           string `json:"type"`
			ConversationID string `json:"conversationId"`
		}
		_ = json.Unmarshal(f.data, &v)
		out = append(out, v.Type+":"+v.ConversationID)
	}
	return out
}

func want(t *testing.T, c *conn, what string, w ...string) {
	t.Helper()
	if got := sent(c); !slices.Equal(got, w) {
		t.Fatalf("%s: sent %v, want %v", what, got, w)
	}
}

func synced(c *conn, conv string, cursor int64) {
	c.syncStarted([]string{conv})
	c.syncDone([]string{conv}, map[string]int64{conv: cursor})
}

func TestOrderedFramesFollowTheSync(t *testing.T) {
	c := testConn(orderHub(time.Hour), "u1")
	synced(c, "c", 3)
	c.offerOrdered(live("c", 4))
	c.offerOrdered(live("c", 6)) // ahead: held
	c.offerOrdered(live("c", 5))
	want(t, c, "out of order arrival", "c:4", "c:5", "c:6")
	c.offerOrdered(live("c", 5)) // a retry's publish, or a frame the sync covered
	c.offerOrdered(live("c", 2))
	want(t, c, "duplicates")
}

func TestHoleBecomesResyncThenSyncReleases(t *testing.T) {
	c := testConn(orderHub(20*time.Millisecond), "u1")
	synced(c, "c", 3)
	c.offerOrdered(live("c", 5)) // 4 never comes
	want(t, c, "while held")
	time.Sleep(80 * time.Millisecond)
	want(t, c, "after the hold", "resync:c")
	c.offerOrdered(live("c", 6))
	want(t, c, "waiting for the client's sync") // no live frame overtakes the sync
	c.syncStarted([]string{"c"})
	c.offerOrdered(live("c", 7)) // arrives while the sync runs
	c.syncDone([]string{"c"}, map[string]int64{"c": 6})
	want(t, c, "after the sync", "c:7")
}

func TestFramesDuringSyncWait(t *testing.T) {
	c := testConn(orderHub(time.Hour), "u1")
	synced(c, "c", 1)
	c.syncStarted([]string{"c"})
	c.offerOrdered(live("c", 2))
	c.offerOrdered(live("c", 3))
	want(t, c, "during the sync")
	// The sync found 2 (sent by it); 3 was stored after its query.
	c.syncDone([]string{"c"}, map[string]int64{"c": 2})
	want(t, c, "after", "c:3")
}

func TestUnsyncedConversationWaitsThenFlowsInOrder(t *testing.T) {
	c := testConn(orderHub(20*time.Millisecond), "u1")
	c.offerOrdered(live("c", 8))
	c.offerOrdered(live("c", 7))
	want(t, c, "waiting for a sync")
	time.Sleep(80 * time.Millisecond)
	want(t, c, "no sync came", "c:7", "c:8")
	c.offerOrdered(live("c", 9))
	want(t, c, "then live", "c:9")
}

func TestNotAMemberForgetsTheConversation(t *testing.T) {
	c := testConn(orderHub(time.Hour), "u1")
	synced(c, "c", 1)
	c.syncStarted([]string{"c"})
	c.syncDone([]string{"c"}, map[string]int64{})
	if _, ok := c.order["c"]; ok {
		t.Fatal("state kept for a conversation the user is not a member of")
	}
}

func TestPositionFindsAHoleWithNoSuccessor(t *testing.T) {
	c := testConn(orderHub(time.Hour), "u1")
	synced(c, "quiet", 4)
	synced(c, "fine", 9)
	c.offerOrdered(live("quiet", 5))
	want(t, c, "live", "quiet:5")
	// Seq 6 of "quiet" was stored but its frame never came.
	c.checkPositions(map[string]int64{"quiet": 6, "fine": 9})
	want(t, c, "position", "resync:quiet")
	c.checkPositions(map[string]int64{"quiet": 6})
	want(t, c, "asked once")
}

func TestTooManyHeldAsksForSync(t *testing.T) {
	c := testConn(orderHub(time.Hour), "u1")
	synced(c, "c", 1)
	for seq := int64(3); seq < 3+maxHeld+1; seq++ {
		c.offerOrdered(live("c", seq))
	}
	want(t, c, "overflow", "resync:c")
	if n := len(c.order["c"].held); n != 0 {
		t.Fatalf("%d frames still held after overflow", n)
	}
}
