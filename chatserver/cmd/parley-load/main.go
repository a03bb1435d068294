// Command parley-load is Parley's load generator. It registers accounts,
// opens authenticated WebSocket connections spread over one or more chat
// servers, then either holds them idle or drives direct and group messages at
// a set rate for a set time, and reports connection set-up rate, message
// rates, end-to-end delivery latency, errors by kind and server RSS per
// connection. It only talks to loopback addresses, and every phase is bounded
// in count and time.
//
//	parley-load -targets http://127.0.0.1:8081,http://127.0.0.1:8082 -users 200 -conns 400 \
//	    -duration 20s -rate 500 -group-size 10 -server-pids 1234,1235
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	mode            string
	label           string
	targets         []*url.URL
	registerTargets []*url.URL
	users, conns    int
	prefix          string
	cache           string
	regWorkers      int
	dialWorkers     int
	sources         []net.IP
	serverPIDs      []int
	watch           []*watched
	duration        time.Duration
	rate            float64
	inflight        int
	senders         int
	groupSize       int
	groupFraction   float64
	bodyBytes       int
	hold            time.Duration
	drain           time.Duration
	connectTimeout  time.Duration
	timeout         time.Duration
	jsonOut         bool
	blobs           blobOptions
	soak            soakOptions
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "parley-load:", err)
		os.Exit(1)
	}
}

