package messaging

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/store"
)

// MaxMentions is how many distinct members one message can mention; more
// @names are left as text.
const MaxMentions = 20

// Pusher tells when a new message is to be pushed about (package push);
// false: push is off and no job is written.
type Pusher interface {
	Due(stored time.Time) (time.Time, bool)
}

// ParseMentions returns the ids of the members mentioned in text: "@" and a
// username, where the "@" starts the text or follows a character that is not
// a letter, digit, "_", ".", "-" or "@" (so alice@example.com mentions
// nobody), and the username runs as far as username characters go, without
// trailing "." or "-" (so "@bob." at the end of a sentence is bob). Matching
// is case-insensitive against the usernames of the conversation's members
// (byUsername: lower-case username to user id); ids come in order of first
// mention, without repeats, at most MaxMentions.
func ParseMentions(text string, byUsername map[string]string) []string {
	var out []string
	for i := 0; i < len(text) && len(out) < MaxMentions; i++ {
		if text[i] != '@' || (i > 0 && isNameByte(text[i-1]) || i > 0 && text[i-1] == '@') {
			continue
		}
		j := i + 1
		for j < len(text) && isNameByte(text[j]) {
			j++
		}
		name := strings.TrimRight(strings.ToLower(text[i+1:j]), ".-")
		if id, ok := byUsername[name]; ok && !slices.Contains(out, id) {
			out = append(out, id)
		}
		i = j - 1
	}
	return out
}

// isNameByte reports a byte of a username (a-z 0-9 _ . -, any case). A
// non-ASCII letter before "@" is not one: "ü@bob" mentions bob. That is
// rare and harmless.
func isNameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '.' || b == '-'
}

// mentionsIn parses the mentions of a new message's text among members.
// Only a text with an "@" costs a lookup of the members' usernames; a
// failed lookup sends the message without mentions (logged).
func (s *Service) mentionsIn(ctx context.Context, body string, members []store.Member) []string {
	if !strings.Contains(body, "@") {
		return nil
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	users, err := s.store.UsersByIDs(ctx, ids)
	if err != nil {
		s.log.Warn("mentions: members lookup failed; sending without mentions", "err", err)
		return nil
	}
	byName := make(map[string]string, len(users))
	for _, u := range users {
		if u.DeletedAt == nil {
			byName[u.Username] = u.ID
		}
	}
	return ParseMentions(body, byName)
}

// MuteDurations are the mute (and do-not-disturb) choices: "off" ends it,
// "always" lasts until changed.
var MuteDurations = map[string]time.Duration{"1h": time.Hour, "8h": 8 * time.Hour, "1w": 7 * 24 * time.Hour}

// muteUntil turns a choice into an end time (zero: off).
func (s *Service) muteUntil(field, choice string) (time.Time, error) {
	switch choice {
	case "off":
		return time.Time{}, nil
	case "always":
		return store.MuteForever, nil
	}
	d, ok := MuteDurations[choice]
	if !ok {
		return time.Time{}, apperr.OnField(apperr.InvalidRequest, field, "%s must be one of off, 1h, 8h, 1w, always", field)
	}
	return s.now().UTC().Truncate(time.Second).Add(d), nil
}

// MuteResult is the answer of a mute change.
type MuteResult struct {
	MutedUntil *time.Time `json:"mutedUntil"` // null: not muted
}

// SetMute mutes or unmutes a conversation's notifications for the caller;
// the caller's sessions get a conversation frame carrying the new mute. A
// muted conversation still counts unread messages.
func (s *Service) SetMute(ctx context.Context, userID, convID, choice string) (*MuteResult, error) {
	until, err := s.muteUntil("mute", choice)
	if err != nil {
		return nil, err
	}
	ns := s.store
	err = ns.SetMute(ctx, convID, userID, until)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound()
	}
	if err != nil {
		return nil, unavailable(err)
	}
	s.announceConversation(ctx, convID, userID)
	r := &MuteResult{}
	if !until.IsZero() {
		r.MutedUntil = &until
	}
	return r, nil
}

