#!/usr/bin/env bash
# The standard load scenario behind `make bench`, on this machine, loopback only:
#   PostgreSQL (hack/postgres.sh, a fresh database) + Redis (own temp dir, no
#   persistence) + 2 chat-server replicas sharing both, driven by parley-load;
#   then, in the same run, the baselines: a bare gorilla/websocket broadcast
#   server driven by the same generator, and redis-benchmark PUBLISH against
#   the same Redis; then attachment upload and download through the replicas
#   against the S3 server's own PUT and GET (the replicas keep attachments in
#   the S3 server of hack/s3-server.sh). The JSON reports go to tmp/bench/run and benchdoc writes
#   the figures section of docs/benchmarks.md. Everything started here is
#   stopped on exit.
# Knobs (environment): BENCH_USERS (600), BENCH_IDLE_CONNS (18000),
#   BENCH_IDLE_HOLD (20s), BENCH_CONNS (1200), BENCH_GROUP_SIZE (20),
#   BENCH_DURATION (15s), BENCH_INFLIGHT (64), BENCH_BLOB_FILES (16),
#   BENCH_BLOB_MIB (16), BENCH_BLOB_CONCURRENCY (4), BENCH_LARGE_GROUP (1000:
#   the members of the one large group, one connection each), BENCH_LARGE_RATE
#   (20 messages/s into it, open loop: 20,000 deliveries/s).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
# shellcheck source=hack/lib-stack.sh
. "$root/hack/lib-stack.sh"

users="${BENCH_USERS:-600}"
idle_conns="${BENCH_IDLE_CONNS:-18000}"
idle_hold="${BENCH_IDLE_HOLD:-20s}"
conns="${BENCH_CONNS:-1200}"
group_size="${BENCH_GROUP_SIZE:-20}"
duration="${BENCH_DURATION:-15s}"
inflight="${BENCH_INFLIGHT:-64}"
blob_files="${BENCH_BLOB_FILES:-16}"
blob_mib="${BENCH_BLOB_MIB:-16}"
blob_conc="${BENCH_BLOB_CONCURRENCY:-4}"
large="${BENCH_LARGE_GROUP:-1000}"
large_rate="${BENCH_LARGE_RATE:-20}"

out="$root/tmp/bench"
run="$out/run"
mkdir -p "$out"
rm -rf "$run"
mkdir -p "$run"
work="$(mktemp -d "$out/work.XXXXXX")"

