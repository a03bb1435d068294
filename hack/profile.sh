#!/usr/bin/env bash
# hack/profile.sh LABEL [DURATION]: the group run of `make bench` (2 replicas +
# Redis + PostgreSQL on loopback, 1,200 connections in groups of 20, closed
# loop) against profservers (chatserver/cmd/parley-load/profserver: the real
# server plus pprof), with a 10 s CPU profile of each replica and the count
# of PostgreSQL commits. Results in tmp/profile/LABEL: max.json (parley-load
# -json), r1.cpu and r2.cpu (go tool pprof -top -cum), commits.txt.
# SRC=/path/to/other/checkout profiles another build (an A/B against an older
# commit: git worktree add /tmp/old <commit>; SRC=/tmp/old hack/profile.sh old).
# SERVER_ARGS adds flags to both replicas (e.g. "-shared-fanout-min 0");
# USERS, CONNS and GROUP change the shape (default 600, 1200, 20: GROUP=1000
# USERS=1000 CONNS=1000 is one 1,000-member group, one connection each);
# RATE fixes the message rate (open loop; default 0: as fast as acks allow).
# Needs make postgres-up; uses no S3 (no attachments in this run).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
label="${1:?usage: hack/profile.sh LABEL [DURATION]}"
dur="${2:-15s}"
out="$root/tmp/profile/$label"
rm -rf "$out"
mkdir -p "$out"
src="${SRC:-$root}"
(cd "$src" && go build -o "$out/profserver" ./chatserver/cmd/parley-load/profserver)
go build -o "$out/parley-load" ./chatserver/cmd/parley-load
set -a
. tmp/postgres/env
set +a
pg_admin="$PARLEY_TEST_POSTGRES_URL"
db="parley_prof_$(date +%s)_$$"
psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
db_url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$pg_admin" "$db")"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
work="$(mktemp -d)"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  psql -q "$pg_admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
rport="$(free_port)"
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$work" --daemonize no >/dev/null &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
read -r -a server_args <<<"${SERVER_ARGS:-}"
common=(-database-url "$db_url" -redis-url "redis://127.0.0.1:$rport/0" -rate-messages 100000/1s -rate-login 100000/1s
  -max-connections 200000 -log-level warn "${server_args[@]}")
wait_ready() { for _ in $(seq 1 150); do curl -sf -o /dev/null "$1/readyz" && return 0; sleep 0.2; done; return 1; }
p1="$(free_port)" q1="$(free_port)" p2="$(free_port)" q2="$(free_port)"
"$out/profserver" -pprof-addr "127.0.0.1:$q1" -addr "127.0.0.1:$p1" -data-dir "$work/r1" "${common[@]}" >"$out/r1.log" 2>&1 &
s1=$!
pids+=("$s1")
wait_ready "http://127.0.0.1:$p1"
"$out/profserver" -pprof-addr "127.0.0.1:$q2" -addr "127.0.0.1:$p2" -data-dir "$work/r2" -keyring-dir "$work/r1/keyring" "${common[@]}" >"$out/r2.log" 2>&1 &
s2=$!
pids+=("$s2")
wait_ready "http://127.0.0.1:$p2"
targets="http://127.0.0.1:$p1,http://127.0.0.1:$p2"
load=("$out/parley-load" -users "${USERS:-600}" -cache "$work/users.json" -register-workers 8 -json -targets "$targets"
  -conns "${CONNS:-1200}" -group-size "${GROUP:-20}" -inflight 64 -senders 16 -group-fraction 1 -rate "${RATE:-0}")
# A short run first registers the users and creates the conversations.
"${load[@]}" -label warm -duration 3s >"$out/warm.json"
commits() { psql -tA "$pg_admin" -c "select xact_commit from pg_stat_database where datname='$db'"; }
c0="$(commits)"
(sleep 3; curl -s -o "$out/r1.cpu" "http://127.0.0.1:$q1/debug/pprof/profile?seconds=10") &
prof1=$!
(sleep 3; curl -s -o "$out/r2.cpu" "http://127.0.0.1:$q2/debug/pprof/profile?seconds=10") &
prof2=$!
"${load[@]}" -label max -duration "$dur" -server-pids "$s1,$s2" \
  -watch "redis=$redis_pid,postgres=$(head -1 tmp/postgres/data/postmaster.pid)+" >"$out/max.json"
wait "$prof1" "$prof2" || true
c1="$(commits)"
{
  echo "PostgreSQL commits during the run (set-up and sync included): $((c1 - c0))"
  echo "Redis: $(redis-cli -p "$rport" info commandstats | grep -E '^cmdstat_(publish|spublish):' | tr -d '\r')"
  echo "load average at the end: $(cat /proc/loadavg)"
} | tee "$out/commits.txt"
