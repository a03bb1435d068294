// Package pushtest is a Web Push service for tests: an httptest server that
// speaks RFC 8030 (a POST to a subscription's endpoint, answered 201
// Created), checks every request the way a real push service does, and
// decrypts each payload per RFC 8291 with the subscription's private key and
// auth secret. The decryption is written here from the RFCs, independently
// of the library the server sends with, and is itself checked against RFC
// 8291's example (Appendix A) in this package's tests.
//
// It checks: Content-Encoding aes128gcm; a TTL header; Topic (at most 32
// base64url characters) and Urgency (very-low, low, normal, high) when
// present; "Authorization: vapid t=<JWT>, k=<key>" where k is the server's
// VAPID public key and the JWT is ES256, signed by it, with aud the
// endpoint's origin, exp in the future and at most 24 hours away, and sub
// present (RFC 8292). A request that fails a check is answered 400 or 403
// and recorded with its error.
package pushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Push is one request the service received.
type Push struct {
	Subscription string // the subscription's name
	Topic        string
	Urgency      string
	TTL          int
	Size         int    // bytes of the encrypted body
	Body         []byte // the encrypted body, as received
	Plain        []byte // the decrypted payload (nil when a check failed)
	Claims       map[string]any
	Status       int   // what the service answered
	Err          error // the check that failed, if any
	At           time.Time
}

// Subscription is a browser's push subscription: its endpoint on this
// service and its keys (the private key never leaves the "browser").
type Subscription struct {
	Name     string
	Endpoint string
	Private  *ecdh.PrivateKey
	Auth     []byte
}

// P256DH is the subscription's public key as a browser's toJSON gives it.
func (s *Subscription) P256DH() string {
	return base64.RawURLEncoding.EncodeToString(s.Private.PublicKey().Bytes())
}

// AuthB64 is the auth secret as a browser's toJSON gives it.
func (s *Subscription) AuthB64() string { return base64.RawURLEncoding.EncodeToString(s.Auth) }

// Service is the test push service.
type Service struct {
	URL  string
	t    testing.TB
	srv  *httptest.Server
	now  func() time.Time
	mu   sync.Mutex
	subs map[string]*Subscription
	// vapidKey returns the server's VAPID public key (base64url) that
	// pushes must be signed with.
	vapidKey func() string
	answers  map[string][]answer
	pushes   []Push
	notify   chan struct{}
}

type answer struct {
	status     int
	retryAfter string
}

