#!/usr/bin/env bash
# hack/pgbench-append.sh [SECONDS] [ROUNDS]: is group commit worth building?
# Runs the send path's one-statement append (appendPG, taken from
# chatserver/store/sqlstore/messages.go) under pgbench against the test
# PostgreSQL (make postgres-up), one append per transaction against eight per
# transaction, alternating, and prints PostgreSQL's CPU per append (the
# backends' CPU, read from /proc, reaped children included). 4 clients, 16
# conversations of 20 members, a fresh database dropped at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
secs="${1:-12}" rounds="${2:-2}"
set -a; . tmp/postgres/env; set +a
admin="$PARLEY_TEST_POSTGRES_URL"
db="parley_pgbench_$$"
url="$(python3 -c 'import sys,urllib.parse as u; p=u.urlsplit(sys.argv[1]); print(u.urlunsplit(p._replace(path="/"+sys.argv[2])))' "$admin" "$db")"
work="$(mktemp -d)"
trap 'kill "${sampler:-}" 2>/dev/null; psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; rm -rf "$work"' EXIT
psql -q "$admin" -c "CREATE DATABASE $db" >/dev/null
go build -o "$work/chatserver" ./chatserver/cmd/chatserver
# The server migrates the database on start; it is stopped once ready.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')"
"$work/chatserver" -addr "127.0.0.1:$port" -data-dir "$work/data" -database-url "$url" -log-level warn >"$work/server.log" 2>&1 &
srv=$!
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/readyz" && break; sleep 0.1; done
kill "$srv"; wait "$srv" 2>/dev/null || true
psql -q "$url" <<'SQL'
CREATE SEQUENCE bench_ids;
INSERT INTO users (id, username, email, display_name, password_hash, created_at, tokens_valid_after)
SELECT 'u_'||i, 'user'||i, 'u'||i||'@x', 'U'||i, 'x', 0, 0 FROM generate_series(0,319) i;
INSERT INTO conversations (id, kind, created_by, created_at, last_activity)
SELECT 'c_'||g, 'group', 'u_'||(g*20), 0, 0 FROM generate_series(0,15) g;
INSERT INTO members (conversation_id, user_id, role, joined_at)
SELECT 'c_'||(i/20), 'u_'||i, CASE WHEN i%20=0 THEN 'owner' ELSE 'member' END, 0 FROM generate_series(0,319) i;
SQL
python3 - "$work" <<'PY'
import re, sys
work = sys.argv[1]
src = open('chatserver/store/sqlstore/messages.go').read()
cols = ' '.join(re.search(r'const messageCols = ("[^"]*"\s*\+\s*"[^"]*")', src).group(1).replace('"', '').replace('+', ' ').split())
i = src.index('const appendPG = `') + len('const appendPG = `')
sql = src[i:src.index('FROM prev`', i) + len('FROM prev')].replace('` + messageCols + `', cols)
# Ids from a sequence: pgbench's clients draw repeating random numbers.
args = {'$1': "('c_'||:c)", '$2': "('u_'||(:c*20+1))", '$3': "('cl'||nextval('bench_ids'))", '$4': "('m_'||nextval('bench_ids'))", '$5': "'" + 'x' * 120 + "'",
        '$6': "'k1'", '$7': '1700000000000000', '$8': "''", '$9': 'NULL', '$10': "''", '$11': 'NULL'}
for k in sorted(args, key=len, reverse=True):
    sql = sql.replace(k, args[k])
sql = ' '.join(sql.split())
one = '\\set c random(0, 15)\n' + sql + ';\n'
eight = '\\set c random(0, 15)\nBEGIN;\n' + ''.join(sql + ';\n' for _ in range(8)) + 'COMMIT;\n'
open(work + '/one.sql', 'w').write(one)
open(work + '/eight.sql', 'w').write(eight)
PY
# PostgreSQL's CPU for this database only (the server may serve other
# databases meanwhile): the backends' titles name the database; each is
# sampled every 0.2 s while pgbench runs, and its last reading kept.
sample() { # sample OUT: until killed
  exec python3 - "$db" "$1" <<'PY'
import os, sys, time, signal
db, out = sys.argv[1], sys.argv[2]
hz, seen = os.sysconf("SC_CLK_TCK"), {}
def done(*_):
    open(out, "w").write(str(sum(seen.values()) / hz)); sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f" {db} " not in open(f"/proc/{p}/cmdline").read().replace("\0", " ") + " ": continue
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            seen[p] = int(f[11]) + int(f[12])
        except OSError: pass
    time.sleep(0.2)
PY
}
count() { psql -tA "$url" -c "select count(*) from messages"; }
echo "| transaction | round | appends/s | PostgreSQL ms of CPU per append | load |"
echo "|---|---:|---:|---:|---:|"
for r in $(seq 1 "$rounds"); do
  for f in one eight; do
    m0="$(count)"
    sample "$work/cpu" &
    sampler=$!
    "$PARLEY_TEST_POSTGRES_BIN/pgbench" -n -M prepared -c 4 -T "$secs" -f "$work/$f.sql" "$url" >"$work/$f-$r.out" 2>&1 || { cat "$work/$f-$r.out" >&2; exit 1; }
    sleep 0.3
    kill "$sampler"; wait "$sampler" 2>/dev/null || true
    m1="$(count)" cpu="$(cat "$work/cpu")"
    python3 -c "import sys; n=$m1-$m0; print(f'| {sys.argv[1]} append(s) | $r | {n/$secs:.0f} | {$cpu/n*1000:.3f} | {sys.argv[2]} |')" \
      "$([ $f = one ] && echo 1 || echo 8)" "$(cut -d' ' -f1 /proc/loadavg)"
  done
done
