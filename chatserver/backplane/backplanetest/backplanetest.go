// Package backplanetest is the conformance suite of backplane.Backplane: every
// engine runs it (see package backplane's tests). It checks the documented
// contract against real engines: delivery by topic, per-topic order,
// reference-counted subscriptions, Start, and, for engines that can, replicas
// and recovery after the server was away.
//
// Subscribe and Unsubscribe may take effect a moment after they return (Redis
// confirms them on its subscription connection), so the suite waits for them
// with a probe (settle) instead of assuming they are immediate.
package backplanetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/chatserver/backplane"
)

// Option describes what an engine can do beyond the common contract.
type Option func(*config)

type config struct {
	replicas    bool
	stop, start func(t *testing.T)
}

// Replicas says that the backplanes newBackplane returns within one test
// reach one another, as replicas on one Redis do.
func Replicas() Option { return func(c *config) { c.replicas = true } }

// Outage lets the suite take the engine's server away (stop) and bring it
// back on the same address (start), to check that subscribers are told to
// resync and that delivery resumes. Engines without a server (Memory) never
// resync, which every other test checks.
func Outage(stop, start func(t *testing.T)) Option {
	return func(c *config) { c.stop, c.start = stop, start }
}

// Run runs every conformance test as a subtest. newBackplane must return a
// new, unstarted backplane for each call and close it when t ends.
func Run(t *testing.T, newBackplane func(t *testing.T) backplane.Backplane, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	// Tests that need no server to go away also check that nothing asked
	// for a resync: an engine must not resync without a reason.
	plain := func(fn func(*testing.T, func(*testing.T) backplane.Backplane)) func(*testing.T) {
		return func(t *testing.T) {
			var recs []*Recorder
			fn(t, func(t *testing.T) backplane.Backplane {
				bp := newBackplane(t)
				return &recorded{Backplane: bp, recs: &recs}
			})
			for _, r := range recs {
				if n := r.Resyncs(); n != 0 {
					t.Errorf("HandleResync called %d times with the server up all along", n)
				}
			}
		}
	}
	t.Run("DeliversSubscribedTopicsOnly", plain(testDeliversSubscribedTopicsOnly))
	t.Run("OrdersEachTopic", plain(testOrdersEachTopic))
	t.Run("CountsSubscriptions", plain(testCountsSubscriptions))
	t.Run("CountsConcurrentSubscriptions", plain(testCountsConcurrentSubscriptions))
	t.Run("StartTwiceRefused", plain(testStartTwiceRefused))
	t.Run("SubscribeBeforeStart", plain(testSubscribeBeforeStart))
	t.Run("Replicas", func(t *testing.T) {
		if !c.replicas {
			t.Skip("engine has no replicas (backplanetest.Replicas not given)")
		}
		plain(testReplicas)(t)
	})
	t.Run("ResyncAfterOutage", func(t *testing.T) {
		if c.stop == nil {
			t.Skip("engine has no server to lose (backplanetest.Outage not given)")
		}
		testResyncAfterOutage(t, newBackplane, c.stop, c.start)
	})
}

// recorded remembers the handler a test starts a backplane with, so that Run
// can check it afterwards.
type recorded struct {
	backplane.Backplane
	recs *[]*Recorder
}

func (r *recorded) Start(h backplane.Handler) error {
	if rec, ok := h.(*Recorder); ok {
		*r.recs = append(*r.recs, rec)
	}
	return r.Backplane.Start(h)
}

// Bounds of the waits: generous for a loaded machine, and each ends as soon
// as what it waits for has happened.
const (
	deliveryWait = 5 * time.Second
	outageWait   = 20 * time.Second
)

// Recorder is a backplane.Handler that keeps what it receives.
type Recorder struct {
	mu      sync.Mutex
	pubs    []publication
	resyncs int
	wake    chan struct{} // something arrived
}

type publication struct {
	topic   string
	payload []byte
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{wake: make(chan struct{}, 1)} }

// HandlePublication implements backplane.Handler.
func (r *Recorder) HandlePublication(topic string, payload []byte) {
	p := publication{topic, bytes.Clone(payload)} // the engine may reuse its buffer
	r.mu.Lock()
	r.pubs = append(r.pubs, p)
	r.mu.Unlock()
	r.poke()
}