// New starts a push service on loopback, closed when t ends. vapidKey
// gives the server's current VAPID public key (base64url).
func New(t testing.TB, vapidKey func() string) *Service {
	s := &Service{t: t, now: time.Now, subs: map[string]*Subscription{}, vapidKey: vapidKey,
		answers: map[string][]answer{}, notify: make(chan struct{}, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Subscribe makes a new subscription (what pushManager.subscribe does).
func (s *Service) Subscribe(name string) *Subscription {
	priv, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	sub := &Subscription{Name: name, Endpoint: s.URL + "/push/" + name, Private: priv, Auth: auth}
	s.mu.Lock()
	s.subs[name] = sub
	s.mu.Unlock()
	return sub
}

// Answer makes the next pushes to the named subscription get these status
// codes, in order (then 201 again). retryAfter, when not empty, is sent
// with each of them.
func (s *Service) Answer(name, retryAfter string, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range statuses {
		s.answers[name] = append(s.answers[name], answer{status: st, retryAfter: retryAfter})
	}
}

// Pushes returns the pushes received so far.
func (s *Service) Pushes() []Push {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Push(nil), s.pushes...)
}

// To returns the pushes received for one subscription.
func (s *Service) To(name string) []Push {
	var out []Push
	for _, p := range s.Pushes() {
		if p.Subscription == name {
			out = append(out, p)
		}
	}
	return out
}

// Wait waits until cond holds for the pushes received, or fails t after d.
func (s *Service) Wait(t testing.TB, d time.Duration, what string, cond func([]Push) bool) []Push {
	t.Helper()
	deadline := time.After(d)
	for {
		if ps := s.Pushes(); cond(ps) {
			return ps
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("push service: %s: not within %s; got %d pushes", what, d, len(s.Pushes()))
		}
	}
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/push/")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8192))
	p := Push{Subscription: name, Topic: r.Header.Get("Topic"), Urgency: r.Header.Get("Urgency"),
		Size: len(body), Body: body, At: s.now()}
	s.mu.Lock()
	sub := s.subs[name]
	var ans answer
	if q := s.answers[name]; len(q) > 0 {
		ans, s.answers[name] = q[0], q[1:]
	}
	s.mu.Unlock()
	status := http.StatusCreated
	switch {
	case r.Method != http.MethodPost || !ok || sub == nil:
		status, p.Err = http.StatusNotFound, fmt.Errorf("no subscription at %s %s", r.Method, r.URL.Path)
	default:
		var code int
		if code, p.Err = s.check(r, sub, &p); p.Err != nil {
			status = code
		} else if ans.status != 0 {
			status = ans.status
		}
	}
	p.Status = status
	s.mu.Lock()
	s.pushes = append(s.pushes, p)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	if ans.retryAfter != "" {
		w.Header().Set("Retry-After", ans.retryAfter)
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", s.URL+"/message/"+strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	w.WriteHeader(status)
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// check validates a push request as RFC 8030, 8291 and 8292 require and
// decrypts it; the status code goes with the error.
func (s *Service) check(r *http.Request, sub *Subscription, p *Push) (int, error) {
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		return http.StatusBadRequest, fmt.Errorf("Content-Encoding %q, want aes128gcm", ce)
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		return http.StatusBadRequest, fmt.Errorf("TTL %q is not a whole number of seconds", r.Header.Get("TTL"))
	}
	p.TTL = ttl
	if p.Topic != "" && !topicRE.MatchString(p.Topic) {
		return http.StatusBadRequest, fmt.Errorf("Topic %q is not 1-32 base64url characters", p.Topic)
	}
	switch p.Urgency {
	case "", "very-low", "low", "normal", "high":
	default:
		return http.StatusBadRequest, fmt.Errorf("Urgency %q is not one of RFC 8030's", p.Urgency)
	}
	claims, err := VerifyVAPID(r.Header.Get("Authorization"), s.vapidKey(), originOf(sub.Endpoint), s.now())
	p.Claims = claims
	if err != nil {
		return http.StatusForbidden, err
	}
	plain, err := Decrypt(p.Body, sub.Private, sub.Auth)
	if err != nil {
		return http.StatusBadRequest, err
	}
	p.Plain = plain
	return 0, nil
}

func originOf(endpoint string) string {
	i := strings.Index(endpoint, "://")
	rest := endpoint[i+3:]
	if j := strings.IndexByte(rest, '/'); j >= 0 {
		rest = rest[:j]
	}
	return endpoint[:i+3] + rest
}

// VerifyVAPID checks an RFC 8292 Authorization header: scheme vapid, k the
// expected public key (base64url), t an ES256 JWT signed by it with aud =
// origin, exp after now and at most 24 hours after it, and sub present. It
// returns the JWT's claims.
func VerifyVAPID(header, wantKey, origin string, now time.Time) (map[string]any, error) {
	rest, ok := strings.CutPrefix(header, "vapid ")
	if !ok {
		return nil, fmt.Errorf("Authorization %q is not the vapid scheme", header)
	}
	params := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		params[k] = v
	}
	if params["k"] != wantKey {
		return nil, fmt.Errorf("vapid k=%q is not the server's VAPID key %q", params["k"], wantKey)
	}
	rawKey, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil || len(rawKey) != 65 || rawKey[0] != 4 {
		return nil, errors.New("vapid k is not an uncompressed P-256 point")
	}
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(rawKey[1:33]), Y: new(big.Int).SetBytes(rawKey[33:])}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return nil, errors.New("vapid t is not a JWT")
	}
	var head struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if err := decodeJSON(parts[0], &head); err != nil || head.Alg != "ES256" {
		return nil, fmt.Errorf("JWT header %+v: alg must be ES256 (%v)", head, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, errors.New("JWT signature is not 64 bytes (r|s)")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return nil, errors.New("JWT signature does not verify with the VAPID key")
	}
	var claims map[string]any
	if err := decodeJSON(parts[1], &claims); err != nil {
		return nil, fmt.Errorf("JWT claims: %w", err)
	}
	if claims["aud"] != origin {
		return claims, fmt.Errorf("JWT aud %v, want the endpoint's origin %s", claims["aud"], origin)
	}
	exp, ok := claims["exp"].(float64)
	if !ok {
		return claims, errors.New("JWT has no exp")
	}
	if e := time.Unix(int64(exp), 0); !e.After(now) || e.After(now.Add(24*time.Hour)) {
		return claims, fmt.Errorf("JWT exp %s is not in the next 24 hours", e)
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return claims, errors.New("JWT has no sub")
	}
	return claims, nil
}

func decodeJSON(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// hkdf is HKDF-SHA-256 (RFC 5869) for outputs of at most 32 bytes: one
// extract and one expand block.
func hkdf(salt, ikm, info []byte, n int) []byte {
	ext := hmac.New(sha256.New, salt)
	ext.Write(ikm)
	prk := ext.Sum(nil)
	exp := hmac.New(sha256.New, prk)
	exp.Write(info)
	exp.Write([]byte{1})
	return exp.Sum(nil)[:n]
}

// Decrypt opens an aes128gcm body (RFC 8188) sent to the subscription whose
// private key and auth secret are given, deriving the keys as RFC 8291
// section 3.4 says. It returns the payload without its padding.
func Decrypt(body []byte, uaPrivate *ecdh.PrivateKey, authSecret []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("aes128gcm: body shorter than its header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen {
		return nil, errors.New("aes128gcm: truncated key id")
	}
	asPublicRaw, records := body[21:21+idlen], body[21+idlen:]
	if rs < 18 {
		return nil, fmt.Errorf("aes128gcm: record size %d is too small", rs)
	}
	asPublic, err := ecdh.P256().NewPublicKey(asPublicRaw)
	if err != nil {
		return nil, fmt.Errorf("aes128gcm: key id is not the sender's P-256 key: %w", err)
	}
	ecdhSecret, err := uaPrivate.ECDH(asPublic)
	if err != nil {
		return nil, err
	}
	// RFC 8291 3.4: IKM = HKDF(auth_secret, ecdh_secret, "WebPush: info" 0 ua_public as_public, 32)
	keyInfo := append(append([]byte("WebPush: info\x00"), uaPrivate.PublicKey().Bytes()...), asPublicRaw...)
	ikm := hkdf(authSecret, ecdhSecret, keyInfo, 32)
	// RFC 8188 2.2 and 2.3: the content encryption key and the nonce.
	cek := hkdf(salt, ikm, []byte("Content-Encoding: aes128gcm\x00"), 16)
	nonce := hkdf(salt, ikm, []byte("Content-Encoding: nonce\x00"), 12)
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var out []byte
	for seq := uint64(0); len(records) > 0; seq++ {
		n := min(int(rs), len(records))
		rec := records[:n]
		records = records[n:]
		iv := bytes.Clone(nonce)
		for i := range 8 {
			iv[11-i] ^= byte(seq >> (8 * i))
		}
		plain, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, fmt.Errorf("aes128gcm: record %d does not decrypt: %w", seq, err)
		}
		end := len(plain) - 1
		for end >= 0 && plain[end] == 0 {
			end--
		}
		if end < 0 {
			return nil, fmt.Errorf("aes128gcm: record %d has no delimiter", seq)
		}
		last := len(records) == 0
		if last && plain[end] != 2 || !last && plain[end] != 1 {
			return nil, fmt.Errorf("aes128gcm: record %d has delimiter %d (last=%v)", seq, plain[end], last)
		}
		out = append(out, plain[:end]...)
	}
	return out, nil
}
