// Package faults lets end-to-end tests make a chat server fail at chosen
// points (die right after storing a message, lose a publish), to prove what
// clients see then. It is compiled in only with the build tag "faults"; in a
// normal build every method is a no-op on a nil *Set.
//
// PARLEY_FAULTS is a comma-separated list of NAME@N: the fault NAME fires on
// its N-th hit in this process (N defaults to 1). Names:
//
//	kill-after-store  SIGKILL the process right after a message is committed,
//	                  before it is published or acknowledged
//	drop-publish      acknowledge a stored message but do not publish it
package faults

// Fault names.
const (
	KillAfterStore = "kill-after-store"
	DropPublish    = "drop-publish"
)