// HandleResync implements backplane.Handler.
func (r *Recorder) HandleResync() {
	r.mu.Lock()
	r.resyncs++
	r.mu.Unlock()
	r.poke()
}

func (r *Recorder) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Payloads returns what arrived on topic, in arrival order.
func (r *Recorder) Payloads(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.pubs {
		if p.topic == topic {
			out = append(out, string(p.payload))
		}
	}
	return out
}

// Resyncs is the number of HandleResync calls so far.
func (r *Recorder) Resyncs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resyncs
}

// until reports whether cond held within d, checking again whenever
// something arrives.
func (r *Recorder) until(d time.Duration, cond func() bool) bool {
	timeout := time.After(d)
	for !cond() {
		select {
		case <-r.wake:
		case <-timeout:
			return cond()
		}
	}
	return true
}

// waitPayloads waits until topic received n payloads and returns them.
func (r *Recorder) waitPayloads(t *testing.T, topic string, n int) []string {
	t.Helper()
	if !r.until(deliveryWait, func() bool { return len(r.Payloads(topic)) >= n }) {
		got := r.Payloads(topic)
		t.Fatalf("topic %s: %d of %d payloads within %v (last: %q)", topic, len(got), n, deliveryWait, last(got))
	}
	return r.Payloads(topic)
}

func last(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[len(s)-1]
}

// newTopic returns a topic no other test uses, so that tests sharing a
// server cannot see each other's traffic.
func newTopic(name string) string {
	return "bptest:" + strings.ToLower(rand.Text()[:10]) + ":" + name
}

func ctx(t *testing.T) context.Context { return t.Context() }

func start(t *testing.T, bp backplane.Backplane) *Recorder {
	t.Helper()
	rec := NewRecorder()
	if err := bp.Start(rec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return rec
}

func subscribe(t *testing.T, bp backplane.Backplane, topic string) {
	t.Helper()
	if err := bp.Subscribe(ctx(t), topic); err != nil {
		t.Fatalf("Subscribe(%s): %v", topic, err)
	}
}

func unsubscribe(t *testing.T, bp backplane.Backplane, topic string) {
	t.Helper()
	if err := bp.Unsubscribe(ctx(t), topic); err != nil {
		t.Fatalf("Unsubscribe(%s): %v", topic, err)
	}
}

func publish(t *testing.T, bp backplane.Backplane, topic, payload string) {
	t.Helper()
	if err := bp.Publish(ctx(t), backplane.Message{Topic: topic, Payload: []byte(payload)}); err != nil {
		t.Fatalf("Publish(%s): %v", topic, err)
	}
}

// settle returns once bp's earlier Subscribe and Unsubscribe calls are in
// effect, and a publish made before it had a round trip through the engine.
// A subscription connection handles commands in order, so once a topic
// subscribed now receives a probe, everything asked before is done. Probes
// are repeated because the first may beat the probe topic's own Subscribe.
func settle(t *testing.T, bp backplane.Backplane, rec *Recorder) {
	t.Helper()
	probe := newTopic("probe")
	subscribe(t, bp, probe)
	deadline := time.Now().Add(deliveryWait)
	for {
		publish(t, bp, probe, "probe")
		if rec.until(50*time.Millisecond, func() bool { return len(rec.Payloads(probe)) > 0 }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a probe on a subscribed topic did not arrive within %v", deliveryWait)
		}
	}
	unsubscribe(t, bp, probe)
}

// wantNone checks that topic received nothing more than it had (n
// payloads), after a round trip through the engine.
func wantNone(t *testing.T, bp backplane.Backplane, rec *Recorder, topic string, n int, why string) {
	t.Helper()
	settle(t, bp, rec)
	if got := rec.Payloads(topic); len(got) != n {
		t.Errorf("%s: topic received %q, want nothing after its first %d", why, got[n:], n)
	}
}

func testDeliversSubscribedTopicsOnly(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	rec := start(t, bp)
	on, off := newTopic("on"), newTopic("off")
	subscribe(t, bp, on)
	settle(t, bp, rec)

	// Payloads are opaque bytes: every byte value, and an empty one.
	bin := make([]byte, 256)
	for i := range bin {
		bin[i] = byte(i)
	}
	publish(t, bp, off, "not subscribed")
	publish(t, bp, on, "hello")
	publish(t, bp, on, string(bin))
	publish(t, bp, on, "")
	got := rec.waitPayloads(t, on, 3)
	if !slices.Equal(got, []string{"hello", string(bin), ""}) {
		t.Errorf("subscribed topic received %q, want hello, the 256 byte values, and an empty payload", got)
	}
	wantNone(t, bp, rec, off, 0, "unsubscribed topic")
	wantNone(t, bp, rec, on, 3, "subscribed topic after its three payloads")
}

func testOrdersEachTopic(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	rec := start(t, bp)
	a, b := newTopic("a"), newTopic("b")
	subscribe(t, bp, a)
	subscribe(t, bp, b)
	settle(t, bp, rec)

	// Interleaved publishes from one goroutine: each topic keeps its order.
	const n = 300
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(i))
		publish(t, bp, a, want[i])
		publish(t, bp, b, want[i])
	}
	for _, topic := range []string{a, b} {
		if got := rec.waitPayloads(t, topic, n); !slices.Equal(got, want) {
			t.Errorf("topic %s: %d payloads out of order: %v", topic, len(got), got)
		}
	}
}

