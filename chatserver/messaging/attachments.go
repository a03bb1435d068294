package messaging

import (
	"context"
	"slices"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
)

// MaxAttachments is how many attachments one message may carry.
const MaxAttachments = attachments.MaxPerMessage

func validAttachments(ids []string) error {
	if len(ids) > MaxAttachments {
		return apperr.OnField(apperr.InvalidRequest, "attachments", "a message carries at most %d attachments", MaxAttachments)
	}
	for i, id := range ids {
		if id == "" || len(id) > 64 {
			return apperr.OnField(apperr.InvalidRequest, "attachments", "attachment ids must be 1 to 64 characters")
		}
		if slices.Contains(ids[:i], id) {
			return apperr.OnField(apperr.InvalidRequest, "attachments", "attachment %s is listed twice", id)
		}
	}
	return nil
}

// attachmentViews reads the attachments of live messages, by message id.
// A failed lookup is logged and leaves them out: the text still shows.
func (s *Service) attachmentViews(ctx context.Context, msgIDs []string) map[string][]protocol.Attachment {
	out := map[string][]protocol.Attachment{}
	if len(msgIDs) == 0 {
		return out
	}
	as, err := s.store.AttachmentsOfMessages(ctx, msgIDs)
	if err != nil {
		s.log.Warn("attachment lookup failed", "err", err)
		return out
	}
	for i := range as {
		out[as[i].MessageID] = append(out[as[i].MessageID], attachments.View(&as[i]))
	}
	return out
}

// attachmentsOf returns the attachments of messages about to be deleted,
// so their blobs can be deleted right after (purgeAttachments). A failed
// lookup is logged: the collector deletes them later.
func (s *Service) attachmentsOf(ctx context.Context, msgIDs ...string) []store.Attachment {
	if s.attachments == nil || len(msgIDs) == 0 {
		return nil
	}
	as, err := s.store.AttachmentsOfMessages(ctx, msgIDs)
	if err != nil {
		s.log.Warn("attachment lookup failed; the collector deletes them later", "err", err)
		return nil
	}
	return as
}

// purgeAttachments deletes the blobs of attachments whose message the
// store has just deleted (and so marked them deleted).
func (s *Service) purgeAttachments(ctx context.Context, as []store.Attachment) {
	if s.attachments != nil && len(as) > 0 {
		s.attachments.Purge(ctx, as)
	}
}
