package main

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runSoak is -mode soak: scenario, connections, then traffic at -rate for
// -duration with churn, token renewal and sampling; the growth check decides
// the result, and a failed check is an error (non-zero exit).
func runSoak(ctx context.Context, o *options, rep *report, apis, regAPIs []*api, users []*user,
	errs *errorCounts, stdout, stderr io.Writer) error {
	convs, err := scenario(ctx, regAPIs, users, o.groupSize, o.regWorkers, errs)
	if err != nil {
		return err
	}
	s := &soakRun{o: o, errs: errs, reopen: make(chan *lconn, o.conns),
		users: make([]atomic.Pointer[user], len(users)), byUser: make([][]int, len(users)),
		sc: make([]*soakConn, o.conns)}
	if s.rec, err = newRecorder(o.soak.record); err != nil {
		return err
	}
	for i, u := range users {
		s.users[i].Store(u)
	}
	for i := range s.sc {
		s.sc[i] = &soakConn{seq: map[string]int64{}}
		s.byUser[i%len(users)] = append(s.byUser[i%len(users)], i)
	}
	var live atomic.Pointer[soakRun] // set once the traffic exists
	onFrame := func(c *lconn, data []byte) {
		if r := live.Load(); r != nil {
			r.onFrame(c, data)
		}
	}
	// Tokens that expire soon (a cache, a short -access-token-ttl) are
	// renewed before the connections are opened with them.
	s.renewTokens(ctx, apis)
	for i := range users {
		users[i] = s.users[i].Load()
	}
	s.cn = newConnector(apis, o.targets, o.sources, errs)
	conns, cst := s.cn.connectAll(ctx, users, o.conns, o.dialWorkers, time.Now().Add(o.connectTimeout), onFrame, s.reopen)
	rep.Connect = cst
	logf(stderr, "connections: %d of %d in %.1fs (%.0f/s)", cst.Established, cst.Attempted, cst.Seconds, cst.PerSecond)
	defer func() {
		all := make([]*lconn, 0, len(s.sc))
		for _, sc := range s.sc {
			all = append(all, sc.cur.Load())
		}
		closeAll(all)
	}()
	if cst.Established == 0 {
		return errNoOpenConns
	}
	for i, c := range conns {
		s.sc[i].cur.Store(c)
	}
	s.t = newTraffic("L"+strings.ToLower(crand.Text()[:6]), conns, convs, o.users, o.bodyBytes, o.inflight, errs)
	// Each connection's cursors start where its conversations stood when
	// created (an earlier run's messages are not expected).
	for i, sc := range s.sc {
		u := i % len(users)
		for _, lists := range [][]int{s.t.directs[u], s.t.groups[u]} {
			for _, ci := range lists {
				sc.seq[s.t.convs[ci].id] = s.t.convs[ci].lastSeq
			}
		}
	}
	live.Store(s)
	for _, c := range conns {
		if c != nil {
			s.sync(c, 10*time.Second)
		}
	}

	smp, err := newSampler(ctx, o, apis)
	if err != nil {
		return err
	}
	defer smp.close()

	self0, t0 := selfCPU(), time.Now()
	serverWatch := make([]*watched, len(o.serverPIDs))
	for i, pid := range o.serverPIDs {
		serverWatch[i] = &watched{Name: fmt.Sprintf("server%d", i+1), PID: pid}
	}
	startCPU(append(serverWatch, o.watch...))
	s.t.start = time.Now()
	tctx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	sendDone := make(chan struct{})
	go func() {
		s.send(tctx, o.rate, o.senders, o.groupFraction)
		close(sendDone)
	}()
	// Churn stops with the traffic; token renewal and reopening lost
	// connections go on through the drain (bgCtx), and what they started is
	// finished under the run's ctx, so the end of the traffic cancels nothing.
	bgCtx, stopBG := context.WithCancel(ctx)
	defer stopBG()
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // churn and token renewal
		defer bg.Done()
		rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
		tick := time.NewTicker(o.soak.churnEvery)
		defer tick.Stop()
		for {
			select {
			case <-bgCtx.Done():
				return
			case <-tick.C:
				s.renewTokens(ctx, apis)
				if tctx.Err() == nil {
					s.churnOnce(ctx, rng, onFrame)
				}
			}
		}
	}()
	go func() { // a connection the server or the network closed is opened again
		defer bg.Done()
		// In parallel, as a population of clients reconnects (a server draining
		// closes all of its connections at once), at most 32 at a time.
		sem := make(chan struct{}, 32)
		for {
			select {
			case <-bgCtx.Done():
				return
			case c := <-s.reopen:
				if s.sc[c.idx].cur.Load() == c {
					s.lost.Add(1)
					if s.rec != nil {
						at := c.closedAt.Load()
						s.sc[c.idx].lostAt.Store(at)
						s.rec.event("lost", map[string]any{"t": at / 1e6, "conn": c.idx, "user": c.user, "code": c.closeCode.Load()})
					}
					sem <- struct{}{}
					s.reopenWG.Add(1)
					go func() {
						defer s.reopenWG.Done()
						defer func() { <-sem }()
						s.reconnect(ctx, c.idx, onFrame)
					}()
				}
			}
		}
	}()
	smp.baseline(s)
	tick := time.NewTicker(o.soak.sample)