func testCountsSubscriptions(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	rec := start(t, bp)
	topic := newTopic("counted")
	for range 3 {
		subscribe(t, bp, topic)
	}
	unsubscribe(t, bp, topic)
	unsubscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "one subscription left")
	rec.waitPayloads(t, topic, 1)

	unsubscribe(t, bp, topic) // the third: delivery stops
	settle(t, bp, rec)
	publish(t, bp, topic, "after the last unsubscribe")
	wantNone(t, bp, rec, topic, 1, "after 3 Subscribes and 3 Unsubscribes")

	// An Unsubscribe with nothing left does nothing: it must not leave a
	// debt that swallows the next Subscribe.
	unsubscribe(t, bp, topic)
	subscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "subscribed again")
	rec.waitPayloads(t, topic, 2)
	unsubscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "unsubscribed again")
	wantNone(t, bp, rec, topic, 2, "after Subscribe and Unsubscribe following an extra Unsubscribe")
}

// Many holders of one topic subscribing and unsubscribing at once (the hub
// serialises per user, but other callers need not): the count stays exact.
func testCountsConcurrentSubscriptions(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	rec := start(t, bp)
	topic := newTopic("concurrent")
	subscribe(t, bp, topic) // the holder that stays
	const goroutines, rounds = 8, 20
	errs := make(chan error, goroutines*rounds*2)
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range rounds {
				if err := bp.Subscribe(ctx(t), topic); err != nil {
					errs <- fmt.Errorf("Subscribe: %w", err)
				}
				if err := bp.Unsubscribe(ctx(t), topic); err != nil {
					errs <- fmt.Errorf("Unsubscribe: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	settle(t, bp, rec)
	publish(t, bp, topic, "still held")
	rec.waitPayloads(t, topic, 1)
	unsubscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "released")
	wantNone(t, bp, rec, topic, 1, "after the holder's Unsubscribe")
}

func testStartTwiceRefused(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	rec := start(t, bp)
	second := NewRecorder()
	if err := bp.Start(second); err == nil {
		t.Fatal("second Start succeeded, want an error")
	}
	// The first handler keeps receiving; the second gets nothing.
	topic := newTopic("started")
	subscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "for the first handler")
	rec.waitPayloads(t, topic, 1)
	second.mu.Lock()
	n := len(second.pubs)
	second.mu.Unlock()
	if n != 0 {
		t.Errorf("the refused handler received %d publications", n)
	}
}

func testSubscribeBeforeStart(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	bp := newBackplane(t)
	topic := newTopic("early")
	if err := bp.Subscribe(ctx(t), topic); !errors.Is(err, backplane.ErrNotStarted) {
		t.Fatalf("Subscribe before Start: %v, want ErrNotStarted", err)
	}
	// Publishing needs no handler (another topic: when a publish lands
	// relative to a later Subscribe is not defined).
	publish(t, bp, newTopic("unheard"), "before start")
	rec := start(t, bp)

	// The refused Subscribe did not count: one Subscribe and one
	// Unsubscribe after Start leave the topic unsubscribed.
	subscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "subscribed")
	rec.waitPayloads(t, topic, 1)
	unsubscribe(t, bp, topic)
	settle(t, bp, rec)
	publish(t, bp, topic, "unsubscribed")
	wantNone(t, bp, rec, topic, 1, "refused Subscribe counted")
}

