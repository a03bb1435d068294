#!/usr/bin/env bash
# make scale-sim: the reduced-scale check of docs/scaling.md's capacity model,
# on loopback, bounded to a few minutes: SIM_REPLICAS (5) small chat-server
# replicas (PostgreSQL pool 4 each) + one Redis + PostgreSQL (hack/lib-stack.sh),
# parley-load spreading SIM_CONNS connections (2 per account, on different
# replicas) over all of them. Phases: idle (connections open, no traffic),
# direct messages, groups of SIM_GROUP_SIZE with shared envelopes (the
# default -shared-fanout-min), then the same groups with one publish per
# member (-shared-fanout-min 0, replicas restarted). Each phase records the
# CPU of every replica, of Redis and of this database's PostgreSQL backends
# (other databases on the same server are left out), and Redis's publishes
# and pub/sub messages sent (INFO). The model's predictions for the same
# scale are computed from the per-message costs in docs/benchmarks.md and
# written beside the measurements in docs/scaling.md (a <!-- scale-sim -->
# section); the JSON reports go to tmp/scale-sim/.
# Knobs: SIM_REPLICAS (5), SIM_USERS (500), SIM_CONNS (1000), SIM_GROUP_SIZE
#   (20), SIM_DIRECT_RATE (300), SIM_GROUP_RATE (150), SIM_PHASE (30s),
#   SIM_DOC (docs/scaling.md).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=hack/lib-stack.sh
. "$root/hack/lib-stack.sh"

replicas="${SIM_REPLICAS:-5}"
users="${SIM_USERS:-500}"
conns="${SIM_CONNS:-1000}"
group_size="${SIM_GROUP_SIZE:-20}"
direct_rate="${SIM_DIRECT_RATE:-300}"
group_rate="${SIM_GROUP_RATE:-150}"
phase="${SIM_PHASE:-30s}"
doc="${SIM_DOC:-docs/scaling.md}"

out="$root/tmp/scale-sim"
mkdir -p "$out"
rm -f "$out"/*.json "$out"/*.txt
work="$(mktemp -d "$out/work.XXXXXX")"
pids=()
pg_started=""
cleanup() {
  local rc=$?
  set +e
  stack_stop
  stack_drop_database
  [ -n "$pg_started" ] && hack/postgres.sh stop
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)"

stack_log "building"
go build -o bin/chatserver ./chatserver/cmd/chatserver
go build -o bin/parley-load ./chatserver/cmd/parley-load
stack_postgres parley_sim
stack_redis
common=(-database-url "$db_url" -redis-url "redis://127.0.0.1:$rport/0" -db-max-conns 4
  -rate-messages 100000/1s -rate-login 100000/1s -max-connections 200000 -log-level warn)

urls=() spids=()
start_replicas() { # extra chat-server flags
  urls=() spids=()
  for i in $(seq 1 "$replicas"); do
    if [ "$i" = 1 ]; then
      stack_replica "r$i" "${common[@]}" "$@"
    else
      stack_replica "r$i" -keyring-dir "$work/r1/keyring" "${common[@]}" "$@"
    fi
    urls+=("$replica_url") spids+=("$replica_pid")
  done
}
stop_replicas() {
  local p
  for p in "${spids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${spids[@]}"; do wait "$p" 2>/dev/null || true; done
  local keep=() q
  for q in "${pids[@]}"; do
    [[ " ${spids[*]} " == *" $q "* ]] || keep+=("$q")
  done
  pids=("${keep[@]}")
}

# pg_backends: PIDs of this database's backends, as name=PID for -watch.
pg_backends() {
  psql -tA "$pg_admin" -c "select string_agg('pg' || pid || '=' || pid, ',') from pg_stat_activity where datname = '$db'"
}
# redis_sampler FILE: every 0.5 s, "epoch publishes cpu-seconds output-bytes
# commands" of the Redis (PUBLISH + SPUBLISH calls, used_cpu_sys +
# used_cpu_user, total_net_output_bytes, total_commands_processed), so rates
# are taken inside the traffic window only.
redis_sampler() {
  while :; do
    printf '%s ' "$(date +%s.%N)"
    redis-cli -p "$rport" info all | tr -d '\r' | awk -F'[=,:]' '
      /^cmdstat_s?publish:/ {p += $3}
      /^used_cpu_(sys|user):/ {c += $2}
      /^total_net_output_bytes:/ {o = $2}
      /^total_commands_processed:/ {n = $2}
      END {printf "%d %.3f %d %d\n", p, c, o, n}'
    sleep 0.5
  done >"$1"
}

load_args() { # phase label
  local IFS=,
  echo "-users $users -cache $work/users.json -register-workers 8 -json -targets ${urls[*]} -conns $conns -group-size $group_size -inflight 64 -senders 8 -server-pids ${spids[*]}"
}

run_phase() { # label parley-load args...
  local label="$1"
  shift
  local watch
  watch="redis=$redis_pid"
  local b
  b="$(pg_backends)"
  [ -n "$b" ] && watch="$watch,$b"
  redis_sampler "$out/$label.redis.txt" &
  local sampler=$!
  # shellcheck disable=SC2046
  bin/parley-load $(load_args) -label "$label" -watch "$watch" "$@" >"$out/$label.json" 2>"$out/$label.log"
  kill "$sampler"
  wait "$sampler" 2>/dev/null || true
  stack_log "$label done (load $(cut -d' ' -f1-3 /proc/loadavg))"
}

start_replicas
stack_log "$replicas replicas ${urls[*]}, Redis :$rport, database $db"
{
  stack_machine
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: make scale-sim (hack/scale-sim.sh; SIM_REPLICAS=$replicas SIM_USERS=$users SIM_CONNS=$conns SIM_GROUP_SIZE=$group_size SIM_DIRECT_RATE=$direct_rate SIM_GROUP_RATE=$group_rate SIM_PHASE=$phase)"
} >"$out/meta.txt"

# Accounts, conversations and warm pools (not measured).
stack_log "warm-up: accounts and pools"
# shellcheck disable=SC2046
bin/parley-load $(load_args) -label warm -duration 5s -rate 100 -group-fraction 0.5 >"$out/warm.json"

run_phase idle -mode idle -hold 15s
run_phase direct -duration "$phase" -rate "$direct_rate" -group-fraction 0
run_phase group-shared -duration "$phase" -rate "$group_rate" -group-fraction 1
stop_replicas
start_replicas -shared-fanout-min 0
# New replicas: their PostgreSQL pools open again before the backends are listed.
# shellcheck disable=SC2046
bin/parley-load $(load_args) -label warm2 -duration 5s -rate 100 -group-fraction 0.5 >"$out/warm2.json" 2>/dev/null
run_phase group-per-user -duration "$phase" -rate "$group_rate" -group-fraction 1
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/meta.txt"

python3 "$root/hack/scale-sim-report.py" "$out" "$replicas" "$group_size" "$doc"
stack_log "table written to $doc (reports in $out)"
