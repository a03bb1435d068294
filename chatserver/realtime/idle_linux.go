package realtime

import (
	"bufio"
	"net"
	"syscall"
	"unsafe"
)

// idleWait lets a connection's reader park in a shallow frame while the
// client sends nothing. Parked inside gorilla's ReadMessage the reader's
// stack holds ~1.7 KiB of frames (gorilla, bufio, net, poll), so each idle
// connection keeps a 4 KiB stack; parked here it holds under 1 KiB, and the
// garbage collector shrinks the stack to 2 KiB (docs/benchmarks.md, "Issue
// 15: set-up and idle memory"). The wait applies only when gorilla's read
// buffer is empty: data already buffered would never wake the socket.
type idleWait struct {
	in  *bufio.Reader // gorilla's read buffer (hijacker.in)
	raw syscall.RawConn
}

func newIdleWait(in *bufio.Reader, c net.Conn) *idleWait {
	tc, ok := c.(*net.TCPConn)
	if in == nil || !ok {
		return nil // TLS or a test conn: gorilla waits as before
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &idleWait{in: in, raw: raw}
}

// wait returns once the socket has data (or an error, or the read deadline
// passed: gorilla's read then reports it).
func (w *idleWait) wait() {
	if w == nil || w.in.Buffered() > 0 {
		return
	}
	_ = w.raw.Read(readable)
}

// readable peeks one byte without blocking: false (wait for the poller) only
// while the socket has nothing to read. Edge-triggered polling needs this
// check: data that arrived before the wait raises no new event.
func readable(fd uintptr) bool {
	var b byte
	_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b)), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	return e != syscall.EAGAIN // data, end of stream or an error: gorilla reads it
}
