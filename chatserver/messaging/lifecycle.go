package messaging

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// Message lifecycle limits (docs/api.md, "Message lifecycle").
const (
	MaxDistinctReactions = 20
	ExcerptChars         = 100
)

// ExpireAfterChoices are the disappearing-messages settings a client may
// choose (0: off).
var ExpireAfterChoices = []time.Duration{0, time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

func noMessage() error { return apperr.New(apperr.NotFound, "no such message in this conversation") }

func gone() error { return apperr.New(apperr.Conflict, "the message was deleted") }

// storeErr maps the store's errors about one message onto client errors.
func storeErr(err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return noMessage()
	case errors.Is(err, store.ErrGone):
		return gone()
	case errors.Is(err, store.ErrLimit):
		return apperr.New(apperr.Conflict, "a message has at most %d different reactions", MaxDistinctReactions)
	}
	return unavailable(err)
}

// changeAllowed applies the per-user rate limit of changes (edits,
// deletions, reactions, settings): a bucket of the message limit's size,
// apart from sends so reacting cannot stop someone from writing.
func (s *Service) changeAllowed(ctx context.Context, userID string) error {
	return s.allowed(ctx, s.limiter, "chg:"+userID, "changes", "making changes")
}

// membersOf returns the members of convID, or not_found when userID is not
// one of them.
func (s *Service) membersOf(ctx context.Context, convID, userID string) ([]store.Member, *store.Member, error) {
	members, err := s.store.Members(ctx, convID)
	if err != nil {
		return nil, nil, unavailable(err)
	}
	i := slices.IndexFunc(members, func(m store.Member) bool { return m.UserID == userID })
	if i < 0 {
		return nil, nil, notFound()
	}
	return members, &members[i], nil
}

// publishChange sends an ordered change-event frame to every member.
func (s *Service) publishChange(ctx context.Context, members []store.Member, ev *store.Event, f protocol.ServerFrame) {
	s.events.Publish(ctx, delivery.Event{To: userIDs(members, ""), Frame: f, Conversation: ev.ConversationID,
		Seq: ev.Seq, Stored: ev.CreatedAt})
}

// message reads one message of convID for a change.
func (s *Service) message(ctx context.Context, convID, msgID string) (*store.Message, error) {
	if msgID == "" {
		return nil, apperr.New(apperr.InvalidRequest, "messageId is required")
	}
	m, err := s.store.MessageByID(ctx, convID, msgID)
	if err != nil {
		return nil, storeErr(err)
	}
	return m, nil
}

