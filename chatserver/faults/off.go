//go:build !faults

package faults

// Set is the configured faults: none in a normal build.
type Set struct{}

// FromEnv returns nil: fault injection is not compiled in.
func FromEnv(func(string) string) *Set { return nil }

// Hit reports whether fault name fires now: never in a normal build.
func (*Set) Hit(string) bool { return false }

// Kill dies when fault name fires: never in a normal build.
func (*Set) Kill(string) {}
