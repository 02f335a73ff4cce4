#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# t-bench.sh: the benchmark's plumbing on tiny images (make check-bench).
#
# Runs bench.sh with BENCH_TINY=1 (32 MiB images, 1 s runs, one repetition)
# into a temporary results folder and checks that every contender, test,
# scale and chain case produced numbers, that the coalesce section
# (bench/coalesce.sh) measured every number it reports, the live one too, that the report and
# the chart are written, and that nothing is left behind.  Also checks report.sh's
# arithmetic on a synthetic input.  No timing assertions.
# Usage: t-bench.sh INSTALL_ROOT
set -u
export LC_ALL=C
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=${1:?usage: t-bench.sh INSTALL_ROOT}
PASS=0 FAIL=0 SKIP=0
T=$(mktemp -d /tmp/xsng-t-bench.XXXXXX)
BENCH_PID=

cleanup() {
	# bench.sh cleans up after itself (its own EXIT trap) when stopped
	if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
		kill -TERM "$BENCH_PID"
		wait "$BENCH_PID"
	fi
	rm -rf "$T"
}
trap cleanup EXIT

ok() { PASS=$((PASS + 1)); echo "  ok: $*"; }
fail() { FAIL=$((FAIL + 1)); echo "  FAIL: $*"; }
skip() { SKIP=$((SKIP + 1)); echo "  skip: $*"; }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
# a test program (tests/README.md): exit 0 pass, 1 fail
finish() {
	echo "t-bench: checks: $PASS ok, $FAIL failed, $SKIP skipped"
	[ "$FAIL" -eq 0 ] && exit 0
	exit 1
}

# ---------------------------------------------------------------- report.sh
# Synthetic runs: medians and ratios must come out as computed by hand.
R=$T/synthetic
mkdir -p "$R"
{
	printf 'xfs\tmatrix\tlimit\trr-qd32\t1\t1000\t4\t30\t60\t-\t50\t60\n'
	printf 'xfs\tmatrix\tlimit\trr-qd32\t2\t3000\t12\t10\t20\t-\t50\t60\n'
	printf 'xfs\tmatrix\tlimit\trr-qd32\t3\t2000\t8\t20\t40\t-\t50\t60\n'
	printf 'xfs\tmatrix\tqemu-nbd\trr-qd32\t1\t500\t2\t60\t90\t10\t70\t60\n'
	printf 'xfs\tmatrix\tngdp-uring\trr-qd32\t1\t1900\t7.6\t21\t30\t4\t90\t60\n'
	printf 'xfs\tmatrix\tngdp-uring\trr-qd32\t2\t1700\t6.8\t23\t30\t6\t90\t60\n'
} | awk -F'\t' 'NF == 12' >"$R/raw.tsv"
printf 'ngdp-uring\trr-qd32\tsocket-receive\t40\nngdp-uring\trr-qd32\tours\t10\n' >"$R/perf-breakdown.tsv"
printf 'Volume.snapshot\t%s\n' 10000 30000 20000 >"$R/control.tsv"
printf 'SR.ls(100)\t%s\n' 5000 7000 6000 >>"$R/control.tsv"
if MODE=synthetic SIZE_MB=1 REPS=3 RUNTIME=1 RAMP=0 BACKING=ram DP_MODE=test \
	FS_LIST=xfs ELAPSED=1 bash "$HERE/report.sh" "$R" >"$T/report.out" 2>&1; then
	ok "report.sh runs on synthetic data"
else
	fail "report.sh runs on synthetic data: $(tail -3 "$T/report.out")"
fi
med=$(awk -F'\t' '$3 == "limit" { print $5, $6, $8 }' "$R/medians.tsv" 2>/dev/null)
check "median of 3 repetitions (n=3, 2000 IOPS, 20 µs)" [ "$med" = "3 2000 20" ]
med=$(awk -F'\t' '$3 == "ngdp-uring" { print $6, $10 }' "$R/medians.tsv" 2>/dev/null)
check "median of 2 repetitions is their mean (1800 IOPS, 5 µs/IO)" [ "$med" = "1800 5" ]
check "ratio to the limit and to qemu-dp in the table" \
	grep -q '| 4k randread QD32 | ngdp-uring | 1800 IOPS | .* | 0.90 | 3.60 |' "$R/results.md"
check "target verdict from the ratio (0.90 >= 0.90 is met)" \
	grep -q 'ngdp-uring qcow2 4k randread QD32 / limit | 0.90 | >= 0.90 | 0.25 | \*\*met\*\*' "$R/results.md"
