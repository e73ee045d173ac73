#!/bin/sh
# Runs every native Go fuzz target in the repository for SECONDS each
# (default 10), or for N inputs each when given as Nx. CI does not run it
# (`go test` replays the seeds); run it with 60 or more after touching a
# parser and before a release. Exits non-zero on the first crash; the failing
# input is left under the package's testdata/fuzz/ for `go test` to replay.
#
#   .ci/fuzz.sh [SECONDS|Nx]
set -eu
budget=${1:-10}
case $budget in *x) ;; *) budget="${budget}s" ;; esac
cd "$(dirname "$0")/.."
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	dir=$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "== $dir $target ($budget)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$dir"
	done
done