func testReplicas(t *testing.T, newBackplane func(*testing.T) backplane.Backplane) {
	a, b := newBackplane(t), newBackplane(t)
	ra, rb := start(t, a), start(t, b)
	shared, onlyB := newTopic("shared"), newTopic("only-b")
	subscribe(t, a, shared)
	subscribe(t, b, shared)
	subscribe(t, b, onlyB)
	settle(t, a, ra)
	settle(t, b, rb)

	publish(t, a, shared, "from a")
	publish(t, b, shared, "from b")
	const n = 100
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(i))
		publish(t, a, onlyB, want[i])
	}
	// Order between two publishers is not defined: compare as sets.
	for name, rec := range map[string]*Recorder{"a": ra, "b": rb} {
		got := slices.Sorted(slices.Values(rec.waitPayloads(t, shared, 2)))
		if !slices.Equal(got, []string{"from a", "from b"}) {
			t.Errorf("replica %s received %q on the shared topic, want both replicas' publishes", name, got)
		}
	}
	if got := rb.waitPayloads(t, onlyB, n); !slices.Equal(got, want) {
		t.Errorf("replica b received another replica's %d publishes out of order: %v", n, got)
	}
	wantNone(t, a, ra, onlyB, 0, "replica a, not subscribed to b's topic")
}

func testResyncAfterOutage(t *testing.T, newBackplane func(*testing.T) backplane.Backplane, down, up func(*testing.T)) {
	bp := newBackplane(t)
	rec := start(t, bp)
	topic := newTopic("survives")
	subscribe(t, bp, topic)
	settle(t, bp, rec)

	down(t)
	healthy := func() error {
		c, cancel := context.WithTimeout(ctx(t), time.Second)
		defer cancel()
		return bp.Healthy(c)
	}
	if !eventually(outageWait, func() bool { return healthy() != nil }) {
		t.Fatal("Healthy still reports no error with the server stopped")
	}
	// While the server is away a publish may fail or be dropped, but it
	// must come back (a send waits on it).
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, cancel := context.WithTimeout(ctx(t), 3*time.Second)
		defer cancel()
		_ = bp.Publish(c, backplane.Message{Topic: topic, Payload: []byte("while down")})
	}()
	select {
	case <-done:
	case <-time.After(outageWait):
		t.Fatal("Publish with the server stopped did not return")
	}
	// A topic subscribed during the outage (a user connecting then) is
	// delivered once the server is back; the error, if any, is allowed.
	late := newTopic("subscribed-while-down")
	_ = bp.Subscribe(ctx(t), late)

	up(t)
	if !rec.until(outageWait, func() bool { return rec.Resyncs() > 0 }) {
		t.Fatalf("no HandleResync within %v of the server coming back", outageWait)
	}
	if !eventually(outageWait, func() bool { return healthy() == nil }) {
		t.Fatalf("Healthy: %v, long after the server came back", healthy())
	}

	// Delivery resumes on the topic subscribed before the outage and on the
	// one subscribed during it. The first publishes may still meet the
	// engine's recovery, so each topic is probed until one arrives; after
	// that, a burst must arrive whole and in order.
	for _, tp := range []string{topic, late} {
		before := len(rec.Payloads(tp))
		deadline := time.Now().Add(outageWait)
		for !rec.until(100*time.Millisecond, func() bool { return len(rec.Payloads(tp)) > before }) {
			if time.Now().After(deadline) {
				t.Fatalf("topic %s: nothing delivered within %v after the server came back", tp, outageWait)
			}
			_ = bp.Publish(ctx(t), backplane.Message{Topic: tp, Payload: []byte("probe")})
		}
		settle(t, bp, rec) // let late probes land before counting
		have := len(rec.Payloads(tp))
		var want []string
		for i := range 20 {
			want = append(want, fmt.Sprint("after-", i))
			publish(t, bp, tp, want[i])
		}
		if got := rec.waitPayloads(t, tp, have+len(want))[have:]; !slices.Equal(got, want) {
			t.Errorf("topic %s after the outage: %q, want %q", tp, got, want)
		}
	}
}

// eventually reports whether cond held within d, polling.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
