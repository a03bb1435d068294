package messaging

import (
	"context"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// Avatars deletes a purged account's profile photo and collects photo
// blobs no user names (package avatars).
type Avatars interface {
	Purge(ctx context.Context, userID string) error
	Collect(ctx context.Context) (int, error)
}

// AnnounceProfile sends u's public view in a "user" frame to everyone
// sharing a conversation with them and to their own sessions: how open
// conversation and member lists learn of a new display name or photo
// without a reload.
func (s *Service) AnnounceProfile(ctx context.Context, u *store.User) {
	peers, err := s.store.ConversationPeers(ctx, u.ID)
	if err != nil {
		// Stored: peers see the change on their next read of the list.
		s.log.Warn("profile change: peers lookup failed", "user", u.ID, "err", err)
	}
	public := accounts.PublicView(u)
	s.events.Publish(ctx, delivery.Event{To: append(peers, u.ID), Frame: protocol.UserFrame{User: &public}})
}
