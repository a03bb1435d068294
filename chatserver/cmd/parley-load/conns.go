package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// lconn is one load-test WebSocket connection.
type lconn struct {
	idx    int // position in the connection list
	target int // index of the server it is connected to
	user   int // index of its account
	ws     *websocket.Conn
	wmu    sync.Mutex // gorilla allows one writer at a time
	closed atomic.Bool
	// closeCode is the WebSocket close code the server sent (0: none, the
	// connection was lost), set before the connection is reported closed.
	closeCode atomic.Int32
	closedAt  atomic.Int64 // unix ns the reader saw the connection end (0: still open or closed by us)
}

func (c *lconn) write(data []byte, wait time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(wait))
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

// frameHandler sees every frame a connection receives after "ready".
type frameHandler func(c *lconn, data []byte)

// connector opens authenticated connections.
type connector struct {
	apis    []*api
	wsBase  []string // ws://host:port per target
	sources []net.IP // local addresses to dial from, round-robin (nil: the kernel's choice)
	errs    *errorCounts
	timeout time.Duration
}

func newConnector(apis []*api, targets []*url.URL, sources []net.IP, errs *errorCounts) *connector {
	c := &connector{apis: apis, sources: sources, errs: errs, timeout: 10 * time.Second}
	for _, t := range targets {
		scheme := "ws"
		if t.Scheme == "https" {
			scheme = "wss"
		}
		c.wsBase = append(c.wsBase, scheme+"://"+t.Host+strings.TrimRight(t.Path, "/")+"/api/v1/ws")
	}
	return c
}

// dial opens one connection for u to target t and waits for "ready".
func (cn *connector) dial(ctx context.Context, idx, t, ui int, u *user, onFrame frameHandler, closedCh chan<- *lconn) (*lconn, error) {
	ctx, cancel := context.WithTimeout(ctx, cn.timeout)
	defer cancel()
	ticket, err := cn.apis[t].ticket(ctx, u.AccessToken)
	if err != nil {
		return nil, &stepError{step: "ticket", err: err}
	}
	nd := &net.Dialer{Timeout: cn.timeout}
	if len(cn.sources) > 0 {
		nd.LocalAddr = &net.TCPAddr{IP: cn.sources[idx%len(cn.sources)]}
	}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: cn.timeout,
		ReadBufferSize:   2048,
		WriteBufferSize:  1024,
		Subprotocols:     []string{"parley.v1"},
	}
	ws, _, err := d.DialContext(ctx, cn.wsBase[t]+"?ticket="+url.QueryEscape(ticket), nil)
	if err != nil {
		return nil, &stepError{step: "dial", err: err}
	}
	// "ready" comes first from this connection's writer, but events for the
	// account (presence of a peer) may already be queued ahead of it.
	_ = ws.SetReadDeadline(time.Now().Add(cn.timeout))
	for i := 0; ; i++ {
		_, frame, err := ws.ReadMessage()
		if err == nil && bytes.HasPrefix(frame, []byte(`{"type":"ready"`)) {
			break
		}
		if err == nil && i >= 64 {
			err = fmt.Errorf("no ready among the first %d frames", i+1)
		}
		if err != nil {
			ws.Close()
			return nil, &stepError{step: "ready", err: err}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	c := &lconn{idx: idx, target: t, user: ui, ws: ws}
	go c.readLoop(onFrame, cn.errs, closedCh)
	return c, nil
}

func (c *lconn) readLoop(onFrame frameHandler, errs *errorCounts, closedCh chan<- *lconn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if !c.closed.Load() {
				c.closedAt.Store(time.Now().UnixNano())
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.closeCode.Store(int32(ce.Code))
					errs.addErr(fmt.Sprintf("closed_by_server_%d", ce.Code), err)
				} else {
					errs.addErr("connection_lost", err)
				}
				if closedCh != nil {
					select {
					case closedCh <- c:
					default:
					}
				}
			}
			c.closed.Store(true)
			return
		}
		if onFrame != nil {
			onFrame(c, data)
		}
	}
}

func (c *lconn) close() {
	if c.closed.Swap(true) {
		return
	}
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.ws.Close()
}

type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

// connectStats describes the connection phase.
type connectStats struct {
	Attempted   int     `json:"attempted"`
	Established int     `json:"established"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"perSecond"` // established per second, ticket + upgrade + ready included
	SetupMs     latency `json:"setupLatency"`
	// GeneratorCores is this process's CPU during the set-up: it shares the
	// machine with the replica, so it bounds the rate measured.
	GeneratorCores float64 `json:"generatorCores"`
}

// connectAll opens n connections with a bounded pool. Connection i belongs to
// account i % len(users) and goes to target (i + i/len(users)) % targets, so
// a user's devices are spread over the servers.
func (cn *connector) connectAll(ctx context.Context, users []*user, n, workers int, deadline time.Time,
	onFrame frameHandler, closedCh chan<- *lconn) ([]*lconn, connectStats) {
	conns := make([]*lconn, n)
	var hist histogram
	var next atomic.Int64
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), selfCPU()
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				ui := i % len(users)
				u := users[ui]
				if u == nil {
					cn.errs.add("connect_no_account")
					continue
				}
				t := (i + i/len(users)) % len(cn.apis)
				t0 := time.Now()
				c, err := cn.dial(ctx, i, t, ui, u, onFrame, closedCh)
				if err != nil {
					var se *stepError
					if errors.As(err, &se) {
						cn.errs.addErr(kind("connect_"+se.step, se.err), err)
					} else {
						cn.errs.addErr(kind("connect", err), err)
					}
					continue
				}
				hist.record(time.Since(t0))
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	st := connectStats{Attempted: n, Seconds: time.Since(start).Seconds(), SetupMs: hist.summary()}
	for _, c := range conns {
		if c != nil {
			st.Established++
		}
	}
	if st.Seconds > 0 {
		st.PerSecond = float64(st.Established) / st.Seconds
		st.GeneratorCores = (selfCPU() - cpu0) / st.Seconds
	}
	return conns, st
}

func closeAll(conns []*lconn) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.close()
			<-sem
		}()
	}
	wg.Wait()
}
