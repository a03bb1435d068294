package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// checkLoopback refuses any target that is not on this machine's loopback.
func checkLoopback(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("target %q: only loopback hosts are allowed (127.0.0.0/8, ::1, localhost)", raw)
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// apiError is a non-2xx answer of the chat server.
type apiError struct {
	Status int
	Code   string
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s", e.Status, e.Code) }

// kind names an error for the report's error table.
func kind(prefix string, err error) string {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		if ae.Code != "" {
			return prefix + "_" + ae.Code
		}
		return fmt.Sprintf("%s_http_%d", prefix, ae.Status)
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return prefix + "_timeout"
	default:
		return prefix + "_network"
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// api calls the REST API of one server.
type api struct {
	base string
	hc   *http.Client
}

func newHTTPClient(workers int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        workers * 4,
		MaxIdleConnsPerHost: workers * 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func (a *api) call(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", path, err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if res.StatusCode/100 != 2 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		_ = json.Unmarshal(raw, &e)
		return &apiError{Status: res.StatusCode, Code: e.Error.Code}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

type session struct {
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"user"`
	AccessToken          string    `json:"accessToken"`
	AccessTokenExpiresAt time.Time `json:"accessTokenExpiresAt"`
	RefreshToken         string    `json:"refreshToken"`
}

func (a *api) register(ctx context.Context, name, password string) (*session, error) {
	var s session
	err := a.call(ctx, "POST", "/api/v1/auth/register", "", map[string]string{
		"username": name, "email": name + "@load.invalid", "password": password,
		"displayName": name, "session": "body"}, &s)
	return &s, err
}

func (a *api) login(ctx context.Context, name, password string) (*session, error) {
	var s session
	err := a.call(ctx, "POST", "/api/v1/auth/login", "", map[string]string{
		"login": name, "password": password, "session": "body"}, &s)
	return &s, err
}

func (a *api) refresh(ctx context.Context, token string) (*session, error) {
	var s session
	// A token sent in the body is answered in the body; any other field is
	// refused (400), which made cached accounts log in again every run.
	err := a.call(ctx, "POST", "/api/v1/auth/refresh", "", map[string]string{"refreshToken": token}, &s)
	return &s, err
}

func (a *api) me(ctx context.Context, token string) (string, error) {
	var u struct {
		ID string `json:"id"`
	}
	err := a.call(ctx, "GET", "/api/v1/me", token, nil, &u)
	return u.ID, err
}

func (a *api) ticket(ctx context.Context, token string) (string, error) {
	var t struct {
		Ticket string `json:"ticket"`
	}
	err := a.call(ctx, "POST", "/api/v1/ws/ticket", token, nil, &t)
	return t.Ticket, err
}

// convRef is what the load tool keeps of a conversation it created.
type convRef struct {
	ID      string `json:"id"`
	LastSeq int64  `json:"lastSeq"` // where it stood: reused direct pairs have history
}

func (a *api) direct(ctx context.Context, token, otherID string) (convRef, error) {
	var c convRef
	err := a.call(ctx, "POST", "/api/v1/conversations/direct", token, map[string]string{"userId": otherID}, &c)
	return c, err
}

func (a *api) group(ctx context.Context, token, title string, members []string) (convRef, error) {
	var c convRef
	err := a.call(ctx, "POST", "/api/v1/conversations/group", token, map[string]any{"title": title, "memberIds": members}, &c)
	return c, err
}
