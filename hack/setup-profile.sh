#!/usr/bin/env bash
# hack/setup-profile.sh LABEL [CONNS]: the idle phase of `make bench` against
# a fresh profserver (chatserver/cmd/parley-load/profserver: the real server
# plus pprof), with what explains its two figures:
#   - set-up rate: a CPU profile of the replica while the connections are set
#     up, and counts per set-up (PostgreSQL commits, Redis commands, heap
#     allocations, the replica's and the load generator's CPU);
#   - idle memory: RSS per connection, a heap profile, goroutine and stack
#     figures from the runtime, with CONNS (default 12000) connections held.
# Results in tmp/setup-profile/LABEL: idle.json, setup.cpu(.top), heap.pb.gz
# (.top), counts.txt. BIN=/path/to/profserver profiles another build (an A/B
# against an older commit: build its profserver once, then alternate runs).
# The database, the keyring and the accounts are kept in tmp/setup-profile/work
# between runs, so every run measures a fresh replica without registering
# 600 accounts again; Redis is fresh each run. Run it under the load lock:
#   flock tmp/load.lock hack/setup-profile.sh new
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
label="${1:?usage: hack/setup-profile.sh LABEL [CONNS]}"
conns="${2:-12000}"
hold="${SETUP_HOLD:-20s}"
base="$root/tmp/setup-profile"
out="$base/$label"
keep="${KEEP:-$base/work}" # another database for a build with another schema
rm -rf "$out"
mkdir -p "$out" "$keep"
bin="${BIN:-}"
if [ -z "$bin" ]; then
  bin="$out/profserver"
  go build -o "$bin" ./chatserver/cmd/parley-load/profserver
fi
[ -x "$keep/parley-load" ] && [ -z "${REBUILD_LOAD:-}" ] || go build -o "$keep/parley-load" ./chatserver/cmd/parley-load
set -a
. tmp/postgres/env
set +a
pg_admin="$PARLEY_TEST_POSTGRES_URL"
if [ ! -f "$keep/db" ]; then
  db="parley_setup_$(date +%s)_$$"
  psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
  echo "$db" >"$keep/db"