// Edit replaces the text of one of userID's messages, within the edit
// window, and tells every member.
func (s *Service) Edit(ctx context.Context, userID, convID, msgID, body string) (*protocol.Message, error) {
	if err := s.ValidateBody(body); err != nil {
		return nil, err
	}
	members, _, err := s.membersOf(ctx, convID, userID)
	if err != nil {
		return nil, err
	}
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	m, err := s.message(ctx, convID, msgID)
	if err != nil {
		return nil, err
	}
	switch {
	case m.MLS:
		return nil, e2eeChange("an edit")
	case m.DeletedAt != nil:
		return nil, gone()
	case m.SenderID != userID:
		return nil, apperr.New(apperr.Forbidden, "only its sender can edit a message")
	case s.now().Sub(m.CreatedAt) > s.editWindow:
		return nil, apperr.New(apperr.Forbidden, "a message can be edited for %s after it was sent", s.editWindow)
	}
	if cur, err := s.keys.Open(m.BodySealed, msgAAD(convID, msgID)); err == nil && string(cur) == body {
		return s.oneView(ctx, userID, m), nil // nothing changes: no event
	}
	// Same associated data as the original: the new ciphertext stays bound
	// to this conversation and message id.
	sealed, kid, err := s.keys.Seal(ctx, msgAAD(convID, msgID), []byte(body))
	if err != nil {
		return nil, fmt.Errorf("messaging: seal edit: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	stored, ev, err := s.store.EditMessage(ctx, convID, msgID, sealed, kid, userID, now)
	if err != nil {
		return nil, storeErr(err)
	}
	s.publishChange(ctx, members, ev, protocol.MessageEditedFrame{ConversationID: convID, MessageID: msgID,
		Seq: ev.Seq, Body: body, EditedAt: ev.CreatedAt})
	return s.oneView(ctx, userID, stored), nil
}

// Delete deletes a message for everyone: its sender may, and in a group its
// owner and admins may delete anyone's. A tombstone is answered as it is.
func (s *Service) Delete(ctx context.Context, userID, convID, msgID string) (*protocol.Message, error) {
	members, me, err := s.membersOf(ctx, convID, userID)
	if err != nil {
		return nil, err
	}
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	m, err := s.message(ctx, convID, msgID)
	if err != nil {
		return nil, err
	}
	if m.DeletedAt != nil {
		return s.oneView(ctx, userID, m), nil
	}
	if m.SenderID != userID {
		c, err := s.store.Conversation(ctx, convID)
		if err != nil {
			return nil, unavailable(err)
		}
		if c.Kind != store.KindGroup || !canManage(me.Role) {
			return nil, apperr.New(apperr.Forbidden, "only its sender, or a group's owner or admin, can delete a message")
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	files := s.attachmentsOf(ctx, msgID)
	tomb, ev, err := s.store.DeleteMessage(ctx, convID, msgID, userID, store.EventDeleted, now)
	if err != nil {
		return nil, storeErr(err)
	}
	if ev != nil {
		s.purgeAttachments(ctx, files)
		_ = s.audit.Record(ctx, audit.MessageDeleted, userID, convID, "",
			map[string]any{"message": msgID, "sender": m.SenderID, "seq": m.Seq})
		s.publishChange(ctx, members, ev, deletedFrame(ev))
	}
	return s.oneView(ctx, userID, tomb), nil
}

func deletedFrame(ev *store.Event) protocol.MessageDeletedFrame {
	return protocol.MessageDeletedFrame{ConversationID: ev.ConversationID, MessageID: ev.MessageID, Seq: ev.Seq,
		DeletedBy: ev.ActorID, DeletedAt: ev.CreatedAt, Reason: ev.Kind}
}

// React adds (or removes) userID's reaction emoji on a message.
func (s *Service) React(ctx context.Context, userID, convID, msgID, emoji string, add bool) (*protocol.Message, error) {
	if !ValidEmoji(emoji) {
		return nil, apperr.New(apperr.InvalidRequest, "emoji must be a single emoji of at most %d bytes", MaxEmojiBytes)
	}
	members, _, err := s.membersOf(ctx, convID, userID)
	if err != nil {
		return nil, err
	}
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	// Read first: reactions in an e2ee conversation travel encrypted. The
	// row does not change with reactions, so it serves the view too.
	m, err := s.message(ctx, convID, msgID)
	if err != nil {
		return nil, err
	}
	if m.MLS {
		return nil, e2eeChange("a reaction")
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	ev, err := s.store.SetReaction(ctx, convID, msgID, userID, emoji, add, MaxDistinctReactions, now)
	if err != nil {
		return nil, storeErr(err)
	}
	if ev != nil {
		counts, err := s.counts(ctx, msgID)
		if err != nil {
			s.log.Warn("reaction counts failed", "message", msgID, "err", err)
		}
		s.publishChange(ctx, members, ev, protocol.ReactionFrame{ConversationID: convID, MessageID: msgID, Seq: ev.Seq,
			Emoji: emoji, UserID: userID, Added: add, Counts: counts})
	}
	return s.oneView(ctx, userID, m), nil
}

// e2eeChange refuses a server-side change of a message of an end-to-end
// encrypted conversation.
func e2eeChange(what string) error {
	return apperr.New(apperr.InvalidRequest,
		"in an end-to-end encrypted conversation %s travels as an encrypted application message naming its target", what)
}

// counts returns a message's reaction counts for frames every member gets.
func (s *Service) counts(ctx context.Context, msgID string) ([]protocol.ReactionCount, error) {
	rcs, err := s.store.ReactionCounts(ctx, []string{msgID}, "")
	out := []protocol.ReactionCount{}
	for _, rc := range rcs {
		out = append(out, protocol.ReactionCount{Emoji: rc.Emoji, Count: rc.Count})
	}
	return out, err
}

// SetExpireAfter sets a conversation's disappearing-messages setting: in a
// group its owner and admins may, in a direct conversation either member.
func (s *Service) SetExpireAfter(ctx context.Context, userID, convID string, d time.Duration) (*protocol.Conversation, error) {
	if !slices.Contains(ExpireAfterChoices, d) {
		return nil, apperr.New(apperr.InvalidRequest, "expireAfter must be 0, 3600, 86400, 604800 or 2592000 (seconds)")
	}
	members, me, err := s.membersOf(ctx, convID, userID)
	if err != nil {
		return nil, err
	}
	c, err := s.store.Conversation(ctx, convID)
	if err != nil {
		return nil, unavailable(err)
	}
	if c.Kind == store.KindGroup && !canManage(me.Role) {
		return nil, apperr.New(apperr.Forbidden, "only the group's owner or an admin can change its settings")
	}
	if err := s.changeAllowed(ctx, userID); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	ev, err := s.store.SetExpireAfter(ctx, convID, userID, d, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	if ev != nil {
		s.publishChange(ctx, members, ev, protocol.ConversationSettingsFrame{ConversationID: convID, Seq: ev.Seq,
			ExpireAfter: int64(d / time.Second), ChangedBy: userID, ChangedAt: ev.CreatedAt})
	}
	return s.Conversation(ctx, userID, convID)
}

// view is a message without what needs other rows (replyTo, reactions).
func (s *Service) view(m *store.Message) protocol.Message {
	v := protocol.Message{ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID,
		ClientID: m.ClientID, CreatedAt: m.CreatedAt, ExpiresAt: m.ExpiresAt}
	if m.DeletedAt != nil {
		v.Deleted = &protocol.Deletion{By: m.DeletedBy, At: *m.DeletedAt, Reason: m.DeleteReason}
		return v
	}
	v.EditedAt = m.EditedAt
	pt, err := s.keys.Open(m.BodySealed, msgAAD(m.ConversationID, m.ID))
	if err != nil {
		s.log.Error("message failed to decrypt", "conversation", m.ConversationID, "message", m.ID,
			"kid", keyring.KeyID(m.BodySealed), "err", err)
		v.Undecryptable = true
		return v
	}
	if m.MLS {
		v.Ciphertext = base64.StdEncoding.EncodeToString(pt)
		return v
	}
	v.Body = string(pt)
	v.Mentions = m.Mentions
	return v
}

func (s *Service) oneView(ctx context.Context, userID string, m *store.Message) *protocol.Message {
	v := s.viewsFor(ctx, userID, []store.Message{*m})[0]
	return &v
}

// viewsFor builds the views of messages of one conversation as userID sees
// them now: the quoted originals of replies and reaction counts are read in
// one query each. userID "" builds views for every member (no "me"). A
// failed lookup is logged and leaves that part out: the text still shows.
func (s *Service) viewsFor(ctx context.Context, userID string, ms []store.Message) []protocol.Message {
	out := make([]protocol.Message, len(ms))
	if len(ms) == 0 {
		return out
	}
	var replyIDs, liveIDs []string
	for i := range ms {
		out[i] = s.view(&ms[i])
		if ms[i].DeletedAt != nil {
			continue
		}
		liveIDs = append(liveIDs, ms[i].ID)
		if ms[i].ReplyTo != "" {
			replyIDs = append(replyIDs, ms[i].ReplyTo)
		}
	}
	convID := ms[0].ConversationID
	originals := map[string]*store.Message{}
	if len(replyIDs) > 0 {
		rows, err := s.store.MessagesByIDs(ctx, convID, replyIDs)
		if err != nil {
			s.log.Warn("reply lookup failed", "conversation", convID, "err", err)
		}
		for i := range rows {
			originals[rows[i].ID] = &rows[i]
		}
	}
	reactions := map[string][]protocol.Reaction{}
	if len(liveIDs) > 0 {
		rcs, err := s.store.ReactionCounts(ctx, liveIDs, userID)
		if err != nil {
			s.log.Warn("reaction lookup failed", "conversation", convID, "err", err)
		}
		for _, rc := range rcs {
			reactions[rc.MessageID] = append(reactions[rc.MessageID], protocol.Reaction{Emoji: rc.Emoji, Count: rc.Count, Me: rc.Me})
		}
	}
	files := s.attachmentViews(ctx, liveIDs)
	for i := range ms {
		if ms[i].DeletedAt != nil {
			continue
		}
		out[i].Reactions = reactions[ms[i].ID]
		out[i].Attachments = files[ms[i].ID]
		if o := originals[ms[i].ReplyTo]; o != nil {
			ref := &protocol.ReplyRef{ID: o.ID, Seq: o.Seq, SenderID: o.SenderID, Deleted: o.DeletedAt != nil}
			if !ref.Deleted {
				ref.Excerpt = excerpt(s.view(o).Body)
			}
			out[i].ReplyTo = ref
		}
	}
	return out
}

// newView is viewsFor for a message just stored, without the reads it cannot
// need: nobody has reacted to it yet, and the message it replies to was read
// by the send. Only its attachments are read, when it has any.
func (s *Service) newView(ctx context.Context, m *store.Message, original *store.Message) protocol.Message {
	out := s.view(m)
	if len(m.Attachments) > 0 {
		out.Attachments = s.attachmentViews(ctx, []string{m.ID})[m.ID]
	}
	if o := original; o != nil {
		ref := &protocol.ReplyRef{ID: o.ID, Seq: o.Seq, SenderID: o.SenderID, Deleted: o.DeletedAt != nil}
		if !ref.Deleted {
			ref.Excerpt = excerpt(s.view(o).Body)
		}
		out.ReplyTo = ref
	}
	return out
}

// excerpt is the first ExcerptChars characters of body.
func excerpt(body string) string {
	if utf8.RuneCountInString(body) <= ExcerptChars {
		return body
	}
	return string([]rune(body)[:ExcerptChars]) + "…"
}

// Sync calls emit for everything after each cursor, conversation by
// conversation, in seq order: a message frame for a message, a change-event
// frame for an event, both built from the current state (so deleted text
// never leaves). It returns where each conversation now stands.
// Conversations the user is not a member of are left out silently.
func (s *Service) Sync(ctx context.Context, userID string, cursors map[string]int64, emit func(protocol.ServerFrame) error) (map[string]int64, error) {
	if len(cursors) > MaxSyncConvs {
		return nil, apperr.New(apperr.InvalidRequest, "at most %d conversations per sync", MaxSyncConvs)
	}
	out := make(map[string]int64, len(cursors))
	for convID, cur := range cursors {
		if cur < 0 {
			return nil, apperr.New(apperr.InvalidRequest, "cursor for %q is negative", convID)
		}
		if _, err := s.member(ctx, convID, userID); err != nil {
			if apperr.Is(err, apperr.NotFound) {
				continue
			}
			return nil, err
		}
		for {
			next, more, err := s.syncPage(ctx, userID, convID, cur, emit)
			if err != nil {
				return nil, err
			}
			cur = next
			if !more {
				break
			}
		}
		out[convID] = cur
	}
	return out, nil
}

// syncPage emits up to a page of messages, change events and MLS commits
// after cur, merged by seq, and returns the last seq emitted and whether
// more may follow.
func (s *Service) syncPage(ctx context.Context, userID, convID string, cur int64, emit func(protocol.ServerFrame) error) (int64, bool, error) {
	msgs, err := s.store.MessagesAfter(ctx, convID, cur, MaxHistoryLimit)
	if err != nil {
		return cur, false, unavailable(err)
	}
	evs, err := s.store.EventsAfter(ctx, convID, cur, MaxHistoryLimit)
	if err != nil {
		return cur, false, unavailable(err)
	}
	// Commits exist only in e2ee conversations (a flag cached for good).
	var commits []store.Commit
	e2ee, err := s.isE2EE(ctx, convID)
	if err != nil {
		return cur, false, unavailable(err)
	}
	if e2ee {
		if commits, err = s.store.CommitsAfter(ctx, convID, cur, MaxHistoryLimit); err != nil {
			return cur, false, unavailable(err)
		}
	}
	// A full page of any ends where this page can be trusted to be
	// complete: past it another list may be missing entries.
	upTo := int64(1 << 62)
	more := false
	if len(msgs) == MaxHistoryLimit {
		upTo, more = msgs[len(msgs)-1].Seq, true
	}
	if len(evs) == MaxHistoryLimit {
		upTo, more = min(upTo, evs[len(evs)-1].Seq), true
	}
	if len(commits) == MaxHistoryLimit {
		upTo, more = min(upTo, commits[len(commits)-1].Seq), true
	}
	msgs = slices.DeleteFunc(msgs, func(m store.Message) bool { return m.Seq > upTo })
	evs = slices.DeleteFunc(evs, func(e store.Event) bool { return e.Seq > upTo })
	commits = slices.DeleteFunc(commits, func(c store.Commit) bool { return c.Seq > upTo })
	views := s.viewsFor(ctx, userID, msgs)
	frames, err := s.eventFrames(ctx, convID, evs)
	if err != nil {
		return cur, false, err
	}
	type placed struct {
		seq   int64
		frame protocol.ServerFrame
	}
	all := make([]placed, 0, len(views)+len(frames)+len(commits))
	for i := range views {
		all = append(all, placed{views[i].Seq, protocol.MessageFrame{Message: &views[i]}})
	}
	for i := range evs {
		all = append(all, placed{evs[i].Seq, frames[i]})
	}
	for i, f := range s.mlsFrames(commits) {
		all = append(all, placed{commits[i].Seq, f})
	}
	// Each seq is one message, event or commit: no ties.
	slices.SortFunc(all, func(a, b placed) int { return cmp.Compare(a.seq, b.seq) })
	for _, p := range all {
		cur = p.seq
		if err := emit(p.frame); err != nil {
			return cur, false, err
		}
	}
	return cur, more, nil
}

// eventFrames builds the frames of stored events from the current state of
// the messages they name.
func (s *Service) eventFrames(ctx context.Context, convID string, evs []store.Event) ([]protocol.ServerFrame, error) {
	var ids []string
	for _, e := range evs {
		if e.MessageID != "" {
			ids = append(ids, e.MessageID)
		}
	}
	current := map[string]*store.Message{}
	counts := map[string][]protocol.ReactionCount{}
	if len(ids) > 0 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		rows, err := s.store.MessagesByIDs(ctx, convID, ids)
		if err != nil {
			return nil, unavailable(err)
		}
		for i := range rows {
			current[rows[i].ID] = &rows[i]
		}
		rcs, err := s.store.ReactionCounts(ctx, ids, "")
		if err != nil {
			return nil, unavailable(err)
		}
		for _, rc := range rcs {
			counts[rc.MessageID] = append(counts[rc.MessageID], protocol.ReactionCount{Emoji: rc.Emoji, Count: rc.Count})
		}
	}
	out := make([]protocol.ServerFrame, len(evs))
	for i := range evs {
		e := &evs[i]
		switch e.Kind {
		case store.EventEdited:
			f := protocol.MessageEditedFrame{ConversationID: convID, MessageID: e.MessageID, Seq: e.Seq, EditedAt: e.CreatedAt}
			if m := current[e.MessageID]; m != nil && m.DeletedAt == nil {
				f.Body = s.view(m).Body
			}
			out[i] = f
		case store.EventDeleted, store.EventExpired:
			out[i] = deletedFrame(e)
		case store.EventReaction:
			var d struct {
				Emoji string `json:"emoji"`
				Added bool   `json:"added"`
			}
			if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
				return nil, fmt.Errorf("messaging: event %s/%d: %w", convID, e.Seq, err)
			}
			c := counts[e.MessageID]
			if c == nil {
				c = []protocol.ReactionCount{}
			}
			out[i] = protocol.ReactionFrame{ConversationID: convID, MessageID: e.MessageID, Seq: e.Seq,
				Emoji: d.Emoji, UserID: e.ActorID, Added: d.Added, Counts: c}
		case store.EventSettings:
			var d struct {
				ExpireAfter int64 `json:"expireAfter"`
			}
			if err := json.Unmarshal([]byte(e.Data), &d); err != nil {
				return nil, fmt.Errorf("messaging: event %s/%d: %w", convID, e.Seq, err)
			}
			out[i] = protocol.ConversationSettingsFrame{ConversationID: convID, Seq: e.Seq, ExpireAfter: d.ExpireAfter,
				ChangedBy: e.ActorID, ChangedAt: e.CreatedAt}
		default:
			return nil, fmt.Errorf("messaging: event %s/%d has unknown kind %q", convID, e.Seq, e.Kind)
		}
	}
	return out, nil
}

// ExpiryLease names the lease the purger holds.
const ExpiryLease = "expiry"

// ExpiryBatch is how many expired messages one purge pass deletes at most.
const ExpiryBatch = 500

// PurgeExpired deletes up to limit expired messages, each as an "expired"
// event in its conversation, tells the members, and returns how many it
// deleted. Callers hold the expiry lease; a message deleted meanwhile (by
// its sender, or by another purger after a lease hand-over) is skipped
// by the store, so nothing is deleted twice.
func (s *Service) PurgeExpired(ctx context.Context, limit int) (int, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	due, err := s.store.ExpiredMessages(ctx, now, limit)
	if err != nil {
		return 0, fmt.Errorf("messaging: expired messages: %w", err)
	}
	members := map[string][]store.Member{}
	n := 0
	for _, m := range due {
		files := s.attachmentsOf(ctx, m.ID)
		_, ev, err := s.store.DeleteMessage(ctx, m.ConversationID, m.ID, "", store.EventExpired, now)
		if err != nil {
			return n, fmt.Errorf("messaging: expire %s/%s: %w", m.ConversationID, m.ID, err)
		}
		if ev == nil {
			continue
		}
		s.purgeAttachments(ctx, files)
		n++
		s.metrics.MessagesExpired.Inc()
		ms, ok := members[m.ConversationID]
		if !ok {
			if ms, err = s.store.Members(ctx, m.ConversationID); err != nil {
				// Stored; members catch up through sync and positioning.
				s.log.Warn("expiry: members lookup failed", "conversation", m.ConversationID, "err", err)
			}
			members[m.ConversationID] = ms
		}
		s.publishChange(ctx, ms, ev, deletedFrame(ev))
	}
	return n, nil
}

// RunExpiry purges expired messages every interval while it holds the
// expiry lease (held for three intervals and renewed each time, so one
// replica keeps it while it lives and another takes over within three
// intervals after it stops). It returns when ctx is done.
func (s *Service) RunExpiry(ctx context.Context, holder string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		s.expiryPass(ctx, holder, interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) expiryPass(ctx context.Context, holder string, interval time.Duration) {
	held, err := s.store.TakeLease(ctx, ExpiryLease, holder, s.now(), 3*interval)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("expiry: lease failed", "err", err)
		}
		return
	}
	if !held {
		s.metrics.ExpiryBacklog.Set(0)
		return
	}
	for ctx.Err() == nil {
		n, err := s.PurgeExpired(ctx, ExpiryBatch)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("expiry: purge failed", "err", err)
			}
			break
		}
		if n < ExpiryBatch {
			break
		}
	}
	// Account purges a request did not finish (docs/api.md, "Delete my account").
	if _, err := s.PurgeDeletedAccounts(ctx, 10); err != nil && ctx.Err() == nil {
		s.log.Warn("account purge failed", "err", err)
	}
	// Attachments: abandoned uploads, and blobs a deletion left behind.
	if s.attachments != nil {
		if _, err := s.attachments.Collect(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("attachment collection failed", "err", err)
		}
	}
	// Profile photo blobs no user names any more.
	if s.avatars != nil {
		if _, err := s.avatars.Collect(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("profile photo collection failed", "err", err)
		}
	}
	if backlog, err := s.store.ExpiryBacklog(ctx, s.now()); err == nil {
		s.metrics.ExpiryBacklog.Set(float64(backlog))
	}
}