// NotifySettings is a user's notification settings as the API shows them.
type NotifySettings struct {
	// PushPreview: pushes carry the first 100 characters of the text.
	PushPreview bool `json:"pushPreview"`
	// MentionsBreakMute: a mention is pushed even in a muted conversation.
	MentionsBreakMute bool `json:"mentionsBreakMute"`
	// DNDUntil: nothing is pushed before then (null: off; 9999-12-31: always).
	DNDUntil *time.Time `json:"dndUntil"`
}

// NotifyChange is a partial update of the settings: absent fields stay.
// DND is set either by a choice (off, 1h, 8h, 1w, always) or until a time.
type NotifyChange struct {
	PushPreview       *bool      `json:"pushPreview"`
	MentionsBreakMute *bool      `json:"mentionsBreakMute"`
	DND               *string    `json:"dnd"`
	DNDUntil          *time.Time `json:"dndUntil"`
}

func settingsView(st store.NotifySettings, now time.Time) *NotifySettings {
	v := &NotifySettings{PushPreview: st.PushPreview, MentionsBreakMute: st.MentionsBreakMute}
	if st.DNDUntil.After(now) {
		u := st.DNDUntil.UTC()
		v.DNDUntil = &u
	}
	return v
}

// Settings returns the caller's notification settings.
func (s *Service) Settings(ctx context.Context, userID string) (*NotifySettings, error) {
	ns := s.store
	all, err := ns.NotifySettings(ctx, []string{userID})
	if err != nil {
		return nil, unavailable(err)
	}
	st, found := all[userID]
	if !found {
		return nil, apperr.New(apperr.NotFound, "no such user")
	}
	return settingsView(st, s.now()), nil
}

// UpdateSettings changes the caller's notification settings.
func (s *Service) UpdateSettings(ctx context.Context, userID string, c NotifyChange) (*NotifySettings, error) {
	if c.DND != nil && c.DNDUntil != nil {
		return nil, apperr.OnField(apperr.InvalidRequest, "dndUntil", "send dnd or dndUntil, not both")
	}
	ns := s.store
	all, err := ns.NotifySettings(ctx, []string{userID})
	if err != nil {
		return nil, unavailable(err)
	}
	st, found := all[userID]
	if !found {
		return nil, apperr.New(apperr.NotFound, "no such user")
	}
	if c.PushPreview != nil {
		st.PushPreview = *c.PushPreview
	}
	if c.MentionsBreakMute != nil {
		st.MentionsBreakMute = *c.MentionsBreakMute
	}
	if c.DND != nil {
		if st.DNDUntil, err = s.muteUntil("dnd", *c.DND); err != nil {
			return nil, err
		}
	}
	if c.DNDUntil != nil {
		if !c.DNDUntil.After(s.now()) || c.DNDUntil.After(store.MuteForever) {
			return nil, apperr.OnField(apperr.InvalidRequest, "dndUntil", "dndUntil must be a time in the future")
		}
		st.DNDUntil = c.DNDUntil.UTC().Truncate(time.Microsecond)
	}
	if err := ns.SetNotifySettings(ctx, userID, st); err != nil {
		return nil, unavailable(err)
	}
	return settingsView(st, s.now()), nil
}

// ConversationTitle opens a group's title for a push (package push).
func (s *Service) ConversationTitle(c *store.Conversation) string {
	if c.TitleSealed == "" {
		return ""
	}
	t, err := s.keys.Open(c.TitleSealed, titleAAD(c.ID))
	if err != nil {
		s.log.Error("conversation title failed to decrypt", "conversation", c.ID, "err", err)
		return ""
	}
	return string(t)
}

// MessageText opens a message's text for a push preview (package push).
func (s *Service) MessageText(m *store.Message) string { return s.view(m).Body }