fi
db="$(cat "$keep/db")"
db_url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$pg_admin" "$db")"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
work="$(mktemp -d)"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
rport="$(free_port)"
redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --dir "$work" --daemonize no >/dev/null &
redis_pid=$!
pids+=("$redis_pid")
for _ in $(seq 1 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
common=(-database-url "$db_url" -redis-url "redis://127.0.0.1:$rport/0" -rate-messages 100000/1s -rate-login 100000/1s
  -max-connections 200000 -log-level warn)
wait_ready() { for _ in $(seq 1 150); do curl -sf -o /dev/null "$1/readyz" && return 0; sleep 0.2; done; return 1; }
p1="$(free_port)" q1="$(free_port)" p2="$(free_port)" q2="$(free_port)"
# Replica 2 registers the accounts (the first run only) and makes the keyring
# both share; replica 1, fresh each run, takes the connections.
"$bin" -pprof-addr "127.0.0.1:$q2" -addr "127.0.0.1:$p2" -data-dir "$keep/r2" "${common[@]}" >"$out/r2.log" 2>&1 &
s2=$!
pids+=("$s2")
wait_ready "http://127.0.0.1:$p2"
"$bin" -pprof-addr "127.0.0.1:$q1" -addr "127.0.0.1:$p1" -data-dir "$work/r1" -keyring-dir "$keep/r2/keyring" "${common[@]}" >"$out/r1.log" 2>&1 &
s1=$!
pids+=("$s1")
wait_ready "http://127.0.0.1:$p1"
r1="http://127.0.0.1:$p1"
commits() { psql -tA "$pg_admin" -c "select xact_commit from pg_stat_database where datname='$db'"; }
rcmds() { redis-cli -p "$rport" info stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p'; }
metric() { curl -s "$r1/metrics" | awk -v m="$1" '$1 == m {printf "%d\n", $2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The accounts, once (their tokens are refreshed through replica 2 when old).
"$keep/parley-load" -users 600 -cache "$keep/users.json" -register-workers 8 -targets "http://127.0.0.1:$p2" \
  -register-targets "http://127.0.0.1:$p2" -mode idle -conns 1 -hold 0s -label warm >/dev/null 2>"$out/warm.log"
c0="$(commits)" k0="$(rcmds)" m0="$(metric go_memstats_mallocs_total)" t0="$(cpu_ticks "$s1")"
"$keep/parley-load" -users 600 -cache "$keep/users.json" -register-workers 8 -json -mode idle -label "$label" \
  -targets "$r1" -register-targets "http://127.0.0.1:$p2" -conns "$conns" -sources 4 -dial-workers 64 \
  -hold "$hold" -server-pids "$s1" >"$out/idle.json" 2>"$out/idle.log" &
load_pid=$!
curl -s -o "$out/setup.cpu" "http://127.0.0.1:$q1/debug/pprof/profile?seconds=${SETUP_CPU_SECONDS:-6}" &
prof=$!
for _ in $(seq 1 600); do grep -q "connections:" "$out/idle.log" 2>/dev/null && break; sleep 0.1; done
c1="$(commits)" k1="$(rcmds)" m1="$(metric go_memstats_mallocs_total)" t1="$(cpu_ticks "$s1")"
wait "$prof" || true
sleep 8 # settled: the heap of a replica holding idle connections
curl -s -o "$out/heap.pb.gz" "http://127.0.0.1:$q1/debug/pprof/heap?gc=1"
curl -s -o "$out/goroutine.txt" "http://127.0.0.1:$q1/debug/pprof/goroutine?debug=1"
curl -s "$r1/metrics" | grep -E '^go_(goroutines|memstats_(heap_inuse|heap_alloc|stack_inuse|sys|next_gc|heap_objects)_bytes|memstats_heap_objects) ' >"$out/memstats.txt" || true
wait "$load_pid"
go tool pprof -top -cum "$out/profserver" "$out/setup.cpu" >"$out/setup.cpu.top" 2>/dev/null ||
  go tool pprof -top -cum "$out/setup.cpu" >"$out/setup.cpu.top" 2>/dev/null || true
go tool pprof -top -sample_index=inuse_space "$out/heap.pb.gz" >"$out/heap.top" 2>/dev/null || true
n="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["connect"]["established"])' "$out/idle.json")"
{
  echo "label: $label; binary: $bin"
  echo "connections established: $n"
  python3 - "$out/idle.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["connect"]
print(f"set-up: {c['perSecond']:.0f}/s ({c['established']} in {c['seconds']:.2f} s), p50 {c['setupLatency']['p50Ms']:.1f} ms, p99 {c['setupLatency']['p99Ms']:.1f} ms")
for k in ("replicaCores", "generatorCores"):
    if k in c:
        print(f"{k} during set-up: {c[k]:.2f}")
for s in r.get("servers", []):
    print(f"RSS: {s['rssBeforeKiB']/1024:.1f} -> {s['rssAfterKiB']/1024:.1f} MiB, {s['kibPerConn']:.2f} KiB per connection")
print("errors:", r.get("errors"))
EOF
  echo "per set-up: PostgreSQL commits $(python3 -c "print(round(($c1-$c0)/$n, 2))"), Redis commands $(python3 -c "print(round(($k1-$k0)/$n, 2))"), heap allocations $(python3 -c "print(round(($m1-$m0)/$n))"), replica CPU $(python3 -c "print(round(($t1-$t0)*10/$n, 3))") ms"
  echo "runtime during the hold:"
  cat "$out/memstats.txt"
  echo "load average at the end: $(cat /proc/loadavg)"
} | tee "$out/counts.txt"
