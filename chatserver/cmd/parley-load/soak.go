package main

// Soak mode (make soak): traffic at a fixed rate for a long time while a share
// of the connections is closed and reopened (resuming by cursor, as a client
// does), with the servers, Redis and PostgreSQL sampled at intervals and a
// growth check at the end.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// soakOptions are the -soak-* flags.
type soakOptions struct {
	sample     time.Duration
	churn      float64
	churnEvery time.Duration
	redisURL   string
	pgURL      string
	pgDatabase string
	doc        string
	svg        string
	meta       string
	record     string
	attempts   int
}

func soakFlags(fs *flag.FlagSet, s *soakOptions) {
	fs.DurationVar(&s.sample, "soak-sample", 30*time.Second, "soak: how often the servers, Redis and PostgreSQL are sampled")
	fs.Float64Var(&s.churn, "soak-churn", 0.05, "soak: share of the connections closed and reopened (resuming by cursor) every -soak-churn-every")
	fs.DurationVar(&s.churnEvery, "soak-churn-every", 10*time.Second, "soak: churn interval")
	fs.StringVar(&s.redisURL, "soak-redis", "", "soak: redis://127.0.0.1:PORT of the servers' Redis, whose clients are counted (INFO clients)")
	fs.StringVar(&s.pgURL, "soak-postgres", "", "soak: a loopback PostgreSQL URL from which the servers' connections are counted (pg_stat_activity)")
	fs.StringVar(&s.pgDatabase, "soak-database", "", "soak: the servers' database (pg_stat_activity.datname)")
	fs.StringVar(&s.doc, "soak-doc", "", "soak: write the samples and the verdict into this document, between <!-- soak --> and <!-- /soak -->")
	fs.StringVar(&s.svg, "soak-svg", "", "soak: write the chart of the samples here (SVG), linked from -soak-doc")
	fs.StringVar(&s.record, "soak-record", "", "soak: write a JSON-lines record here: each ack (conversation, seq, clientId), each message a connection took (conversation, seq; not the duplicates it dropped), each connection closed by the server or the network (close code) and when it had caught up again, and at the end each connection's cursors and each conversation's members, for an exactness check against the stored history")
	fs.IntVar(&s.attempts, "soak-reconnect-attempts", 3, "soak: attempts to reopen a connection before it counts as a reconnect failure (200 ms × attempt between them)")
	fs.StringVar(&s.meta, "soak-meta", "", "soak: a file of 'key: value' lines describing the run (machine, commit), shown in -soak-doc")
}

func (s *soakOptions) check(o *options) error {
	switch {
	case s.sample < time.Second || s.sample > 10*time.Minute:
		return errors.New("-soak-sample must be within 1s..10m")
	case s.attempts < 1 || s.attempts > 100:
		return errors.New("-soak-reconnect-attempts must be within 1..100")
	case s.churn < 0 || s.churn > 1:
		return errors.New("-soak-churn must be within 0..1")
	case s.churnEvery < 100*time.Millisecond || s.churnEvery > 10*time.Minute:
		return errors.New("-soak-churn-every must be within 100ms..10m")
	case len(o.serverPIDs) != len(o.targets) && s.record == "":
		// With -soak-record the run is an exactness check whose servers may be
		// pods that come and go (make e2e-cluster): no growth verdict then.
		return errors.New("-mode soak needs -server-pids (open files, RSS and CPU are read from /proc)")
	case o.rate <= 0:
		return errors.New("-mode soak needs a fixed -rate")
	case (s.pgURL == "") != (s.pgDatabase == ""):
		return errors.New("-soak-postgres and -soak-database go together")
	}
	for _, raw := range []string{s.redisURL, s.pgURL} {
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("soak: %q is not a loopback URL", redact(raw))
		}
	}
	return nil
}

// redact drops the password of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// soakStats is the soak part of the report.
type soakStats struct {
	Rate           float64       `json:"rate"`
	GroupFraction  float64       `json:"groupFraction"`
	Seconds        float64       `json:"seconds"`
	SampleSeconds  float64       `json:"sampleSeconds"`
	Churn          float64       `json:"churn"`
	ChurnSeconds   float64       `json:"churnEverySeconds"`
	Churned        int64         `json:"churned"`        // connections closed and reopened on purpose
	Lost           int64         `json:"lost"`           // closed by the server or the network, then reopened
	ReconnectFails int64         `json:"reconnectFails"` // reopening attempts that failed
	Renewed        int64         `json:"renewed"`        // access tokens refreshed and sent in-band (auth)
	Duplicates     int64         `json:"duplicates"`     // messages a connection had already taken (a sync overlapping live delivery), dropped as a client does
	Resyncs        int64         `json:"resyncs"`        // resync frames answered with a sync
	Samples        []soakSample  `json:"samples"`
	Checks         []growthCheck `json:"checks"`
	Pass           bool          `json:"pass"`
}

