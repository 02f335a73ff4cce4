#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Run test suites (make targets) one after another, all of them even when
# one fails, and sum their results into one closing line
# "N passed, N failed, N skipped".  Each suite runs its test programs
# through tests/run-tests.sh, which appends "SUITE PASSED FAILED SKIPPED"
# to $RUN_TESTS_RESULTS.  A suite that fails without a result (a build
# error) or whose make fails although its programs passed counts one
# failure.  With RUN_SUITES_TOTAL set, the totals are appended there too
# ("PASSED FAILED SKIPPED", for .ci/run).
# A suite whose runner does not write $RUN_TESTS_RESULTS yet is counted
# from the last "N passed, N failed[, N skipped]" line of its output.
# Usage: run-suites.sh MAKE target...
set -u
make=$1
shift
results=$(mktemp /tmp/run-suites.XXXXXX)
log=$(mktemp /tmp/run-suites-log.XXXXXX)
trap 'rm -f "$results" "$log"' EXIT
export RUN_TESTS_RESULTS=$results
tp=0 tf=0 ts=0 bad=()
for s in "$@"; do
	echo "=================== $s"
	before=$(wc -l <"$results")
	$make --no-print-directory "$s" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	read -r n p f k < <(tail -n +"$((before + 1))" "$results" |
		awk '{n++; p += $2; f += $3; k += $4} END {print n + 0, p + 0, f + 0, k + 0}')
	if [ "$n" -eq 0 ]; then
		read -r n p f k < <(sed -nE 's/.*\<([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/1 \1 \2 \4/p' "$log" |
			awk '{ l = $0 } END { split(l, a, " "); print a[1] + 0, a[2] + 0, a[3] + 0, a[4] + 0 }')
	fi
	if [ "$n" -eq 0 ] && [ "$rc" -ne 0 ]; then
		echo "$s: failed before running its tests (exit $rc)"
		f=1
		[ -n "${RUN_TESTS_FAILLOG:-}" ] &&
			{ echo "SUITE FAIL: $s: failed before running its tests (exit $rc)"; tail -n 20 "$log" | sed 's/^/  | /'; } >>"$RUN_TESTS_FAILLOG"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$s: make failed (exit $rc) although its tests passed"
		f=1
		[ -n "${RUN_TESTS_FAILLOG:-}" ] &&
			{ echo "SUITE FAIL: $s: make failed (exit $rc) although its tests passed"; tail -n 20 "$log" | sed 's/^/  | /'; } >>"$RUN_TESTS_FAILLOG"
	fi
	[ "$f" -ne 0 ] && bad+=("$s")
	tp=$((tp + p)) tf=$((tf + f)) ts=$((ts + k))
	echo "=================== $s: $p passed, $f failed, $k skipped (exit $rc)"
done
[ ${#bad[@]} -gt 0 ] && echo "failed suites: ${bad[*]}"
[ -n "${RUN_SUITES_TOTAL:-}" ] && echo "$tp $tf $ts" >>"$RUN_SUITES_TOTAL"
echo "$tp passed, $tf failed, $ts skipped"
[ ${#bad[@]} -eq 0 ]