pids=()
pg_started=""
s3_started=""
pg_admin=""
db=""
cleanup() {
  local rc=$?
  set +e
  stack_stop
  stack_drop_database
  [ -n "$pg_started" ] && hack/postgres.sh stop
  [ -n "$s3_started" ] && hack/s3-server.sh stop
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { stack_log "$@"; }

for tool in redis-server redis-cli redis-benchmark psql python3 curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (run make deps)" >&2; exit 1; }
done

# Connections need file descriptors: take everything the hard limit allows.
ulimit -n "$(ulimit -Hn)"
fd_limit="$(ulimit -n)"
if [ "$idle_conns" -gt $((fd_limit - 500)) ]; then
  log "open-file limit is $fd_limit (hard): idle connections lowered from $idle_conns to $((fd_limit - 1000))"
  idle_conns=$((fd_limit - 1000))
fi

log "building"
go build -o bin/chatserver ./chatserver/cmd/chatserver
go build -o bin/parley-load ./chatserver/cmd/parley-load
go build -o bin/parley-baseline ./chatserver/cmd/parley-load/baseline
usage="$(bin/chatserver -h 2>&1 || true)"
grep -q -- '-redis-url' <<<"$usage" || { echo "bench: bin/chatserver has no -redis-url flag" >&2; exit 1; }

# PostgreSQL: the test server (started here if it is not running), a fresh database.
stack_postgres parley_bench

# S3: the test server (started here if it is not running); the replicas keep
# attachments in its bucket, under keys of their own.
if ! { [ -f "$root/tmp/s3/versitygw.pid" ] && kill -0 "$(cat "$root/tmp/s3/versitygw.pid")" 2>/dev/null; }; then
  s3_started=1
fi
hack/s3-server.sh start >/dev/null
set -a
# shellcheck source=/dev/null
. "$root/tmp/s3/env"
set +a
s3_pid="$(cat "$root/tmp/s3/versitygw.pid")"
# Credentials reach the replicas through their environment, not their arguments.
export PARLEY_S3_ACCESS_KEY="$PARLEY_TEST_S3_ACCESS_KEY" PARLEY_S3_SECRET_KEY="$PARLEY_TEST_S3_SECRET_KEY"

# Redis: own port and folder, no persistence.
stack_redis

# Two replicas sharing PostgreSQL, Redis and one keyring.
common=(-database-url "$db_url" -redis-url "redis://127.0.0.1:$rport/0"
  -rate-messages 100000/1s -rate-login 100000/1s -max-connections 200000 -log-level warn
  -attachments-store s3 -s3-endpoint "$PARLEY_TEST_S3_ENDPOINT" -s3-bucket "$PARLEY_TEST_S3_BUCKET" -s3-path-style=true)
stack_replica r1 "${common[@]}"
r1="$replica_url" s1="$replica_pid"
stack_replica r2 -keyring-dir "$work/r1/keyring" "${common[@]}"
r2="$replica_url" s2="$replica_pid"
log "replicas $r1 (pid $s1) and $r2 (pid $s2), Redis :$rport (pid $redis_pid), database $db"

{
  echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- chatserver 2>/dev/null || echo ' (chatserver/ has uncommitted changes)')"
  echo "CPU: $(nproc) × $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  echo "memory: $(free -h | awk '/^Mem:/ {print $2 " total, " $7 " available"}')"
  echo "kernel: $(uname -r)"
  echo "Go: $(go version | awk '{print $3}')"
  echo "Redis: $(redis-server --version | awk '{print $3}' | tr -d 'v=')"
  echo "PostgreSQL: $(psql -tA "$pg_admin" -c 'show server_version') (hack/postgres.sh: fsync=off, synchronous_commit=off)"
  echo "open-file limit: $fd_limit"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared with other builds)"
  echo "command: make bench (hack/bench.sh; BENCH_USERS=$users BENCH_IDLE_CONNS=$idle_conns BENCH_IDLE_HOLD=$idle_hold BENCH_CONNS=$conns BENCH_GROUP_SIZE=$group_size BENCH_DURATION=$duration BENCH_INFLIGHT=$inflight BENCH_LARGE_GROUP=$large BENCH_LARGE_RATE=$large_rate)"
  echo "replicas: bin/chatserver ${common[*]//$db_url/postgres://…/$db} (2 processes, PostgreSQL pool 20 each)"
} >"$run/meta.txt"

load=(bin/parley-load -users "$users" -cache "$work/users.json" -register-workers 8 -json)

# 1. Idle: accounts registered through replica 2 (so replica 1's RSS holds no
#    argon2id buffers), connections held on replica 1, from 4 source addresses.
log "idle: $idle_conns connections on replica 1, held $idle_hold"
"${load[@]}" -mode idle -label idle -targets "$r1" -register-targets "$r2" -conns "$idle_conns" \
  -sources 4 -dial-workers 64 -hold "$idle_hold" -server-pids "$s1" >"$run/idle.json"

traffic=(-targets "$r1,$r2" -conns "$conns" -group-size "$group_size" -duration "$duration"
  -inflight "$inflight" -senders 16 -server-pids "$s1,$s2" -watch "redis=$redis_pid,postgres=$pg_pid+")

# The bare broadcast baseline: same generator, same shape, one process.
pb="$(free_port)"
bin/parley-baseline -addr "127.0.0.1:$pb" >"$work/baseline.log" 2>&1 &
sb=$!
pids+=("$sb")
wait_ready "http://127.0.0.1:$pb" "$sb"
baseline=(bin/parley-load -users "$users" -register-workers 8 -json -targets "http://127.0.0.1:$pb"
  -conns "$conns" -group-size "$group_size" -duration "$duration" -inflight "$inflight" -senders 16
  -server-pids "$sb" -group-fraction 1 -rate 0)

