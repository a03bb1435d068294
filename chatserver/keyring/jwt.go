package keyring

import (
	"errors"
	"fmt"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// SignJWT signs claims with the active JWT key (EdDSA) and names it in the
// header's kid.
func (k *Keyring) SignJWT(claims jwt.Claims) (string, error) {
	jk := k.cur.Load().jwtActive
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = jk.id
	s, err := t.SignedString(jk.priv)
	if err != nil {
		return "", fmt.Errorf("keyring: sign: %w", err)
	}
	return s, nil
}

// ParseJWT verifies token with the keyring key its kid names and validates its
// claims with opts. The algorithm is pinned to EdDSA (so "none", or HS256 made
// with a public key, is refused before any key is used); the kid is only ever
// looked up in memory.
func (k *Keyring) ParseJWT(token string, claims jwt.Claims, opts ...jwt.ParserOption) error {
	// Only the form SignJWT writes: base64url's decoder would also take CR/LF
	// anywhere and spare bits set in a segment's last character, so that
	// other strings than the one signed would pass for it.
	if strings.ContainsAny(token, "\r\n") {
		return errors.New("keyring: malformed token: line break")
	}
	opts = append(opts, jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithStrictDecoding())
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		jk, ok := k.cur.Load().jwt[kid]
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownKey, kid)
		}
		return jk.pub, nil
	}, opts...)
	return err
}
