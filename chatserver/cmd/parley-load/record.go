package main

// -soak-record: a JSON-lines log of what an exactness check outside the load
// tool needs (make e2e-cluster's production-shape scenario): every ack with
// the stored message's conversation, seq and clientId; every message a
// connection took (not the duplicates it dropped); every connection the
// server or the network closed, with its close code; when each reopened
// connection had caught up (its sync answered); and at the end each
// connection's cursors and each conversation's members. The checker compares
// them with the conversations' stored history.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

// recorder writes -soak-record lines; a nil recorder writes nothing.
type recorder struct {
	mu  sync.Mutex
	f   *os.File
	w   *bufio.Writer
	err error
}

func newRecorder(path string) (*recorder, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("soak record: %w", err)
	}
	return &recorder{f: f, w: bufio.NewWriterSize(f, 64<<10)}, nil
}

// event writes one line: {"ev": ev, "t": unix ms, fields...}.
func (r *recorder) event(ev string, fields map[string]any) {
	if r == nil {
		return
	}
	line := map[string]any{"ev": ev, "t": time.Now().UnixMilli()}
	for k, v := range fields {
		line[k] = v
	}
	b, err := json.Marshal(line)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		_, err = r.w.Write(append(b, '\n'))
	}
	if err != nil && r.err == nil {
		r.err = err
	}
}

func (r *recorder) close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.w.Flush(); err != nil && r.err == nil {
		r.err = err
	}
	if err := r.f.Close(); err != nil && r.err == nil {
		r.err = err
	}
	if r.err != nil {
		return fmt.Errorf("soak record: %w", r.err)
	}
	return nil
}
