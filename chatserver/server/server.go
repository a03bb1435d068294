// Package server assembles a chat server from its configuration: store,
// keyring, backplane, presence, services, hub and HTTP API, and runs it with a
// graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/parley-chat/parley/chatserver/accounts"
	"github.com/parley-chat/parley/chatserver/attachments"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/avatars"
	"github.com/parley-chat/parley/chatserver/backplane"
	"github.com/parley-chat/parley/chatserver/blob"
	"github.com/parley-chat/parley/chatserver/blob/fsblob"
	"github.com/parley-chat/parley/chatserver/blob/s3blob"
	"github.com/parley-chat/parley/chatserver/circuit"
	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/delivery"
	"github.com/parley-chat/parley/chatserver/faults"
	"github.com/parley-chat/parley/chatserver/httpapi"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/keyring"
	"github.com/parley-chat/parley/chatserver/messaging"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/password"
	"github.com/parley-chat/parley/chatserver/presence"
	"github.com/parley-chat/parley/chatserver/push"
	"github.com/parley-chat/parley/chatserver/ratelimit"
	"github.com/parley-chat/parley/chatserver/realtime"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
	"github.com/parley-chat/parley/chatserver/token"
)

// Server is one running chat server.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *sqlstore.DB
	keys     *keyring.Keyring
	bp       backplane.Backplane
	redis    redis.UniversalClient
	hub      *realtime.Hub
	reseal   *messaging.Resealer
	msgs     *messaging.Service
	push     *push.Service
	metrics  *metrics.Metrics
	http     *http.Server
	listener net.Listener
	// metricsHTTP serves /metrics alone when -metrics-addr is set.
	metricsHTTP     *http.Server
	metricsListener net.Listener
	stop            context.CancelFunc
	conns           connTracker
	redisProbe      func(context.Context) // nil without Redis
	blobs           blob.Store
	closeBlobs      func() error
}

// connTracker knows the state of the API listener's connections, so a
// shutdown can close the quiet ones at once.
type connTracker struct {
	mu    sync.Mutex
	state map[net.Conn]http.ConnState
}

func (t *connTracker) track(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == nil {
		t.state = map[net.Conn]http.ConnState{}
	}
	switch st {
	case http.StateNew, http.StateIdle, http.StateActive:
		t.state[c] = st
	default: // hijacked (WebSocket: the hub's) or closed
		delete(t.state, c)
	}
}

// closeQuiet closes connections with no request in flight.
func (t *connTracker) closeQuiet() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, st := range t.state {
		if st != http.StateActive {
			_ = c.Close()
			delete(t.state, c)
		}
	}
}

// Options carry what is not configuration: the web client files and a clock.
type Options struct {
	Web fs.FS
	Now func() time.Time // nil: time.Now
}

