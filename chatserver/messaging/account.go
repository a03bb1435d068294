package messaging

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// AccountBatch is how many messages or reactions one store read of account
// deletion or export takes: the work goes in bounded steps, so an account
// with many messages never holds a transaction or a large page.
const AccountBatch = 200

// PurgeRetryAfter is how long after an account's deletion the background
// pass (RunExpiry) finishes a purge that did not complete in the request
// (a replica stopped, the database failed).
const PurgeRetryAfter = 10 * time.Minute

// PurgeStats is what one account purge removed.
// purgeUploads marks a deleted account's unsent uploads deleted and
// deletes their blobs.
func (s *Service) purgeUploads(ctx context.Context, userID string) error {
	var unsent []store.Attachment
	after := ""
	for {
		as, err := s.store.UserAttachments(ctx, userID, after, AccountBatch)
		if err != nil {
			return fmt.Errorf("messaging: account purge: %w", err)
		}
		for _, a := range as {
			if a.State != store.AttachmentAttached {
				unsent = append(unsent, a)
			}
		}
		if len(as) < AccountBatch {
			break
		}
		after = as[len(as)-1].ID
	}
	if _, err := s.store.DoomUserUploads(ctx, userID); err != nil {
		return fmt.Errorf("messaging: account purge: %w", err)
	}
	s.purgeAttachments(ctx, unsent)
	return nil
}

type PurgeStats struct {
	Messages  int `json:"messages"`
	Reactions int `json:"reactions"`
	Groups    int `json:"groups"` // groups left
	Deleted   int `json:"deletedGroups"`
}

// PurgeAccount removes a deleted account's content (docs/api.md, "Delete
// my account"): every live message it sent becomes a tombstone and each of
// its reactions is removed, each as a change event with the next seq of its
// conversation published to the members; then it leaves every group
// (ownership goes to the longest-standing admin, else member; a group with
// no one else is deleted). Direct conversations keep it as a member, shown
// as a deleted account. It is idempotent: running it again finishes an
// interrupted purge. The account must already be deleted (no session can
// add content meanwhile).
func (s *Service) PurgeAccount(ctx context.Context, userID string) (PurgeStats, error) {
	var st PurgeStats
	now := s.now().UTC().Truncate(time.Microsecond)
	members := map[string][]store.Member{}
	membersOf := func(convID string) []store.Member {
		ms, ok := members[convID]
		if !ok {
			var err error
			if ms, err = s.store.Members(ctx, convID); err != nil {
				// Stored; members catch up through sync and positioning.
				s.log.Warn("account purge: members lookup failed", "conversation", convID, "err", err)
			}
			members[convID] = ms
		}
		return ms
	}
	// Messages: each pass reads the first live ones left, so none is
	// skipped and the loop ends when none is left.
	for {
		ms, err := s.store.UserMessages(ctx, userID, "", 0, AccountBatch)
		if err != nil {
			return st, fmt.Errorf("messaging: account purge: %w", err)
		}
		for _, m := range ms {
			files := s.attachmentsOf(ctx, m.ID)
			_, ev, err := s.store.DeleteMessage(ctx, m.ConversationID, m.ID, userID, store.EventDeleted, now)
			if err != nil {
				return st, fmt.Errorf("messaging: account purge: delete %s/%s: %w", m.ConversationID, m.ID, err)
			}
			if ev != nil {
				s.purgeAttachments(ctx, files)
				st.Messages++
				s.publishChange(ctx, membersOf(m.ConversationID), ev, deletedFrame(ev))
			}
		}
		if len(ms) < AccountBatch {
			break
		}
	}
	for {
		rs, err := s.store.UserReactions(ctx, userID, "", "", AccountBatch)
		if err != nil {
			return st, fmt.Errorf("messaging: account purge: %w", err)
		}
		for _, r := range rs {
			ev, err := s.store.SetReaction(ctx, r.ConversationID, r.MessageID, userID, r.Emoji, false, MaxDistinctReactions, now)
			if errors.Is(err, store.ErrGone) || errors.Is(err, store.ErrNotFound) {
				continue // the message went meanwhile, with its reactions
			}
			if err != nil {
				return st, fmt.Errorf("messaging: account purge: reaction on %s: %w", r.MessageID, err)
			}
			if ev == nil {
				continue
			}
			st.Reactions++
			counts, err := s.counts(ctx, r.MessageID)
			if err != nil {
				s.log.Warn("reaction counts failed", "message", r.MessageID, "err", err)
			}
			s.publishChange(ctx, membersOf(r.ConversationID), ev, protocol.ReactionFrame{ConversationID: r.ConversationID,
				MessageID: r.MessageID, Seq: ev.Seq, Emoji: r.Emoji, UserID: userID, Added: false, Counts: counts})
		}
		if len(rs) < AccountBatch {
			break
		}
	}
	// Uploads no message carries: marked deleted, their blobs deleted now
	// (or by the collector).
	if err := s.purgeUploads(ctx, userID); err != nil {
		return st, err
	}
	// The profile photo: its blob, then the row's reference to it.
	if s.avatars != nil {
		if err := s.avatars.Purge(ctx, userID); err != nil {
			return st, fmt.Errorf("messaging: account purge: %w", err)
		}
	}
	sums, err := s.store.ListConversations(ctx, userID)
	if err != nil {
		return st, fmt.Errorf("messaging: account purge: %w", err)
	}
	for _, c := range sums {
		if c.Kind != store.KindGroup {
			continue
		}
		deleted, err := s.leaveGroup(ctx, userID, c.ID)
		if err != nil {
			return st, err
		}
		if deleted {
			st.Deleted++
		} else {
			st.Groups++
		}
	}
	if err := s.store.MarkAccountPurged(ctx, userID, s.now().UTC()); err != nil {
		return st, fmt.Errorf("messaging: account purge: %w", err)
	}
	_ = s.audit.Record(ctx, audit.AccountPurged, userID, userID, "", map[string]any{"messages": st.Messages,
		"reactions": st.Reactions, "groupsLeft": st.Groups, "groupsDeleted": st.Deleted})
	return st, nil
}

