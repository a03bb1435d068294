package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// conv is one conversation of the scenario.
type conv struct {
	id         string
	lastSeq    int64 // when created (docs/api.md: each connection syncs from it)
	group      bool
	members    []int // account indexes
	recipients int64 // connections of the members, less the sending one
}

// scenario creates the conversations: direct pairs (2k, 2k+1) and groups of
// groupSize consecutive accounts, each created by its first member.
func scenario(ctx context.Context, apis []*api, users []*user, groupSize, workers int, errs *errorCounts) ([]*conv, error) {
	var convs []*conv
	for i := 0; i+1 < len(users); i += 2 {
		convs = append(convs, &conv{members: []int{i, i + 1}})
	}
	if groupSize >= 2 {
		for i := 0; i+1 < len(users); i += groupSize {
			end := min(i+groupSize, len(users))
			if end-i < 2 {
				break
			}
			m := make([]int, 0, end-i)
			for j := i; j < end; j++ {
				m = append(m, j)
			}
			convs = append(convs, &conv{group: true, members: m})
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(convs) || ctx.Err() != nil {
					return
				}
				c := convs[i]
				owner := users[c.members[0]]
				ok := owner != nil
				for _, m := range c.members {
					ok = ok && users[m] != nil
				}
				if !ok {
					failed.Add(1)
					continue
				}
				a := apis[i%len(apis)]
				var ref convRef
				var err error
				if c.group {
					ids := make([]string, 0, len(c.members)-1)
					for _, m := range c.members[1:] {
						ids = append(ids, users[m].ID)
					}
					ref, err = a.group(ctx, owner.AccessToken, fmt.Sprintf("load group %d", i), ids)
				} else {
					ref, err = a.direct(ctx, owner.AccessToken, users[c.members[1]].ID)
				}
				c.id, c.lastSeq = ref.ID, ref.LastSeq
				if err != nil {
					errs.addErr(kind("conversation", err), err)
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > int64(len(convs))/10 {
		return nil, fmt.Errorf("scenario: %d of %d conversations could not be created", n, len(convs))
	}
	out := convs[:0]
	for _, c := range convs {
		if c.id != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// trafficStats is what the traffic phase measured.
type trafficStats struct {
	Mode                string  `json:"mode"` // "open" (fixed rate) or "closed" (as fast as acks allow)
	TargetRate          float64 `json:"targetRate"`
	GroupFraction       float64 `json:"groupFraction"`
	Directs             int     `json:"directs"`
	Groups              int     `json:"groups"`
	GroupSize           int     `json:"groupSize"`
	Seconds             float64 `json:"seconds"`
	Sent                int64   `json:"sent"`
	Acked               int64   `json:"acked"`
	Expected            int64   `json:"expectedDeliveries"`
	Delivered           int64   `json:"delivered"`
	CrossDelivered      int64   `json:"crossReplicaDelivered"`
	SentPerSecond       float64 `json:"sentPerSecond"`
	AckedPerSecond      float64 `json:"ackedPerSecond"`
	DeliveredPerSecond  float64 `json:"deliveredPerSecond"`
	DeliveryRatio       float64 `json:"deliveryRatio"`
	Delivery            latency `json:"deliveryLatency"`
	CrossReplica        latency `json:"crossReplicaLatency"`
	Ack                 latency `json:"ackLatency"`
	DrainSeconds        float64 `json:"drainSeconds"`
	LoadGeneratorBehind int64   `json:"loadGeneratorBehind"` // sends skipped: in-flight limit or queue full
}

// traffic drives sends over established connections and matches deliveries.
type traffic struct {
	tag     string // tag in every clientId, so frames of other runs are ignored
	conns   []*lconn
	byIdx   map[int]*lconn
	convs   []*conv
	directs [][]int // per account: its direct conversations (indexes into convs)
	groups  [][]int
	body    string
	errs    *errorCounts

	delivery, cross, ack       histogram
	sent, acked, expected      atomic.Int64
	delivered, crossDelivered  atomic.Int64
	behind, answered, lastSeen atomic.Int64
	start                      time.Time
	slots                      chan struct{} // in-flight sends
}

func newTraffic(run string, conns []*lconn, convs []*conv, users int, bodyBytes, inflight int, errs *errorCounts) *traffic {
	t := &traffic{tag: run, byIdx: map[int]*lconn{}, convs: convs, directs: make([][]int, users),
		groups: make([][]int, users), errs: errs, slots: make(chan struct{}, inflight)}
	per := make([]int64, users)
	for _, c := range conns {
		if c != nil {
			t.conns = append(t.conns, c)
			t.byIdx[c.idx] = c
			per[c.user]++
		}
	}
	for i, c := range convs {
		var n int64
		for _, m := range c.members {
			n += per[m]
			if c.group {
				t.groups[m] = append(t.groups[m], i)
			} else {
				t.directs[m] = append(t.directs[m], i)
			}
		}
		c.recipients = n - 1
	}
	t.body = strings.Repeat("x", max(bodyBytes, 1))
	return t
}

// syncAll tells the server where each connection stands in each of its
// conversations (docs/api.md, rule 2), so live messages flow in order from
// the first one instead of waiting for a sync that never comes.
func (t *traffic) syncAll(wait time.Duration) {
	for _, c := range t.conns {
		cursors := map[string]int64{}
		for _, i := range append(slices.Clone(t.directs[c.user]), t.groups[c.user]...) {
			cursors[t.convs[i].id] = t.convs[i].lastSeq
		}
		if len(cursors) == 0 {
			continue
		}
		frame, _ := json.Marshal(map[string]any{"type": "sync", "id": "sync", "cursors": cursors})
		if err := c.write(frame, wait); err != nil {
			t.errs.addErr("sync", err)
		}
	}
}

// clientID encodes run, send time, sending connection and conversation, so a
// receiver needs no shared table to measure latency.
func (t *traffic) clientID(sent time.Time, connIdx, convIdx int) string {
	return t.tag + "-" + strconv.FormatInt(sent.UnixNano(), 36) + "-" + strconv.Itoa(connIdx) + "-" + strconv.Itoa(convIdx)
}

func (t *traffic) parseID(id string) (sent time.Time, connIdx, convIdx int, ok bool) {
	rest, ok := strings.CutPrefix(id, t.tag+"-")
	if !ok {
		return time.Time{}, 0, 0, false
	}
	parts := strings.Split(rest, "-")
	if len(parts) != 3 {
		return time.Time{}, 0, 0, false
	}
	ns, err1 := strconv.ParseInt(parts[0], 36, 64)
	ci, err2 := strconv.Atoi(parts[1])
	cv, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil || cv < 0 || cv >= len(t.convs) {
		return time.Time{}, 0, 0, false
	}
	return time.Unix(0, ns), ci, cv, true
}

var (
	prefixMessage = []byte(`{"type":"message"`)
	prefixAck     = []byte(`{"type":"ack"`)
	prefixError   = []byte(`{"type":"error"`)
	keyClientID   = []byte(`"clientId":"`)
	keyID         = []byte(`"id":"`)
)

// field returns the string value after key (no escapes: ids never have any).
func field(data, key []byte) string {
	i := bytes.Index(data, key)
	if i < 0 {
		return ""
	}
	rest := data[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// onFrame runs on every connection's reader goroutine.
func (t *traffic) onFrame(c *lconn, data []byte) {
	now := time.Now()
	switch {
	case bytes.HasPrefix(data, prefixMessage):
		sent, from, _, ok := t.parseID(field(data, keyClientID))
		if !ok || from == c.idx {
			return // another run's, or the sender's own copy
		}
		d := now.Sub(sent)
		t.delivery.record(d)
		t.delivered.Add(1)
		t.lastSeen.Store(now.UnixNano())
		if s, ok := t.byIdx[from]; ok && s.target != c.target {
			t.cross.record(d)
			t.crossDelivered.Add(1)
		}
	case bytes.HasPrefix(data, prefixAck):
		sent, _, cv, ok := t.parseID(field(data, keyID))
		if !ok {
			return
		}
		t.ack.record(now.Sub(sent))
		t.acked.Add(1)
		t.expected.Add(t.convs[cv].recipients)
		t.answer()
	case bytes.HasPrefix(data, prefixError):
		var e struct {
			ID   string `json:"id"`
			Code string `json:"code"`
		}
		_ = json.Unmarshal(data, &e)
		if _, _, _, ok := t.parseID(e.ID); ok {
			t.errs.add("send_" + e.Code)
			t.answer()
		} else {
			t.errs.add("server_error_" + e.Code)
		}
	}
}

func (t *traffic) answer() {
	t.answered.Add(1)
	select {
	case <-t.slots:
	default:
	}
}

// sendOne sends one message from a random connection.
func (t *traffic) sendOne(rng *rand.Rand, groupFraction float64) {
	c := t.conns[rng.IntN(len(t.conns))]
	if c.closed.Load() {
		t.errs.add("send_on_closed_connection")
		t.answer()
		return
	}
	list := t.directs[c.user]
	if (rng.Float64() < groupFraction && len(t.groups[c.user]) > 0) || len(list) == 0 {
		list = t.groups[c.user]
	}
	if len(list) == 0 {
		t.errs.add("send_no_conversation")
		t.answer()
		return
	}
	cv := list[rng.IntN(len(list))]
	now := time.Now()
	id := t.clientID(now, c.idx, cv)
	frame := t.sendFrame(id, cv)
	if err := c.write(frame, 5*time.Second); err != nil {
		t.errs.addErr("send_write", err)
		t.answer()
		return
	}
	t.sent.Add(1)
}

// run sends for d: at rate messages per second (open loop, a send that
// finds no free in-flight slot is counted as "behind" and skipped), or with
// rate 0 as fast as answers come back (closed loop, inflight outstanding).
func (t *traffic) run(ctx context.Context, rate float64, d time.Duration, workers int, groupFraction float64, drain time.Duration) trafficStats {
	st := trafficStats{Mode: "closed", TargetRate: rate, GroupFraction: groupFraction}
	for _, c := range t.convs {
		if c.group {
			st.Groups++
			st.GroupSize = max(st.GroupSize, len(c.members))
		} else {
			st.Directs++
		}
	}
	t.start = time.Now()
	end := t.start.Add(d)
	ctx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var wg sync.WaitGroup
	if rate > 0 {
		st.Mode = "open"
		t.openLoop(ctx, rate, workers, func(rng *rand.Rand) { t.sendOne(rng, groupFraction) })
	} else {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
				for {
					select {
					case <-ctx.Done():
						return
					case t.slots <- struct{}{}:
						t.sendOne(rng, groupFraction)
					}
				}
			}()
		}
	}
	wg.Wait()
	st.Seconds = time.Since(t.start).Seconds()
	// Drain: wait for answers and deliveries of what was sent, bounded by drain.
	drainStart := time.Now()
	for time.Since(drainStart) < drain {
		if t.answered.Load() >= t.sent.Load() && t.delivered.Load() >= t.expected.Load() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	st.DrainSeconds = time.Since(drainStart).Seconds()
	st.Sent, st.Acked, st.Expected = t.sent.Load(), t.acked.Load(), t.expected.Load()
	st.Delivered, st.CrossDelivered = t.delivered.Load(), t.crossDelivered.Load()
	st.LoadGeneratorBehind = t.behind.Load()
	st.SentPerSecond = float64(st.Sent) / st.Seconds
	st.AckedPerSecond = float64(st.Acked) / st.Seconds
	span := st.Seconds
	if last := t.lastSeen.Load(); last > 0 {
		span = max(span, time.Unix(0, last).Sub(t.start).Seconds())
	}
	st.DeliveredPerSecond = float64(st.Delivered) / span
	if st.Expected > 0 {
		st.DeliveryRatio = float64(st.Delivered) / float64(st.Expected)
	}
	st.Delivery, st.CrossReplica, st.Ack = t.delivery.summary(), t.cross.summary(), t.ack.summary()
	return st
}

// openLoop issues send calls at rate per second since t.start, on workers
// goroutines, until ctx ends, then waits for them. A send that finds no free
// in-flight slot or no idle worker is counted as behind and skipped, so the
// rate stays the target's and the generator never queues.
func (t *traffic) openLoop(ctx context.Context, rate float64, workers int, send func(*rand.Rand)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	work := make(chan struct{}, 4096)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for {
				select {
				case <-ctx.Done():
					return
				case <-work:
					send(rng)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var issued int64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := int64(rate * now.Sub(t.start).Seconds())
			for ; issued < due; issued++ {
				select {
				case t.slots <- struct{}{}:
				default:
					t.behind.Add(1)
					continue
				}
				select {
				case work <- struct{}{}:
				default:
					<-t.slots
					t.behind.Add(1)
				}
			}
		}
	}
}

// sendFrame is the send frame of client id id to conversation cv, the
// id doubling as clientId (built by hand: it is on the generator's hot path).
func (t *traffic) sendFrame(id string, cv int) []byte {
	frame := make([]byte, 0, 128+len(t.body))
	frame = append(frame, `{"type":"send","id":"`...)
	frame = append(frame, id...)
	frame = append(frame, `","conversationId":"`...)
	frame = append(frame, t.convs[cv].id...)
	frame = append(frame, `","clientId":"`...)
	frame = append(frame, id...)
	frame = append(frame, `","body":"`...)
	frame = append(frame, t.body...)
	return append(frame, `"}`...)
}
