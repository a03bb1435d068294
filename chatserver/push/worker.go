package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	webpush "github.com/SherClockHolmes/webpush-go"

	"github.com/parley-chat/parley/chatserver/store"
)

// Payload is the JSON a push carries, encrypted to the subscription
// (docs/api.md, "Notifications"). It holds no message text unless the
// recipient opted in (Body).
type Payload struct {
	Type           string  `json:"type"` // "message"
	ConversationID string  `json:"conversationId"`
	MessageID      string  `json:"messageId,omitempty"`
	Seq            int64   `json:"seq,omitempty"`
	Kind           string  `json:"kind,omitempty"`  // direct or group
	Title          string  `json:"title,omitempty"` // the group's title, or the sender's display name
	Sender         *Sender `json:"sender,omitempty"`
	Unread         int64   `json:"unread,omitempty"`  // the recipient's unread count in the conversation
	Mention        bool    `json:"mention,omitempty"` // the recipient is mentioned
	Count          int     `json:"count,omitempty"`   // new messages this push stands for (a burst collapsed)
	// Body is the first PreviewChars characters of the newest message's
	// text, only for a recipient who turned pushPreview on.
	Body string `json:"body,omitempty"`
}

// Sender names who wrote the message.
type Sender struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
}

// Run sends due pushes until ctx ends. Every replica runs it; the outbox's
// leases make each job one replica's.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			n, err := s.RunOnce(ctx)
			if err != nil {
				s.log.Warn("push: outbox pass failed", "err", err)
			}
			if n < claimBatch {
				break // drained: wait for the next tick
			}
		}
	}
}

// RunOnce claims the due jobs (at most one batch), pushes, and finishes
// them; it returns how many jobs it claimed.
func (s *Service) RunOnce(ctx context.Context) (int, error) {
	if !s.Enabled() {
		return 0, nil // jobs wait (and are dropped by age) until a VAPID key is back
	}
	jobs, err := s.store.ClaimPushJobs(ctx, s.holder, s.now(), claimLease, claimBatch)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	// A burst in one conversation becomes one push per recipient, about its
	// newest message; the push service's Topic collapses what is still
	// undelivered from earlier passes.
	byConv := map[string][]store.PushJob{}
	var order []string
	for _, j := range jobs {
		if _, ok := byConv[j.ConversationID]; !ok {
			order = append(order, j.ConversationID)
		}
		byConv[j.ConversationID] = append(byConv[j.ConversationID], j)
	}
	done := make([]string, 0, len(jobs))
	var sends []delivery
	for _, convID := range order {
		group := byConv[convID]
		slices.SortFunc(group, func(a, b store.PushJob) int { return int(a.Seq - b.Seq) })
		ds, err := s.conversation(ctx, convID, group)
		sends = append(sends, ds...)
		if err != nil {
			if group[0].Attempts < maxJobClaims {
				s.log.Warn("push: conversation pass failed; its jobs are retried when their lease lapses",
					"conversation", convID, "err", err)
				continue
			}
			s.log.Error("push: dropping jobs that failed too often", "conversation", convID, "err", err)
		}
		for _, j := range group {
			done = append(done, j.MessageID)
		}
	}
	s.sendAll(ctx, sends)
	if err := s.store.FinishPushJobs(ctx, s.holder, done); err != nil {
		return len(jobs), fmt.Errorf("push: finish jobs: %w", err)
	}
	return len(jobs), nil
}

// delivery is one push to one subscription.
type delivery struct {
	sub     store.PushSubscription
	convID  string
	body    []byte
	urgency webpush.Urgency
	stored  time.Time
}

// sendAll sends the pushes of one claimed batch, sendParallel at a time, and
// gives up on what is left (retries included) before the batch's lease could
// lapse: another replica claiming the jobs again would push twice.
func (s *Service) sendAll(ctx context.Context, ds []delivery) {
	if len(ds) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, sendBudget)
	defer cancel()
	work := make(chan delivery)
	var wg sync.WaitGroup
	for range min(sendParallel, len(ds)) {
		wg.Go(func() {
			for d := range work {
				s.send(ctx, d)
			}
		})
	}
	for _, d := range ds {
		work <- d
	}
	close(work)
	wg.Wait()
}

