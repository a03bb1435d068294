package messaging

import (
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// DirectKey is the unique key of the direct conversation between two users.
func DirectKey(a, b string) string {
	if a > b {
		a, b = b, a
	}
	return a + ":" + b
}

// CreateDirect returns the direct conversation between userID and otherID,
// creating it when it does not exist (created reports which).
func (s *Service) CreateDirect(ctx context.Context, userID, otherID string) (*protocol.Conversation, bool, error) {
	return s.CreateDirectE2EE(ctx, userID, otherID, false)
}

// e2eeDirectPrefix keeps a pair's end-to-end encrypted direct conversation
// apart from their plain one: each pair may have one of each.
const e2eeDirectPrefix = "e2ee:"

// CreateDirectE2EE is CreateDirect for the pair's end-to-end encrypted
// direct conversation (e2ee) or their plain one.
func (s *Service) CreateDirectE2EE(ctx context.Context, userID, otherID string, e2ee bool) (*protocol.Conversation, bool, error) {
	if otherID == "" || otherID == userID {
		return nil, false, apperr.New(apperr.InvalidRequest, "userId must name another user")
	}
	other, err := s.store.UserByID(ctx, otherID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, apperr.New(apperr.NotFound, "no such user")
		}
		return nil, false, unavailable(err)
	}
	key := DirectKey(userID, otherID)
	if e2ee {
		key = e2eeDirectPrefix + key
	}
	existing, err := s.store.ConversationByDirectKey(ctx, key)
	if err == nil {
		v, err := s.Conversation(ctx, userID, existing.ID)
		return v, false, err
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, false, unavailable(err)
	}
	if other.DeletedAt != nil {
		// An existing conversation stays readable (above); a new one with
		// nobody to read it is not started.
		return nil, false, apperr.New(apperr.AccountDeleted, "this person deleted their account")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c := &store.Conversation{ID: ids.New("c"), Kind: store.KindDirect, DirectKey: key, CreatedBy: userID,
		CreatedAt: now, LastActivity: now, E2EE: e2ee}
	members := []store.Member{
		{ConversationID: c.ID, UserID: userID, Role: store.RoleMember, JoinedAt: now},
		{ConversationID: c.ID, UserID: otherID, Role: store.RoleMember, JoinedAt: now},
	}
	if err := s.store.CreateConversation(ctx, c, members); err != nil {
		if errors.Is(err, store.ErrConflict) { // created by the other side meanwhile
			existing, err := s.store.ConversationByDirectKey(ctx, key)
			if err != nil {
				return nil, false, unavailable(err)
			}
			v, err := s.Conversation(ctx, userID, existing.ID)
			return v, false, err
		}
		return nil, false, unavailable(err)
	}
	_ = s.audit.Record(ctx, audit.ConvCreated, userID, c.ID, "", map[string]any{"kind": store.KindDirect, "e2ee": e2ee})
	s.announceConversation(ctx, c.ID, otherID)
	v, err := s.Conversation(ctx, userID, c.ID)
	return v, true, err
}

// CreateGroup creates a group owned by userID with the given members.
func (s *Service) CreateGroup(ctx context.Context, userID, title string, memberIDs []string) (*protocol.Conversation, error) {
	return s.CreateGroupE2EE(ctx, userID, title, memberIDs, false)
}

// CreateGroupE2EE is CreateGroup, end-to-end encrypted when e2ee. An e2ee
// group starts with the members named, as the server's membership; the
// creator's device then creates the MLS group (epoch 0) and commits their
// devices into it.
func (s *Service) CreateGroupE2EE(ctx context.Context, userID, title string, memberIDs []string, e2ee bool) (*protocol.Conversation, error) {
	title, err := validTitle(title)
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, id := range memberIDs {
		if id != userID && id != "" {
			set[id] = true
		}
	}
	if len(set)+1 > s.maxMembers {
		return nil, apperr.New(apperr.InvalidRequest, "a group has at most %d members", s.maxMembers)
	}
	others := make([]string, 0, len(set))
	for id := range set {
		others = append(others, id)
	}
	sort.Strings(others)
	if len(others) > 0 {
		found, err := s.store.UsersByIDs(ctx, others)
		if err != nil {
			return nil, unavailable(err)
		}
		if len(found) != len(others) {
			return nil, apperr.New(apperr.InvalidRequest, "memberIds names a user that does not exist")
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	id := ids.New("c")
	sealedTitle, _, err := s.keys.Seal(ctx, titleAAD(id), []byte(title))
	if err != nil {
		return nil, err
	}
	c := &store.Conversation{ID: id, Kind: store.KindGroup, TitleSealed: sealedTitle, CreatedBy: userID,
		CreatedAt: now, LastActivity: now, E2EE: e2ee}
	members := []store.Member{{ConversationID: id, UserID: userID, Role: store.RoleOwner, JoinedAt: now}}
	for _, o := range others {
		members = append(members, store.Member{ConversationID: id, UserID: o, Role: store.RoleMember, JoinedAt: now})
	}
	if err := s.store.CreateConversation(ctx, c, members); err != nil {
		return nil, unavailable(err)
	}
	_ = s.audit.Record(ctx, audit.ConvCreated, userID, id, "", map[string]any{"kind": store.KindGroup, "members": len(members), "e2ee": e2ee})
	s.announceToMembers(ctx, id, userID)
	return s.Conversation(ctx, userID, id)
}

// announceToMembers sends every member of convID but skip a "conversation"
// frame with their own view of it. The views are read together (two
// queries) and built together (users, presence and files looked up once),
// so a change to a group of 1,000 does not cost 1,000 reads of 1,000
// members each.
func (s *Service) announceToMembers(ctx context.Context, convID, skip string) {
	sums, err := s.store.MemberSummaries(ctx, convID)
	if err != nil {
		s.log.Warn("announce conversation failed", "conversation", convID, "err", err)
		return
	}
	sums = slices.DeleteFunc(sums, func(c store.ConversationSummary) bool { return c.Viewer == skip })
	views, err := s.views(ctx, sums)
	if err != nil {
		s.log.Warn("announce conversation failed", "conversation", convID, "err", err)
		return
	}
	for i := range views {
		s.events.Publish(ctx, delivery.Event{To: []string{sums[i].Viewer}, Frame: protocol.ConversationFrame{Conversation: &views[i]}})
	}
}

// announceConversation sends userID a "conversation" frame with its view of convID.
func (s *Service) announceConversation(ctx context.Context, convID, userID string) {
	v, err := s.Conversation(ctx, userID, convID)
	if err != nil {
		s.log.Warn("announce conversation failed", "conversation", convID, "err", err)
		return
	}
	s.events.Publish(ctx, delivery.Event{To: []string{userID}, Frame: protocol.ConversationFrame{Conversation: v}})
}

func (s *Service) group(ctx context.Context, actorID, convID string) (*store.Conversation, *store.Member, error) {
	actor, err := s.member(ctx, convID, actorID)
	if err != nil {
		return nil, nil, err
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	if c.Kind != store.KindGroup {
		return nil, nil, apperr.New(apperr.Forbidden, "members can only be changed in groups")
	}
	return c, actor, nil
}

func canManage(role string) bool { return role == store.RoleOwner || role == store.RoleAdmin }

// AddMember adds userID to a group; the actor must be its owner or an admin.
func (s *Service) AddMember(ctx context.Context, actorID, convID, userID string) (*protocol.Conversation, error) {
	c, actor, err := s.group(ctx, actorID, convID)
	if err != nil {
		return nil, err
	}
	if !canManage(actor.Role) {
		return nil, apperr.New(apperr.Forbidden, "only the group's owner or an admin can add people")
	}
	if c.E2EE {
		// Joining an MLS group takes a commit and a Welcome from a member's
		// device: POST .../mls/commit with "add".
		return nil, apperr.New(apperr.InvalidRequest,
			"people join an end-to-end encrypted group through an MLS commit (POST /api/v1/conversations/{id}/mls/commit with add)")
	}
	if _, err := s.store.UserByID(ctx, userID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, apperr.New(apperr.NotFound, "no such user")
		}
		return nil, unavailable(err)
	}
	members, err := s.store.Members(ctx, convID)
	if err != nil {
		return nil, unavailable(err)
	}
	if len(members) >= s.maxMembers {
		return nil, apperr.New(apperr.InvalidRequest, "a group has at most %d members", s.maxMembers)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	if err := s.store.AddMember(ctx, store.Member{ConversationID: convID, UserID: userID, Role: store.RoleMember, JoinedAt: now}); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, apperr.New(apperr.Conflict, "already a member")
		}
		return nil, unavailable(err)
	}
	s.members.drop(convID) // other replicas learn it from the version (memberCache)
	_ = s.audit.Record(ctx, audit.MemberAdded, actorID, convID, "", map[string]any{"user": userID})
	s.announceToMembers(ctx, convID, "")
	return s.Conversation(ctx, actorID, convID)
}

// RemoveMember removes userID from a group. Anyone may leave (except the
// owner); the owner and admins may remove anyone but the owner.
func (s *Service) RemoveMember(ctx context.Context, actorID, convID, userID string) error {
	_, actor, err := s.group(ctx, actorID, convID)
	if err != nil {
		return err
	}
	target, err := s.store.Member(ctx, convID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "that person is not a member")
	}
	if err != nil {
		return unavailable(err)
	}
	switch {
	case target.Role == store.RoleOwner:
		return apperr.New(apperr.Forbidden, "the owner cannot be removed or leave the group")
	case actorID != userID && !canManage(actor.Role):
		return apperr.New(apperr.Forbidden, "only the group's owner or an admin can remove people")
	}
	if err := s.store.RemoveMember(ctx, convID, userID); err != nil {
		return unavailable(err)
	}
	s.members.drop(convID) // other replicas learn it from the version (memberCache)
	_ = s.audit.Record(ctx, audit.MemberRemoved, actorID, convID, "", map[string]any{"user": userID})
	s.events.Publish(ctx, delivery.Event{To: []string{userID}, Frame: protocol.RemovedFrame{ConversationID: convID}})
	s.announceToMembers(ctx, convID, "")
	return nil
}

// List returns the user's conversations, most recent activity first.
func (s *Service) List(ctx context.Context, userID string) ([]protocol.Conversation, error) {
	sums, err := s.store.ListConversations(ctx, userID)
	if err != nil {
		return nil, unavailable(err)
	}
	return s.views(ctx, sums)
}

// Conversation returns one conversation as userID sees it.
func (s *Service) Conversation(ctx context.Context, userID, convID string) (*protocol.Conversation, error) {
	sum, err := s.store.ConversationSummary(ctx, userID, convID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	v, err := s.views(ctx, []store.ConversationSummary{*sum})
	if err != nil {
		return nil, err
	}
	return &v[0], nil
}

func (s *Service) views(ctx context.Context, sums []store.ConversationSummary) ([]protocol.Conversation, error) {
	idSet := map[string]bool{}
	for _, c := range sums {
		for _, id := range c.MemberIDs {
			idSet[id] = true
		}
	}
	userIDs := make([]string, 0, len(idSet))
	for id := range idSet {
		userIDs = append(userIDs, id)
	}
	users := map[string]store.User{}
	if len(userIDs) > 0 {
		list, err := s.store.UsersByIDs(ctx, userIDs)
		if err != nil {
			return nil, unavailable(err)
		}
		for _, u := range list {
			users[u.ID] = u
		}
	}
	status, err := s.presence.Status(ctx, userIDs)
	if err != nil {
		s.log.Warn("presence lookup failed", "err", err)
	}
	// The last messages' files, in one query: a list preview names them
	// ("📎 photo.jpg") where the text may be empty.
	var lastIDs []string
	for _, c := range sums {
		if c.LastMessage != nil && c.LastMessage.DeletedAt == nil {
			lastIDs = append(lastIDs, c.LastMessage.ID)
		}
	}
	files := s.attachmentViews(ctx, lastIDs)
	// Summaries of one conversation (every member's view of it) share one
	// member list: built once, shared read-only by their views.
	memberViews := map[string][]protocol.Member{}
	out := make([]protocol.Conversation, 0, len(sums))
	for _, c := range sums {
		v := protocol.Conversation{ID: c.ID, Kind: c.Kind, LastSeq: c.LastSeq, ReadSeq: c.ReadSeq, Unread: c.Unread,
			LastActivity: c.LastActivity, CreatedAt: c.CreatedAt, ExpireAfter: int64(c.ExpireAfter / time.Second),
			E2EE: c.E2EE, MLSEpoch: c.MLSEpoch}
		if c.TitleSealed != "" {
			t, err := s.keys.Open(c.TitleSealed, titleAAD(c.ID))
			if err != nil {
				s.log.Error("conversation title failed to decrypt", "conversation", c.ID, "err", err)
			}
			v.Title = string(t)
		}
		if c.LastMessage != nil {
			m := s.view(c.LastMessage)
			m.Attachments = files[c.LastMessage.ID]
			v.LastMessage = &m
		}
		if c.MutedUntil.After(s.now()) {
			mu := c.MutedUntil.UTC()
			v.MutedUntil = &mu
		}
		if ms, ok := memberViews[c.ID]; ok {
			v.Members = ms
			out = append(out, v)
			continue
		}
		for _, mem := range c.Members {
			id := mem.UserID
			u := users[id]
			pv := memberView(&u)
			m := protocol.Member{ID: id, Username: pv.Username, DisplayName: pv.DisplayName, Avatar: pv.Avatar, Role: mem.Role, ReadSeq: mem.ReadSeq}
			if st, ok := status[id]; ok {
				m.Online = st.Online
				if !st.LastSeen.IsZero() {
					ls := st.LastSeen.UTC()
					m.LastSeen = &ls
				}
			}
			v.Members = append(v.Members, m)
		}
		memberViews[c.ID] = v.Members
		out = append(out, v)
	}
	return out, nil
}
