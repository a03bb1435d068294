// Package token issues and verifies Parley's access tokens: 15-minute JWTs. Signing and verification go through the keyring
// (EdDSA, algorithm pinned, kid looked up in memory). There is no clock-skew
// leeway: a token expired by one second is refused.
package token

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TypeAccess is the "typ" claim of access tokens, so that no other JWT signed
// with the same keys can stand in for one.
const TypeAccess = "access"

const (
	issuer   = "parley"
	audience = "parley-api"
)

// ErrWrongType: a valid token of another type (e.g. a ticket used as an access token).
var ErrWrongType = errors.New("token: wrong token type")

// Keys signs and verifies JWTs (the keyring).
type Keys interface {
	SignJWT(claims jwt.Claims) (string, error)
	ParseJWT(token string, claims jwt.Claims, opts ...jwt.ParserOption) error
}

// Claims are Parley's JWT claims.
type Claims struct {
	jwt.RegisteredClaims
	Type      string `json:"typ"`
	SessionID string `json:"sid,omitempty"` // refresh-token family
	// IssuedMicro is the issue time in microseconds: "iat" has whole seconds
	// only, too coarse to compare with a logout-everywhere instant.
	IssuedMicro int64 `json:"ist"`
}

// Issued returns the precise issue time.
func (c *Claims) Issued() time.Time { return time.UnixMicro(c.IssuedMicro) }

// Issuer makes and checks tokens.
type Issuer struct {
	keys      Keys
	accessTTL time.Duration
	now       func() time.Time
}

// NewIssuer returns an Issuer. now may be nil (time.Now).
func NewIssuer(keys Keys, accessTTL time.Duration, now func() time.Time) *Issuer {
	if now == nil {
		now = time.Now
	}
	return &Issuer{keys: keys, accessTTL: accessTTL, now: now}
}

// AccessTTL is the access-token lifetime.
func (i *Issuer) AccessTTL() time.Duration { return i.accessTTL }

func (i *Issuer) issue(typ, userID, sessionID string, ttl time.Duration) (string, time.Time, error) {
	now := i.now()
	exp := now.Add(ttl)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", time.Time{}, fmt.Errorf("token: jti: %w", err)
	}
	c := Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   userID,
			Audience:  jwt.ClaimStrings{audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		Type:        typ,
		SessionID:   sessionID,
		IssuedMicro: now.UnixMicro(),
	}
	s, err := i.keys.SignJWT(&c)
	if err != nil {
		return "", time.Time{}, err
	}
	// NumericDate truncates to seconds: report the expiry the token really has.
	return s, c.ExpiresAt.Time, nil
}

// Access issues an access token.
func (i *Issuer) Access(userID, sessionID string) (string, time.Time, error) {
	return i.issue(TypeAccess, userID, sessionID, i.accessTTL)
}

// Verify checks signature, algorithm, kid, issuer, audience, expiry (no
// leeway), issue time and type.
func (i *Issuer) Verify(tok, typ string) (*Claims, error) {
	var c Claims
	err := i.keys.ParseJWT(tok, &c,
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(i.now),
	)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if c.Type != typ {
		return nil, ErrWrongType
	}
	if c.Subject == "" || c.ID == "" {
		return nil, errors.New("token: missing subject or id")
	}
	return &c, nil
}
