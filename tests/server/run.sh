#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Run every tests/server/t-*.sh (or those named) once per I/O engine.
# Exit status 77 from a test means skipped.  Prints "N passed, N failed,
# N skipped" counting (test, engine) runs.
cd "$(dirname "$0")" || exit 1
engines=${ENGINES:-aio uring}
tests=("$@")
[ ${#tests[@]} = 0 ] && tests=(t-*.sh)
passed=0 failed=0 skipped=0
for t in "${tests[@]}"; do
	for e in $engines; do
		echo "=== $t (engine $e)"
		ENGINE=$e timeout 600 bash "./$(basename "$t")"
		rc=$?
		case $rc in
		0) passed=$((passed + 1)) ;;
		77) skipped=$((skipped + 1)) ;;
		*) failed=$((failed + 1)); echo "=== $t (engine $e) FAILED ($rc)" ;;
		esac
	done
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed = 0 ]
