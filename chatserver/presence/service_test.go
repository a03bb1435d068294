package presence

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/protocol"
)

type staticPeers []string

func (p staticPeers) PresencePeers(_ context.Context, _ string, max int) ([]string, error) {
	if max != MaxAnnounceGroup {
		return nil, fmt.Errorf("peers of conversations up to %d members asked, want %d", max, MaxAnnounceGroup)
	}
	return p, nil
}

// recorder keeps the presence frames in the order the backplane got them. The
// hook for the n-th call runs before that frame lands: another replica's
// frames published meanwhile overtake it.
type recorder struct {
	calls  int
	frames []protocol.PresenceFrame
	before map[int]func()
}

func (r *recorder) Publish(_ context.Context, e delivery.Event) {
	r.calls++
	if f := r.before[r.calls]; f != nil {
		f()
	}
	r.frames = append(r.frames, e.Frame.(protocol.PresenceFrame))
}

func statuses(fs []protocol.PresenceFrame) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Status
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestAnnounceCorrectsARacingTransition is the restart race of issue 12 defect
// 10 on the server: alice's last connection closes on one replica, which
// publishes "offline" only after her new connection on another replica was
// recorded and announced "online". Peers must end on "online".
func TestAnnounceCorrectsARacingTransition(t *testing.T) {
	ctx := context.Background()
	tr := NewMemory(nil)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &recorder{}
	replicaA := NewService(tr, staticPeers{"bob"}, rec, log, nil)
	replicaB := NewService(tr, staticPeers{"bob"}, rec, log, nil)

	replicaA.Connect(ctx, "alice", "c1")
	// While replica A's "offline" is on its way, alice connects on replica B,
	// whose "online" lands first.
	rec.before = map[int]func(){2: func() { replicaB.Connect(ctx, "alice", "c2") }}
	replicaA.Disconnect(ctx, "alice", "c1")

	got := statuses(rec.frames)
	if last := got[len(got)-1]; last != "online" {
		t.Fatalf("frames %v: the last one says %q, want online (alice has connection c2)", got, last)
	}
	if want := []string{"online", "online", "offline", "online"}; !equal(got, want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
}

// TestAnnounceSendsOneFrameWithoutARace: no read-back correction when nothing
// changed meanwhile.
func TestAnnounceSendsOneFrameWithoutARace(t *testing.T) {
	ctx := context.Background()
	tr := NewMemory(nil)
	rec := &recorder{}
	s := NewService(tr, staticPeers{"bob"}, rec, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	s.Connect(ctx, "alice", "c1")
	s.Connect(ctx, "alice", "c2") // not the first: no frame
	s.Disconnect(ctx, "alice", "c1")
	s.Disconnect(ctx, "alice", "c2")
	if got, want := statuses(rec.frames), []string{"online", "offline"}; !equal(got, want) {
		t.Fatalf("frames %v, want %v", got, want)
	}
}