// leaveGroup takes a deleted account out of a group, handing ownership on
// first; a group with no one else is deleted. It reports whether it was.
func (s *Service) leaveGroup(ctx context.Context, userID, convID string) (bool, error) {
	ms, err := s.store.Members(ctx, convID)
	if err != nil {
		return false, fmt.Errorf("messaging: account purge: %w", err)
	}
	var me *store.Member
	var others []store.Member
	for i := range ms {
		if ms[i].UserID == userID {
			me = &ms[i]
		} else {
			others = append(others, ms[i])
		}
	}
	if me == nil {
		return false, nil
	}
	if len(others) == 0 {
		if err := s.store.DeleteConversation(ctx, convID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, fmt.Errorf("messaging: account purge: delete group %s: %w", convID, err)
		}
		return true, nil
	}
	if me.Role == store.RoleOwner {
		// The longest-standing admin, else the longest-standing member.
		rank := func(m store.Member) int {
			if m.Role == store.RoleAdmin {
				return 0
			}
			return 1
		}
		next := slices.MinFunc(others, func(a, b store.Member) int {
			if r := rank(a) - rank(b); r != 0 {
				return r
			}
			if c := a.JoinedAt.Compare(b.JoinedAt); c != 0 {
				return c
			}
			return strings.Compare(a.UserID, b.UserID)
		})
		if err := s.store.SetMemberRole(ctx, convID, next.UserID, store.RoleOwner); err != nil {
			return false, fmt.Errorf("messaging: account purge: new owner of %s: %w", convID, err)
		}
		_ = s.audit.Record(ctx, audit.OwnerChanged, userID, convID, "", map[string]any{"user": next.UserID})
	}
	if err := s.store.RemoveMember(ctx, convID, userID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("messaging: account purge: leave %s: %w", convID, err)
	}
	_ = s.audit.Record(ctx, audit.MemberRemoved, userID, convID, "", map[string]any{"user": userID, "reason": "account_deleted"})
	s.announceToMembers(ctx, convID, "")
	return false, nil
}

// PurgeDeletedAccounts finishes the purges of accounts deleted more than
// PurgeRetryAfter ago that did not complete, at most limit accounts.
func (s *Service) PurgeDeletedAccounts(ctx context.Context, limit int) (int, error) {
	ids, err := s.store.AccountsToPurge(ctx, s.now().Add(-PurgeRetryAfter), limit)
	if err != nil {
		return 0, fmt.Errorf("messaging: accounts to purge: %w", err)
	}
	for i, id := range ids {
		if _, err := s.PurgeAccount(ctx, id); err != nil {
			return i, err
		}
	}
	return len(ids), nil
}