func parse(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("parley-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{}
	targets := fs.String("targets", "http://127.0.0.1:8080", "comma-separated chat-server base URLs (loopback only); connections go round-robin")
	regTargets := fs.String("register-targets", "", "servers that register accounts and create conversations (default: -targets)")
	sources := fs.String("sources", "", "local addresses to connect from: a comma-separated list of 127.x.y.z, or a count N for 127.0.0.1..127.0.0.N (each gives ~28k ports)")
	pids := fs.String("server-pids", "", "comma-separated PIDs of the servers, in -targets order: RSS per connection and CPU are read from /proc")
	watch := fs.String("watch", "", "other processes to report CPU for: name=PID[,name=PID+] (+ adds the PID's direct children, e.g. PostgreSQL backends)")
	fs.StringVar(&o.mode, "mode", "traffic", "traffic: connect, then send messages; idle: connect and hold; blobs: attachment upload and download throughput against the S3 server's own (no connections); soak: traffic at -rate for -duration with connection churn, sampling the servers, Redis and PostgreSQL (-soak-*)")
	soakFlags(fs, &o.soak)
	fs.IntVar(&o.blobs.files, "blob-files", 16, "blobs: files per phase")
	fs.IntVar(&o.blobs.mib, "blob-mib", 16, "blobs: size of each file, in MiB")
	fs.IntVar(&o.blobs.concurrency, "blob-concurrency", 4, "blobs: transfers at a time")
	fs.IntVar(&o.blobs.rounds, "blob-rounds", 2, "blobs: rounds of the four phases (raw PUT, upload, raw GET, download)")
	fs.StringVar(&o.blobs.s3Env, "blob-s3-env", "PARLEY_TEST_S3", "blobs: prefix of the environment variables naming the servers' S3 bucket (_ENDPOINT, _BUCKET, _ACCESS_KEY, _SECRET_KEY)")
	fs.StringVar(&o.label, "label", "", "name of this run in the report")
	fs.IntVar(&o.users, "users", 100, "accounts")
	fs.IntVar(&o.conns, "conns", 100, "WebSocket connections (account i%users; a server allows 32 per account)")
	fs.StringVar(&o.prefix, "user-prefix", "load", "username prefix (accounts are <prefix>NNNNNN)")
	fs.StringVar(&o.cache, "cache", "", "file that keeps accounts and tokens between runs against the same database")
	fs.IntVar(&o.regWorkers, "register-workers", 8, "parallel registrations (the server hashes with -password-workers at a time)")
	fs.IntVar(&o.dialWorkers, "dial-workers", 32, "parallel connection set-ups")
	fs.DurationVar(&o.duration, "duration", 20*time.Second, "traffic: how long to send")
	fs.Float64Var(&o.rate, "rate", 200, "traffic: messages per second in total; 0 sends as fast as acks allow (-inflight outstanding)")
	fs.IntVar(&o.inflight, "inflight", 256, "traffic: most unanswered sends at a time")
	fs.IntVar(&o.senders, "senders", 8, "traffic: sending goroutines")
	fs.IntVar(&o.groupSize, "group-size", 10, "traffic: members per group (groups are consecutive accounts)")
	fs.Float64Var(&o.groupFraction, "group-fraction", 0.5, "traffic: share of sends that go to a group (the rest are direct)")
	fs.IntVar(&o.bodyBytes, "body-bytes", 100, "traffic: message body length")
	fs.DurationVar(&o.hold, "hold", 30*time.Second, "idle: how long to hold the connections (the server closes them when the access token expires, 15 min by default)")
	fs.DurationVar(&o.drain, "drain", 10*time.Second, "traffic: longest wait for answers and deliveries after sending stops")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 3*time.Minute, "longest connection phase")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "hard limit for the whole run")
	fs.BoolVar(&o.jsonOut, "json", false, "print the report as JSON on stdout (the table goes to stderr)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.targets, err = parseTargets(*targets); err != nil {
		return nil, err
	}
	o.registerTargets = o.targets
	if *regTargets != "" {
		if o.registerTargets, err = parseTargets(*regTargets); err != nil {
			return nil, err
		}
	}
	if o.sources, err = parseSources(*sources); err != nil {
		return nil, err
	}
	if *pids != "" {
		for _, p := range strings.Split(*pids, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("-server-pids: bad PID %q", p)
			}
			o.serverPIDs = append(o.serverPIDs, n)
		}
		if len(o.serverPIDs) != len(o.targets) {
			return nil, fmt.Errorf("-server-pids has %d PIDs for %d targets", len(o.serverPIDs), len(o.targets))
		}
	}
	if *watch != "" {
		for _, w := range strings.Split(*watch, ",") {
			name, p, ok := strings.Cut(strings.TrimSpace(w), "=")
			children := strings.HasSuffix(p, "+")
			n, err := strconv.Atoi(strings.TrimSuffix(p, "+"))
			if !ok || err != nil || n <= 0 {
				return nil, fmt.Errorf("-watch: want name=PID, got %q", w)
			}
			o.watch = append(o.watch, &watched{Name: name, PID: n, children: children})
		}
	}
	switch {
	case o.mode != "traffic" && o.mode != "idle" && o.mode != "blobs" && o.mode != "soak":
		return nil, fmt.Errorf("-mode must be traffic, idle, blobs or soak, not %q", o.mode)
	case o.mode == "blobs" && (o.blobs.files < 1 || o.blobs.files > 1000 || o.blobs.mib < 1 || o.blobs.mib > 1024 ||
		o.blobs.concurrency < 1 || o.blobs.concurrency > 64 || o.blobs.rounds < 1 || o.blobs.rounds > 10):
		return nil, errors.New("-blob-files must be 1..1000, -blob-mib 1..1024, -blob-concurrency 1..64, -blob-rounds 1..10")
	case o.users < 1 || o.users > 1_000_000:
		return nil, errors.New("-users must be 1..1000000")
	case o.conns < 1 || o.conns > 1_000_000:
		return nil, errors.New("-conns must be 1..1000000")
	case o.conns > o.users*32:
		return nil, fmt.Errorf("-conns %d needs at least %d accounts (32 connections per account)", o.conns, (o.conns+31)/32)
	case o.regWorkers < 1 || o.dialWorkers < 1 || o.senders < 1 || o.inflight < 1:
		return nil, errors.New("-register-workers, -dial-workers, -senders and -inflight must be positive")
	case o.duration <= 0 || o.duration > time.Hour || o.hold < 0 || o.hold > time.Hour:
		return nil, errors.New("-duration and -hold must be within 0..1h")
	case o.rate < 0 || o.groupFraction < 0 || o.groupFraction > 1:
		return nil, errors.New("-rate must be >= 0 and -group-fraction within 0..1")
	case o.timeout <= 0 || o.timeout > 2*time.Hour:
		return nil, errors.New("-timeout must be within 0..2h")
	}
	if o.mode == "soak" {
		if err := o.soak.check(o); err != nil {
			return nil, err
		}
	}
	if o.label == "" {
		o.label = o.mode
	}
	return o, nil
}

