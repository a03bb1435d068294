package messaging

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// SetDisplayName changes userID's display name (the rules of registration:
// trimmed, at most accounts.MaxDisplayNameChars characters; blank means the
// username) and returns the user as they see themself. Everyone sharing a
// conversation with them, and their own sessions, get a "user" frame, so
// open conversation lists and member lists show the new name without a
// reload; later reads (conversations, members) carry it from the store.
func (s *Service) SetDisplayName(ctx context.Context, userID, name string) (protocol.User, error) {
	name, err := accounts.NormalizeDisplayName(name)
	if err != nil {
		return protocol.User{}, err
	}
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.User{}, apperr.New(apperr.NotFound, "no such user")
	}
	if err != nil {
		return protocol.User{}, unavailable(err)
	}
	if name == "" {
		name = u.Username
	}
	if err := s.store.SetDisplayName(ctx, userID, name); err != nil {
		if errors.Is(err, store.ErrNotFound) { // deleted meanwhile
			return protocol.User{}, apperr.New(apperr.NotFound, "no such user")
		}
		return protocol.User{}, unavailable(err)
	}
	u.DisplayName = name
	_ = s.audit.Record(ctx, audit.ProfileChanged, userID, userID, "", map[string]any{"field": "displayName"})
	s.AnnounceProfile(ctx, u)
	return accounts.SelfView(u), nil
}

// validTitle trims a group title and checks its length.
func validTitle(title string) (string, error) {
	title = strings.TrimSpace(title)
	if title == "" || utf8.RuneCountInString(title) > MaxTitleChars {
		return "", apperr.OnField(apperr.InvalidRequest, "title", "title must be 1 to %d characters", MaxTitleChars)
	}
	return title, nil
}

// RenameGroup sets a group's title (the rules of creation); the actor must
// be its owner or an admin. Every member gets a "conversation" frame with
// the updated conversation.
func (s *Service) RenameGroup(ctx context.Context, actorID, convID, title string) (*protocol.Conversation, error) {
	title, err := validTitle(title)
	if err != nil {
		return nil, err
	}
	actor, err := s.member(ctx, convID, actorID)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return nil, unavailable(err)
	}
	if c.Kind != store.KindGroup {
		return nil, apperr.New(apperr.Forbidden, "only a group has a title to change")
	}
	if !canManage(actor.Role) {
		return nil, apperr.New(apperr.Forbidden, "only the group's owner or an admin can rename it")
	}
	sealed, _, err := s.keys.Seal(ctx, titleAAD(convID), []byte(title))
	if err != nil {
		return nil, err
	}
	if err := s.store.SetConversationTitle(ctx, convID, sealed); err != nil {
		if errors.Is(err, store.ErrNotFound) { // deleted meanwhile
			return nil, notFound()
		}
		return nil, unavailable(err)
	}
	_ = s.audit.Record(ctx, audit.ConvRenamed, actorID, convID, "", nil)
	s.announceToMembers(ctx, convID, "")
	return s.Conversation(ctx, actorID, convID)
}

// refuseDeletedPeer refuses writing to a direct conversation whose other
// member deleted their account: nobody would ever read it. Only a
// two-member conversation can be one, so other sends pay nothing; for those
// it is one lookup of the other member by id.
func (s *Service) refuseDeletedPeer(ctx context.Context, convID, userID string, members []store.Member) error {
	if len(members) != 2 {
		return nil
	}
	other := members[0].UserID
	if other == userID {
		other = members[1].UserID
	}
	u, err := s.store.UserByID(ctx, other)
	if err != nil {
		return unavailable(err)
	}
	if u.DeletedAt == nil {
		return nil
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return unavailable(err)
	}
	if c.Kind != store.KindDirect {
		return nil // a group: its members may still come and go
	}
	return apperr.New(apperr.AccountDeleted, "this person deleted their account; messages to them cannot be sent")
}
