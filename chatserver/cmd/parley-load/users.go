package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// user is one load-test account with a usable access token.
type user struct {
	Name         string    `json:"name"`
	ID           string    `json:"id"`
	AccessToken  string    `json:"accessToken"`
	ExpiresAt    time.Time `json:"expiresAt"`
	RefreshToken string    `json:"refreshToken"`
}

// userCache is the -cache file: accounts and tokens from an earlier run, so a
// new run against the same database skips the argon2id hash of registration.
type userCache struct {
	Users map[string]*user `json:"users"`
}

func loadCache(path string) (*userCache, error) {
	c := &userCache{Users: map[string]*user{}}
	if path == "" {
		return c, nil
	}
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read cache: %w", err)
	}
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("parse cache %s: %w", path, err)
	}
	if c.Users == nil {
		c.Users = map[string]*user{}
	}
	return c, nil
}

func (c *userCache) save(path string, users []*user) error {
	if path == "" {
		return nil
	}
	for _, u := range users {
		if u != nil {
			c.Users[u.Name] = u
		}
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode cache: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write cache: %w", err)
	}
	return nil
}

func passwordFor(name string) string { return "load-" + name + "-not-a-real-passphrase" }

// userStats counts how accounts were obtained.
type userStats struct {
	Registered int64   `json:"registered"`
	LoggedIn   int64   `json:"loggedIn"`
	Refreshed  int64   `json:"refreshed"`
	Cached     int64   `json:"cached"`
	Failed     int64   `json:"failed"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"registeredPerSecond"` // registrations (argon2id on the server) per second
}

// obtainUsers makes n accounts usable, in parallel with a bounded pool:
// a cached token still valid for minLeft is checked with /me; otherwise the
// refresh token is rotated; otherwise the account is registered (or logged in
// when it exists). The i-th account is served by apis[i % len(apis)].
func obtainUsers(ctx context.Context, apis []*api, prefix string, n, workers int, cache *userCache,
	minLeft time.Duration, errs *errorCounts) ([]*user, userStats) {
	out := make([]*user, n)
	var st userStats
	var reg, login, refr, cached, failed atomic.Int64
	start := time.Now()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				a := apis[i%len(apis)]
				name := fmt.Sprintf("%s%06d", prefix, i)
				u, how, err := obtainUser(ctx, a, name, cache.Users[name], minLeft)
				if err != nil {
					errs.addErr(kind("user", err), err)
					failed.Add(1)
					continue
				}
				out[i] = u
				switch how {
				case "register":
					reg.Add(1)
				case "login":
					login.Add(1)
				case "refresh":
					refr.Add(1)
				default:
					cached.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	st.Registered, st.LoggedIn, st.Refreshed, st.Cached, st.Failed = reg.Load(), login.Load(), refr.Load(), cached.Load(), failed.Load()
	st.Seconds = time.Since(start).Seconds()
	if st.Registered > 0 {
		st.PerSecond = float64(st.Registered) / st.Seconds
	}
	return out, st
}

func obtainUser(ctx context.Context, a *api, name string, c *user, minLeft time.Duration) (*user, string, error) {
	if c != nil && c.AccessToken != "" && time.Until(c.ExpiresAt) > minLeft {
		if id, err := a.me(ctx, c.AccessToken); err == nil && id == c.ID {
			return c, "cached", nil
		}
	}
	if c != nil && c.RefreshToken != "" {
		if s, err := a.refresh(ctx, c.RefreshToken); err == nil && s.User.ID == c.ID {
			return fromSession(name, s), "refresh", nil
		}
	}
	pw := passwordFor(name)
	s, err := retry(ctx, func() (*session, error) { return a.register(ctx, name, pw) })
	if err == nil {
		return fromSession(name, s), "register", nil
	}
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusConflict {
		s, err = retry(ctx, func() (*session, error) { return a.login(ctx, name, pw) })
		if err == nil {
			return fromSession(name, s), "login", nil
		}
	}
	return nil, "", fmt.Errorf("account %s: %w", name, err)
}

// retry repeats f while the server answers 429 or 503, at most 5 times.
func retry(ctx context.Context, f func() (*session, error)) (*session, error) {
	var err error
	for attempt := range 5 {
		var s *session
		s, err = f()
		var ae *apiError
		if err == nil || !errors.As(err, &ae) || (ae.Status != http.StatusTooManyRequests && ae.Status != http.StatusServiceUnavailable) {
			return s, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
		}
	}
	return nil, err
}

func fromSession(name string, s *session) *user {
	return &user{Name: name, ID: s.User.ID, AccessToken: s.AccessToken, ExpiresAt: s.AccessTokenExpiresAt, RefreshToken: s.RefreshToken}
}

// errorCounts counts errors by kind.
type errorCounts struct {
	mu      sync.Mutex
	m       map[string]int64
	samples map[string]string
}

func newErrorCounts() *errorCounts {
	return &errorCounts{m: map[string]int64{}, samples: map[string]string{}}
}

func (e *errorCounts) add(k string) { e.addErr(k, nil) }

// addErr counts an error of kind k and keeps the first one's text as a sample.
func (e *errorCounts) addErr(k string, err error) {
	e.mu.Lock()
	e.m[k]++
	if _, ok := e.samples[k]; !ok && err != nil {
		e.samples[k] = err.Error()
	}
	e.mu.Unlock()
}

func (e *errorCounts) sampleSnapshot() map[string]string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]string, len(e.samples))
	for k, v := range e.samples {
		out[k] = v
	}
	return out
}

func (e *errorCounts) snapshot() map[string]int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int64, len(e.m))
	for k, v := range e.m {
		out[k] = v
	}
	return out
}
