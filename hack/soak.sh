#!/usr/bin/env bash
# make soak: a long run at half the maximum rate with connection churn, on
# loopback: PostgreSQL (hack/postgres.sh, a fresh database) + Redis (own,
# no persistence) + 2 chat-server replicas (hack/lib-stack.sh, as make bench).
# Unless SOAK_RATE is given, the maximum is measured first (15 s, closed loop,
# the soak's own mix of group and direct messages) and the soak runs at half
# of it. parley-load -mode soak then sends at that rate for SOAK_DURATION,
# closes and reopens SOAK_CHURN of the connections every SOAK_CHURN_EVERY
# (each resumes by cursor), and every SOAK_SAMPLE records each replica's
# goroutines, heap in use, RSS, open files and CPU, Redis's clients and
# PostgreSQL's connections to the database, messages/s, delivery p99 and
# errors. At the end the last third of the samples is compared with the first
# third: growth beyond the stated tolerances prints FAIL and exits non-zero.
# The samples, the checks and a chart go to SOAK_DOC (a <!-- soak --> section)
# and SOAK_SVG; the JSON reports to tmp/soak/.
# Knobs (environment): SOAK_DURATION (30m), SOAK_RATE (half the measured
#   maximum), SOAK_USERS (600), SOAK_CONNS (1200), SOAK_GROUP_SIZE (20),
#   SOAK_GROUP_FRACTION (0.5), SOAK_CHURN (0.05), SOAK_CHURN_EVERY (10s),
#   SOAK_SAMPLE (30s), SOAK_DOC (docs/benchmarks.md), SOAK_SVG
#   (docs/images/soak.svg), SOAK_COMMIT (build the chat server of this commit
#   instead of the working tree, e.g. HEAD while others edit the tree).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=hack/lib-stack.sh
. "$root/hack/lib-stack.sh"

duration="${SOAK_DURATION:-30m}"
rate="${SOAK_RATE:-}"
users="${SOAK_USERS:-600}"
conns="${SOAK_CONNS:-1200}"
group_size="${SOAK_GROUP_SIZE:-20}"
fraction="${SOAK_GROUP_FRACTION:-0.5}"
churn="${SOAK_CHURN:-0.05}"
churn_every="${SOAK_CHURN_EVERY:-10s}"
sample="${SOAK_SAMPLE:-30s}"
doc="${SOAK_DOC:-docs/benchmarks.md}"
svg="${SOAK_SVG:-docs/images/soak.svg}"

out="$root/tmp/soak"
mkdir -p "$out"
rm -f "$out"/*.json "$out/meta.txt"
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

for tool in redis-server redis-cli psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "soak: $tool not found (run make deps)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

stack_log "building"
if [ -n "${SOAK_COMMIT:-}" ]; then
  # The chat server of that commit exactly, not the working tree (others may
  # be editing it): exported with git archive, built into the scratch folder.
  stack_commit="$(git rev-parse --short "$SOAK_COMMIT")"
  mkdir -p "$work/src"
  git archive "$SOAK_COMMIT" | tar -x -C "$work/src"
  (cd "$work/src" && go build -o "$work/chatserver" ./chatserver/cmd/chatserver)
  chatserver_bin="$work/chatserver"
else
  go build -o bin/chatserver ./chatserver/cmd/chatserver
fi
go build -o bin/parley-load ./chatserver/cmd/parley-load

stack_postgres parley_soak
stack_redis
common=(-database-url "$db_url" -redis-url "redis://127.0.0.1:$rport/0"
  -rate-messages 100000/1s -rate-login 100000/1s -max-connections 200000 -log-level warn)
stack_replica r1 "${common[@]}"
r1="$replica_url" s1="$replica_pid"
stack_replica r2 -keyring-dir "$work/r1/keyring" "${common[@]}"
r2="$replica_url" s2="$replica_pid"
stack_log "replicas $r1 (pid $s1) and $r2 (pid $s2), Redis :$rport (pid $redis_pid), database $db"

load=(bin/parley-load -users "$users" -cache "$work/users.json" -register-workers 8 -json
  -targets "$r1,$r2" -conns "$conns" -group-size "$group_size" -group-fraction "$fraction" -inflight 64 -senders 16
  -server-pids "$s1,$s2" -watch "redis=$redis_pid,postgres=$pg_pid+")

rate_note="SOAK_RATE"
if [ -z "$rate" ]; then
  stack_log "maximum rate: 15 s as fast as acks allow, ${fraction} of sends to groups"
  "${load[@]}" -label soak-max -duration 15s -rate 0 >"$out/max.json"
  max="$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["traffic"]["ackedPerSecond"]))' "$out/max.json")"
  rate=$((max / 2 > 0 ? max / 2 : 1))
  rate_note="half the $max messages/s measured just before (15 s, closed loop, same mix; load $(cut -d' ' -f1-3 /proc/loadavg))"
fi

{
  stack_machine
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared with other work)"
  echo "rate: $rate messages/s: $rate_note"
  echo "script: make soak (hack/soak.sh; SOAK_DURATION=$duration SOAK_USERS=$users SOAK_CONNS=$conns SOAK_GROUP_SIZE=$group_size SOAK_GROUP_FRACTION=$fraction SOAK_CHURN=$churn SOAK_CHURN_EVERY=$churn_every SOAK_SAMPLE=$sample)"
  echo "replicas: 2 × bin/chatserver ${common[*]//$db_url/postgres://…/$db} (PostgreSQL pool 20 each)"
  echo "note: PostgreSQL CPU is the postmaster and all its backends, other databases on the same server included"
} >"$out/meta.txt"

stack_log "soak: $rate messages/s for $duration, churn $churn every $churn_every, samples every $sample"
set +e
"${load[@]}" -mode soak -label soak -rate "$rate" -duration "$duration" -timeout 2h -drain 15s \
  -soak-sample "$sample" -soak-churn "$churn" -soak-churn-every "$churn_every" \
  -soak-redis "redis://127.0.0.1:$rport/0" -soak-postgres "$pg_admin" -soak-database "$db" \
  -soak-doc "$doc" -soak-svg "$svg" -soak-meta "$out/meta.txt" >"$out/soak.json"
rc=$?
set -e
stack_log "report in $out/soak.json; section written to $doc, chart to $svg (exit $rc)"
exit "$rc"
