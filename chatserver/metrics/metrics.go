// Package metrics holds the chat server's Prometheus collectors. One Metrics value
// is created per server on its own registry and handed to the packages that count.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the set of collectors exposed at /metrics.
type Metrics struct {
	Registry *prometheus.Registry

	Connections          prometheus.Gauge
	ConnectionsTotal     *prometheus.CounterVec // result: accepted, refused_limit, refused_origin, auth_failed
	Disconnects          *prometheus.CounterVec // reason
	MessagesSent         *prometheus.CounterVec // via: rest, ws
	MessagesDelivered    prometheus.Counter
	DeliveryLatency      prometheus.Histogram
	FramesDropped        prometheus.Counter
	AuthFailures         *prometheus.CounterVec // reason
	RateLimited          *prometheus.CounterVec // limit
	HTTPRequests         *prometheus.CounterVec // method, route, code
	HTTPDuration         *prometheus.HistogramVec
	PasswordHashWait     prometheus.Histogram
	KeyringSeals         *prometheus.GaugeVec   // kid
	KeyringRotationDue   *prometheus.GaugeVec   // kid
	KeyringReloads       *prometheus.CounterVec // result
	KeyringRowsRemaining *prometheus.GaugeVec   // kid
	KeyringLoaded        *prometheus.GaugeVec   // digest: 1 for the keyring in use
	DeliveryHeld         prometheus.Counter     // live frames held for a predecessor
	DeliveryDuplicates   prometheus.Counter     // live frames dropped: already sent or covered by a sync
	DeliveryResyncs      *prometheus.CounterVec // reason: hold, position, overflow
	DeliveryUnsynced     prometheus.Counter     // conversations whose live frames were sent without a sync first
	PositionCheck        prometheus.Histogram
	BackplaneRejected    *prometheus.CounterVec // what: envelope reason: malformed, forged, stale; ticket: forged
	BackplaneErrors      prometheus.Counter
	Envelopes            *prometheus.CounterVec   // kind: user, shared
	MembersCache         *prometheus.CounterVec   // result: hit, miss, stale
	SendDuration         prometheus.Histogram     // a send, checks to ack, either transport
	DBQueryDuration      *prometheus.HistogramVec // statement (PostgreSQL; see PgxTracer)
	RedisCommandDuration *prometheus.HistogramVec // command (see RedisHook)
	SendFailures         *prometheus.CounterVec   // code: the apperr code of a refused or failed send
	DBErrors             *prometheus.CounterVec   // op: store operations that failed (not "not found" or "conflict")
	ConnectionsLimit     prometheus.Gauge         // -max-connections of this process
	BackplaneUp          prometheus.Gauge
	AuditEvents          *prometheus.CounterVec // event
	MessagesExpired      prometheus.Counter     // disappearing messages deleted by this replica
	ExpiryBacklog        prometheus.Gauge       // expired messages not yet deleted (set by the lease holder)
	Uploads              *prometheus.CounterVec // kind: image, audio, video, file
	UploadBytes          prometheus.Counter     // plaintext bytes of stored uploads
	UploadRefused        *prometheus.CounterVec // reason
	Downloads            *prometheus.CounterVec // what: file, thumbnail; range: full, partial
	AttachmentsDeleted   *prometheus.CounterVec // why: message (deleted, expired, account), stale, removed (by its uploader before sending)
	AttachmentGCRuns     prometheus.Counter
	PushSent             prometheus.Counter     // pushes the push service accepted
	PushFailed           *prometheus.CounterVec // reason
	PushRemoved          *prometheus.CounterVec // reason: gone (404/410), vapid_rotated
	PushSkipped          *prometheus.CounterVec // reason: read, attentive, muted, dnd, no_subscription
	PushLatency          prometheus.Histogram   // message stored -> push accepted
}

// OrNew returns m, or fresh collectors on their own registry when m is nil,
// so packages can count without checking for nil (tests often pass none).
func OrNew(m *Metrics) *Metrics {
	if m != nil {
		return m
	}
	return New()
}