check "Volume.snapshot median 20 ms, p95 30 ms" \
	grep -q '| Volume.snapshot | 20.0 | 30.0 | 3 |' "$R/results.md"
check "CPU by kernel path: share and µs per I/O from the matrix's CPU (40 % of 5 µs)" \
	grep -q '^| socket-receive | 40 % (2 µs) |$' "$R/results.md"
check "unmeasured targets say so" grep -q 'SR.ls with 10,000 volumes | - | <= 1000 ms | - | not measured' "$R/results.md"

# ---------------------------------------------------------------- tiny run
if [ "$(id -u)" -ne 0 ]; then
	skip "tiny benchmark run: needs root (loop devices, mounts)"
	finish
fi
for tool in fio qemu-nbd qemu-storage-daemon qemu-img nbdinfo jq losetup; do
	if ! command -v "$tool" >/dev/null; then
		skip "tiny benchmark run: $tool is not installed (make deps)"
		finish
	fi
done
if [ "$(df --output=avail -k /dev/shm | tail -1)" -lt $((2 * 1024 * 1024)) ]; then
	skip "tiny benchmark run: less than 2 GiB free in /dev/shm"
	finish
fi

R=$T/results
BENCH_TINY=1 BENCH_RESULTS=$R bash "$HERE/bench.sh" "$ROOT" >"$T/bench.log" 2>&1 &
BENCH_PID=$!
wait "$BENCH_PID"
rc=$?
BENCH_PID=
if [ "$rc" -eq 0 ]; then
	ok "bench.sh BENCH_TINY=1 runs end to end"
else
	fail "bench.sh BENCH_TINY=1 exit status $rc"
	grep -v '^\[bench .*: [0-9]' "$T/bench.log" | tail -15 | sed 's/^/    /'
fi
W=$(sed -n 's/^.*work dir \([^ ,]*\),.*/\1/p' "$T/bench.log")
BDIR=$(sed -n 's/^.*loop files in \(.*\)$/\1/p' "$T/bench.log")

rows() { # FS GROUP TEST-REGEX CONTENDER-REGEX: lines with a positive result
	awk -F'\t' -v f="$1" -v g="$2" -v t="$3" -v c="$4" \
		'$1 == f && $2 == g && $4 ~ t && $3 ~ c && $6 > 0 && $7 > 0' \
		"$R/raw.tsv" 2>/dev/null | wc -l
}
check "xfs matrix: 8 contenders x 6 tests have numbers" [ "$(rows xfs matrix . .)" -eq 48 ]
check "ext4 subset: 4 contenders x 3 tests have numbers" [ "$(rows ext4 matrix . .)" -eq 12 ]
check "server CPU time per I/O measured for every server run" \
	[ "$(awk -F'\t' '$3 != "limit" && $10 == "-"' "$R/raw.tsv" | wc -l)" -eq 0 ]
check "machine CPU % recorded for every run" \
	[ "$(awk -F'\t' 'NF != 12 || $12 !~ /^[0-9.]+$/' "$R/raw.tsv" | wc -l)" -eq 0 ]
check "scale: 1 and 2 volumes, the limit and 2 contenders, 2 tests" \
	[ $(($(rows xfs scale1 . .) + $(rows xfs scale2 . .))) -eq 12 ]
check "scale: the report has the limit's rows and the device's own ratio in the goal rows" \
	bash -c "grep -Eq '^\| 1M seq read QD8 \| limit \| 2 \| [0-9.]+ MB/s \| [0-9.]+ \| 1.00 \|' '$R/results.md' &&
		 grep -Eq '^\| ngdp-uring 4k randread QD32: 2 volumes / 1 volume \(aggregate; the device.s own, fio on the image files: [0-9.]+\) \| [0-9.]+ \|' '$R/results.md'"
check "each CPU's busy % recorded for every xfs matrix run (0-100 %), and its section in the report" \
	bash -c "[ \"\$(awk -F'\t' '\$1 == \"xfs\" && \$2 == \"matrix\" && NF >= 7 && \$6 >= 0 && \$6 <= 100 && \$7 >= 0 && \$7 <= 100' '$R/cpu-each.tsv' | wc -l)\" -eq 48 ] &&
		 grep -Eq '^\| 1M seq write QD8 \| ngdp-uring \| [0-9.]+ MB/s \| [0-9]+ \| [0-9]+ \| -?[0-9]+ \| [0-9]+ \| [0-9]+ \| -?[0-9]+ \|' '$R/results.md'"