// soakConn is what the soak keeps per connection index, across reopenings.
type soakConn struct {
	cur      atomic.Pointer[lconn]
	draining atomic.Bool      // being churned: no new sends
	inflight atomic.Int64     // sends written and not yet answered
	mu       sync.Mutex       // guards seq and ahead
	seq      map[string]int64 // per conversation: every seq up to it taken (the cursor a sync sends)
	// ahead holds the seqs taken above seq: live frames may come before a
	// reconnected connection's sync answer fills the hole below them (docs/api.md:
	// live frames wait for the sync only up to the hold time), so a message below
	// the highest seq taken is not always a duplicate: de-duplicating by seq alone
	// dropped a message the sync answer brought.
	ahead  map[string]map[int64]bool
	lostAt atomic.Int64 // unix ns the connection was lost; 0 once the reopened one has synced
}

type soakRun struct {
	o        *options
	t        *traffic
	cn       *connector
	users    []atomic.Pointer[user]
	byUser   [][]int // connection indexes of each account
	sc       []*soakConn
	errs     *errorCounts
	reopen   chan *lconn // connections closed by the server or the network
	rec      *recorder   // -soak-record (nil: none)
	st       soakStats
	churned  atomic.Int64
	lost     atomic.Int64
	failed   atomic.Int64
	renewed  atomic.Int64
	dups     atomic.Int64
	resyncs  atomic.Int64
	reopenWG sync.WaitGroup
}

var (
	prefixResync   = []byte(`{"type":"resync"`)
	prefixSynced   = []byte(`{"type":"synced"`)
	keyConvID      = []byte(`"conversationId":"`)
	keySeq         = []byte(`"seq":`)
	errNoOpenConns = errors.New("no connection could be opened")
)

// intField returns the integer after key (0 when absent or malformed).
func intField(data, key []byte) int64 {
	i := bytes.Index(data, key)
	if i < 0 {
		return 0
	}
	rest := data[i+len(key):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	v, _ := strconv.ParseInt(string(rest[:j]), 10, 64)
	return v
}

// onFrame keeps each connection's cursor (a message at or below it is a
// duplicate from a sync that overlapped live delivery: dropped, as clients
// do), answers resync, counts unanswered sends, then hands the frame to the
// traffic's matcher.
func (s *soakRun) onFrame(c *lconn, data []byte) {
	t := s.t
	switch {
	case bytes.HasPrefix(data, prefixMessage):
		conv, seq := field(data, keyConvID), intField(data, keySeq)
		sc := s.sc[c.idx]
		sc.mu.Lock()
		dup := sc.take(conv, seq)
		sc.mu.Unlock()
		if dup {
			s.dups.Add(1)
			return
		}
		if s.rec != nil {
			s.rec.event("msg", map[string]any{"conn": c.idx, "conv": conv, "seq": seq})
		}
	case bytes.HasPrefix(data, prefixAck) || bytes.HasPrefix(data, prefixError):
		if _, from, _, ok := t.parseID(field(data, keyID)); ok && from >= 0 && from < len(s.sc) {
			s.sc[from].inflight.Add(-1)
			if s.rec != nil && bytes.HasPrefix(data, prefixAck) {
				s.rec.event("ack", map[string]any{"conn": from, "conv": field(data, keyConvID),
					"seq": intField(data, keySeq), "clientId": field(data, keyClientID)})
			}
		}
	case bytes.HasPrefix(data, prefixSynced):
		sc := s.sc[c.idx]
		if lost := sc.lostAt.Load(); lost != 0 && sc.cur.Load() == c && sc.lostAt.CompareAndSwap(lost, 0) {
			s.rec.event("caughtup", map[string]any{"conn": c.idx, "ms": time.Since(time.Unix(0, lost)).Milliseconds()})
		}
		return
	case bytes.HasPrefix(data, prefixResync):
		s.resyncs.Add(1)
		s.sync(c, 5*time.Second)
		return
	}
	t.onFrame(c, data)
}

// take records seq of conv as taken and reports whether it had been taken
// before (a duplicate, dropped as a client does: by message, not by the highest
// seq seen). Holds sc.mu.
func (sc *soakConn) take(conv string, seq int64) (dup bool) {
	cur := sc.seq[conv]
	if seq <= cur || sc.ahead[conv][seq] {
		return true
	}
	if seq != cur+1 {
		if sc.ahead == nil {
			sc.ahead = map[string]map[int64]bool{}
		}
		if sc.ahead[conv] == nil {
			sc.ahead[conv] = map[int64]bool{}
		}
		sc.ahead[conv][seq] = true
		return false
	}
	for cur = seq; sc.ahead[conv][cur+1]; cur++ {
		delete(sc.ahead[conv], cur+1)
	}
	sc.seq[conv] = cur
	return false
}

// sync asks for everything after the connection's cursors: sc.seq holds one
// for each conversation of its account, starting where it stood at the start.
func (s *soakRun) sync(c *lconn, wait time.Duration) {
	sc := s.sc[c.idx]
	sc.mu.Lock()
	cursors := maps.Clone(sc.seq)
	sc.mu.Unlock()
	if len(cursors) == 0 {
		return
	}
	frame, _ := json.Marshal(map[string]any{"type": "sync", "id": "sync", "cursors": cursors})
	if err := c.write(frame, wait); err != nil {
		s.errs.addErr("sync", err)
	}
}

// sendOne sends one message from a random open connection that is not being churned.
func (s *soakRun) sendOne(rng *rand.Rand, groupFraction float64) {
	t := s.t
	// In flight is counted before draining is checked, and reconnect sets
	// draining before it waits for in flight to reach 0: so either reconnect
	// waits for this send's answer, or this send sees draining and picks
	// another connection; never a write to a connection being closed.
	var c *lconn
	var sc *soakConn
	for range 8 {
		sc = s.sc[rng.IntN(len(s.sc))]
		cc := sc.cur.Load()
		if cc == nil {
			continue
		}
		sc.inflight.Add(1)
		if sc.draining.Load() || cc.closed.Load() {
			sc.inflight.Add(-1)
			continue
		}
		c = cc
		break
	}
	if c == nil {
		t.errs.add("send_no_open_connection")
		t.answer()
		return
	}
	list := t.directs[c.user]
	if (rng.Float64() < groupFraction && len(t.groups[c.user]) > 0) || len(list) == 0 {
		list = t.groups[c.user]
	}
	if len(list) == 0 {
		sc.inflight.Add(-1)
		t.errs.add("send_no_conversation")
		t.answer()
		return
	}
	cv := list[rng.IntN(len(list))]
	id := t.clientID(time.Now(), c.idx, cv)
	frame := t.sendFrame(id, cv)
	if err := c.write(frame, 5*time.Second); err != nil {
		sc.inflight.Add(-1)
		t.errs.addErr("send_write", err)
		t.answer()
		return
	}
	t.sent.Add(1)
}

// send paces sends at rate until ctx ends (open loop, as traffic.run).
func (s *soakRun) send(ctx context.Context, rate float64, workers int, groupFraction float64) {
	s.t.openLoop(ctx, rate, workers, func(rng *rand.Rand) { s.sendOne(rng, groupFraction) })
}

// reconnect closes connection idx (if open) once its sends are answered
// (at most 3 s), opens it again to the same server with the account's
// current token and syncs it from its cursors.
func (s *soakRun) reconnect(ctx context.Context, idx int, onFrame frameHandler) bool {
	sc := s.sc[idx]
	old := sc.cur.Load()
	sc.draining.Store(true)
	defer sc.draining.Store(false)
	for deadline := time.Now().Add(3 * time.Second); sc.inflight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	old.close()
	// A send written before the close whose answer never came holds an
	// in-flight slot: give it back (the report counts it).
	for n := sc.inflight.Swap(0); n > 0; n-- {
		s.errs.add("send_unanswered_at_close")
		s.t.answer()
	}
	for attempt := range s.o.soak.attempts {
		u := s.users[old.user].Load()
		c, err := s.cn.dial(ctx, idx, old.target, old.user, u, onFrame, s.reopen)
		if err == nil {
			sc.cur.Store(c)
			s.sync(c, 5*time.Second)
			return true
		}
		var se *stepError
		if errors.As(err, &se) {
			s.errs.addErr(kind("reconnect_"+se.step, se.err), err)
		} else {
			s.errs.addErr(kind("reconnect", err), err)
		}
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Duration(200*(attempt+1)) * time.Millisecond)
	}
	s.failed.Add(1)
	return false
}

