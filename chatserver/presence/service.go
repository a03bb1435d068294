package presence

import (
	"context"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/protocol"
)

// PeerLister finds the audience of a user's presence.
type PeerLister interface {
	// PresencePeers returns the users sharing with userID a conversation of
	// at most maxMembers members.
	PresencePeers(ctx context.Context, userID string, maxMembers int) ([]string, error)
}

// MaxAnnounceGroup is the largest conversation through which presence is
// pushed. In a larger group every member's arrival would be a frame to every
// other member (a million frames when a 1,000-member group connects); its
// members read each other's status when they load the conversation
// (conversation views carry it) instead.
const MaxAnnounceGroup = 100

// Events is where presence changes go.
type Events interface {
	Publish(ctx context.Context, e delivery.Event)
}

// Service is presence for the rest of the server: the hub reports connections
// to it, views read statuses from it, and it alone announces a user coming
// online (first connection anywhere) or going offline (last one gone).
type Service struct {
	tracker Tracker
	peers   PeerLister
	events  Events
	log     *slog.Logger
	now     func() time.Time
}

// NewService returns a Service recording in tracker. now may be nil (time.Now).
func NewService(tracker Tracker, peers PeerLister, events Events, log *slog.Logger, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{tracker: tracker, peers: peers, events: events, log: log, now: now}
}

// Connect records a connection and announces the user online when it is
// their first.
func (s *Service) Connect(ctx context.Context, userID, connID string) {
	first, err := s.tracker.Connect(ctx, userID, connID)
	if err != nil {
		s.log.Warn("presence: connect failed", "err", err)
		return
	}
	if first {
		s.announce(ctx, userID, "online")
	}
}

// Disconnect records a connection gone and announces the user offline when
// it was their last.
func (s *Service) Disconnect(ctx context.Context, userID, connID string) {
	last, err := s.tracker.Disconnect(ctx, userID, connID)
	if err != nil {
		s.log.Warn("presence: disconnect failed", "err", err)
		return
	}
	if last {
		s.announce(ctx, userID, "offline")
	}
}

// Heartbeat refreshes this process's connections (user id to connection ids).
func (s *Service) Heartbeat(ctx context.Context, conns map[string][]string) error {
	return s.tracker.Heartbeat(ctx, conns)
}

// SetVisible records whether the page behind a connection is visible.
func (s *Service) SetVisible(ctx context.Context, userID, connID string, visible bool) error {
	return s.tracker.SetVisible(ctx, userID, connID, visible)
}

// Attentive reports the users with a visible page on any replica.
func (s *Service) Attentive(ctx context.Context, userIDs []string) (map[string]bool, error) {
	return s.tracker.Attentive(ctx, userIDs)
}

// Status answers presence queries.
func (s *Service) Status(ctx context.Context, userIDs []string) (map[string]Status, error) {
	return s.tracker.Status(ctx, userIDs)
}

// announce tells the user's peers about a transition, then reads the status
// back and announces again if it changed meanwhile. Announcements from two
// replicas are not ordered with each other: a replica that saw the user's last
// connection close can publish "offline" after another replica, which saw the
// next connection open, published "online". Because Publish returns once the
// backplane has the frame, a status read after it sees every transition made
// before, so the last frame any peer gets matches the tracker.
func (s *Service) announce(ctx context.Context, userID, status string) {
	peers, err := s.peers.PresencePeers(ctx, userID, MaxAnnounceGroup)
	if err != nil {
		s.log.Warn("presence: peers lookup failed", "err", err)
		return
	}
	if len(peers) == 0 {
		return
	}
	s.events.Publish(ctx, delivery.Event{To: peers,
		Frame: protocol.PresenceFrame{UserID: userID, Status: status, LastSeen: s.now().UTC()}})

	st, err := s.tracker.Status(ctx, []string{userID})
	if err != nil {
		s.log.Warn("presence: status read-back failed", "err", err)
		return
	}
	now := "offline"
	if st[userID].Online {
		now = "online"
	}
	if now != status {
		s.events.Publish(ctx, delivery.Event{To: peers,
			Frame: protocol.PresenceFrame{UserID: userID, Status: now, LastSeen: s.now().UTC()}})
	}
}
