package server_test

import (
	"strings"
	"testing"
)

// Errors about one request field name it in "field", so a form can show the
// message beside that field (issue 12, defect 6).
func TestErrorsNameTheField(t *testing.T) {
	ts := start(t)
	alice := ts.Register("alice")
	reg := func(u, e, p, d string) apiResp {
		return ts.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": u, "email": e, "password": p, "displayName": d})
	}
	const good = "good enough passphrase"
	cases := []struct {
		name   string
		r      apiResp
		status int
		code   string
		field  string
	}{
		{"taken username", reg("ALICE", "other@example.com", good, ""), 409, "conflict", "username"},
		{"taken email", reg("other", "Alice@Example.com", good, ""), 409, "conflict", "email"},
		{"both taken: username first", reg("alice", "alice@example.com", good, ""), 409, "conflict", "username"},
		{"weak password", reg("bob", "bob@example.com", "short", ""), 400, "weak_password", "password"},
		{"bad username", reg("b!", "bob@example.com", good, ""), 400, "invalid_request", "username"},
		{"bad email", reg("bob", "not-an-email", good, ""), 400, "invalid_request", "email"},
		{"long display name", reg("bob", "bob@example.com", good, strings.Repeat("é", 65)), 400, "invalid_request", "displayName"},
		{"control character in display name", reg("bob", "bob@example.com", good, "Bob\nBrown"), 400, "invalid_request", "displayName"},
		{"wrong current password", alice.Do("POST", "/api/v1/auth/password",
			map[string]string{"currentPassword": "not the password", "newPassword": "brand new passphrase"}), 401, "invalid_credentials", "currentPassword"},
		{"weak new password", alice.Do("POST", "/api/v1/auth/password",
			map[string]string{"currentPassword": alice.PW, "newPassword": "short"}), 400, "weak_password", "newPassword"},
		// Errors about no one field carry none.
		{"not JSON", ts.Do("POST", "/api/v1/auth/register", "", `{"username":`), 400, "invalid_request", ""},
		{"unauthenticated", ts.Do("GET", "/api/v1/me", "", nil), 401, "unauthorized", ""},
	}
	for _, c := range cases {
		if c.r.Status != c.status || c.r.Code() != c.code || c.r.Field() != c.field {
			t.Errorf("%s: %d %s, want %d %s field %q", c.name, c.r.Status, c.r.Body, c.status, c.code, c.field)
		}
	}
	// The exact shape of the example.
	r := reg("alice", "new@example.com", good, "")
	must(t, strings.Contains(string(r.Body), `"field":"username"`) && strings.Contains(string(r.Body), `"message":"That username is already taken."`),
		"taken username body: %s", r.Body)
	// A 64-character display name is still fine (the limit counts characters).
	r = reg("bob", "bob@example.com", good, strings.Repeat("é", 64))
	must(t, r.Status == 201, "64-character display name: %d %s", r.Status, r.Body)
}
