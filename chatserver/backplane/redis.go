package backplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/metrics"
)

// RedisOptions tune the Redis backplane.
type RedisOptions struct {
	// OnResync is called after the subscription connection was lost and
	// re-established: events published meanwhile may have been missed, so
	// local clients should catch up through their cursors.
	OnResync func()
	Logger   *slog.Logger
	Metrics  *metrics.Metrics
	// QueueSize bounds publishes waiting for Redis [65536]. When Redis is slow
	// or down the queue fills and further publishes are dropped (and counted):
	// the messages are stored, and clients catch up after the resync.
	QueueSize int
	// Batch is the most publishes sent in one pipeline round trip [256].
	Batch int
}

type pub struct {
	topic   string
	payload []byte
}

// Redis is a Backplane over Redis pub/sub, for many replicas. Publishes are
// queued and sent in pipelined batches by one writer, so a send never waits
// for Redis and Redis round trips are amortised under load.
type Redis struct {
	client redis.UniversalClient
	ps     *redis.PubSub
	h      Handler
	opts   RedisOptions
	log    *slog.Logger

	queue chan pub
	mu    sync.Mutex // serialises (un)subscribe calls on ps
	lost  atomic.Bool
	stop  context.CancelFunc
	done  sync.WaitGroup
}

// NewRedis starts a Redis backplane delivering to h. It does not fail when
// Redis is down: it keeps reconnecting, and Healthy reports the state.
func NewRedis(client redis.UniversalClient, h Handler, opts RedisOptions) *Redis {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1 << 16
	}
	if opts.Batch <= 0 {
		opts.Batch = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Redis{client: client, h: h, opts: opts, log: opts.Logger, queue: make(chan pub, opts.QueueSize), stop: cancel}
	// A PubSub with no channels yet; go-redis re-subscribes its channels
	// by itself after a reconnect.
	r.ps = client.Subscribe(ctx)
	r.setUp(true)
	r.done.Add(2)
	go r.receive(ctx)
	go r.publishLoop(ctx)
	return r
}

func (r *Redis) setUp(up bool) {
	if r.opts.Metrics != nil {
		v := 0.0
		if up {
			v = 1
		}
		r.opts.Metrics.BackplaneUp.Set(v)
	}
}

func (r *Redis) countError() {
	if r.opts.Metrics != nil {
		r.opts.Metrics.BackplaneErrors.Inc()
	}
}

// Publish implements Backplane. It queues the event and returns at once; an
// event that does not fit the queue is dropped with an error.
func (r *Redis) Publish(_ context.Context, topic string, payload []byte) error {
	select {
	case r.queue <- pub{topic, payload}:
		return nil
	default:
		r.countError()
		return errors.New("backplane: publish queue full; event dropped")
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

func (r *Redis) flush(ctx context.Context, batch []pub) {
	for attempt := 0; ; attempt++ {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := r.client.Pipelined(wctx, func(p redis.Pipeliner) error {
			for _, b := range batch {
				p.Publish(wctx, b.topic, b.payload)
			}
			return nil
		})
		cancel()
		if err == nil || ctx.Err() != nil {
			return
		}
		r.countError()
		if attempt >= 2 {
			// Redis is down: drop the batch. The messages are stored; every
			// replica resyncs its clients when its subscription comes back.
			r.log.Warn("backplane publish failed; events dropped", "events", len(batch), "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(100*(attempt+1)) * time.Millisecond):
		}
	}
}

func (r *Redis) receive(ctx context.Context) {
	defer r.done.Done()
	backoff := 100 * time.Millisecond
	for {
		msg, err := r.ps.ReceiveTimeout(ctx, 15*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var nerr interface{ Timeout() bool }
			if errors.As(err, &nerr) && nerr.Timeout() {
				// Quiet line: check it is alive. A failed ping surfaces as an
				// error on the next receive.
				_ = r.ps.Ping(ctx)
				continue
			}
			if !r.lost.Swap(true) {
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
			r.h(m.Channel, []byte(m.Payload))
		case *redis.Subscription, *redis.Pong:
			// A subscription confirmation or pong after a loss means the
			// connection is back (go-redis has re-subscribed our channels).
			if r.lost.Swap(false) {
				r.setUp(true)
				r.log.Info("backplane subscription restored; asking clients to resync")
				if r.opts.OnResync != nil {
					r.opts.OnResync()
				}
			}
		}
	}
}

// Subscribe implements Backplane.
func (r *Redis) Subscribe(ctx context.Context, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ps.Subscribe(ctx, topic); err != nil {
		r.countError()
		return fmt.Errorf("backplane: subscribe: %w", err)
	}
	return nil
}

// Unsubscribe implements Backplane.
func (r *Redis) Unsubscribe(ctx context.Context, topic string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.ps.Unsubscribe(ctx, topic); err != nil {
		return fmt.Errorf("backplane: unsubscribe: %w", err)
	}
	return nil
}

// Healthy implements Backplane: Redis answers and the subscription is up.
func (r *Redis) Healthy(ctx context.Context) error {
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
	err := r.ps.Close()
	r.done.Wait()
	return err
}