func parseTargets(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		u, err := checkLoopback(t)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("no targets")
	}
	return out, nil
}

func parseSources(s string) ([]net.IP, error) {
	if s == "" {
		return nil, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 254 {
			return nil, errors.New("-sources count must be 1..254")
		}
		out := make([]net.IP, n)
		for i := range out {
			out[i] = net.IPv4(127, 0, 0, byte(i+1))
		}
		return out, nil
	}
	var out []net.IP
	for _, a := range strings.Split(s, ",") {
		ip := net.ParseIP(strings.TrimSpace(a))
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("-sources: %q is not a loopback address", a)
		}
		out = append(out, ip)
	}
	return out, nil
}

// serverMem is one server's RSS around the connection phase.
type serverMem struct {
	Target        string  `json:"target"`
	PID           int     `json:"pid"`
	Conns         int     `json:"conns"`
	RSSBeforeKiB  int64   `json:"rssBeforeKiB"`
	RSSAfterKiB   int64   `json:"rssAfterKiB"`   // all connections open
	RSSSettledKiB int64   `json:"rssSettledKiB"` // at the end of the hold or of the traffic
	KiBPerConn    float64 `json:"kibPerConn"`    // (after - before) / conns
}

// report is the output of one run.
type report struct {
	Label      string            `json:"label"`
	Mode       string            `json:"mode"`
	Started    time.Time         `json:"started"`
	Targets    []string          `json:"targets"`
	Sources    int               `json:"sources"`
	Users      userStats         `json:"users"`
	Connect    connectStats      `json:"connect"`
	StillOpen  int               `json:"stillOpen"` // connections open at the end
	HoldSec    float64           `json:"holdSeconds,omitempty"`
	Traffic    *trafficStats     `json:"traffic,omitempty"`
	Blobs      *blobStats        `json:"blobs,omitempty"`
	Soak       *soakStats        `json:"soak,omitempty"`
	Servers    []serverMem       `json:"servers,omitempty"`
	CPU        []cpuUse          `json:"cpu,omitempty"` // cores used during traffic or hold
	Errors     map[string]int64  `json:"errors"`
	ErrorText  map[string]string `json:"errorSamples,omitempty"` // the first error of each kind
	DurationS  float64           `json:"durationSeconds"`
	Args       []string          `json:"args"`
	LoadAvgEnd string            `json:"loadavgEnd"`
}

