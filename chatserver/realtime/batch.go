package realtime

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// batchConn is the socket under a gorilla connection. gorilla writes each
// frame to the socket as soon as it is complete, one write(2) per frame,
// which was 30-40% of a replica's CPU at the maximum group rate (see
// docs/benchmarks.md). Between begin and flush, the writer loop holds the
// frames of one drained queue here and hands them to the kernel in one
// write. Outside a batch, writes go straight through, so control frames
// (pings, close) and single frames cost no copy.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool
	buf      *[]byte // from batchBufs while batching
	err      error   // a write failed: later writes fail the same way
}

// maxBatchBytes bounds what one batch holds before it is written early.
const maxBatchBytes = 64 << 10

var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return 0, b.err
	}
	if !b.batching {
		return b.Conn.Write(p)
	}
	*b.buf = append(*b.buf, p...)
	if len(*b.buf) >= maxBatchBytes {
		if err := b.writeOut(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// writeOut writes what the batch holds; mu is held.
func (b *batchConn) writeOut() error {
	if len(*b.buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*b.buf)
	*b.buf = (*b.buf)[:0]
	if err != nil {
		b.err = err
	}
	return err
}

// begin starts holding writes.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.buf = batchBufs.Get().(*[]byte)
	b.mu.Unlock()
}

// flush writes what was held, in one write(2) unless it passed
// maxBatchBytes, and lets writes through again. The write deadline is the
// one gorilla set for the last frame.
func (b *batchConn) flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.writeOut()
	b.batching = false
	if cap(*b.buf) <= 4*maxBatchBytes {
		batchBufs.Put(b.buf)
	}
	b.buf = nil
	return err
}

// hijacker hands gorilla's upgrader a batchConn in place of the socket, and a
// read buffer of our own (gorilla reads through the hijacked reader when the
// upgrader's ReadBufferSize is 0), so the reader can tell when the buffer is
// empty and wait for the socket in a shallow frame (idleWait).
type hijacker struct {
	http.ResponseWriter
	conn *batchConn
	in   *bufio.Reader // nil when the client sent data before the handshake ended
}

// readBufferSize is the connection's read buffer: a frame header and a
// control frame fit, and larger payloads are read past it straight into the
// message. gorilla uses a hijacked reader only when it holds more than 256.
const readBufferSize = 512

func (h *hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	h.conn = &batchConn{Conn: c}
	if rw.Reader.Buffered() > 0 {
		return h.conn, rw, nil // rare: gorilla reads what net/http buffered first
	}
	h.in = bufio.NewReaderSize(h.conn, readBufferSize)
	return h.conn, bufio.NewReadWriter(h.in, rw.Writer), nil
}

// Unwrap lets http.ResponseController reach the writer's other methods.
func (h *hijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }
