#!/usr/bin/env bash
# Builds the images make e2e-cluster runs, as OCI archives in tmp/cluster/images/ (written by
# hack/cluster/imgtool with go-containerregistry; no Docker, no registry). hack/cluster/node.sh up imports them into
# containerd. Every pod uses imagePullPolicy Never or IfNotPresent: nothing is ever pulled.
#   parley/pause:dev       the pod sandbox (hack/cluster/pause)
#   parley/chatserver:dev  static bin (CGO_ENABLED=0) with the web client embedded; uid 65532
#   parley/operator:dev    static bin/manager; uid 65532
#   parley/redis:dev       Debian's redis-server and redis-cli with their shared libraries (ldd); uid 999;
#                          protected mode off, as in the official images (hack/cluster/rediswrap)
#   parley/chatserver:dev2 the same chat server under another tag: the production-shape scenario's
#                          rolling image update
#   parley/operator:dev2   the operator built as version dev2 (the upgrade scenario)
#   ghcr.io/parley-chat/chatserver:dev, :dev2  the operator's default chat server image at versions dev
#                          and dev2 (the same chat server build)
#   parley/postgres:dev    Debian's PostgreSQL (initdb, postgres, its modules and share files, the
#                          libraries ldd names); uid 999; entrypoint hack/cluster/pgwrap (initdb on
#                          an empty volume, then postgres)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=$ROOT/tmp/cluster/bin O=$ROOT/tmp/cluster/images
mkdir -p "$B" "$O"
cd "$ROOT"
"$ROOT/hack/web.sh" build # skipped when chatserver/web/dist is up to date
export CGO_ENABLED=0
# imgtool is its own module (go-containerregistry stays out of the project's go.mod)
(cd hack/cluster/imgtool && go build -o "$B/imgtool" .)
go build -trimpath -ldflags='-s -w' -o "$B/pause" ./hack/cluster/pause
go build -trimpath -ldflags='-s -w' -o "$B/chatserver" ./chatserver/cmd/chatserver
go build -trimpath -ldflags='-s -w -X main.version=dev' -o "$B/manager" .
# The operator "upgraded": version dev2, so its default chat server image is ...chatserver:dev2
go build -trimpath -ldflags='-s -w -X main.version=dev2' -o "$B/manager-dev2" .
for b in pause chatserver manager manager-dev2; do # static, or the image (no libc in it) cannot run it
	if ldd "$B/$b" >/dev/null 2>&1; then echo "images: $B/$b is dynamically linked" >&2; exit 1; fi
done
img() { "$B/imgtool" "$@" 2>&1 | sed 's/^/images: /' >&2; }
img -name parley/pause:dev -entrypoint /pause -add "$B/pause=/pause" -o "$O/pause.tar"
img -name parley/chatserver:dev -entrypoint /chatserver -user 65532:65532 -add "$B/chatserver=/chatserver" -o "$O/chatserver.tar"
img -name parley/chatserver:dev2 -entrypoint /chatserver -user 65532:65532 -add "$B/chatserver=/chatserver" -o "$O/chatserver-dev2.tar"
img -name parley/operator:dev -entrypoint /manager -user 65532:65532 -add "$B/manager=/manager" -o "$O/operator.tar"
img -name parley/operator:dev2 -entrypoint /manager -user 65532:65532 -add "$B/manager-dev2=/manager" -o "$O/operator-dev2.tar"
# The operator's default chat server image (ChatClusters without spec.image) at versions dev and dev2
for v in dev dev2; do
	img -name ghcr.io/parley-chat/chatserver:$v -entrypoint /chatserver -user 65532:65532 -add "$B/chatserver=/chatserver" -o "$O/default-chatserver-$v.tar"
done
# Redis: the binaries and every library ldd names, at the same paths (the loader included).
# No entrypoint: the operator's StatefulSet runs `redis-server ...` as args, found on PATH.
if [ -x /usr/bin/redis-server ]; then
	# redis-server on PATH is rediswrap: Debian's binary with --protected-mode no (see there)
	go build -trimpath -ldflags='-s -w' -o "$B/rediswrap" ./hack/cluster/rediswrap
	adds=(-add "$B/rediswrap=/usr/local/bin/redis-server" -add /usr/bin/redis-server=/usr/local/lib/redis/redis-server
		-add /usr/bin/redis-cli=/usr/local/bin/redis-cli)
	for lib in $(ldd /usr/bin/redis-server /usr/bin/redis-cli | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
		adds+=(-add "$lib=$lib")
	done
	img -name parley/redis:dev -user 999:999 -env LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu "${adds[@]}" -o "$O/redis.tar"
else
	echo "images: no /usr/bin/redis-server (Debian redis-server): parley/redis:dev not built" >&2
	rm -f "$O/redis.tar"
fi
# PostgreSQL: Debian's server binaries, modules (not the LLVM JIT: jit is then simply off) and
# share files at their own paths, so initdb and postgres find each other as on Debian.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]; then
	go build -trimpath -ldflags='-s -w' -o "$B/pgwrap" ./hack/cluster/pgwrap
	PGLIB=${PGBIN%/bin}/lib PGSHARE=/usr/share/postgresql/$(basename "${PGBIN%/bin}")
	# initdb runs postgres through popen(3), i.e. /bin/sh: Debian's dash is the image's shell.
	adds=(-add "$B/pgwrap=/usr/local/bin/pgwrap" -add "$PGBIN/initdb=$PGBIN/initdb" -add "$PGBIN/postgres=$PGBIN/postgres" -add /bin/dash=/bin/sh
		-add /usr/share/zoneinfo/UTC=/usr/share/zoneinfo/UTC -add /usr/share/zoneinfo/Etc/UTC=/usr/share/zoneinfo/Etc/UTC)
	mods=$(find "$PGLIB" -maxdepth 1 -name '*.so' ! -name 'llvmjit*')
	for f in $mods $(find "$PGSHARE" -type f); do adds+=(-add "$f=$f"); done
	# (ldd of several files also prints each file's name and a colon: those lines are left out)
	for lib in $(ldd "$PGBIN/initdb" "$PGBIN/postgres" /bin/dash $mods 2>/dev/null | grep -v ':$' | grep -o '/[^ ]*\.so[^ ]*' | sort -u); do
		adds+=(-add "$lib=$lib")
	done
	img -name parley/postgres:dev -entrypoint /usr/local/bin/pgwrap -user 999:999 -env TZ=UTC \
		-env LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu "${adds[@]}" -o "$O/postgres.tar"
else
	echo "images: no Debian PostgreSQL under /usr/lib/postgresql: parley/postgres:dev not built" >&2
	rm -f "$O/postgres.tar"
fi
ls -la "$O" >&2
echo "note: $(cd "$O" && for f in *.tar; do printf '%s %s MB, ' "${f%.tar}" $(($(stat -c %s "$f") / 1048576)); done)imported by node.sh up"
