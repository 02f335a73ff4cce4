#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Run one libFuzzer target as a test program (exit 0 pass, 1 fail, 77 skip).
#
#   run-fuzz.sh regress NAME FUZZER SEEDS [libFuzzer options...]
#       every input of the seed corpus SEEDS once (-runs=0)
#   run-fuzz.sh fuzz NAME FUZZER SEEDS SECONDS [libFuzzer options...]
#       fuzz for SECONDS (0: skipped), starting from SEEDS plus the inputs
#       kept from earlier runs in $FUZZ_DIR/corpus-NAME
#
# A crash, leak, timeout or out-of-memory is a failure.  Everything lands in
# $FUZZ_DIR (default build/fuzz): the log in NAME-MODE.log, the crashing
# input in artifacts-NAME/; its path (and the seed file it came from, if
# any) is printed.  libFuzzer's own exit code for a crash is 77, which is
# "skip" in our protocol: every non-zero status of the fuzzer is mapped to 1.
set -u
mode=${1:?mode} name=${2:?name} fuzzer=${3:?fuzzer} seeds=${4:?seeds}
shift 4
secs=
if [ "$mode" = fuzz ]; then secs=${1:?seconds}; shift; fi
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}

if [ ! -x "$fuzzer" ] && ! command -v "${FUZZ_CC:-clang}" >/dev/null 2>&1; then
	echo "SKIP: fuzz-$name: ${FUZZ_CC:-clang} (libFuzzer) not installed"
	exit 77
fi
if [ ! -x "$fuzzer" ]; then
	echo "FAIL: fuzz-$name: $fuzzer not built"
	exit 1
fi
if [ ! -d "$seeds" ]; then
	echo "FAIL: fuzz-$name: no seed corpus $seeds"
	exit 1
fi
artifacts=$FUZZ_DIR/artifacts-$name
corpus=$FUZZ_DIR/corpus-$name
log=$FUZZ_DIR/$name-$mode.log
mkdir -p "$artifacts" "$corpus" || exit 1
before=$(ls -A "$artifacts")

case $mode in
regress)
	echo "fuzz-$name: $(ls -A "$seeds" | wc -l) seed inputs of $seeds, once each"
	"$fuzzer" -runs=0 -artifact_prefix="$artifacts/" "$@" "$seeds" >"$log" 2>&1
	rc=$?
	;;
fuzz)
	case $secs in '' | *[!0-9]*) echo "FAIL: fuzz-$name: bad time '$secs'"; exit 1 ;; esac
	if [ "$secs" -eq 0 ]; then
		echo "SKIP: fuzz-$name: fuzzing time is 0 (CHECK_FUZZ_TIME)"
		exit 77
	fi
	echo "fuzz-$name: fuzzing for $secs s (corpus $corpus, seeds $seeds)"
	"$fuzzer" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$@" "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	;;
*)
	echo "usage: run-fuzz.sh regress|fuzz NAME FUZZER SEEDS [SECONDS] [options]"
	exit 1
	;;
esac

if [ $rc -eq 0 ]; then
	# the last status line: "#N DONE cov: ... exec/s: ..." or "Done N runs"
	echo "fuzz-$name: $(grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs' "$log" | tail -1)"
	echo "PASS: fuzz-$name $mode (log $log)"
	exit 0
fi

echo "FAIL: fuzz-$name $mode: the fuzzer exited with status $rc (log $log)"
# the report: from the sanitizer's or libFuzzer's first error line on
grep -n -m1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|ALARM|out-of-memory' "$log" >/dev/null &&
	sed -n "$(grep -n -m1 -E '^==[0-9]+==ERROR|deadly signal|ALARM|out-of-memory' "$log" | cut -d: -f1),+25p" "$log"
found=0
for a in $(ls -A "$artifacts"); do
	grep -qxF -- "$a" <<<"$before" && continue
	found=1
	echo "crashing input: $artifacts/$a"
	# libFuzzer names an artifact after the SHA-1 of its content
	sha=${a#*-}
	for s in "$seeds"/*; do
		[ -f "$s" ] || continue
		if [ "$(sha1sum <"$s" | cut -d' ' -f1)" = "$sha" ]; then
			echo "  (the seed corpus file $s)"
		fi
	done
	echo "  reproduce: $fuzzer $artifacts/$a"
done
[ $found = 1 ] || tail -5 "$log"
exit 1