check "memcopy: copy rates for 4 working sets, and their section in the report" \
	bash -c "[ \"\$(awk -F'\t' '\$1 > 0 && \$2 > 0' '$R/memcopy.tsv' | wc -l)\" -eq 4 ] &&
		 grep -q '^## Memory copy rate' '$R/results.md'"
check "chain depth 1 and 3, 2 contenders, 2 tests" \
	[ $(($(rows xfs chain1 . .) + $(rows xfs chain3 . .))) -eq 8 ]
for k in Volume.create Volume.snapshot Volume.clone 'SR.ls(10)' 'SR.ls(20)'; do
	check "control path: $k timed" grep -q "^$k	[0-9]" "$R/control.tsv"
done
if grep -q 'started by: datapath plugin' "$R/results.md" 2>/dev/null; then
	check "control path: Datapath.attach+activate timed" \
		grep -q '^Datapath.attach+activate	[0-9]' "$R/control.tsv"
else
	skip "Datapath.attach+activate: the datapath plugin could not serve here ($(grep -o 'started by: .*' "$R/results.md" | cut -c1-160))"
fi
# coalesce: every number measured, positive (coalesce.tsv: FS PART FMT FIELD VALUE)
co() { # PART FMT FIELD: the value when it is a positive number
	awk -F'\t' -v p="$1" -v k="$2" -v n="$3" \
		'$1 == "xfs" && $2 == p && $3 == k && $4 == n && $5 ~ /^[0-9.]+$/ && $5 > 0 { print $5 }' \
		"$R/coalesce.tsv" 2>/dev/null
}
for fmt in qcow2 vhd; do
	check "coalesce $fmt: backup cycles give a chain length, SR usage and a fresh copy" \
		[ -n "$(co cycles $fmt chain)" -a -n "$(co cycles $fmt srstat_bytes)" \
		  -a -n "$(co cycles $fmt images_bytes)" -a -n "$(co cycles $fmt fresh_bytes)" ]
	check "coalesce $fmt: the merge was timed" [ -n "$(co merge $fmt seconds)" ]
	check "coalesce $fmt: rows in the report" \
		grep -Eq "^\| $fmt \| [0-9]+ \| [0-9]+ × [0-9]+ \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|" "$R/results.md"
done
check "coalesce: the disk's copy limit measured at QD8 and QD1" \
	[ -n "$(co limit qd8 read_mibs)" -a -n "$(co limit qd8 write_mibs)" \
	  -a -n "$(co limit qd1 read_mibs)" -a -n "$(co limit qd1 write_mibs)" ]
check "coalesce: merge rates against the limit in the report" \
	[ "$(grep -Ec '^\| (qcow2|vhd) \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$' "$R/results.md")" -eq 2 ]
check "coalesce live: 4k randread QD32 without and during a live coalesce have numbers" \
	[ "$(rows xfs colive rr-qd32 '^(ngdp-uring|ngdp-coalescing)$')" -eq 2 ]
check "coalesce live: the merge finished, checked, and was timed" [ -n "$(co live rep1 merge_s)" ]
check "coalesce live: its row in the targets" \
	grep -Eq '^\| ngdp-uring qcow2 4k randread QD32 during a live coalesce / without \| [0-9.]+ \| >= 0.80 \|' "$R/results.md"
if [ -x "$ROOT/usr/libexec/xapi-storage-script/datapath/ngdp/Data.mirror" ] &&
	grep -q 'started by: datapath plugin' "$R/results.md" 2>/dev/null; then
	check "mirror: guest writes without and with a synced mirror have numbers" \
		[ $(($(rows xfs mirror-off . ngdp-uring) + $(rows xfs mirror-on . ngdp-uring))) -eq 4 ]
	check "mirror: the copy was timed" \
		awk -F'\t' '$1 == "xfs" && $3 == "copy_mbps" && $4 > 0 { f = 1 } END { exit !f }' "$R/mirror.tsv"
	check "mirror: its section in the report" grep -q '^## Storage migration: the mirror' "$R/results.md"
else
	skip "mirror: no datapath plugin with Data.mirror serving here"
fi
check "speed: 1 and 4 connections, 4 contenders" \
	[ $(($(rows xfs conn1 rr-qd32 .) + $(rows xfs conn4 rr-qd8 .))) -eq 8 ]
check "speed: writes into new clusters, raw file and 3 servers" \
	[ "$(rows xfs new4g rw-new .)" -eq 4 ]
