// Command profserver runs the real chat server (package server, exactly as
// cmd/chatserver builds it, without the web client) with net/http/pprof on a
// second loopback address, so load runs can be profiled without a profiling
// endpoint in the production binary. Its flags are chatserver's, after
// -pprof-addr.
//
//	profserver -pprof-addr 127.0.0.1:6060 -addr 127.0.0.1:8081 -database-url ... -redis-url ...
//	go tool pprof -top http://127.0.0.1:6060/debug/pprof/heap
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "profserver:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 || args[0] != "-pprof-addr" {
		return errors.New("usage: profserver -pprof-addr 127.0.0.1:PORT [chatserver flags]")
	}
	paddr := args[1]
	host, _, err := net.SplitHostPort(paddr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-pprof-addr %q: want a loopback IP and a port", paddr)
	}
	cfg, err := config.Load(args[2:], os.Getenv)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, server.Options{})
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	ps := &http.Server{Addr: paddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := ps.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener", "err", err)
		}
	}()
	defer ps.Close()
	fmt.Fprintf(os.Stderr, "chat server on %s, pprof on %s\n", srv.Addr(), paddr)
	return srv.Run(ctx)
}
