// Command chatserver runs one Parley chat server. With no configuration it
// uses the embedded default: SQLite and a generated keyring in ./data, an
// in-process backplane, and the web client on http://127.0.0.1:8080.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/parley-chat/parley/chatserver/audit"
	"github.com/parley-chat/parley/chatserver/config"
	"github.com/parley-chat/parley/chatserver/server"
	"github.com/parley-chat/parley/chatserver/store/sqlstore"
	"github.com/parley-chat/parley/chatserver/web"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "chatserver:", err)
		os.Exit(1)
	}
}

func run() error {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "verify-audit" {
		return verifyAudit(args[1:])
	}
	cfg, err := config.Load(args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		config.Usage(os.Stdout)
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, server.Options{Web: web.Files()})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "Parley is running: open http://%s/ (Ctrl-C stops it)\n", srv.Addr())
	return srv.Run(ctx)
}

// verifyAudit walks the audit log's hash chain in the configured database
// and reports the first entry that does not verify (exit status 1).
//
//	chatserver verify-audit [flags]
func verifyAudit(args []string) error {
	cfg, err := config.Load(args, os.Getenv)
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, cfg.DatabaseURL, sqlstore.Options{MaxOpenConns: 2})
	if err != nil {
		return err
	}
	defer db.Close()
	rep, err := audit.Verify(ctx, db)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("audit log broken at entry %d (%s); %d entries before it verify", rep.BadSeq, rep.Reason, rep.Entries)
	}
	fmt.Printf("audit log intact: %d entries verify\n", rep.Entries)
	return nil
}
