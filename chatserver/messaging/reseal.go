package messaging

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/store"
)

// ResealStore is the persistence re-encryption needs.
type ResealStore interface {
	// SealedCounts counts stored ciphertexts (bodies and titles) per data key.
	SealedCounts(ctx context.Context) (map[string]int64, error)
	MessagesSealedWith(ctx context.Context, keyID string, limit int) ([]store.Message, error)
	ResealMessage(ctx context.Context, convID string, seq int64, oldSealed, newSealed, newKeyID string) (bool, error)
	ConversationsSealedWith(ctx context.Context, keyID string, limit int) ([]store.Conversation, error)
	ResealTitle(ctx context.Context, convID, oldSealed, newSealed string) (bool, error)
	// The MLS Delivery Service's KeyPackages, commits and Welcomes.
	MLSSealedWith(ctx context.Context, keyID string, limit int) ([]store.MLSSealed, error)
	ResealMLS(ctx context.Context, r store.MLSSealed, newSealed, newKeyID string) (bool, error)
}

// Resealer re-encrypts stored rows to the active data key.
type Resealer struct {
	store   ResealStore
	keys    *keyring.Keyring
	metrics *metrics.Metrics
	log     *slog.Logger
	blobs   BlobResealer
	avatars BlobResealer
}

// BlobResealer re-encrypts attachments sealed with a non-active data key
// (package attachments): SealedCounts counts them with the rows, so a key
// stays needed until its attachments are moved too.
type BlobResealer interface {
	Reseal(ctx context.Context, kid string, limit int) (resealed, failed int, err error)
}

// WithAttachments has each pass re-encrypt attachments too.
func (s *Resealer) WithAttachments(b BlobResealer) *Resealer {
	s.blobs = b
	return s
}

// WithAvatars has each pass re-encrypt profile photos too (package
// avatars): SealedCounts counts them, like attachments.
func (s *Resealer) WithAvatars(b BlobResealer) *Resealer {
	s.avatars = b
	return s
}

// NewResealer returns a Resealer.
func NewResealer(st ResealStore, keys *keyring.Keyring, m *metrics.Metrics, log *slog.Logger) *Resealer {
	return &Resealer{store: st, keys: keys, metrics: metrics.OrNew(m), log: log}
}

// ResealBatch is how many rows per key one Reseal pass re-encrypts at most.
const ResealBatch = 500

// ResealReport is the outcome of one Reseal pass.
type ResealReport struct {
	Resealed  int
	Failed    int              // rows that would not open (tampered, or their key is gone)
	Remaining map[string]int64 // rows still sealed with each non-active key, after the pass
}

// count adds one row to the report: re-encrypted, or would not open.
func (r *ResealReport) count(ok bool) {
	if ok {
		r.Resealed++
	} else {
		r.Failed++
	}
}

// Reseal re-encrypts up to ResealBatch message bodies and group titles per
// non-active data key to the active key, so retired keys stop being needed.
// Rows are swapped compare-and-set: a concurrent pass on another replica or a
// concurrent write is never overwritten. It also publishes how many rows
// remain per key (parley_keyring_rows_remaining), which tells an operator when
// a retired data key can be removed.
func (s *Resealer) Reseal(ctx context.Context) (ResealReport, error) {
	rep := ResealReport{Remaining: map[string]int64{}}
	counts, err := s.store.SealedCounts(ctx)
	if err != nil {
		return rep, fmt.Errorf("reseal: %w", err)
	}
	_, active := s.keys.ActiveIDs()
	for kid, n := range counts {
		if kid == active || n == 0 {
			continue
		}
		msgs, err := s.store.MessagesSealedWith(ctx, kid, ResealBatch)
		if err != nil {
			return rep, fmt.Errorf("reseal: %w", err)
		}
		for _, m := range msgs {
			ok, err := s.reseal(ctx, m.BodySealed, msgAAD(m.ConversationID, m.ID), func(sealed, newKID string) (bool, error) {
				return s.store.ResealMessage(ctx, m.ConversationID, m.Seq, m.BodySealed, sealed, newKID)
			})
			if err != nil {
				return rep, err
			}
			rep.count(ok)
		}
		for _, b := range []BlobResealer{s.blobs, s.avatars} {
			if b == nil {
				continue
			}
			n, failed, err := b.Reseal(ctx, kid, ResealBatch)
			rep.Resealed += n
			rep.Failed += failed
			if err != nil {
				return rep, fmt.Errorf("reseal: %w", err)
			}
		}
		mls, err := s.store.MLSSealedWith(ctx, kid, ResealBatch)
		if err != nil {
			return rep, fmt.Errorf("reseal: %w", err)
		}
		for _, r := range mls {
			ok, err := s.reseal(ctx, r.Sealed, mlsSealedAAD(r), func(sealed, newKID string) (bool, error) {
				return s.store.ResealMLS(ctx, r, sealed, newKID)
			})
			if err != nil {
				return rep, err
			}
			rep.count(ok)
		}
		convs, err := s.store.ConversationsSealedWith(ctx, kid, ResealBatch)
		if err != nil {
			return rep, fmt.Errorf("reseal: %w", err)
		}
		for _, c := range convs {
			ok, err := s.reseal(ctx, c.TitleSealed, titleAAD(c.ID), func(sealed, _ string) (bool, error) {
				return s.store.ResealTitle(ctx, c.ID, c.TitleSealed, sealed)
			})
			if err != nil {
				return rep, err
			}
			rep.count(ok)
		}
	}
	after, err := s.store.SealedCounts(ctx)
	if err != nil {
		return rep, fmt.Errorf("reseal: %w", err)
	}
	for kid, n := range after {
		if kid != active {
			rep.Remaining[kid] = n
		}
		s.metrics.KeyringRowsRemaining.WithLabelValues(kid).Set(float64(n))
	}
	for kid := range counts {
		if _, still := after[kid]; !still {
			s.metrics.KeyringRowsRemaining.WithLabelValues(kid).Set(0)
		}
	}
	return rep, nil
}

// reseal opens sealed and seals it again with the active key; swap stores it.
// A row that does not open is logged and skipped (false, nil).
func (s *Resealer) reseal(ctx context.Context, sealed string, aad []byte, swap func(sealed, kid string) (bool, error)) (bool, error) {
	pt, err := s.keys.Open(sealed, aad)
	if err != nil {
		s.log.Error("reseal: row does not open; left as it is", "kid", keyring.KeyID(sealed), "err", err)
		return false, nil
	}
	resealed, kid, err := s.keys.Seal(ctx, aad, pt)
	if err != nil {
		return false, fmt.Errorf("reseal: %w", err)
	}
	if _, err := swap(resealed, kid); err != nil {
		return false, fmt.Errorf("reseal: %w", err)
	}
	return true, nil
}

// Run calls Reseal every interval until ctx ends.
func (s *Resealer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rep, err := s.Reseal(ctx)
			if err != nil {
				s.log.Warn("reseal pass failed", "err", err)
			} else if rep.Resealed > 0 || rep.Failed > 0 {
				s.log.Info("resealed rows to the active data key", "resealed", rep.Resealed, "failed", rep.Failed,
					"remaining", rep.Remaining)
			}
		}
	}
}
