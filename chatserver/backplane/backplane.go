// Package backplane carries events between chat-server replicas. Topics are
// per user: a replica subscribes to the users connected to it, and a publish to
// a user's topic reaches every replica holding one of that user's connections.
// Memory serves a single process; a Redis implementation serves many.
package backplane

import (
	"context"
	"sync"
)

// Handler receives the payload of every message on a subscribed topic. It must
// not block: it runs on the backplane's delivery path.
type Handler func(topic string, payload []byte)

// Backplane is publish/subscribe between replicas.
type Backplane interface {
	// Publish sends payload to topic's subscribers (possibly none).
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe starts delivering topic to the handler. Subscriptions are
	// reference-counted by the caller (the hub): one per topic per process.
	Subscribe(ctx context.Context, topic string) error
	Unsubscribe(ctx context.Context, topic string) error
	// Healthy reports whether publishes currently reach other replicas.
	Healthy(ctx context.Context) error
	Close() error
}

// UserTopic is the topic of one user's events.
func UserTopic(userID string) string { return "u:" + userID }

// Memory is an in-process Backplane.
type Memory struct {
	handler Handler
	mu      sync.RWMutex
	topics  map[string]struct{}
}

// NewMemory returns a Memory backplane delivering to h.
func NewMemory(h Handler) *Memory {
	return &Memory{handler: h, topics: map[string]struct{}{}}
}

// Publish implements Backplane; delivery is synchronous.
func (m *Memory) Publish(_ context.Context, topic string, payload []byte) error {
	m.mu.RLock()
	_, ok := m.topics[topic]
	m.mu.RUnlock()
	if ok {
		m.handler(topic, payload)
	}
	return nil
}

// Subscribe implements Backplane.
func (m *Memory) Subscribe(_ context.Context, topic string) error {
	m.mu.Lock()
	m.topics[topic] = struct{}{}
	m.mu.Unlock()
	return nil
}

// Unsubscribe implements Backplane.
func (m *Memory) Unsubscribe(_ context.Context, topic string) error {
	m.mu.Lock()
	delete(m.topics, topic)
	m.mu.Unlock()
	return nil
}

// Healthy implements Backplane.
func (m *Memory) Healthy(context.Context) error { return nil }

// Close implements Backplane.
func (m *Memory) Close() error { return nil }
