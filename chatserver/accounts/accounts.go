// Package accounts holds the account use cases: register, log in, refresh with
// rotation and reuse detection, log out (here or everywhere), change password,
// and authenticate an access token.
package accounts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/chatserver/apperr"
	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/ids"
	"github.com/parley-chat/parley/chatserver/metrics"
	"github.com/parley-chat/parley/chatserver/password"
	"github.com/parley-chat/parley/chatserver/protocol"
	"github.com/parley-chat/parley/chatserver/store"
	"github.com/parley-chat/parley/chatserver/token"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_.-]{3,32}$`)

// Meta describes the request an action comes from, for the audit log.
type Meta struct {
	IP        string
	UserAgent string
}

// Session is what a successful register, login, refresh or password change returns.
type Session struct {
	User             protocol.User // the signed-in user, with email
	AccessToken      string
	AccessExpiresAt  time.Time
	RefreshToken     string
	RefreshExpiresAt time.Time
	FamilyID         string
}

// Principal is an authenticated caller.
type Principal struct {
	UserID    string
	SessionID string
	ExpiresAt time.Time
	TokenID   string // jti
}

// Store is the persistence the account use cases need.
type Store interface {
	CreateUser(ctx context.Context, u *store.User) error
	UserByID(ctx context.Context, id string) (*store.User, error)
	UserByEmail(ctx context.Context, email string) (*store.User, error)
	UserByUsername(ctx context.Context, username string) (*store.User, error)
	SearchUsers(ctx context.Context, query string, limit int) ([]store.User, error)
	UpdatePassword(ctx context.Context, userID, passwordHash string, tokensValidAfter time.Time) error
	SetTokensValidAfter(ctx context.Context, userID string, t time.Time) error
	DeleteUser(ctx context.Context, userID string, at time.Time) error

	CreateRefreshToken(ctx context.Context, t *store.RefreshToken) error
	RefreshTokenByHash(ctx context.Context, tokenHash string) (*store.RefreshToken, error)
	RotateRefreshToken(ctx context.Context, oldID string, now time.Time, next *store.RefreshToken) error
	RevokeRefreshFamily(ctx context.Context, familyID string, now time.Time) (int64, error)
	SessionRevoked(ctx context.Context, familyID string) (bool, error)
	Credentials(ctx context.Context, userID, familyID string) (*store.Credentials, error)
	RevokeUserRefreshTokens(ctx context.Context, userID, exceptFamily string, now time.Time) (int64, error)
}

// Disconnector closes real-time connections on every replica (package
// delivery): every connection of a user except those of session
// exceptSession (when not empty), or those of one session.
type Disconnector interface {
	Disconnect(ctx context.Context, userID, exceptSession, reason string)
	DisconnectSession(ctx context.Context, userID, session, reason string)
}

// Service implements the account use cases.
type Service struct {
	store      Store
	hasher     *password.Hasher
	tokens     *token.Issuer
	audit      *audit.Log
	metrics    *metrics.Metrics
	log        *slog.Logger
	refreshTTL time.Duration
	now        func() time.Time
	sockets    Disconnector
}

// Config wires a Service.
type Config struct {
	Store      Store
	Hasher     *password.Hasher
	Tokens     *token.Issuer
	Audit      *audit.Log
	Sockets    Disconnector
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	RefreshTTL time.Duration
	Now        func() time.Time // nil: time.Now
}

// New returns a Service.
func New(c Config) *Service {
	now := c.Now
	if now == nil {
		now = time.Now
	}
	return &Service{store: c.Store, hasher: c.Hasher, tokens: c.Tokens, audit: c.Audit, metrics: metrics.OrNew(c.Metrics),
		log: c.Logger, refreshTTL: c.RefreshTTL, now: now, sockets: c.Sockets}
}

// SelfView is a user as they see themself (with email).
func SelfView(u *store.User) protocol.User {
	return protocol.User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Email: u.Email, Avatar: u.Avatar.Version}
}

// PublicView is a user as others see them.
func PublicView(u *store.User) protocol.User {
	return protocol.User{ID: u.ID, Username: u.Username, DisplayName: u.DisplayName, Avatar: u.Avatar.Version}
}

// NormalizeEmail trims and lower-cases an email address.
func NormalizeEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// NormalizeLogin is the form of a login name used for lookups and rate limits.
func NormalizeLogin(l string) string { return strings.ToLower(strings.TrimSpace(l)) }

// RegisterInput is a registration request.
type RegisterInput struct {
	Username    string
	Email       string
	Password    string
	DisplayName string
}

func validateRegistration(in *RegisterInput) error {
	in.Username = strings.ToLower(strings.TrimSpace(in.Username))
	in.Email = NormalizeEmail(in.Email)
	if !usernameRE.MatchString(in.Username) {
		return apperr.OnField(apperr.InvalidRequest, "username", "username must be 3 to 32 characters of a-z, 0-9, _ . -")
	}
	if len(in.Email) > 254 {
		return apperr.OnField(apperr.InvalidRequest, "email", "email is too long")
	}
	if a, err := mail.ParseAddress(in.Email); err != nil || a.Address != in.Email || !strings.Contains(in.Email, ".") {
		return apperr.OnField(apperr.InvalidRequest, "email", "email is not a valid address")
	}
	name, err := NormalizeDisplayName(in.DisplayName)
	if err != nil {
		return err
	}
	if name == "" {
		name = in.Username
	}
	in.DisplayName = name
	if err := password.Check(in.Password); err != nil {
		return apperr.OnField(apperr.WeakPassword, "password", "%s", err.Error())
	}
	return nil
}

// MaxDisplayNameChars bounds a display name, in characters.
const MaxDisplayNameChars = 64

// NormalizeDisplayName trims a display name and checks it: at most
// MaxDisplayNameChars characters, no control characters (they would break
// one-line layouts and the search index's separator). It returns "" for a
// blank name; callers decide what that means (registration: the username).
func NormalizeDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > MaxDisplayNameChars {
		return "", apperr.OnField(apperr.InvalidRequest, "displayName", "display name must be at most %d characters", MaxDisplayNameChars)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", apperr.OnField(apperr.InvalidRequest, "displayName", "display name must not contain control characters")
	}
	return name, nil
}

// taken tells which of username and email an existing account already has
// (username first), so registration can name the field; nil when neither.
func (s *Service) taken(ctx context.Context, username, email string) error {
	if _, err := s.store.UserByUsername(ctx, username); err == nil {
		return apperr.OnField(apperr.Conflict, "username", "That username is already taken.")
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("accounts: register: %w", err)
	}
	if _, err := s.store.UserByEmail(ctx, email); err == nil {
		return apperr.OnField(apperr.Conflict, "email", "An account with that email already exists.")
	} else if !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("accounts: register: %w", err)
	}
	return nil
}

// Register creates an account and its first session.
func (s *Service) Register(ctx context.Context, in RegisterInput, meta Meta) (*Session, error) {
	if err := validateRegistration(&in); err != nil {
		return nil, err
	}
	// Checked before hashing (which is slow on purpose) to name the taken
	// field; the unique constraints still decide a race, below.
	if err := s.taken(ctx, in.Username, in.Email); err != nil {
		return nil, err
	}
	hash, err := s.hasher.Hash(ctx, in.Password)
	if err != nil {
		return nil, fmt.Errorf("accounts: register: %w", err)
	}
	u := &store.User{ID: ids.New("u"), Username: in.Username, Email: in.Email, DisplayName: in.DisplayName,
		PasswordHash: hash, CreatedAt: s.now().UTC()}
	if err := s.store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			// Someone registered the same name or email meanwhile.
			if terr := s.taken(ctx, in.Username, in.Email); terr != nil {
				return nil, terr
			}
			return nil, apperr.New(apperr.Conflict, "that username or email is already in use")
		}
		return nil, fmt.Errorf("accounts: register: %w", err)
	}
	_ = s.audit.Record(ctx, audit.Register, u.ID, u.ID, meta.IP, nil)
	return s.newSession(ctx, u, ids.New("f"), "")
}

// Login checks a username or email and password and starts a session. Unknown
// accounts and wrong passwords get the same error after the same work.
func (s *Service) Login(ctx context.Context, login, pw string, meta Meta) (*Session, error) {
	login = NormalizeLogin(login)
	var u *store.User
	var err error
	if strings.Contains(login, "@") {
		u, err = s.store.UserByEmail(ctx, login)
	} else {
		u, err = s.store.UserByUsername(ctx, login)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("accounts: login: %w", err)
	}
	if u == nil {
		s.hasher.VerifyDummy(ctx, pw)
		s.failed(ctx, "", login, meta, "unknown_account")
		return nil, apperr.New(apperr.InvalidCredentials, "wrong username, email or password")
	}
	ok, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("accounts: login: %w", err)
	}
	if !ok {
		s.failed(ctx, u.ID, login, meta, "wrong_password")
		return nil, apperr.New(apperr.InvalidCredentials, "wrong username, email or password")
	}
	if s.hasher.NeedsRehash(u.PasswordHash) {
		if h, err := s.hasher.Hash(ctx, pw); err == nil {
			if err := s.store.UpdatePassword(ctx, u.ID, h, u.TokensValidAfter); err != nil {
				s.log.Warn("password rehash failed", "user", u.ID, "err", err)
			}
		}
	}
	_ = s.audit.Record(ctx, audit.LoginOK, u.ID, u.ID, meta.IP, nil)
	return s.newSession(ctx, u, ids.New("f"), "")
}

func (s *Service) failed(ctx context.Context, userID, login string, meta Meta, reason string) {
	s.metrics.AuthFailures.WithLabelValues(reason).Inc()
	_ = s.audit.Record(ctx, audit.LoginFailed, userID, login, meta.IP, map[string]any{"reason": reason})
}

func hashToken(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func (s *Service) newSession(ctx context.Context, u *store.User, familyID, parentID string) (*Session, error) {
	rt := s.refreshToken(u.ID, familyID, parentID)
	if err := s.store.CreateRefreshToken(ctx, &rt.stored); err != nil {
		return nil, fmt.Errorf("accounts: store refresh token: %w", err)
	}
	return s.session(u, rt)
}

type issued struct {
	secret string
	stored store.RefreshToken
}

func (s *Service) refreshToken(userID, familyID, parentID string) issued {
	secret := ids.Secret()
	now := s.now().UTC()
	return issued{secret: secret, stored: store.RefreshToken{ID: ids.New("r"), UserID: userID, FamilyID: familyID,
		ParentID: parentID, TokenHash: hashToken(secret), CreatedAt: now, ExpiresAt: now.Add(s.refreshTTL)}}
}

func (s *Service) session(u *store.User, rt issued) (*Session, error) {
	at, exp, err := s.tokens.Access(u.ID, rt.stored.FamilyID)
	if err != nil {
		return nil, fmt.Errorf("accounts: access token: %w", err)
	}
	return &Session{User: SelfView(u), AccessToken: at, AccessExpiresAt: exp, RefreshToken: rt.secret,
		RefreshExpiresAt: rt.stored.ExpiresAt, FamilyID: rt.stored.FamilyID}, nil
}

// Refresh spends a refresh token and returns a new session in the same family.
// A token that was already spent revokes the whole family: someone holds a copy.
func (s *Service) Refresh(ctx context.Context, secret string, meta Meta) (*Session, error) {
	invalid := apperr.New(apperr.InvalidRefreshToken, "your session has ended; sign in again")
	if secret == "" {
		return nil, invalid
	}
	old, err := s.store.RefreshTokenByHash(ctx, hashToken(secret))
	if errors.Is(err, store.ErrNotFound) {
		s.countFailure("refresh_unknown")
		return nil, invalid
	}
	if err != nil {
		return nil, fmt.Errorf("accounts: refresh: %w", err)
	}
	now := s.now().UTC()
	if old.RevokedAt != nil {
		s.countFailure("refresh_revoked")
		return nil, invalid
	}
	if old.UsedAt != nil {
		return nil, s.reuse(ctx, old, meta)
	}
	if !now.Before(old.ExpiresAt) {
		s.countFailure("refresh_expired")
		return nil, invalid
	}
	u, err := s.store.UserByID(ctx, old.UserID)
	if err != nil {
		return nil, fmt.Errorf("accounts: refresh: %w", err)
	}
	next := s.refreshToken(u.ID, old.FamilyID, old.ID)
	if err := s.store.RotateRefreshToken(ctx, old.ID, now, &next.stored); err != nil {
		if errors.Is(err, store.ErrTokenSpent) {
			return nil, s.reuse(ctx, old, meta) // lost a race with another use of the same token
		}
		return nil, fmt.Errorf("accounts: refresh: %w", err)
	}
	_ = s.audit.Record(ctx, audit.Refresh, u.ID, old.FamilyID, meta.IP, nil)
	return s.session(u, next)
}

func (s *Service) reuse(ctx context.Context, old *store.RefreshToken, meta Meta) error {
	n, err := s.store.RevokeRefreshFamily(ctx, old.FamilyID, s.now().UTC())
	if err != nil {
		return fmt.Errorf("accounts: revoke family: %w", err)
	}
	s.countFailure("refresh_reuse")
	s.log.Warn("refresh token reuse detected; family revoked", "user", old.UserID, "family", old.FamilyID, "revoked", n)
	_ = s.audit.Record(ctx, audit.RefreshReuse, old.UserID, old.FamilyID, meta.IP, map[string]any{"revoked": n})
	s.sockets.DisconnectSession(ctx, old.UserID, old.FamilyID, "this sign-in was ended")
	return apperr.New(apperr.TokenReused, "this sign-in was used from somewhere else and has been ended for your safety; sign in again")
}

func (s *Service) countFailure(reason string) {
	s.metrics.AuthFailures.WithLabelValues(reason).Inc()
}

// Logout revokes the family of a refresh token. Unknown tokens are ignored:
// logging out always succeeds.
func (s *Service) Logout(ctx context.Context, secret string, meta Meta) error {
	if secret == "" {
		return nil
	}
	rt, err := s.store.RefreshTokenByHash(ctx, hashToken(secret))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("accounts: logout: %w", err)
	}
	if _, err := s.store.RevokeRefreshFamily(ctx, rt.FamilyID, s.now().UTC()); err != nil {
		return fmt.Errorf("accounts: logout: %w", err)
	}
	_ = s.audit.Record(ctx, audit.Logout, rt.UserID, rt.FamilyID, meta.IP, nil)
	// Its access tokens are refused from now on (SessionRevoked), and its
	// sockets close, on every replica.
	s.sockets.DisconnectSession(ctx, rt.UserID, rt.FamilyID, "signed out")
	return nil
}

// LogoutAll ends every session of the user: refresh tokens revoked, access
// tokens issued before now refused, real-time connections closed.
func (s *Service) LogoutAll(ctx context.Context, userID string, meta Meta) error {
	if err := s.revokeAll(ctx, userID, s.now().UTC()); err != nil {
		return err
	}
	_ = s.audit.Record(ctx, audit.LogoutAll, userID, userID, meta.IP, nil)
	s.sockets.Disconnect(ctx, userID, "", "logged out everywhere")
	return nil
}

func (s *Service) revokeAll(ctx context.Context, userID string, now time.Time) error {
	if err := s.store.SetTokensValidAfter(ctx, userID, now); err != nil {
		return fmt.Errorf("accounts: logout everywhere: %w", err)
	}
	if _, err := s.store.RevokeUserRefreshTokens(ctx, userID, "", now); err != nil {
		return fmt.Errorf("accounts: logout everywhere: %w", err)
	}
	return nil
}

// DeleteAccount checks the password and deletes the account: the row is
// anonymised (username and email free again, no password; store.DeleteUser),
// its refresh tokens are deleted and its access tokens refused at once,
// and its real-time connections close on every replica. Its content is
// removed afterwards by messaging.Service.PurgeAccount (docs/api.md,
// "Delete my account"), once no session can add more.
func (s *Service) DeleteAccount(ctx context.Context, userID, pw string, meta Meta) error {
	u, err := s.store.UserByID(ctx, userID)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.Unauthorized, "sign in again")
	}
	if err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	if u.DeletedAt != nil {
		return apperr.New(apperr.Unauthorized, "sign in again")
	}
	ok, err := s.hasher.Verify(ctx, pw, u.PasswordHash)
	if err != nil {
		return fmt.Errorf("accounts: delete account: %w", err)
	}
	if !ok {
		s.countFailure("wrong_password")
		_ = s.audit.Record(ctx, audit.LoginFailed, userID, userID, meta.IP, map[string]any{"reason": "wrong_password", "action": "delete_account"})
		return apperr.OnField(apperr.InvalidCredentials, "password", "the password is wrong")
	}
	if err := s.store.DeleteUser(ctx, userID, s.now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return apperr.New(apperr.Unauthorized, "sign in again") // deleted by a racing request
		}
		return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	_ = s.audit.Record(ctx, audit.AccountDeleted, userID, userID, meta.IP, nil)
	s.sockets.Disconnect(ctx, userID, "", "account deleted")
	return nil
}

// ChangePassword checks the current password, sets the new one, ends every
// other session and returns a fresh one for the caller. The caller's own
// sockets (session sessionID) stay open: the client renews them in-band with
// the new access token, and closing them would race the answer that carries it.
func (s *Service) ChangePassword(ctx context.Context, userID, sessionID, current, next string, meta Meta) (*Session, error) {
	u, err := s.store.UserByID(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("accounts: change password: %w", err)
	}
	ok, err := s.hasher.Verify(ctx, current, u.PasswordHash)
	if err != nil {
		return nil, fmt.Errorf("accounts: change password: %w", err)
	}
	if !ok {
		s.countFailure("wrong_password")
		return nil, apperr.OnField(apperr.InvalidCredentials, "currentPassword", "the current password is wrong")
	}
	if err := password.Check(next); err != nil {
		return nil, apperr.OnField(apperr.WeakPassword, "newPassword", "%s", err.Error())
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return nil, fmt.Errorf("accounts: change password: %w", err)
	}
	now := s.now().UTC()
	if err := s.store.UpdatePassword(ctx, userID, hash, now); err != nil {
		return nil, fmt.Errorf("accounts: change password: %w", err)
	}
	if _, err := s.store.RevokeUserRefreshTokens(ctx, userID, "", now); err != nil {
		return nil, fmt.Errorf("accounts: change password: %w", err)
	}
	u.PasswordHash, u.TokensValidAfter = hash, now
	_ = s.audit.Record(ctx, audit.PasswordChanged, userID, userID, meta.IP, nil)
	s.sockets.Disconnect(ctx, userID, sessionID, "password changed")
	return s.newSession(ctx, u, ids.New("f"), "")
}

// Authenticate verifies an access token and that its user still accepts it.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (*Principal, error) {
	return s.authenticate(ctx, accessToken, token.TypeAccess)
}

// StillValid reports whether credentials issued to userID's session at
// issued are still accepted (the user exists, has not logged out everywhere
// since, and the session has not ended).
func (s *Service) StillValid(ctx context.Context, userID, session string, issued time.Time) error {
	c, err := s.store.Credentials(ctx, userID, session)
	if errors.Is(err, store.ErrNotFound) {
		return apperr.New(apperr.Unauthorized, "sign in again")
	}
	if err != nil {
		return apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	if c.Deleted || issued.Before(c.TokensValidAfter) {
		s.countFailure("ticket_revoked")
		return apperr.New(apperr.Unauthorized, "sign in again")
	}
	if c.SessionEnded {
		s.countFailure("ticket_session_ended")
		return apperr.New(apperr.Unauthorized, "sign in again")
	}
	return nil
}

// authenticate checks a token's signature, then the user and the login in
// the database on every use (one round trip: store.Credentials), so a logout
// or a password change holds on every replica at once.
func (s *Service) authenticate(ctx context.Context, tok, typ string) (*Principal, error) {
	unauth := apperr.New(apperr.Unauthorized, "sign in again")
	c, err := s.tokens.Verify(tok, typ)
	if err != nil {
		s.countFailure(typ + "_invalid")
		unauth.Cause = err
		return nil, unauth
	}
	// One round trip: the user's row and the login's state together.
	cr, err := s.store.Credentials(ctx, c.Subject, c.SessionID)
	if errors.Is(err, store.ErrNotFound) {
		s.countFailure(typ + "_user_gone")
		return nil, unauth
	}
	if err != nil {
		return nil, apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	if cr.Deleted {
		s.countFailure(typ + "_user_gone")
		return nil, unauth
	}
	if c.Issued().Before(cr.TokensValidAfter) {
		s.countFailure(typ + "_revoked")
		return nil, unauth
	}
	if cr.SessionEnded {
		s.countFailure(typ + "_session_ended")
		return nil, unauth
	}
	return &Principal{UserID: c.Subject, SessionID: c.SessionID, ExpiresAt: c.ExpiresAt.Time, TokenID: c.ID}, nil
}

// Me returns the user as they see themself.
func (s *Service) Me(ctx context.Context, id string) (protocol.User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return protocol.User{}, apperr.New(apperr.NotFound, "no such user")
	}
	if err != nil {
		return protocol.User{}, apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	return SelfView(u), nil
}

// MaxSearchChars bounds a people-search query, in characters.
const MaxSearchChars = 100

// Search finds other people by username or display name (substring,
// case-insensitive, ranked: see store.Store.SearchUsers) or exact email;
// a leading "@" is ignored ("@bob" is username bob). Never the searcher:
// one cannot start a conversation with oneself.
func (s *Service) Search(ctx context.Context, selfID, q string, limit int) ([]protocol.User, error) {
	q = store.FoldName(strings.TrimPrefix(strings.TrimSpace(q), "@"))
	if q == "" {
		return nil, apperr.OnField(apperr.InvalidRequest, "q", "q is required")
	}
	if utf8.RuneCountInString(q) > MaxSearchChars {
		return nil, apperr.OnField(apperr.InvalidRequest, "q", "q must be at most %d characters", MaxSearchChars)
	}
	if !utf8.ValidString(q) || strings.IndexFunc(q, unicode.IsControl) >= 0 {
		return nil, apperr.OnField(apperr.InvalidRequest, "q", "q must be valid UTF-8 without control characters")
	}
	if limit < 1 || limit > 50 {
		limit = 20
	}
	found, err := s.store.SearchUsers(ctx, q, limit+1)
	if err != nil {
		return nil, apperr.Wrap(apperr.Unavailable, err, "the service is temporarily unavailable")
	}
	out := make([]protocol.User, 0, len(found))
	for i := range found {
		if found[i].ID != selfID && len(out) < limit {
			out = append(out, PublicView(&found[i]))
		}
	}
	return out, nil
}