// New builds a server and binds its listener; Run serves.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, log: log, metrics: metrics.New()}
	ok := false
	defer func() {
		if !ok {
			s.closeResources()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: data folder: %w", err)
	}
	db, err := sqlstore.Open(ctx, cfg.DatabaseURL, sqlstore.Options{MaxOpenConns: cfg.DBMaxConns, Logger: log,
		OnError: func(op string) { s.metrics.DBErrors.WithLabelValues(op).Inc() },
		Tracer:  s.metrics.PgxTracer()})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.store = db

	kopts := keyring.Options{Logger: log, Metrics: s.metrics, Reserver: db}
	if cfg.GenerateKeyring {
		s.keys, err = keyring.LoadOrGenerate(cfg.KeyringDir, kopts)
	} else {
		s.keys, err = keyring.Load(cfg.KeyringDir, kopts)
	}
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}

	hasher, err := password.NewHasher(cfg.PasswordWorkers, password.OWASP, s.metrics)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	auditLog := audit.New(db, log, s.metrics)
	tokens := token.NewIssuer(s.keys, cfg.AccessTokenTTL, opts.Now)

	// Shared state: in this process, or in Redis for many replicas.
	var (
		tracker    presence.Tracker
		tickets    realtime.Tickets
		revoker    realtime.Revoker  // records revocations where tickets are redeemed (nil: no Redis)
		loginLimit ratelimit.Limiter = ratelimit.NewMemory(cfg.RateLogin, opts.Now)
		msgLimit   ratelimit.Limiter = ratelimit.NewMemory(cfg.RateMessages, opts.Now)
		claimLimit ratelimit.Limiter = ratelimit.NewMemory(cfg.RateKeyPackageClaims, opts.Now)
		degradable                   = map[string]httpapi.Checker{}
	)
	if cfg.UsesRedis() {
		rc, err := redisClient(cfg)
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		rc.AddHook(s.metrics.RedisHook())
		s.redis = rc
		// One breaker for everything that uses this Redis: once a call
		// fails, limits, tickets and publishes go local at once instead of
		// each paying a failed round trip, and one call at a time probes.
		redisDown := circuit.New(redisCooldown, nil, func(open bool) {
			if open {
				log.Warn("Redis failing: rate limits and tickets per replica, live delivery on this replica only (other replicas by positioning)")
			} else {
				log.Info("Redis answers again")
			}
		})
		onErr := func(err error) { log.Debug("shared rate limiter unavailable; limiting per replica", "err", err) }
		loginLimit = ratelimit.Fallback{Primary: ratelimit.NewRedis(rc, "login", cfg.RateLogin), Secondary: loginLimit, OnError: onErr, Breaker: redisDown}
		msgLimit = ratelimit.Fallback{Primary: ratelimit.NewRedis(rc, "msg", cfg.RateMessages), Secondary: msgLimit, OnError: onErr, Breaker: redisDown}
		claimLimit = ratelimit.Fallback{Primary: ratelimit.NewRedis(rc, "kpclaim", cfg.RateKeyPackageClaims), Secondary: claimLimit, OnError: onErr, Breaker: redisDown}
		tracker = presence.NewRedis(rc, presenceTTL, opts.Now)
		redisTickets := realtime.NewRedisTickets(rc, s.keys, s.metrics)
		tickets = realtime.FallbackTickets{Primary: redisTickets, Secondary: realtime.NewMemoryTickets(), Breaker: redisDown}
		revoker = redisTickets
		rbp := backplane.NewRedis(rc, backplane.RedisOptions{Logger: log, Metrics: s.metrics, Breaker: redisDown})
		s.bp = rbp
		// Redis counts as back when it answers and this replica's
		// subscription is up again, so an ack given after that means the
		// message reaches this replica's own subscribers live.
		s.redisProbe = func(ctx context.Context) {
			redisDown.Probe(ctx, redisCooldown/2, func(ctx context.Context) error {
				if err := rc.Ping(ctx).Err(); err != nil {
					return err
				}
				if !rbp.SubscriptionUp() {
					return errors.New("subscription not up yet")
				}
				return nil
			})
		}
		degradable["backplane"] = s.bp.Healthy
	} else {
		tracker = presence.NewMemory(opts.Now)
		tickets = realtime.NewMemoryTickets()
		s.bp = backplane.NewMemory()
	}

	// Use cases emit events to the publisher; the hub, the backplane's
	// handler, hands them to connections.
	// Envelopes are tagged with the keyring: Redis is not trusted.
	codec := delivery.NewCodec(s.keys, opts.Now)
	codec.SetSharedMin(cfg.SharedFanoutMin)
	events := delivery.NewPublisher(s.bp, codec, log, s.metrics)
	pres := presence.NewService(tracker, db, events, log, opts.Now)
	var sockets accounts.Disconnector = events
	if revoker != nil {
		// A ticket is then redeemed without a database read (issue 15).
		sockets = realtime.RevokingDisconnector{Next: events, Tickets: revoker, Log: log, Now: opts.Now}
	}
	acc := accounts.New(accounts.Config{Store: db, Hasher: hasher, Tokens: tokens, Audit: auditLog, Sockets: sockets,
		Metrics: s.metrics, Logger: log, RefreshTTL: cfg.RefreshTokenTTL, Now: opts.Now})
	if err := s.openBlobs(ctx); err != nil {
		return nil, err
	}
	atts := attachments.New(attachments.Config{Store: db, Blobs: s.blobs, Keys: s.keys, Limiter: msgLimit,
		Metrics: s.metrics, Audit: auditLog, Logger: log, Now: opts.Now, Limits: attachments.Limits{
			MaxBytes: cfg.MaxAttachmentBytes, Quota: cfg.AttachmentQuota, MaxPixels: cfg.MaxImagePixels,
			MaxVoice: cfg.MaxVoiceLength, UploadExpiry: cfg.UploadExpiry}})
	avs := avatars.New(avatars.Config{Store: db, Blobs: s.blobs, Keys: s.keys, Limiter: msgLimit, Audit: auditLog,
		Logger: log, Now: opts.Now, MaxBytes: min(avatars.DefaultMaxBytes, cfg.MaxAttachmentBytes), MaxPixels: cfg.MaxImagePixels})
	s.push = push.New(push.Config{Store: db, Keys: s.keys, Presence: pres, Metrics: s.metrics, Logger: log,
		Holder: ids.New("r"), Grace: cfg.PushGrace, TTL: cfg.PushTTL, Poll: min(max(cfg.PushGrace/2, 50*time.Millisecond), push.DefaultPoll),
		Contact: cfg.PushContact, AllowLoopbackHTTP: cfg.PushAllowLoopback, Now: opts.Now})
	msgs := messaging.New(messaging.Config{Store: db, Keys: s.keys, Events: events, Presence: pres, Attachments: atts, Avatars: avs,
		Audit: auditLog, MessageLimit: msgLimit, Metrics: s.metrics,
		Logger: log, MaxBodyChars: cfg.MaxMessageChars, MaxGroupMembers: cfg.MaxGroupMembers, Now: opts.Now, Faults: faults.FromEnv(os.Getenv),
		EditWindow: cfg.EditWindow, Push: s.push,
		MaxDevices: cfg.MaxDevices, MaxKeyPackages: cfg.MaxKeyPackages, ClaimLimit: claimLimit})
	s.push.SetTexts(msgs)
	s.reseal = messaging.NewResealer(db, s.keys, s.metrics, log).WithAttachments(atts).WithAvatars(avs)
	s.msgs = msgs
	s.hub = realtime.NewHub(realtime.Config{
		Options: realtime.Options{AllowedOrigins: cfg.AllowedOrigins, MaxConnections: cfg.MaxConnections,
			ReadLimit: int64(cfg.MaxFrameBytes), DeliveryHold: cfg.DeliveryHold},
		Logger: log, Metrics: s.metrics, Accounts: acc, Messages: msgs, Presence: pres,
		Tickets: tickets, Backplane: s.bp, Heads: db, Codec: codec,
	})
	if err := s.bp.Start(s.hub); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.hub.SubscribeShared(ctx)

	api := httpapi.New(httpapi.Config{Accounts: acc, Messages: msgs, Hub: s.hub, Metrics: s.metrics, Logger: log,
		LoginLimit: loginLimit, TrustedProxies: cfg.TrustedProxies, Web: opts.Web, RefreshTTL: cfg.RefreshTokenTTL,
		Ready: map[string]httpapi.Checker{"database": db.Ping}, Degradable: degradable,
		SeparateMetrics: cfg.MetricsAddr != "", Keyringz: keyringzHandler(s.keys), MaxBody: int64(cfg.MaxFrameBytes),
		Attachments: atts, Avatars: avs, Push: s.push})
	s.http = &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10, ConnState: s.conns.track,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}

	s.listener, err = net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("server: listen on %s: %w", cfg.Addr, err)
	}
	if cfg.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", api.MetricsHandler())
		mux.Handle("GET "+KeyringzPath, keyringzHandler(s.keys))
		s.metricsHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		s.metricsListener, err = net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("server: listen on %s: %w", cfg.MetricsAddr, err)
		}
	}
	ok = true
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// MetricsAddr is the address of the separate metrics listener, or "".
func (s *Server) MetricsAddr() string {
	if s.metricsListener == nil {
		return ""
	}
	return s.metricsListener.Addr().String()
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// Store returns the server's store (for tests and tools).
func (s *Server) Store() *sqlstore.DB { return s.store }

// Run serves until ctx ends, then shuts down gracefully: /readyz turns red,
// new connections are refused, WebSocket clients are told to reconnect (1001),
// in-flight requests finish, all within the shutdown timeout.
func (s *Server) Run(ctx context.Context) error {
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	defer cancel()
	go s.keys.Watch(bg, s.cfg.KeyringReload)
	go s.hub.Heartbeat(bg, presenceTTL/3)
	go s.hub.Position(bg, s.cfg.PositionInterval)
	if s.redisProbe != nil {
		go s.redisProbe(bg)
	}
	go s.reseal.Run(bg, s.cfg.ResealInterval)
	// Every replica runs it; the outbox's leases give each push to one.
	go s.push.Run(bg)
	if s.cfg.ExpiryInterval > 0 {
		// Every replica runs it; the lease in the database lets one work.
		go s.msgs.RunExpiry(bg, ids.New("r"), s.cfg.ExpiryInterval)
	}

	errc := make(chan error, 1)
	go func() {
		var err error
		if s.cfg.TLSCert != "" {
			err = s.http.ServeTLS(s.listener, s.cfg.TLSCert, s.cfg.TLSKey)
		} else {
			err = s.http.Serve(s.listener)
		}
		errc <- err
	}()
	if s.metricsHTTP != nil {
		go func() {
			if err := s.metricsHTTP.Serve(s.metricsListener); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics listener failed", "err", err)
			}
		}()
	}
	s.log.Info("listening", "addr", s.Addr(), "database", dbKind(s.cfg.DatabaseURL), "redis", s.cfg.UsesRedis(),
		"tls", s.cfg.TLSCert != "")

	select {
	case err := <-errc:
		s.closeResources()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout)
	sctx, scancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer scancel()
	s.hub.Shutdown(sctx)
	// net/http's Shutdown waits up to 5 s for connections that never sent a
	// request; they have nothing in flight, so close them (and idle ones) now.
	s.conns.closeQuiet()
	err := s.http.Shutdown(sctx)
	if err != nil {
		_ = s.http.Close() // the budget is spent: whatever is left is cut
	}
	if s.metricsHTTP != nil {
		_ = s.metricsHTTP.Shutdown(sctx)
	}
	s.closeResources()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// openBlobs opens the attachments' blob store: a folder, or an S3 bucket
// (checked at start, so a wrong endpoint or bucket stops the server with a
// clear message rather than failing the first upload).
func (s *Server) openBlobs(ctx context.Context) error {
	switch s.cfg.AttachmentsStore {
	case "s3":
		c := s3blob.ConfigFromEnv("PARLEY_S3") // credentials from the environment only
		c.Endpoint, c.Bucket, c.Region, c.PathStyle = s.cfg.S3.Endpoint, s.cfg.S3.Bucket, s.cfg.S3.Region, s.cfg.S3.PathStyle
		st, err := s3blob.New(c)
		if err != nil {
			return fmt.Errorf("server: attachments: %w", err)
		}
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := st.Check(cctx); err != nil {
			return fmt.Errorf("server: attachments: S3 bucket %s at %s: %w", c.Bucket, c.Endpoint, err)
		}
		s.blobs = st
		s.log.Info("attachments in S3", "s3", c)
	default:
		st, err := fsblob.Open(s.cfg.AttachmentsDir)
		if err != nil {
			return fmt.Errorf("server: attachments: %w", err)
		}
		s.blobs, s.closeBlobs = st, st.Close
		if s.cfg.UsesRedis() {
			// Several replicas: each must see the same folder.
			s.log.Warn("attachments in a folder with several replicas: it must be a volume they all share (ReadWriteMany), or use -attachments-store s3",
				"dir", s.cfg.AttachmentsDir)
		}
	}
	return nil
}

// Blobs returns the attachments' blob store (for tests).
func (s *Server) Blobs() blob.Store { return s.blobs }

func (s *Server) closeResources() {
	if s.closeBlobs != nil {
		_ = s.closeBlobs()
	}
	if s.bp != nil {
		_ = s.bp.Close()
	}
	if s.redis != nil {
		_ = s.redis.Close()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.listener != nil {
		_ = s.listener.Close()
	}
	if s.metricsListener != nil {
		_ = s.metricsListener.Close()
	}
}

// redisCooldown is how long Redis is skipped after a failed call before one
// call probes it again.
const redisCooldown = time.Second

// presenceTTL is how long a connection counts as online without a heartbeat:
// a crashed replica's users read as offline within it.
const presenceTTL = 45 * time.Second

func redisClient(cfg *config.Config) (redis.UniversalClient, error) {
	if cfg.RedisURL != "" {
		o, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		if cfg.RedisPassword != "" {
			o.Password = cfg.RedisPassword
		}
		return redis.NewClient(o), nil
	}
	o := &redis.UniversalOptions{Addrs: cfg.RedisAddrs, MasterName: cfg.RedisMaster, Password: cfg.RedisPassword}
	if cfg.RedisTLS {
		o.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// One address: a single server; a master name: Sentinel; several: Cluster.
	return redis.NewUniversalClient(o), nil
}

func dbKind(url string) string {
	if len(url) >= 7 && url[:7] == "sqlite:" {
		return "sqlite"
	}
	return "postgres"
}
