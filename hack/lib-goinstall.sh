# shellcheck shell=bash
# Sourced by hack/promtool.sh, hack/prometheus.sh and hack/coredns.sh: a tool
# built from the Go module proxy with `go install pkg@version` (its own module,
# so the project's go.mod is untouched) into bin/, rebuilt only when the binary
# there does not report the pinned version.
#
# The sourcing script sets NAME (the binary), VERSION, PKG (the package path),
# INSTALL_ARGS (extra `go install` flags) and INSTALL_ENV (extra environment,
# NAME=value words), defines installed_version (prints what bin/$NAME reports,
# or nothing), then calls: goinstall_main "$@"  (ensure | path | version)

BIN=$ROOT/bin

goinstall_ensure() {
	if [ -x "$BIN/$NAME" ] && [ "$(installed_version)" = "$VERSION" ]; then
		return 0
	fi
	echo "$NAME: building $NAME $VERSION from the Go module proxy (minutes on 2 cores)..." >&2
	local start
	start=$(date +%s)
	mkdir -p "$BIN"
	# A private folder first, so an interrupted build never leaves a binary that a
	# later run would take for the cached one.
	GOINSTALL_TMP=$(mktemp -d "$BIN/.$NAME-build.XXXXXX")
	trap 'rm -rf "$GOINSTALL_TMP"' EXIT
	(cd "$GOINSTALL_TMP" && env "${INSTALL_ENV[@]}" GOBIN="$GOINSTALL_TMP" \
		go install -trimpath "${INSTALL_ARGS[@]}" "$PKG@$VERSION")
	mv "$GOINSTALL_TMP/$NAME" "$BIN/$NAME"
	echo "$NAME: $VERSION built in $(($(date +%s) - start))s" >&2
	if [ "$(installed_version)" != "$VERSION" ]; then
		echo "$NAME: bin/$NAME reports '$(installed_version)', want $VERSION" >&2
		exit 1
	fi
}

goinstall_main() {
	case "${1:-}" in
	ensure) goinstall_ensure ;;
	path) echo "$BIN/$NAME" ;;
	version) echo "$VERSION" ;;
	*)
		echo "usage: $0 ensure|path|version" >&2
		exit 2
		;;
	esac
}
