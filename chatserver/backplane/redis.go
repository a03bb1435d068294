package backplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/circuit"
	"github.com/parley-chat/parley/chatserver/metrics"
)

// RedisOptions tune the Redis backplane.
type RedisOptions struct {
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	// QueueSize bounds publishes waiting for Redis [65536]. When Redis is slow
	// or down the queue fills and further publishes are dropped (and counted):
	// the messages are stored, and clients catch up after the resync.
	QueueSize int
	// Batch is the most publishes sent in one pipeline round trip [256].
	Batch int
	// PublishTimeout bounds how long Publish waits for Redis to accept an
	// event [1s].
	PublishTimeout time.Duration
	// Breaker (may be nil, shared with the other users of this Redis) skips
	// Redis for a cool-down after a failure: publishes then reach this
	// replica's own subscribers only, at once.
	Breaker *circuit.Breaker
}

// ErrUnavailable is returned (wrapped) by Publish when the event could not be
// handed to Redis; this replica's own subscribers got it all the same.
var ErrUnavailable = errors.New("backplane: Redis unavailable; delivered on this replica only")

type pub struct {
	topic   string
	payload []byte
	w       *waiter
}

// waiter lets Publish wait for the batches carrying its events.
type waiter struct {
	mu      sync.Mutex
	pending int
	err     error
	done    chan struct{}
}

func newWaiter(n int) *waiter { return &waiter{pending: n, done: make(chan struct{})} }

func (w *waiter) finish(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.pending--; w.pending == 0 {
		close(w.done)
	}
}

func (w *waiter) result() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Redis is a Backplane over Redis pub/sub, for many replicas. On Redis Cluster
// it uses sharded pub/sub, so each event travels only to the master owning its
// topic's slot instead of to every node. Publishes are queued and sent in
// pipelined batches by one writer, so Redis round trips are amortised under
// load; Publish returns once Redis has accepted its events.
type Redis struct {
	client redis.UniversalClient
	ps     *redis.PubSub // one server or Sentinel: one subscription connection
	h      Handler       // set once by Start, before any subscription
	opts   RedisOptions
	log    *slog.Logger

	// Redis Cluster: sharded pub/sub (SPUBLISH/SSUBSCRIBE), one subscription
	// connection per master, each topic subscribed on the master owning its slot.
	cluster *redis.ClusterClient
	shards  map[string]*redis.PubSub // by master address
	owner   map[string]string        // topic -> master address

	subs  map[string]int // topic -> Subscribes not yet matched by an Unsubscribe
	queue chan pub
	mu    sync.Mutex // serialises (un)subscribe calls and guards subs, shards and owner
	lost  atomic.Bool
	ctx   context.Context
	stop  context.CancelFunc
	done  sync.WaitGroup
}

// NewRedis returns a Redis backplane; publishing works at once, receiving
// after Start. It does not fail when Redis is down: it keeps reconnecting,
// and Healthy reports the state.
func NewRedis(client redis.UniversalClient, opts RedisOptions) *Redis {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1 << 16
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = time.Second
	}
	opts.Metrics = metrics.OrNew(opts.Metrics)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Redis{client: client, opts: opts, log: opts.Logger, subs: map[string]int{},
		queue: make(chan pub, opts.QueueSize), ctx: ctx, stop: cancel}
	r.setUp(true)
	if cc, ok := client.(*redis.ClusterClient); ok {
		r.cluster, r.shards, r.owner = cc, map[string]*redis.PubSub{}, map[string]string{}
	} else {
		// A PubSub with no channels yet; go-redis re-subscribes its channels
		// by itself after a reconnect.
		r.ps = client.Subscribe(ctx)
	}
	r.done.Add(1)
	go r.publishLoop(ctx)
	return r
}

// Start implements Backplane.
func (r *Redis) Start(h Handler) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h != nil {
		return errors.New("backplane: already started")
	}
	r.h = h
	if r.ps != nil {
		r.done.Add(1)
		go r.receive(r.ctx, r.ps)
	}
	return nil
}

func (r *Redis) setUp(up bool) {
	v := 0.0
	if up {
		v = 1
	}
	r.opts.Metrics.BackplaneUp.Set(v)
}

func (r *Redis) countError() {
	r.opts.Metrics.BackplaneErrors.Inc()
}

// Publish implements Backplane: it returns once Redis has accepted the event
// for every topic (so it reaches every subscribed replica even if this one
// dies next), or with an error. While Redis is failing (the breaker is open)
// it does not wait for Redis: the event goes to this replica's own
// subscribers at once, and the error wraps ErrUnavailable.
func (r *Redis) Publish(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if !r.opts.Breaker.Allow() {
		r.deliverLocally(msgs...)
		r.countError()
		return ErrUnavailable
	}
	w := newWaiter(len(msgs))
	for _, m := range msgs {
		select {
		case r.queue <- pub{m.Topic, m.Payload, w}:
		default:
			r.countError()
			r.deliverLocally(m)
			w.finish(fmt.Errorf("%w: publish queue full", ErrUnavailable))
		}
	}
	timer := time.NewTimer(r.opts.PublishTimeout)
	defer timer.Stop()
	select {
	case <-w.done:
		return w.result()
	case <-ctx.Done():
		return fmt.Errorf("backplane: publish: %w", ctx.Err())
	case <-timer.C:
		return fmt.Errorf("%w: no answer within %v", ErrUnavailable, r.opts.PublishTimeout)
	}
}