// Export formats (docs/api.md, "Export my data").
type (
	exportProfile struct {
		ID          string    `json:"id"`
		Username    string    `json:"username"`
		Email       string    `json:"email"`
		DisplayName string    `json:"displayName"`
		CreatedAt   time.Time `json:"createdAt"`
		// Avatar says whether there is a profile photo: its version and
		// where to download it (GET, with the access token); null: none.
		Avatar *exportAvatar `json:"avatar"`
	}
	exportAvatar struct {
		Version string `json:"version"`
		Path    string `json:"path"`
	}
	exportMember struct {
		ID          string `json:"id"`
		Username    string `json:"username"`
		DisplayName string `json:"displayName"`
		Role        string `json:"role"`
	}
	exportConversation struct {
		ID          string         `json:"id"`
		Kind        string         `json:"kind"`
		Title       string         `json:"title,omitempty"`
		CreatedAt   time.Time      `json:"createdAt"`
		JoinedAt    time.Time      `json:"joinedAt"`
		ExpireAfter int64          `json:"expireAfter"`
		Members     []exportMember `json:"members"`
	}
	exportMessage struct {
		ID             string     `json:"id"`
		ConversationID string     `json:"conversationId"`
		Seq            int64      `json:"seq"`
		Body           string     `json:"body"`
		Undecryptable  bool       `json:"undecryptable,omitempty"`
		ReplyTo        string     `json:"replyTo,omitempty"`
		CreatedAt      time.Time  `json:"createdAt"`
		EditedAt       *time.Time `json:"editedAt,omitempty"`
		ExpiresAt      *time.Time `json:"expiresAt,omitempty"`
	}
	exportReaction struct {
		ConversationID string    `json:"conversationId"`
		MessageID      string    `json:"messageId"`
		Emoji          string    `json:"emoji"`
		CreatedAt      time.Time `json:"createdAt"`
	}
	exportAttachment struct {
		protocol.Attachment
		ConversationID string    `json:"conversationId,omitempty"` // "" while not sent
		MessageID      string    `json:"messageId,omitempty"`
		CreatedAt      time.Time `json:"createdAt"`
	}
)

