#!/bin/sh
# Runs every native Go fuzz target in the repository for SECONDS each
# (default 10). CI calls it with a few seconds; run it with 300 or more
# locally before a release. Exits non-zero on the first crash; the failing
# input is left under the package's testdata/fuzz/ for `go test` to replay.
#
#   .ci/fuzz.sh [SECONDS]
set -eu
secs=${1:-10}
cd "$(dirname "$0")/.."
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	dir=$(dirname "$file")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "== $dir $target (${secs}s)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "${secs}s" "$dir"
	done
done