// deliverLocally hands an event to this replica's handler for the topics it
// subscribes: what Redis would have done for them.
func (r *Redis) deliverLocally(msgs ...Message) {
	r.mu.Lock()
	mine := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		if r.subs[m.Topic] > 0 {
			mine = append(mine, m)
		}
	}
	h := r.h
	r.mu.Unlock()
	if h == nil {
		return
	}
	for _, m := range mine {
		h.HandlePublication(m.Topic, m.Payload)
	}
}

func (r *Redis) publishLoop(ctx context.Context) {
	defer r.done.Done()
	batch := make([]pub, 0, r.opts.Batch)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-r.queue:
			batch = append(batch[:0], p)
		fill:
			for len(batch) < r.opts.Batch {
				select {
				case p := <-r.queue:
					batch = append(batch, p)
				default:
					break fill
				}
			}
			r.flush(ctx, batch)
		}
	}
}

// flush sends a batch in one pipeline. When Redis fails, the batch's events
// go to this replica's own subscribers and the breaker opens: the messages
// are stored, and other replicas' clients learn of them by positioning and by
// the resync that follows the outage.
func (r *Redis) flush(ctx context.Context, batch []pub) {
	wctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
	_, err := r.client.Pipelined(wctx, func(p redis.Pipeliner) error {
		for _, b := range batch {
			if r.cluster != nil {
				p.SPublish(wctx, b.topic, b.payload) // routed to the topic's slot
			} else {
				p.Publish(wctx, b.topic, b.payload)
			}
		}
		return nil
	})
	cancel()
	if err != nil && ctx.Err() == nil {
		r.opts.Breaker.Failure()
		r.countError()
		r.log.Warn("backplane publish failed; events delivered on this replica only", "events", len(batch), "err", err)
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		for _, b := range batch {
			r.deliverLocally(Message{b.topic, b.payload})
		}
	} else if err == nil {
		r.opts.Breaker.Success()
	}
	for _, b := range batch {
		b.w.finish(err)
	}
}

func (r *Redis) receive(ctx context.Context, ps *redis.PubSub) {
	defer r.done.Done()
	backoff := 100 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, 15*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() {
				// Quiet line: check it is alive. A failed ping surfaces as an
				// error on the next receive.
				_ = ps.Ping(ctx)
				continue
			}
			var rerr redis.Error
			if r.cluster != nil && errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "MOVED ") {
				// A slot of this master moved (resharding): the connection is
				// fine, but some of its topics now live on another master.
				go r.rebalance(ctx, ps)
				continue
			}
			if !r.lost.Swap(true) {
				// Open the breaker at once: sends stop waiting on Redis
				// before any of them has to fail first.
				r.opts.Breaker.Failure()
				r.setUp(false)
				r.log.Warn("backplane subscription lost; reconnecting", "err", err)
			}
			r.countError()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			r.h.HandlePublication(m.Channel, []byte(m.Payload))
		case *redis.Subscription:
			if m.Kind == "sunsubscribe" {
				r.moved(ctx, ps, m.Channel)
			}
			r.restored()
		case *redis.Pong:
			r.restored()
		}
	}
}

// restored notes that a subscription connection answers again.
func (r *Redis) restored() {
	if r.lost.Swap(false) {
		r.setUp(true)
		r.log.Info("backplane subscription restored; asking clients to resync")
		r.h.HandleResync()
	}
}

// rebalance moves this master's topics whose slot now lives elsewhere to
// their new master. The client's slot map reloads lazily, so it looks again
// for a few seconds until it sees the move.
func (r *Redis) rebalance(ctx context.Context, ps *redis.PubSub) {
	for attempt := 0; attempt < 15 && ctx.Err() == nil; attempt++ {
		r.cluster.ReloadState(ctx)
		time.Sleep(200 * time.Millisecond)
		r.mu.Lock()
		var addr string
		for a, p := range r.shards {
			if p == ps {
				addr = a
			}
		}
		var mine []string
		for topic, a := range r.owner {
			if a == addr {
				mine = append(mine, topic)
			}
		}
		r.mu.Unlock()
		moved := 0
		for _, topic := range mine {
			node, err := r.cluster.MasterForKey(ctx, topic)
			if err != nil || node.Options().Addr == addr {
				continue
			}
			r.mu.Lock()
			delete(r.owner, topic)
			_ = ps.SUnsubscribe(ctx, topic) // forget it on the old master
			r.mu.Unlock()
			if err := r.resubscribe(ctx, topic); err != nil {
				r.log.Warn("backplane: re-subscribing a moved topic failed", "err", err)
				continue
			}
			moved++
		}
		if moved > 0 {
			r.log.Info("backplane: topics followed their slots to another master", "topics", moved)
			r.h.HandleResync() // events may have been missed during the move
			return
		}
	}
}