// conversation decides the pushes about the newest live message of a group
// of jobs of one conversation. An error means nothing was decided (retry
// later).
func (s *Service) conversation(ctx context.Context, convID string, group []store.PushJob) ([]delivery, error) {
	now := s.now()
	ids := make([]string, len(group))
	for i, j := range group {
		ids[i] = j.MessageID
	}
	msgs, err := s.store.MessagesByIDs(ctx, convID, ids)
	if err != nil {
		return nil, fmt.Errorf("messages: %w", err)
	}
	var live []store.Message
	for _, m := range msgs {
		// Deleted meanwhile, or so old the push service would drop it.
		if m.DeletedAt == nil && now.Sub(m.CreatedAt) < s.ttl {
			live = append(live, m)
		}
	}
	if len(live) == 0 {
		return nil, nil
	}
	slices.SortFunc(live, func(a, b store.Message) int { return int(a.Seq - b.Seq) })
	newest := live[len(live)-1]
	mentioned := map[string]bool{}
	for _, m := range live {
		for _, id := range m.Mentions {
			mentioned[id] = true
		}
	}
	members, err := s.store.Members(ctx, convID)
	if err != nil {
		return nil, fmt.Errorf("members: %w", err)
	}
	var candidates []string
	muted := map[string]bool{}
	for _, mb := range members {
		switch {
		case !slices.ContainsFunc(live, func(m store.Message) bool { return m.SenderID != mb.UserID }):
			continue // every message of the burst is theirs
		case mb.ReadSeq >= newest.Seq:
			s.metrics.PushSkipped.WithLabelValues("read").Inc()
			continue
		}
		muted[mb.UserID] = mb.MutedUntil.After(now)
		candidates = append(candidates, mb.UserID)
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	subs, err := s.store.PushSubscriptions(ctx, candidates)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	byUser := map[string][]store.PushSubscription{}
	for _, p := range subs {
		byUser[p.UserID] = append(byUser[p.UserID], p)
	}
	settings, err := s.store.NotifySettings(ctx, candidates)
	if err != nil {
		return nil, fmt.Errorf("settings: %w", err)
	}
	attentive, err := s.presence.Attentive(ctx, candidates)
	if err != nil {
		// Better a push too many than a message nobody hears about.
		s.log.Warn("push: presence lookup failed; pushing as if nobody were looking", "err", err)
		attentive = map[string]bool{}
	}
	var recipients []string
	for _, id := range candidates {
		st := settings[id]
		reason := ""
		switch {
		case len(byUser[id]) == 0:
			reason = "no_subscription"
		case st.DNDUntil.After(now):
			reason = "dnd"
		case muted[id] && !(mentioned[id] && st.MentionsBreakMute):
			reason = "muted"
		case attentive[id]:
			reason = "attentive"
		}
		if reason != "" {
			s.metrics.PushSkipped.WithLabelValues(reason).Inc()
			continue
		}
		recipients = append(recipients, id)
	}
	if len(recipients) == 0 {
		return nil, nil
	}
	senders, err := s.store.UsersByIDs(ctx, []string{newest.SenderID})
	if err != nil {
		return nil, fmt.Errorf("sender: %w", err)
	}
	sender := Sender{ID: newest.SenderID}
	if len(senders) == 1 {
		sender.DisplayName = senders[0].DisplayName
	}
	var out []delivery
	for _, id := range recipients {
		p, err := s.payloadFor(ctx, id, &newest, len(live), mentioned[id], settings[id], sender)
		if err != nil {
			return nil, err
		}
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("payload: %w", err)
		}
		urgency := webpush.UrgencyNormal
		if mentioned[id] {
			urgency = webpush.UrgencyHigh
		}
		for _, sub := range byUser[id] {
			out = append(out, delivery{sub: sub, convID: convID, body: body, urgency: urgency, stored: newest.CreatedAt})
		}
	}
	return out, nil
}

// payloadFor builds what one recipient's devices get. A conversation the
// server cannot read (end-to-end encrypted, issue 17) never carries more
// than "a new message in this conversation".
func (s *Service) payloadFor(ctx context.Context, userID string, m *store.Message, count int, mention bool,
	st store.NotifySettings, sender Sender) (*Payload, error) {
	sum, err := s.store.ConversationSummary(ctx, userID, m.ConversationID)
	if err != nil {
		return nil, fmt.Errorf("summary: %w", err)
	}
	if s.endToEnd(&sum.Conversation) {
		return &Payload{Type: "message", ConversationID: m.ConversationID}, nil
	}
	p := &Payload{Type: "message", ConversationID: m.ConversationID, MessageID: m.ID, Seq: m.Seq, Kind: sum.Kind,
		Sender: &sender, Unread: sum.Unread, Mention: mention, Count: count}
	if sum.Kind == store.KindGroup {
		p.Title = s.texts.ConversationTitle(&sum.Conversation)
	} else {
		p.Title = sender.DisplayName
	}
	if st.PushPreview {
		p.Body = preview(s.texts.MessageText(m))
	}
	return p, nil
}