// Export writes userID's data as one JSON object (docs/api.md, "Export my
// data"): the profile, the conversations with their members' public views,
// the user's own live messages decrypted, and the user's reactions. Other
// people's messages are theirs and are left out. Messages and reactions
// are read AccountBatch at a time and written as they come, so memory does
// not grow with the account. open is called once, before the first byte,
// when the profile and conversations have been read: an error before it
// can still be answered as an error; after it the output is cut short.
func (s *Service) Export(ctx context.Context, userID, ip string, open func() io.Writer) error {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.NotFound, "no such user")
	}
	if err != nil {
		return unavailable(err)
	}
	sums, err := s.store.ListConversations(ctx, userID)
	if err != nil {
		return unavailable(err)
	}
	convs, err := s.exportConversations(ctx, userID, sums)
	if err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.AccountExported, userID, userID, ip, nil)
	w := bufio.NewWriterSize(open(), 32<<10)
	put := func(parts ...any) error {
		for _, p := range parts {
			var err error
			if raw, ok := p.(string); ok {
				_, err = w.WriteString(raw)
			} else {
				var b []byte
				if b, err = json.Marshal(p); err == nil {
					_, err = w.Write(b)
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	profile := exportProfile{ID: u.ID, Username: u.Username, Email: u.Email, DisplayName: u.DisplayName, CreatedAt: u.CreatedAt}
	if u.Avatar.Version != "" {
		profile.Avatar = &exportAvatar{Version: u.Avatar.Version, Path: "/api/v1/users/" + u.ID + "/avatar"}
	}
	if err := put(`{"exportedAt":`, s.now().UTC().Truncate(time.Second), `,"profile":`, profile, `,"conversations":`, convs,
		`,"messages":[`); err != nil {
		return err
	}
	first := true
	afterConv, afterSeq := "", int64(0)
	for {
		ms, err := s.store.UserMessages(ctx, userID, afterConv, afterSeq, AccountBatch)
		if err != nil {
			return unavailable(err)
		}
		for i := range ms {
			m := &ms[i]
			v := s.view(m)
			em := exportMessage{ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, Body: v.Body,
				Undecryptable: v.Undecryptable, ReplyTo: m.ReplyTo, CreatedAt: m.CreatedAt, EditedAt: m.EditedAt,
				ExpiresAt: m.ExpiresAt}
			sep := ","
			if first {
				sep, first = "", false
			}
			if err := put(sep, em); err != nil {
				return err
			}
		}
		if len(ms) < AccountBatch {
			break
		}
		afterConv, afterSeq = ms[len(ms)-1].ConversationID, ms[len(ms)-1].Seq
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := put(`],"reactions":[`); err != nil {
		return err
	}
	first = true
	afterMsg, afterEmoji := "", ""
	for {
		rs, err := s.store.UserReactions(ctx, userID, afterMsg, afterEmoji, AccountBatch)
		if err != nil {
			return unavailable(err)
		}
		for _, r := range rs {
			sep := ","
			if first {
				sep, first = "", false
			}
			if err := put(sep, exportReaction{ConversationID: r.ConversationID, MessageID: r.MessageID,
				Emoji: r.Emoji, CreatedAt: r.CreatedAt}); err != nil {
				return err
			}
		}
		if len(rs) < AccountBatch {
			break
		}
		afterMsg, afterEmoji = rs[len(rs)-1].MessageID, rs[len(rs)-1].Emoji
	}
	// Attachments: metadata of the user's own files (the bytes are
	// downloaded one by one from the ids: an export of gigabytes does not
	// belong in one JSON document).
	if err := put(`],"attachments":[`); err != nil {
		return err
	}
	first = true
	afterID := ""
	for {
		as, err := s.store.UserAttachments(ctx, userID, afterID, AccountBatch)
		if err != nil {
			return unavailable(err)
		}
		for i := range as {
			a := &as[i]
			sep := ","
			if first {
				sep, first = "", false
			}
			if err := put(sep, exportAttachment{Attachment: attachments.View(a), ConversationID: a.ConversationID,
				MessageID: a.MessageID, CreatedAt: a.CreatedAt}); err != nil {
				return err
			}
		}
		if len(as) < AccountBatch {
			break
		}
		afterID = as[len(as)-1].ID
	}
	if err := put("]}\n"); err != nil {
		return err
	}
	return w.Flush()
}

func (s *Service) exportConversations(ctx context.Context, userID string, sums []store.ConversationSummary) ([]exportConversation, error) {
	var ids []string
	for _, c := range sums {
		ids = append(ids, c.MemberIDs...)
	}
	users := map[string]store.User{}
	if len(ids) > 0 {
		list, err := s.store.UsersByIDs(ctx, ids)
		if err != nil {
			return nil, unavailable(err)
		}
		for _, u := range list {
			users[u.ID] = u
		}
	}
	out := make([]exportConversation, 0, len(sums))
	for _, c := range sums {
		ec := exportConversation{ID: c.ID, Kind: c.Kind, CreatedAt: c.CreatedAt, ExpireAfter: int64(c.ExpireAfter / time.Second),
			Members: []exportMember{}}
		if c.TitleSealed != "" {
			t, err := s.keys.Open(c.TitleSealed, titleAAD(c.ID))
			if err != nil {
				s.log.Error("conversation title failed to decrypt", "conversation", c.ID, "err", err)
			}
			ec.Title = string(t)
		}
		for _, m := range c.Members {
			u := users[m.UserID]
			v := memberView(&u)
			if m.UserID == userID {
				ec.JoinedAt = m.JoinedAt
			}
			ec.Members = append(ec.Members, exportMember{ID: m.UserID, Username: v.Username, DisplayName: v.DisplayName, Role: m.Role})
		}
		out = append(out, ec)
	}
	return out, nil
}

// memberView is a user as other members see them: a deleted account has
// no username and the display name store.DeletedDisplayName.
func memberView(u *store.User) protocol.User {
	if u.DeletedAt != nil {
		return protocol.User{ID: u.ID, DisplayName: store.DeletedDisplayName}
	}
	return protocol.User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Avatar: u.Avatar.Version}
}
