//go:build !linux

package realtime

import (
	"bufio"
	"net"
)

// idleWait is Linux-only (a non-blocking peek); elsewhere the reader waits
// inside gorilla.
type idleWait struct{}

func newIdleWait(*bufio.Reader, net.Conn) *idleWait { return nil }

func (w *idleWait) wait() {}
