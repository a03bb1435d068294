//go:build faults

package faults

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Set is the faults configured for this process.
type Set struct {
	mu    sync.Mutex
	at    map[string]int // fires on this hit
	count map[string]int
}

// FromEnv reads PARLEY_FAULTS; nil when it is empty.
func FromEnv(getenv func(string) string) *Set {
	v := getenv("PARLEY_FAULTS")
	if v == "" {
		return nil
	}
	s := &Set{at: map[string]int{}, count: map[string]int{}}
	for _, item := range strings.Split(v, ",") {
		name, n, _ := strings.Cut(strings.TrimSpace(item), "@")
		at, err := strconv.Atoi(n)
		if err != nil || at < 1 {
			at = 1
		}
		s.at[name] = at
	}
	return s
}

// Hit counts a hit of fault name and reports whether it fires now.
func (s *Set) Hit(name string) bool {
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.at[name]
	if !ok {
		return false
	}
	s.count[name]++
	return s.count[name] == at
}

// Kill sends SIGKILL to this process when fault name fires: no deferred
// function, no flush, as a crash.
func (s *Set) Kill(name string) {
	if s.Hit(name) {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