// New creates the collectors and registers them, with the Go and process
// collectors, on a fresh registry.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_ws_connections", Help: "Open authenticated WebSocket connections."}),
		ConnectionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ws_connections_total", Help: "WebSocket connection attempts by result."}, []string{"result"}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_ws_disconnects_total", Help: "WebSocket disconnections by reason."}, []string{"reason"}),
		MessagesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_messages_sent_total", Help: "Messages stored, by transport."}, []string{"via"}),
		MessagesDelivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_delivered_total", Help: "Message frames queued to WebSocket connections."}),
		DeliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "parley_delivery_latency_seconds",
			Help:    "Time from a message being stored to its frame being written to a recipient connection.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		FramesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_ws_slow_consumers_total", Help: "Connections closed because their send queue was full."}),
		AuthFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_auth_failures_total", Help: "Failed authentications by reason."}, []string{"reason"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_rate_limited_total", Help: "Requests refused by a rate limit."}, []string{"limit"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_http_requests_total", Help: "HTTP requests by route and status code."}, []string{"method", "route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.DefBuckets}, []string{"method", "route"}),
		PasswordHashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_password_hash_queue_seconds", Help: "Time a password hash waited for a worker of the bounded pool.",
			Buckets: []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5}}),
		KeyringSeals: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_keyring_seals", Help: "Persisted AES-GCM seal count reserved per data key (cluster-wide upper bound)."}, []string{"kid"}),
		KeyringRotationDue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_keyring_rotation_due", Help: "1 when a data key has done 2^30 seals and should be rotated."}, []string{"kid"}),
		KeyringRowsRemaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_keyring_rows_remaining", Help: "Stored ciphertexts still sealed with each data key (0: a retired key is no longer needed)."}, []string{"kid"}),
		KeyringLoaded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_keyring_loaded_info", Help: "1, labelled with the digest of the key ids and states of the keyring in use (GET /keyringz lists them)."}, []string{"digest"}),
		KeyringReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_keyring_reloads_total", Help: "Keyring reloads by result (ok, error)."}, []string{"result"}),
		DeliveryHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_delivery_held_total", Help: "Live frames held because their predecessor in the conversation had not been sent yet."}),
		DeliveryDuplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_delivery_duplicates_total", Help: "Live frames not sent because the connection already had them (retries, syncs)."}),
		DeliveryResyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_delivery_resyncs_total", Help: "Conversation resyncs sent to connections, by reason (hold: a predecessor did not come in time; position: a stored message was never delivered; overflow: too many frames held)."}, []string{"reason"}),
		DeliveryUnsynced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_delivery_unsynced_total", Help: "Times live frames of a conversation were sent to a connection that had not synced it within the hold time."}),
		PositionCheck: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_position_check_seconds", Help: "Time to read the heads of the conversations this replica's connections follow.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}),
		BackplaneRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_redis_rejected_total", Help: "Data read from Redis that did not verify and was dropped: backplane envelopes (malformed, forged: not made with the keyring or for another topic, stale: a replay) and WebSocket tickets (forged)."}, []string{"reason"}),
		BackplaneErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_backplane_errors_total", Help: "Backplane publish or subscribe errors."}),
		Envelopes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_backplane_envelopes_total", Help: "Envelopes published to the backplane, by kind (user: one per recipient, on the user's topic; shared: one for many recipients, on a shared topic every replica receives)."}, []string{"kind"}),
		MembersCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_members_cache_total", Help: "Sends by how the replica's cache of the conversation's members served them (hit; miss: not cached, read; stale: cached at another membership version, read again)."}, []string{"result"}),
		DBQueryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_db_query_duration_seconds",
			Help:    "PostgreSQL statement latency by statement kind (select, insert, update, delete, with, begin, commit, rollback, other).",
			Buckets: storageBuckets}, []string{"statement"}),
		RedisCommandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "parley_redis_command_duration_seconds",
			Help:    "Redis command latency by command (a pipeline counts once, as pipeline).",
			Buckets: storageBuckets}, []string{"command"}),
		SendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_send_duration_seconds", Help: "Time to handle a send, REST or WebSocket, from its checks to the stored message handed to the backplane (what the sender waits for before its ack).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		SendFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_send_failures_total", Help: "Sends not stored, REST or WebSocket, by error code (unavailable and internal are the server's; the rest, such as rate_limited or not_found, the request's)."}, []string{"code"}),
		DBErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_db_errors_total", Help: "Store operations that failed, by operation (answers such as not found or conflict are not failures; a cancelled request is not counted)."}, []string{"op"}),
		ConnectionsLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_ws_connections_limit", Help: "The most WebSocket connections this process accepts (-max-connections)."}),
		BackplaneUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_backplane_up", Help: "1 while the backplane's subscription is connected; 0 while degraded."}),
		AuditEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_audit_events_total", Help: "Audit log entries written by event."}, []string{"event"}),
		MessagesExpired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_messages_expired_total", Help: "Disappearing messages this replica deleted once expired."}),
		ExpiryBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_messages_expiry_backlog", Help: "Expired messages not yet deleted, as last seen by the replica holding the expiry lease (0 elsewhere)."}),
		Uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_attachment_uploads_total", Help: "Attachments stored, by kind (image, audio, video, file)."}, []string{"kind"}),
		UploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_attachment_upload_bytes_total", Help: "Plaintext bytes of the attachments stored."}),
		UploadRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_attachment_uploads_refused_total", Help: "Uploads refused, by reason (too_large, quota, image_too_large, voice_too_long, invalid_media, rate_limited, failed)."}, []string{"reason"}),
		Downloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_attachment_downloads_total", Help: "Attachment downloads served, by what (file, thumbnail) and range (full, partial)."}, []string{"what", "range"}),
		AttachmentsDeleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_attachments_deleted_total", Help: "Attachments whose blobs were deleted, by why (gone: their message, conversation or owner went; stale: never attached in time; removed: taken off a message by its uploader before sending)."}, []string{"why"}),
		AttachmentGCRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_attachment_gc_runs_total", Help: "Passes of the attachment collector (on the replica holding the expiry lease)."}),
		PushSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "parley_push_sent_total", Help: "Web Push notifications the push service accepted (2xx)."}),
		PushFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_failed_total", Help: "Web Push notifications not delivered to the push service, by reason (rate_limited and server_error after the last retry, network, rejected: another 4xx, encrypt, deadline: the batch's time ran out)."}, []string{"reason"}),
		PushRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_subscriptions_removed_total", Help: "Push subscriptions removed by the server, by reason (gone: the push service answered 404 or 410; vapid_rotated: made with a VAPID key no longer active)."}, []string{"reason"}),
		PushSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_push_skipped_total", Help: "Recipients of a new message not pushed, by reason (read, attentive: a visible page, muted, dnd, no_subscription)."}, []string{"reason"}),
		PushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "parley_push_latency_seconds", Help: "From a message stored to its push accepted by the push service (includes the grace period).",
			Buckets: []float64{0.5, 1, 2, 3, 4, 5, 7.5, 10, 15, 30, 60, 120}}),
	}
	reg.MustRegister(
		m.Uploads, m.UploadBytes, m.UploadRefused, m.Downloads, m.AttachmentsDeleted, m.AttachmentGCRuns,
		m.PushSent, m.PushFailed, m.PushRemoved, m.PushSkipped, m.PushLatency,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.Connections, m.ConnectionsTotal, m.Disconnects, m.MessagesSent, m.MessagesDelivered,
		m.DeliveryLatency, m.FramesDropped, m.AuthFailures, m.RateLimited, m.HTTPRequests,
		m.HTTPDuration, m.PasswordHashWait, m.KeyringSeals, m.KeyringRotationDue,
		m.KeyringReloads, m.KeyringRowsRemaining, m.KeyringLoaded, m.BackplaneErrors, m.BackplaneUp, m.AuditEvents,
		m.BackplaneRejected, m.DeliveryHeld, m.DeliveryDuplicates, m.DeliveryResyncs, m.DeliveryUnsynced, m.PositionCheck,
		m.MessagesExpired, m.ExpiryBacklog, m.Envelopes, m.MembersCache,
		m.SendDuration, m.SendFailures, m.DBErrors, m.ConnectionsLimit, m.DBQueryDuration, m.RedisCommandDuration,
	)
	return m
}
