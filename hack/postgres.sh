#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for tests on a free loopback port.
#   hack/postgres.sh start   -> prints PARLEY_TEST_POSTGRES_URL=... (also in tmp/postgres/env)
#   hack/postgres.sh stop
# The server refuses to run as root, so it runs as user postgres in tmp/postgres.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/tmp/postgres"
bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$bindir" ] || { echo "postgres.sh: PostgreSQL not installed (run hack/install-deps.sh)" >&2; exit 1; }

run_as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 - <<'PY' 2>/dev/null || echo 55432
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

case "${1:-start}" in
start)
  if [ -f "$dir/env" ] && [ -f "$dir/data/postmaster.pid" ] && run_as_pg "$bindir/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    cat "$dir/env"; exit 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir" && chmod 700 "$dir"
  port="$(free_port)"
  run_as_pg "$bindir/initdb" -D "$dir/data" -U parley --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  run_as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null \
    || { cat "$dir/server.log" >&2; exit 1; }
  run_as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U parley parley
  echo "PARLEY_TEST_POSTGRES_URL=postgres://parley@127.0.0.1:$port/parley?sslmode=disable" > "$dir/env"
  echo "PARLEY_TEST_POSTGRES_BIN=$bindir" >> "$dir/env"
  echo "PARLEY_TEST_POSTGRES_DATA=$dir/data" >> "$dir/env"
  cat "$dir/env"
  ;;
stop)
  [ -d "$dir/data" ] && run_as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
