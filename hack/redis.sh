#!/usr/bin/env bash
# Starts a throwaway Redis for tests on a free loopback port.
#   hack/redis.sh start  -> prints PARLEY_TEST_REDIS_URL=... (also in tmp/redis/env)
#   hack/redis.sh stop
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$root/tmp/redis"
command -v redis-server >/dev/null || { echo "redis.sh: redis-server not installed (run hack/install-deps.sh)" >&2; exit 1; }

case "${1:-start}" in
start)
  if [ -f "$dir/env" ] && [ -f "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    cat "$dir/env"; exit 0
  fi
  rm -rf "$dir"; mkdir -p "$dir"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  redis-cli -p "$port" ping >/dev/null || { cat "$dir/redis.log" >&2; exit 1; }
  echo "PARLEY_TEST_REDIS_URL=redis://127.0.0.1:$port/0" > "$dir/env"
  cat "$dir/env"
  ;;
stop)
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