check "speed: the share of writes that found a new cluster is measured (0 < share <= 1)" \
	awk -F'\t' '$2 == "newfrac" && $6 > 0 && $6 <= 1 { f = 1 } END { exit !f }' "$R/speed.tsv"
check "speed: on every CPU, 4 contenders x 3 tests on one volume, 2 on 4 volumes" \
	[ $(($(rows xfs unpin1 seq-write .) + $(rows xfs unpin1 seq-read .) + $(rows xfs unpin1 rr-qd32 .))) -eq 12 ] &&
	[ $(($(rows xfs unpin4 seq-read .) + $(rows xfs unpin4 rr-qd32 .))) -eq 4 ]
# placement.tsv: FS GROUP CONTENDER TEST REP SERVER-CPUS FIO-CPUS
all_cpus=$(awk '/^Cpus_allowed_list:/ { print $2 }' /proc/self/status)
check "speed: servers and fio were allowed every CPU ($all_cpus) there, CPU 0 and 1 elsewhere" \
	awk -F'\t' -v all="$all_cpus" '$3 ~ /^ngdp/ && $2 == "unpin1" { u++; if ($6 != all || $7 != all) bad++ }
		$3 ~ /^ngdp/ && $2 == "matrix" { m++; if ($6 != "0" || $7 != "1") bad++ }
		END { exit !(u > 0 && m > 0 && !bad) }' "$R/placement.tsv"
check "ring: the raw file, the shared-memory ring with each engine, and NBD" \
	[ "$(rows xfs ring rr-qd32 .)" -eq "$(( 4 * $(awk -F'\t' '$2 == "conn1" && $3 == "nbd-null"' "$R/raw.tsv" | wc -l) ))" ]
check "ring: its section and goal rows in the report" \
	bash -c "grep -q '^## The blkif ring over shared memory' '$R/results.md' &&
		 grep -Eq '^\| ngdp blkif-uring: blkif ring over shared memory, 4k randread QD32 / raw file .*\| [0-9.]+ \| >= 0.85 \|' '$R/results.md'"
check "speed: goals and sections in the report" \
	bash -c "grep -q '^### Speed goals (issues 16 and 17' '$R/results.md' && grep -q '^## Connections' '$R/results.md' &&
		 grep -Eq '^\| ngdp-uring 4k randwrite QD32 into new clusters of a fresh [0-9]+ MiB volume / raw file \| [0-9.]+ \|' '$R/results.md'"
check "results.md has the targets and every section" \
	bash -c "grep -q '^## Targets' '$R/results.md' && grep -q '^## I/O matrix on xfs' '$R/results.md' &&
		 grep -q '^## I/O matrix on ext4' '$R/results.md' && grep -q '^## Scale' '$R/results.md' &&
		 grep -q '^## Reads through backing chains' '$R/results.md' && grep -q '^## Coalesce' '$R/results.md' &&
		 grep -q '^## Control path' '$R/results.md'"
check "results.md names machine, kernel, date and commit" \
	bash -c "grep -q 'kernel $(uname -r)' '$R/results.md' && grep -q '^- Date: .*commit' '$R/results.md'"
if command -v gnuplot >/dev/null; then
	check "chart.svg drawn" grep -q '<svg' "$R/chart.svg"
else
	skip "chart: gnuplot is not installed"
fi
# every run but the blkif ring's (its client is blkif-front, not fio)
check "fio JSON kept, compressed, one line per fio run" \
	[ "$(gzip -dc "$R/fio-json.jsonl.gz" 2>/dev/null | wc -l)" -eq "$(awk -F'\t' '$3 !~ /^blkif-/' "$R/raw.tsv" | wc -l)" ]
check "results stay small (< 1 MiB)" [ "$(du -sk "$R" | cut -f1)" -lt 1024 ]

# nothing left behind: bench.sh's own check, and ours
check "bench.sh reports a clean exit" grep -q 'clean: no processes, mounts, loop devices' "$T/bench.log"
check "no mounts left under its work dir" \
	bash -c "[ -n '$W' ] && ! findmnt -rn -o TARGET | grep -q '^$W/'"
check "no loop devices left on its files" \
	bash -c "[ -n '$BDIR' ] && ! losetup -l -n -O BACK-FILE | grep -q '^$BDIR'"
check "its backing and work directories are gone" bash -c "[ ! -e '$BDIR' ] && [ ! -e '$W' ]"
left=0
for p in /proc/[0-9]*; do
	tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q -- "${W:-/nonexistent}/" && left=$((left + 1))
done
check "no server process left that uses its work dir" [ "$left" -eq 0 ]
finish