// churnOnce reopens a random share of the open connections, 16 at a time.
func (s *soakRun) churnOnce(ctx context.Context, rng *rand.Rand, onFrame frameHandler) {
	var open []int
	for i, sc := range s.sc {
		if c := sc.cur.Load(); c != nil && !c.closed.Load() && !sc.draining.Load() {
			open = append(open, i)
		}
	}
	k := int(s.o.soak.churn*float64(len(open)) + 0.5)
	rng.Shuffle(len(open), func(i, j int) { open[i], open[j] = open[j], open[i] })
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, idx := range open[:k] {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if s.reconnect(ctx, idx, onFrame) {
				s.churned.Add(1)
			}
		}()
	}
	wg.Wait()
}

// renewTokens refreshes access tokens that expire within 5 minutes and
// extends every open connection of those accounts in-band (an auth frame),
// as the web client does, so the server does not close them at expiry.
func (s *soakRun) renewTokens(ctx context.Context, apis []*api) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range s.users {
		u := s.users[i].Load()
		if u == nil || time.Until(u.ExpiresAt) > 5*time.Minute {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ses, err := apis[i%len(apis)].refresh(ctx, u.RefreshToken)
			if err != nil {
				s.errs.addErr(kind("renew", err), err)
				return
			}
			nu := fromSession(u.Name, ses)
			s.users[i].Store(nu)
			frame, _ := json.Marshal(map[string]string{"type": "auth", "id": "auth", "token": nu.AccessToken})
			for _, idx := range s.byUser[i] {
				if c := s.sc[idx].cur.Load(); c != nil && !c.closed.Load() {
					if err := c.write(frame, 5*time.Second); err != nil {
						s.errs.addErr("renew_write", err)
					}
				}
			}
			s.renewed.Add(1)
		}()
	}
	wg.Wait()
}
