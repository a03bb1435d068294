#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after the other, each for
# FUZZ_TIME (default 30s): `make fuzz`. Targets are found by grepping the
# test files for `func FuzzX(f *testing.F)`, so there is no list to keep.
#
#   FUZZ_TIME=60s hack/fuzz.sh            every target, 60 s each
#   hack/fuzz.sh FuzzDecodeClient         only targets matching a pattern (grep -E)
#   FUZZ_PARALLEL=1 hack/fuzz.sh          one fuzzing worker (default: GOMAXPROCS)
#   FUZZ_MINIMIZE_TIME=60s hack/fuzz.sh   time to shrink each new input (default 1s)
#
# The minimizing time is capped because the REST targets are stateful (the
# store grows as they run), so an input's coverage does not quite repeat and
# Go's default (60s) spends most of a run shrinking inputs instead of fuzzing.
#
# A crasher stops the run: go test writes it to the package's
# testdata/fuzz/<FuzzName>/, where it stays as a regression seed once fixed.
# The seed corpora alone run as normal tests in `go test` (make test).
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_TIME=${FUZZ_TIME:-30s}
FUZZ_MINIMIZE_TIME=${FUZZ_MINIMIZE_TIME:-1s}
GO=${GO:-go}
# The REST targets' SQLite stores (t.TempDir) sync to disk on every commit: in
# memory they run about 3 times faster. Only when TMPDIR was not chosen.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	export TMPDIR=/dev/shm
fi
pattern=${1:-.}
parallel=()
[ -z "${FUZZ_PARALLEL:-}" ] || parallel=(-parallel "$FUZZ_PARALLEL")

# "<package dir> <target>" for every fuzz target in a tracked or new test file.
targets=$(git ls-files --cached --others --exclude-standard '*_test.go' |
	while read -r f; do
		[ -f "$f" ] || continue
		sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(f \*testing\.F).*/\1/p' "$f" |
			while read -r name; do echo "./$(dirname "$f") $name"; done
	done | { grep -E -- "$pattern" || true; } | sort)
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz target matches $pattern" >&2
	exit 1
fi

n=$(wc -l <<<"$targets")
echo "fuzz: $n targets, $FUZZ_TIME each"
i=0
while read -r pkg name; do
	i=$((i + 1))
	echo "fuzz: [$i/$n] $name in $pkg"
	"$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZ_TIME" -fuzzminimizetime "$FUZZ_MINIMIZE_TIME" "${parallel[@]}" "$pkg"
done <<<"$targets"