# 2. Group fan-out at the maximum rate (closed loop) and the baseline, twice,
#    alternating, so both see the same share of a machine other builds use.
for i in 1 2; do
  log "group fan-out, as fast as acks allow ($i of 2)"
  redis-cli -p "$rport" info commandstats >"$run/redis-info-before-$i.txt"
  "${load[@]}" -label "group-max-$i" "${traffic[@]}" -group-fraction 1 -rate 0 >"$run/group-max-$i.json"
  redis-cli -p "$rport" info commandstats >"$run/redis-info-after-$i.txt"
  log "baseline: bare broadcast, as fast as acks allow ($i of 2)"
  "${baseline[@]}" -label "baseline-max-$i" -user-prefix "base$i" >"$run/baseline-max-$i.json"
done
# 2b. One large group (each message to every member) at a fixed rate (acks
#     do not wait for the fan-out, so a closed loop would only measure how
#     fast the slow-consumer policy drops connections), and the baseline with
#     the same shape and rate: the figure behind the shared envelopes.
log "one group of $large members at $large_rate messages/s, and the baseline"
bin/parley-load -users "$large" -cache "$work/users.json" -register-workers 8 -json -label large-group \
  -targets "$r1,$r2" -conns "$large" -group-size "$large" -duration "$duration" -inflight "$inflight" -senders 16 \
  -server-pids "$s1,$s2" -watch "redis=$redis_pid,postgres=$pg_pid+" -group-fraction 1 -rate "$large_rate" >"$run/large-group.json"
bin/parley-load -users "$large" -register-workers 8 -json -label baseline-large -user-prefix basel \
  -targets "http://127.0.0.1:$pb" -conns "$large" -group-size "$large" -duration "$duration" -inflight "$inflight" -senders 16 \
  -server-pids "$sb" -group-fraction 1 -rate "$large_rate" >"$run/baseline-large.json"
kill "$sb"
half="$(python3 -c 'import json,sys; print(max(1, round(max(json.load(open(f))["traffic"]["ackedPerSecond"] for f in sys.argv[1:]) / 2)))' \
  "$run/group-max-1.json" "$run/group-max-2.json")"

# 3. Group fan-out at half the better maximum (open loop): the latency figure.
log "group fan-out at $half messages/s"
"${load[@]}" -label group-half "${traffic[@]}" -group-fraction 1 -rate "$half" >"$run/group-half.json"

# 4. Direct and group traffic at the same rate.
log "direct + group at $half messages/s"
"${load[@]}" -label mixed "${traffic[@]}" -group-fraction 0.5 -rate "$half" >"$run/mixed.json"

# 5. Attachments: upload through replica 1, download through replica 2, and
#    the S3 server's own PUT and GET of the same files, alternating.
log "attachments: $blob_files files of $blob_mib MiB, $blob_conc at a time, against raw S3"
bin/parley-load -mode blobs -label blobs -users 1 -conns 1 -user-prefix "blob$$" -register-workers 1 -json \
  -targets "$r1,$r2" -server-pids "$s1,$s2" -watch "s3=$s3_pid" \
  -blob-files "$blob_files" -blob-mib "$blob_mib" -blob-concurrency "$blob_conc" -blob-rounds 2 >"$run/blobs.json"

# 6. Redis's own publish rate, same server.
log "redis-benchmark PUBLISH"
redis-benchmark -h 127.0.0.1 -p "$rport" -c 50 -n 200000 --csv PUBLISH ch msg >"$run/redis-bench-publish-p1.csv"
redis-benchmark -h 127.0.0.1 -p "$rport" -c 50 -n 1000000 -P 16 --csv PUBLISH ch msg >"$run/redis-bench-publish-p16.csv"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$run/meta.txt"
go run ./chatserver/cmd/parley-load/benchdoc -doc docs/benchmarks.md -run "$run"
log "figures written to docs/benchmarks.md (reports in $run)"