// moved handles a sunsubscribe we did not ask for: the topic's slot moved to
// another master (resharding). The topic is subscribed again where it now lives.
func (r *Redis) moved(ctx context.Context, ps *redis.PubSub, topic string) {
	r.mu.Lock()
	addr, want := r.owner[topic]
	still := want && r.shards[addr] == ps
	if still {
		delete(r.owner, topic)
	}
	r.mu.Unlock()
	if !still {
		return // our own Unsubscribe
	}
	go func() {
		// The client's slot map may predate the move: reload it, and retry
		// while the cluster settles.
		for attempt := 0; attempt < 10 && ctx.Err() == nil; attempt++ {
			r.cluster.ReloadState(ctx)
			err := r.resubscribe(ctx, topic)
			if err == nil {
				break
			}
			r.log.Warn("backplane: re-subscribing a moved topic failed; retrying", "err", err)
			time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
		}
		r.h.HandleResync() // events may have been missed during the move
	}()
}

// Subscribe implements Backplane. Only a topic's first Subscribe reaches
// Redis. A failed one still counts: go-redis keeps the channel and
// subscribes it again when its connection is back.
func (r *Redis) Subscribe(ctx context.Context, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.h == nil {
		return ErrNotStarted
	}
	r.subs[topic]++
	if r.subs[topic] > 1 {
		return nil
	}
	return r.subscribeLocked(ctx, topic)
}

// resubscribe subscribes topic again where its slot now lives, without
// counting a Subscribe, unless it was unsubscribed meanwhile.
func (r *Redis) resubscribe(ctx context.Context, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subs[topic] == 0 {
		return nil
	}
	return r.subscribeLocked(ctx, topic)
}

func (r *Redis) subscribeLocked(ctx context.Context, topic string) error {
	if r.cluster == nil {
		if err := r.ps.Subscribe(ctx, topic); err != nil {
			r.countError()
			return fmt.Errorf("backplane: subscribe: %w", err)
		}
		return nil
	}
	node, err := r.cluster.MasterForKey(ctx, topic)
	if err != nil {
		r.countError()
		return fmt.Errorf("backplane: subscribe: %w", err)
	}
	addr := node.Options().Addr
	ps, ok := r.shards[addr]
	if !ok {
		ps = node.SSubscribe(r.ctx)
		r.shards[addr] = ps
		r.done.Add(1)
		go r.receive(r.ctx, ps)
	}
	// Owned even if SSubscribe fails: go-redis keeps the channel, so the last
	// Unsubscribe must still reach this master.
	r.owner[topic] = addr
	if err := ps.SSubscribe(ctx, topic); err != nil {
		r.countError()
		return fmt.Errorf("backplane: subscribe: %w", err)
	}
	return nil
}

// Unsubscribe implements Backplane. Only a topic's last Unsubscribe reaches
// Redis.
func (r *Redis) Unsubscribe(ctx context.Context, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch n := r.subs[topic]; {
	case n == 0:
		return nil
	case n > 1:
		r.subs[topic] = n - 1
		return nil
	}
	delete(r.subs, topic)
	if r.cluster == nil {
		if err := r.ps.Unsubscribe(ctx, topic); err != nil {
			return fmt.Errorf("backplane: unsubscribe: %w", err)
		}
		return nil
	}
	addr, ok := r.owner[topic]
	if !ok {
		return nil
	}
	delete(r.owner, topic)
	if err := r.shards[addr].SUnsubscribe(ctx, topic); err != nil {
		return fmt.Errorf("backplane: unsubscribe: %w", err)
	}
	return nil
}

// SubscriptionUp reports whether this replica's subscription connection is
// established: events published now reach it.
func (r *Redis) SubscriptionUp() bool { return !r.lost.Load() }

// Healthy implements Backplane: Redis answers and the subscription is up.
func (r *Redis) Healthy(ctx context.Context) error {
	if r.opts.Breaker.Open() {
		return errors.New("redis: failing; publishes reach this replica only")
	}
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	if r.lost.Load() {
		return errors.New("redis: subscription reconnecting")
	}
	return nil
}

// Close implements Backplane.
func (r *Redis) Close() error {
	r.stop()
	var err error
	if r.ps != nil {
		err = r.ps.Close()
	}
	r.mu.Lock()
	for _, ps := range r.shards {
		if cerr := ps.Close(); err == nil {
			err = cerr
		}
	}
	r.mu.Unlock()
	r.done.Wait()
	return err
}
