package server_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The README's quick start runs as written against a fresh server.
func TestReadmeQuickStart(t *testing.T) {
	raw, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	i, j := strings.Index(s, "<!-- quickstart -->"), strings.Index(s, "<!-- /quickstart -->")
	if i < 0 || j < i {
		t.Fatal("README has no quickstart block")
	}
	block := s[i:j]
	block = block[strings.Index(block, "```sh")+len("```sh") : strings.LastIndex(block, "```")]

	ts := start(t)
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", block)
	cmd.Env = append(os.Environ(), "PARLEY="+ts.Base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quick start failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"body":"Hi Bob! This is stored encrypted at rest."`) {
		t.Fatalf("Bob did not read Alice's message:\n%s", out)
	}
}
