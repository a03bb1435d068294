#!/usr/bin/env bash
# A real S3-compatible server for the blob tests, without Docker or a download
# site: versitygw (Apache-2.0, a small S3 gateway over a POSIX folder), built
# from the Go module proxy at a pinned version and cached in bin/, like
# kube-apiserver (hack/envtest-assets.sh) and helm (hack/helm.sh).
#
#   hack/s3-server.sh ensure   build bin/versitygw unless it is there at VERSION
#   hack/s3-server.sh start    ensure, start it on a free loopback port with its data
#                              in tmp/s3/data, create the bucket, and write tmp/s3/env
#                              (PARLEY_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _BUCKET)
#   hack/s3-server.sh stop
#
# Build time (2026-12-03, 2 cores shared with other work): 121 s cold (empty module
# and build caches: downloads included), 70 s with the build cache of this project's
# own dependencies; the binary is cached in bin/ after that (a --version check).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=$ROOT/tmp/s3
NAME=versitygw
# A version the Go module proxy serves: go list -m -versions github.com/versity/versitygw
VERSION=v1.8.0
PKG=github.com/versity/versitygw/cmd/versitygw
INSTALL_ARGS=(-ldflags "-s -w -X main.Version=$VERSION -X main.Build=proxy")
# Outside the project's module: versitygw's own go.mod decides its dependencies.
INSTALL_ENV=(GOFLAGS=-mod=mod)
BUCKET=parley-test

installed_version() {
	"$ROOT/bin/versitygw" --version 2>/dev/null | sed -n 's/^Version *: *//p' || true
}

# shellcheck source=hack/lib-goinstall.sh
. "$ROOT/hack/lib-goinstall.sh"

ensure() { goinstall_ensure; }

running() {
	[ -f "$DIR/env" ] && [ -f "$DIR/versitygw.pid" ] && kill -0 "$(cat "$DIR/versitygw.pid")" 2>/dev/null
}

# s3 METHOD PATH: a request signed with SigV4 by curl itself.
s3() {
	curl -sS -o "$DIR/curl.out" -w '%{http_code}' -X "$1" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
		--aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS:$SECRET" "http://127.0.0.1:$PORT$2"
}

start() {
	if running; then
		cat "$DIR/env"
		return 0
	fi
	ensure
	rm -rf "$DIR"
	mkdir -p "$DIR/data"
	PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	# Fresh random credentials each start, handed over in the environment (not
	# on the command line, where ps shows them) and kept only in tmp/s3/env.
	ACCESS=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
	SECRET=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
	ROOT_ACCESS_KEY=$ACCESS ROOT_SECRET_KEY=$SECRET setsid "$BIN/versitygw" --port "127.0.0.1:$PORT" --quiet \
		posix "$DIR/data" >"$DIR/versitygw.log" 2>&1 </dev/null &
	echo $! >"$DIR/versitygw.pid"
	local code=""
	for _ in $(seq 100); do
		code=$(s3 GET / 2>/dev/null || true)
		[ "$code" = 200 ] && break
		sleep 0.1
	done
	if [ "$code" != 200 ]; then
		echo "s3-server: versitygw did not answer on 127.0.0.1:$PORT (last status ${code:-none})" >&2
		cat "$DIR/versitygw.log" "$DIR/curl.out" >&2 2>/dev/null || true
		stop
		exit 1
	fi
	code=$(s3 PUT "/$BUCKET")
	if [ "$code" != 200 ]; then
		echo "s3-server: creating bucket $BUCKET answered $code:" >&2
		cat "$DIR/curl.out" >&2
		stop
		exit 1
	fi
	umask 077
	cat >"$DIR/env" <<ENV
PARLEY_TEST_S3_ENDPOINT=http://127.0.0.1:$PORT
PARLEY_TEST_S3_ACCESS_KEY=$ACCESS
PARLEY_TEST_S3_SECRET_KEY=$SECRET
PARLEY_TEST_S3_BUCKET=$BUCKET
ENV
	cat "$DIR/env"
}

stop() {
	if [ -f "$DIR/versitygw.pid" ]; then
		kill "$(cat "$DIR/versitygw.pid")" 2>/dev/null || true
		rm -f "$DIR/versitygw.pid"
	fi
}

case "${1:-}" in
ensure) ensure ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 ensure|start|stop" >&2
	exit 2
	;;
esac
