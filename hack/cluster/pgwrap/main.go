// Command pgwrap is the entrypoint of the parley/postgres:dev image that make
// e2e-cluster's production-shape scenario runs as a StatefulSet (Debian's
// PostgreSQL; hack/cluster/images.sh). On an empty volume it runs initdb with
// the superuser and password it is given and creates the database, then it
// becomes postgres (exec), listening on every address with password
// (scram-sha-256) authentication for TCP clients.
//
// Environment: PGDATA (the data folder, created by initdb), POSTGRES_USER,
// POSTGRES_DB, POSTGRES_PASSWORD_FILE (a mounted Secret key).
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	if err := run(); err != nil {
		log.Fatalf("pgwrap: %v", err)
	}
}

func run() error {
	bin, err := pgBin()
	if err != nil {
		return err
	}
	data, user, db, pwFile := os.Getenv("PGDATA"), os.Getenv("POSTGRES_USER"), os.Getenv("POSTGRES_DB"), os.Getenv("POSTGRES_PASSWORD_FILE")
	if data == "" || user == "" || db == "" || pwFile == "" {
		return errors.New("PGDATA, POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE are required")
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initialize(bin, data, user, db, pwFile); err != nil {
			return err
		}
	}
	// argv[0] a full path: postgres finds its share and lib folders from it (no PATH in the
	// image). unix_socket_directories: Debian's default /var/run/postgresql is not in the image.
	argv := []string{filepath.Join(bin, "postgres"), "-D", data, "-c", "listen_addresses=*", "-c", "unix_socket_directories=/tmp"}
	return syscall.Exec(filepath.Join(bin, "postgres"), argv, os.Environ())
}

// pgBin is the one /usr/lib/postgresql/<major>/bin in the image.
func pgBin() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(m) != 1 {
		return "", fmt.Errorf("want one /usr/lib/postgresql/*/bin/postgres, found %v", m)
	}
	return filepath.Dir(m[0]), nil
}

func initialize(bin, data, user, db, pwFile string) error {
	cmd := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", user, "--pwfile="+pwFile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	// initdb's host lines cover loopback only; the chat servers come from the pod network.
	f, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	if _, err := f.WriteString("host all all 0.0.0.0/0 scram-sha-256\n"); err != nil {
		f.Close()
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pg_hba.conf: %w", err)
	}
	// The database, in single-user mode (no server, no socket needed yet).
	single := exec.Command(filepath.Join(bin, "postgres"), "--single", "-D", data, "postgres")
	single.Stdin = strings.NewReader(fmt.Sprintf("CREATE DATABASE %q OWNER %q;\n", db, user))
	single.Stdout, single.Stderr = os.Stdout, os.Stderr
	if err := single.Run(); err != nil {
		return fmt.Errorf("create database %s: %w", db, err)
	}
	log.Printf("pgwrap: initialized %s with database %s owned by %s", data, db, user)
	return nil
}
