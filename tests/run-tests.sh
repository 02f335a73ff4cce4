#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# The one test runner (protocol: tests/README.md).  Runs test programs one
# after another and judges each by its exit status only:
#   0 pass, 77 skip, anything else (1, a set -u error, a signal, the
#   timeout) a failure.
# Prints each program's output, one result line per program
# ("PASS: NAME", "FAIL: NAME (...)", "SKIP: NAME: reason") and the closing
# line "N passed, N failed, N skipped"; exits 0 only when nothing failed.
#
# Usage: run-tests.sh [-s SUITE] [-t SECONDS] [-C DIR] TEST...
#   TEST: one argument, split at spaces: [VAR=VALUE...] PROGRAM [ARG...].
#         A PROGRAM ending in .sh is run with bash, anything else is
#         executed.  VAR=VALUE pairs go into its environment, e.g.
#         "PLUGIN=xfs-ng t-datapath.sh" or "ENGINE=uring ./t-fio.sh".
#   -s SUITE    name printed in the result lines
#   -t SECONDS  per-program time limit (default 900; TEST_TIMEOUT)
#   -C DIR      run the programs from DIR
# The name of a program in the result lines leaves out words with a "/".
# With RUN_TESTS_RESULTS set, appends "SUITE PASSED FAILED SKIPPED" to that
# file (tests/run-suites.sh sums them).  With RUN_TESTS_FAILLOG set, appends
# each failure's result line, its lines that speak of failure and its last
# lines to that file (.ci/run prints it at the end, where a log that shows
# only its tail still tells what failed).
set -u
suite=tests timeout=${TEST_TIMEOUT:-900} dir=
while getopts s:t:C: o; do
	case $o in
	s) suite=$OPTARG ;;
	t) timeout=$OPTARG ;;
	C) dir=$OPTARG ;;
	*) echo "usage: run-tests.sh [-s SUITE] [-t SECONDS] [-C DIR] TEST..."; exit 1 ;;
	esac
done
shift $((OPTIND - 1))
if [ -n "$dir" ]; then cd "$dir" || exit 1; fi

# a failure's excerpt: its result line, up to 30 lines that say fail, not
# ok or error, and its last 20 lines
fail_excerpt() {
	echo "$1"
	echo "  -- lines that speak of failure:"
	grep -a -i -E 'fail|not ok|error|assert|sanitizer|timed? ?out' "$out" |
		grep -a -v -E ' 0 failed|^ *ok:' | head -30 | sed 's/^/  | /'
	echo "  -- last lines:"
	tail -n 20 "$out" | sed 's/^/  | /'
}

passed=0 failed=0 skipped=0 failures=()
out=$(mktemp /tmp/run-tests.XXXXXX)
trap 'rm -f "$out"' EXIT

for spec in "$@"; do
	read -r -a words <<<"$spec"
	envs=()
	while [ ${#words[@]} -gt 0 ] && [[ ${words[0]} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
		envs+=("${words[0]}")
		words=("${words[@]:1}")
	done
	if [ ${#words[@]} -eq 0 ]; then
		echo "run-tests.sh: no program in '$spec'"
		failed=$((failed + 1)) failures+=("'$spec'")
		continue
	fi
	prog=${words[0]}
	# the name: program, arguments and VAR=VALUE, paths left out
	name=$(basename "$prog")
	for w in "${words[@]:1}"; do [[ $w == */* ]] || name+=" $w"; done
	shown=()
	for w in "${envs[@]}"; do [[ $w == */* ]] || shown+=("$w"); done
	[ ${#shown[@]} -gt 0 ] && name+=" [${shown[*]}]"
	cmd=("$prog" "${words[@]:1}")
	[ "${prog%.sh}" != "$prog" ] && cmd=(bash "${cmd[@]}")
	echo "=== $suite: $name"
	start=$SECONDS
	# the program's output goes to the terminal as it comes, and to $out
	# for the skip reason; timeout runs it in its own process group and
	# kills the group when time is up (SIGTERM, then SIGKILL 10 s later)
	env "${envs[@]}" timeout -k 10 "$timeout" "${cmd[@]}" </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}
	took=$((SECONDS - start))
	case $rc in
	0)
		passed=$((passed + 1))
		echo "PASS: $suite: $name (${took}s)"
		;;
	77)
		skipped=$((skipped + 1))
		reason=$(grep -i -m1 -E '^ *(skip|skipped)[:]' "$out" | sed -E 's/^ *[Ss][Kk][Ii][Pp]([Pp][Ee][Dd])?: *//')
		[ -n "$reason" ] || reason=$(grep -v '^[[:space:]]*$' "$out" | tail -1)
		echo "SKIP: $suite: $name: ${reason:-no reason given}"
		;;
	*)
		case $rc in
		124) why="timed out after ${timeout}s" ;;
		126 | 127) why="could not be run (exit $rc)" ;;
		1) why="exit 1" ;;
		*) if [ "$rc" -gt 128 ]; then why="killed by signal $((rc - 128))"
		   else why="exit $rc, not 0/1/77"; fi ;;
		esac
		failed=$((failed + 1)) failures+=("$name")
		echo "FAIL: $suite: $name ($why, ${took}s)"
		[ -n "${RUN_TESTS_FAILLOG:-}" ] && fail_excerpt "FAIL: $suite: $name ($why, ${took}s)" >>"$RUN_TESTS_FAILLOG"
		;;
	esac
done

if [ ${#failures[@]} -gt 0 ]; then
	echo "$suite: failed:"
	printf '  %s\n' "${failures[@]}"
fi
if [ -n "${RUN_TESTS_RESULTS:-}" ]; then
	echo "$suite $passed $failed $skipped" >>"$RUN_TESTS_RESULTS"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
