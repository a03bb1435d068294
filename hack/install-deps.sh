#!/usr/bin/env bash
# Installs the system packages the tests use (Debian): PostgreSQL, Redis, etcd and
# Chromium. Idempotent and quick when everything is already there.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$2" ]; }
have redis-server /usr/bin/redis-server || need+=(redis-server)
have etcd /usr/bin/etcd || need+=(etcd-server)
have chromium /usr/bin/chromium || need+=(chromium)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
  exit 1
fi
echo "install-deps: installing ${need[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