func run(args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()

	rep := &report{Label: o.label, Mode: o.mode, Started: time.Now().UTC(), Sources: len(o.sources), Args: args}
	for _, t := range o.targets {
		rep.Targets = append(rep.Targets, t.String())
	}
	errs := newErrorCounts()
	hc := newHTTPClient(max(o.regWorkers, o.dialWorkers))
	mkAPIs := func(us []*url.URL) []*api {
		var out []*api
		for _, u := range us {
			out = append(out, &api{base: strings.TrimRight(u.String(), "/"), hc: hc})
		}
		return out
	}
	apis, regAPIs := mkAPIs(o.targets), mkAPIs(o.registerTargets)

	cache, err := loadCache(o.cache)
	if err != nil {
		return err
	}
	users, ust := obtainUsers(ctx, regAPIs, o.prefix, o.users, o.regWorkers, cache, 5*time.Minute, errs)
	rep.Users = ust
	if err := cache.save(o.cache, users); err != nil {
		return err
	}
	logf(stderr, "accounts: %d registered, %d logged in, %d refreshed, %d cached, %d failed in %.1fs",
		ust.Registered, ust.LoggedIn, ust.Refreshed, ust.Cached, ust.Failed, ust.Seconds)
	if ust.Failed == int64(o.users) {
		return fmt.Errorf("no account could be obtained: %v", errs.snapshot())
	}

	if o.mode == "blobs" {
		st, err := runBlobs(ctx, o, o.blobs, apis, users[0], errs)
		rep.Blobs = st
		return finish(o, rep, errs, stdout, stderr, err)
	}
	if o.mode == "soak" {
		return runSoak(ctx, o, rep, apis, regAPIs, users, errs, stdout, stderr)
	}

	var live atomic.Pointer[traffic] // set once the connections are up
	var onFrame frameHandler
	var convs []*conv
	if o.mode == "traffic" {
		convs, err = scenario(ctx, regAPIs, users, o.groupSize, o.regWorkers, errs)
		if err != nil {
			return err
		}
		onFrame = func(c *lconn, data []byte) {
			if tr := live.Load(); tr != nil {
				tr.onFrame(c, data)
			}
		}
	}

	mem := make([]serverMem, len(o.serverPIDs))
	for i, pid := range o.serverPIDs {
		mem[i] = serverMem{Target: o.targets[i].String(), PID: pid}
		if mem[i].RSSBeforeKiB, err = rssKiB(pid); err != nil {
			return err
		}
	}
	cn := newConnector(apis, o.targets, o.sources, errs)
	conns, cst := cn.connectAll(ctx, users, o.conns, o.dialWorkers, time.Now().Add(o.connectTimeout), onFrame, nil)
	rep.Connect = cst
	defer closeAll(conns)
	logf(stderr, "connections: %d of %d in %.1fs (%.0f/s)", cst.Established, cst.Attempted, cst.Seconds, cst.PerSecond)
	for i := range mem {
		for _, c := range conns {
			if c != nil && c.target == i {
				mem[i].Conns++
			}
		}
		mem[i].RSSAfterKiB, _ = rssKiB(mem[i].PID)
	}

	self0, t0 := selfCPU(), time.Now()
	startCPU(o.watch)
	serverWatch := make([]*watched, len(o.serverPIDs))
	for i, pid := range o.serverPIDs {
		serverWatch[i] = &watched{Name: fmt.Sprintf("server%d", i+1), PID: pid}
	}
	startCPU(serverWatch)
	switch o.mode {
	case "idle":
		hold := time.NewTimer(o.hold)
		select {
		case <-ctx.Done():
		case <-hold.C:
		}
		hold.Stop()
		rep.HoldSec = time.Since(t0).Seconds()
	case "traffic":
		run := "L" + strings.ToLower(rand.Text()[:6])
		tr := newTraffic(run, conns, convs, o.users, o.bodyBytes, o.inflight, errs)
		live.Store(tr)
		tr.syncAll(10 * time.Second)
		st := tr.run(ctx, o.rate, o.duration, o.senders, o.groupFraction, o.drain)
		rep.Traffic = &st
		logf(stderr, "traffic: sent %d, delivered %d of %d expected", st.Sent, st.Delivered, st.Expected)
	}
	rep.CPU = endCPU(append(serverWatch, o.watch...), self0, t0)
	for i := range mem {
		mem[i].RSSSettledKiB, _ = rssKiB(mem[i].PID)
		if mem[i].Conns > 0 {
			mem[i].KiBPerConn = float64(mem[i].RSSAfterKiB-mem[i].RSSBeforeKiB) / float64(mem[i].Conns)
		}
	}
	rep.Servers = mem
	for _, c := range conns {
		if c != nil && !c.closed.Load() {
			rep.StillOpen++
		}
	}
	var runErr error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) { // an interrupt still prints what was measured
		runErr = ctx.Err()
	}
	return finish(o, rep, errs, stdout, stderr, runErr)
}

// finish completes and prints the report; runErr is what stopped the run early.
func finish(o *options, rep *report, errs *errorCounts, stdout, stderr io.Writer, runErr error) error {
	rep.Errors = errs.snapshot()
	rep.ErrorText = errs.sampleSnapshot()
	rep.DurationS = time.Since(rep.Started).Seconds()
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		rep.LoadAvgEnd = strings.TrimSpace(string(la))
	}
	if o.jsonOut {
		printTable(stderr, rep)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	} else {
		printTable(stdout, rep)
	}
	if errors.Is(runErr, context.DeadlineExceeded) {
		return fmt.Errorf("run stopped by -timeout %v", o.timeout)
	}
	return runErr
}

func logf(w io.Writer, format string, a ...any) {
	fmt.Fprintf(w, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
}
