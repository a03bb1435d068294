# shellcheck shell=bash
# Sourced by hack/bench.sh, hack/soak.sh and hack/scale-sim.sh: the loopback
# stack they start. The caller sets root (the repository), work (a scratch
# folder it removes) and the array pids (the processes it stops on exit, last
# first), and calls stack_drop_database and, when pg_started is set,
# `hack/postgres.sh stop` on exit.

stack_tag="${0##*/}"
stack_tag="${stack_tag%.sh}"

stack_log() { echo "$stack_tag: $(date -u +%H:%M:%S) $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_ready() { # url pid
  for _ in $(seq 1 150); do
    curl -sf -o /dev/null "$1/readyz" && return 0
    kill -0 "$2" 2>/dev/null || { echo "$stack_tag: process $2 for $1 exited" >&2; return 1; }
    sleep 0.2
  done
  echo "$stack_tag: $1 not ready after 30 s" >&2
  return 1
}

# stack_postgres PREFIX: the test PostgreSQL (hack/postgres.sh; started here
# when it is not running, then pg_started=1) and a fresh database named
# PREFIX_<time>_<pid>. Sets pg_admin, db, db_url, pg_pid, pg_started.
stack_postgres() {
  local running_url env
  running_url="$(sed -n 's/^PARLEY_TEST_POSTGRES_URL=//p' "$root/tmp/postgres/env" 2>/dev/null || true)"
  if [ -z "$running_url" ] || ! psql -q "$running_url" -c 'select 1' >/dev/null 2>&1; then
    pg_started=1 # not running: started here, stopped at the end
  fi
  env="$("$root/hack/postgres.sh" start)"
  pg_admin="$(sed -n 's/^PARLEY_TEST_POSTGRES_URL=//p' <<<"$env")"
  db="${1}_$(date +%s)_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
  db_url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$pg_admin" "$db")"
  pg_pid="$(head -1 "$root/tmp/postgres/data/postmaster.pid")"
}

stack_drop_database() {
  if [ -n "${db:-}" ] && [ -n "${pg_admin:-}" ]; then
    psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  fi
}

# stack_redis: a Redis of our own on a free port, no persistence, folder
# $work/redis. Sets rport and redis_pid; appends to pids.
stack_redis() {
  rport="$(free_port)"
  mkdir -p "$work/redis"
  redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$work/redis" \
    --logfile "$work/redis/redis.log" --daemonize no &
  redis_pid=$!
  pids+=("$redis_pid")
  for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$rport" ping >/dev/null
}

# stack_replica NAME ARGS...: $chatserver_bin (default bin/chatserver) on a
# free loopback port with data folder $work/NAME and ARGS, log $work/NAME.log;
# waits until ready. Sets replica_url and replica_pid; appends to pids.
stack_replica() {
  local name="$1" port
  shift
  port="$(free_port)"
  "${chatserver_bin:-$root/bin/chatserver}" -addr "127.0.0.1:$port" -data-dir "$work/$name" "$@" >"$work/$name.log" 2>&1 &
  replica_pid=$!
  pids+=("$replica_pid")
  replica_url="http://127.0.0.1:$port"
  wait_ready "$replica_url" "$replica_pid"
}

# stack_stop: stops what pids holds, last first, and waits for each.
stack_stop() {
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null
  done
  pids=()
}

# stack_machine: "key: value" lines describing this machine and build.
stack_machine() {
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  if [ -n "${stack_commit:-}" ]; then
    echo "commit: $stack_commit"
  else
    echo "commit: $(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet HEAD -- chatserver 2>/dev/null || echo ' (chatserver/ has uncommitted changes)')"
  fi
  echo "CPU: $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "Go: $(go version | awk '{print $3}')"
  echo "Redis: $(redis-server --version | awk '{print $3}' | tr -d 'v=')"
  echo "PostgreSQL: $(psql -tA "$pg_admin" -c 'show server_version') (hack/postgres.sh: fsync=off, synchronous_commit=off)"
}