// preview is the first PreviewChars characters of text.
func preview(text string) string {
	if utf8.RuneCountInString(text) <= PreviewChars {
		return text
	}
	return string([]rune(text)[:PreviewChars]) + "…"
}

// Topic is the Topic header of pushes about a conversation to one
// subscription: a push service replaces an undelivered push with the same
// topic, so a burst reaches an offline device as one notification. It is
// a hash of the subscription id and the conversation id: the push service
// can tell pushes about one conversation to one device apart from others,
// but cannot link two subscriptions' pushes to the same conversation.
// 32 characters of base64url, RFC 8030's limit.
func Topic(subscriptionID, convID string) string {
	h := sha256.Sum256([]byte(topicPrefix + subscriptionID + "|" + convID))
	return base64.RawURLEncoding.EncodeToString(h[:24])
}

// send delivers one push, retrying 429 and 5xx answers and network errors
// with backoff (Retry-After when given, at most maxRetryAfter), and removes
// the subscription when the push service says it is gone (404, 410).
func (s *Service) send(ctx context.Context, d delivery) {
	sub, convID, body, urgency, stored := d.sub, d.convID, d.body, d.urgency, d.stored
	v := s.keys.VAPID()
	if v == nil {
		s.metrics.PushFailed.WithLabelValues("disabled").Inc()
		return
	}
	if sub.VAPIDKeyID != v.ID {
		// Made with a VAPID key no longer active: the push service would
		// refuse it, and the browser re-subscribes when it sees the new key.
		if ok, err := s.store.RemovePushSubscription(ctx, sub.ID); err == nil && ok {
			s.metrics.PushRemoved.WithLabelValues("vapid_rotated").Inc()
		}
		return
	}
	// The library writes "mailto:" before a contact that is not https.
	opts := &webpush.Options{HTTPClient: s.client, Subscriber: strings.TrimPrefix(s.contact, "mailto:"), Topic: Topic(sub.ID, convID),
		TTL: int(s.ttl / time.Second), Urgency: urgency, VAPIDPublicKey: v.PublicKeyBase64(),
		VAPIDPrivateKey: v.PrivateKeyForWebPush()}
	wsub := &webpush.Subscription{Endpoint: sub.Endpoint, Keys: webpush.Keys{P256dh: sub.P256DH, Auth: sub.Auth}}
	wait := s.retryBase
	reason := ""
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		resp, err := webpush.SendNotificationWithContext(ctx, body, wsub, opts)
		var retryAfter time.Duration
		switch {
		case err != nil && ctx.Err() != nil:
			s.metrics.PushFailed.WithLabelValues("deadline").Inc()
			return
		case err != nil && isRequestError(err):
			reason = "network"
		case err != nil:
			s.log.Error("push: cannot encrypt for a subscription", "subscription", sub.ID, "err", err)
			s.metrics.PushFailed.WithLabelValues("encrypt").Inc()
			return
		default:
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch code := resp.StatusCode; {
			case code >= 200 && code < 300:
				s.metrics.PushSent.Inc()
				s.metrics.PushLatency.Observe(s.now().Sub(stored).Seconds())
				return
			case code == http.StatusNotFound || code == http.StatusGone:
				if ok, err := s.store.RemovePushSubscription(ctx, sub.ID); err != nil {
					s.log.Warn("push: removing an expired subscription failed", "subscription", sub.ID, "err", err)
				} else if ok {
					s.metrics.PushRemoved.WithLabelValues("gone").Inc()
				}
				return
			case code == http.StatusTooManyRequests:
				reason = "rate_limited"
				retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
			case code >= 500:
				reason = "server_error"
				retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
			default:
				s.log.Warn("push: the push service refused a push", "subscription", sub.ID, "status", code)
				s.metrics.PushFailed.WithLabelValues("rejected").Inc()
				return
			}
		}
		if attempt == maxAttempts {
			break
		}
		pause := wait
		if retryAfter > 0 {
			pause = min(retryAfter, maxRetryAfter)
		}
		wait *= 2
		select {
		case <-ctx.Done():
			s.metrics.PushFailed.WithLabelValues("deadline").Inc()
			return
		case <-time.After(pause):
		}
	}
	s.log.Warn("push: giving up after retries", "subscription", sub.ID, "reason", reason)
	s.metrics.PushFailed.WithLabelValues(reason).Inc()
}

// isRequestError tells a failed HTTP exchange (retried) from a failure to
// build the push (not retried): net/http wraps its errors in *url.Error.
func isRequestError(err error) bool {
	var ue interface{ Timeout() bool }
	return errors.As(err, &ue)
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
