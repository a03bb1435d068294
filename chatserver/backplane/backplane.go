// Package backplane carries opaque payloads between chat-server replicas by
// topic. Memory serves a single process; Redis serves many (one server,
// Sentinel or Cluster). What the topics and payloads mean is package
// delivery's business.
package backplane

import (
	"context"
	"errors"
	"sync"
)

// Handler receives what a backplane carries. Its methods must not block: they
// run on the backplane's delivery path.
type Handler interface {
	// HandlePublication receives the payload of a message on a subscribed topic.
	HandlePublication(topic string, payload []byte)
	// HandleResync is called when events may have been missed (the
	// subscription was lost and is back, or a topic moved between Redis
	// Cluster masters): local clients should catch up through their cursors.
	HandleResync()
}

// Backplane is publish/subscribe between replicas. Topic names are opaque to
// it (package delivery owns them).
type Backplane interface {
	// Start delivers everything received from now on to h. It is called once,
	// after construction and before the first Subscribe: the receiver (the
	// hub) is built after the backplane it publishes through.
	Start(h Handler) error
	// Publish sends each message's payload to its topic's subscribers
	// (possibly none). It returns once every message has been handed to the
	// transport (a replica that dies next does not lose it), or with an
	// error; subscribers of this process receive them even when the error
	// says the transport was unavailable.
	Publish(ctx context.Context, msgs ...Message) error
	// Subscribe starts delivering topic to the handler. Subscriptions are
	// reference-counted: after k Subscribes, the k-th Unsubscribe stops the
	// delivery. A Subscribe that fails after Start still counts (the engine
	// may keep retrying it), so each one is matched by one Unsubscribe; one
	// refused with ErrNotStarted does not count.
	Subscribe(ctx context.Context, topic string) error
	// Unsubscribe releases one Subscribe of topic; on a topic with none left
	// it does nothing.
	Unsubscribe(ctx context.Context, topic string) error
	// Healthy reports whether publishes currently reach other replicas.
	Healthy(ctx context.Context) error
	Close() error
}

// Message is a payload for a topic.
type Message struct {
	Topic   string
	Payload []byte
}

// ErrNotStarted is returned by Subscribe before Start.
var ErrNotStarted = errors.New("backplane: not started (Start must be called before Subscribe)")

// Memory is an in-process Backplane.
type Memory struct {
	mu      sync.RWMutex
	handler Handler
	topics  map[string]int // Subscribes not yet matched by an Unsubscribe
}

// NewMemory returns a Memory backplane.
func NewMemory() *Memory {
	return &Memory{topics: map[string]int{}}
}

// Start implements Backplane.
func (m *Memory) Start(h Handler) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handler != nil {
		return errors.New("backplane: already started")
	}
	m.handler = h
	return nil
}

// Publish implements Backplane; delivery is synchronous, so publishes to one
// topic arrive in the order they were made.
func (m *Memory) Publish(_ context.Context, msgs ...Message) error {
	for _, msg := range msgs {
		m.mu.RLock()
		_, ok := m.topics[msg.Topic]
		h := m.handler
		m.mu.RUnlock()
		if ok {
			h.HandlePublication(msg.Topic, msg.Payload)
		}
	}
	return nil
}

// Subscribe implements Backplane.
func (m *Memory) Subscribe(_ context.Context, topic string) error {
	m.mu.Lock()
	if m.handler == nil {
		m.mu.Unlock()
		return ErrNotStarted
	}
	m.topics[topic]++
	m.mu.Unlock()
	return nil
}

// Unsubscribe implements Backplane.
func (m *Memory) Unsubscribe(_ context.Context, topic string) error {
	m.mu.Lock()
	if m.topics[topic] > 1 {
		m.topics[topic]--
	} else {
		delete(m.topics, topic)
	}
	m.mu.Unlock()
	return nil
}

// Healthy implements Backplane.
func (m *Memory) Healthy(context.Context) error { return nil }

// Close implements Backplane.
func (m *Memory) Close() error { return nil }