sampling:
	for {
		select {
		case <-tctx.Done():
			break sampling
		case <-tick.C:
			sm := smp.take(ctx, s)
			s.st.Samples = append(s.st.Samples, sm)
			logf(stderr, "soak %4.0fs: %s", sm.Seconds, sm.line())
		}
	}
	tick.Stop()
	// The last interval, unless a sample was just taken.
	if n := len(s.st.Samples); n == 0 || time.Since(s.t.start).Seconds()-s.st.Samples[n-1].Seconds > o.soak.sample.Seconds()/2 {
		sm := smp.take(ctx, s)
		s.st.Samples = append(s.st.Samples, sm)
		logf(stderr, "soak %4.0fs: %s", sm.Seconds, sm.line())
	}
	<-sendDone
	st := s.finish()
	stopBG()
	bg.Wait()
	s.reopenWG.Wait()
	rep.Traffic = &st
	if err := s.recordEnd(); err != nil {
		return err
	}
	rep.CPU = endCPU(append(serverWatch, o.watch...), self0, t0)
	for _, sc := range s.sc {
		if c := sc.cur.Load(); c != nil && !c.closed.Load() {
			rep.StillOpen++
		}
	}
	s.st.Rate, s.st.GroupFraction, s.st.Seconds = o.rate, o.groupFraction, st.Seconds
	s.st.SampleSeconds, s.st.Churn, s.st.ChurnSeconds = o.soak.sample.Seconds(), o.soak.churn, o.soak.churnEvery.Seconds()
	s.st.Churned, s.st.Lost, s.st.ReconnectFails = s.churned.Load(), s.lost.Load(), s.failed.Load()
	s.st.Renewed, s.st.Duplicates, s.st.Resyncs = s.renewed.Load(), s.dups.Load(), s.resyncs.Load()
	s.st.Checks = soakChecks(s.st.Samples, len(o.serverPIDs), o.soak.redisURL != "", o.soak.pgURL != "")
	s.st.Pass = len(s.st.Checks) > 0
	for _, c := range s.st.Checks {
		s.st.Pass = s.st.Pass && c.Pass
	}
	rep.Soak = &s.st
	var runErr error
	if ctx.Err() != nil {
		runErr = fmt.Errorf("soak interrupted: %w", ctx.Err())
	}
	rep.Errors, rep.ErrorText = errs.snapshot(), errs.sampleSnapshot() // finish sets them again
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAvgEnd = strings.TrimSpace(string(la))
	}
	if o.soak.doc != "" || o.soak.svg != "" {
		if err := writeSoakDoc(o.soak, rep); err != nil && runErr == nil {
			runErr = err
		}
	}
	for _, c := range s.st.Checks {
		verdict := "ok"
		if !c.Pass {
			verdict = "FAIL"
		}
		logf(stderr, "soak check %-4s %s: first third %.1f, last third %.1f, limit %.1f (%s)", verdict, c.Series, c.First, c.Last, c.Limit, c.Tolerance)
	}
	if err := finish(o, rep, errs, stdout, stderr, runErr); err != nil {
		return err
	}
	if !s.st.Pass {
		logf(stderr, "soak: FAIL: %s", failedChecks(s.st.Checks))
		return fmt.Errorf("soak: growth beyond tolerance: %s", failedChecks(s.st.Checks))
	}
	logf(stderr, "soak: PASS: no growth beyond tolerance in %d samples", len(s.st.Samples))
	return nil
}

// finish waits for the answers and deliveries of what was sent (at most
// -drain) and summarises the whole traffic phase.
func (s *soakRun) finish() trafficStats {
	t, o := s.t, s.o
	st := trafficStats{Mode: "open", TargetRate: o.rate, GroupFraction: o.groupFraction}
	for _, c := range t.convs {
		if c.group {
			st.Groups++
			st.GroupSize = max(st.GroupSize, len(c.members))
		} else {
			st.Directs++
		}
	}
	st.Seconds = time.Since(t.start).Seconds()
	drainStart := time.Now()
	for time.Since(drainStart) < o.drain {
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
	st.DeliveredPerSecond = float64(st.Delivered) / st.Seconds
	if st.Expected > 0 {
		st.DeliveryRatio = float64(st.Delivered) / float64(st.Expected)
	}
	st.Delivery, st.CrossReplica, st.Ack = t.delivery.summary(), t.cross.summary(), t.ack.summary()
	return st
}

func failedChecks(cs []growthCheck) string {
	var out []string
	for _, c := range cs {
		if !c.Pass {
			out = append(out, fmt.Sprintf("%s %.1f → %.1f (limit %.1f)", c.Series, c.First, c.Last, c.Limit))
		}
	}
	if len(out) == 0 {
		return "no checks (too few samples)"
	}
	return strings.Join(out, "; ")
}

// recordEnd writes each connection's cursors and each conversation's members
// to -soak-record and closes it.
func (s *soakRun) recordEnd() error {
	if s.rec == nil {
		return nil
	}
	for _, cv := range s.t.convs {
		names := make([]string, len(cv.members))
		for i, m := range cv.members {
			names[i] = s.users[m].Load().Name
		}
		s.rec.event("conv", map[string]any{"conv": cv.id, "lastSeqAtStart": cv.lastSeq, "members": names})
	}
	for i, sc := range s.sc {
		c := sc.cur.Load()
		sc.mu.Lock()
		cursors := maps.Clone(sc.seq)
		sc.mu.Unlock()
		user := i % len(s.users)
		s.rec.event("cursors", map[string]any{"conn": i, "user": s.users[user].Load().Name,
			"open": c != nil && !c.closed.Load(), "cursors": cursors})
	}
	return s.rec.close()
}
