#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# hand-ring.sh: the blkif ring over shared memory, several server builds
# side by side (bench/README.md, "Reads straight into the ring's pages").
# Not part of `make bench` (its ring section, bench/ring.sh, measures the
# current build only): a quick comparison of builds, e.g. before and after
# a change, on one fresh XFS on a RAM-backed loop device, alternating the
# builds in every repetition.
#
# Usage (root): bash bench/hand-ring.sh FRONT SERVER [SERVER...]
#   FRONT: tests/server/blkif-front; SERVER: ngdp-server binaries.
# Environment: REPS (3), RUNTIME (4 s), ENGINES ("uring aio"),
#   SERVER_CPUS (0), FRONT_CPUS (1), TESTS ("4k-qd32 1m-qd8"),
#   PROFILE=1: in each run, from 1 s after the start, 3 s of every
#   thread's CPU (/proc/*/task/*/stat) and each CPU's idle share
#   (/proc/stat), and with PERF=FILE a `perf record -a -g` into FILE over
#   the same 3 s (RUNTIME at least 5).
#   RQ_AFFINITY=0|1|2: the loop device's queue/rq_affinity (the kernel's
#   default is 1; 2 completes every request on the CPU that submitted it).
#   LIMIT=1: also the raw file's row in every repetition (fio io_uring
#   O_DIRECT, on FRONT_CPUS, on a filled raw file of the same size).
#   WQ_CPUMASK=HEX: confine the kernel's unbound workers (the loop
#   device's among them) to those CPUs (/sys/devices/virtual/workqueue/
#   cpumask, restored on exit).
#   SYSCALLS=1: the server's system calls per ring request, counted with
#   `perf stat` over 3 s from 1 s after the start (RUNTIME at least 5).
# Prints one line per run: build, engine, test, IOPS, MB/s, the mean
# latency, the server's CPU µs per I/O (/proc/PID/stat utime+stime), and
# the loop device's own view over the run (/sys/block/LOOP/stat): reads
# per second, mean requests in its queue, mean µs a request spent there
# (the rates are over the whole run, its start-up included: a little low).
set -u
[ $# -ge 2 ] || { echo "usage: hand-ring.sh FRONT SERVER..."; exit 2; }
FRONT=$1
shift
REPS=${REPS:-3} RUNTIME=${RUNTIME:-4} ENGINES=${ENGINES:-uring aio}
SERVER_CPUS=${SERVER_CPUS:-0} FRONT_CPUS=${FRONT_CPUS:-1}
TESTS=${TESTS:-4k-qd32 1m-qd8}
TICK=$(getconf CLK_TCK)
. "$(dirname "$0")/hand-lib.sh"
hand_setup hand-ring 3G
if [ -n "${RQ_AFFINITY:-}" ]; then	# where the loop device completes requests
	echo "$RQ_AFFINITY" >"/sys/block/${LOOP##*/}/queue/rq_affinity" || exit 1
fi
if [ -n "${WQ_CPUMASK:-}" ]; then
	WQ=/sys/devices/virtual/workqueue/cpumask
	WQ_OLD=$(cat "$WQ")
	trap 'echo "$WQ_OLD" >"$WQ"; hand_cleanup' EXIT
	echo "$WQ_CPUMASK" >"$WQ" || exit 1
fi
qemu-img create -q -f qcow2 "$W/mnt/img.qcow2" 1G &&
	qemu-io -f qcow2 -c "write -P 1 0 1G" "$W/mnt/img.qcow2" >/dev/null || exit 1
if [ "${LIMIT:-0}" = 1 ]; then
	dd if=/dev/urandom of="$W/mnt/raw.img" bs=1M count=1024 status=none || exit 1
fi
sync	# qemu-io wrote through the page cache: no writeback during the runs

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# every thread: "path name ticks" (the name may hold spaces: cut at ')')
threads() {
	local t
	for t in /proc/[0-9]*/task/[0-9]*; do
		awk -v t="$t" '{ n = $0; sub(/^[^(]*\(/, "", n); sub(/\).*/, "", n)
			r = $0; sub(/^.*\) /, "", r); split(r, a, " ")
			gsub(/ /, "_", n); print t, n, a[12] + a[13] }' "$t/stat" 2>/dev/null
	done | sort
}
idle() { awk '/^cpu[0-9]/ { print $1, $5 + $6 }' /proc/stat; }
# the loop device: reads completed, time_in_queue (ms); and the clock (ns)
dev_stat() { echo "$(awk '{ print $1, $11 }' "/sys/block/${LOOP##*/}/stat") $(date +%s%N)"; }
# dev_line BEFORE AFTER: "dev_reads/s N dev_queue Q dev_us/req T"
dev_line() {
	echo "$1 $2" | awk '{ n = $4 - $1; s = ($6 - $3) / 1e9
		printf "dev_reads/s %d\tdev_queue %.1f\tdev_us/req %.0f", n / s,
			($5 - $2) / 1e3 / s, n ? ($5 - $2) * 1e3 / n : 0 }'
}
# syscalls PID: 3 s of PID's system calls, "name count" per line
syscalls() {
	sleep 1
	perf stat -x, -e 'syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_io_submit,syscalls:sys_enter_io_getevents' \
		-p "$1" -- sleep 3 2>&1 >/dev/null | awk -F, '$3 ~ /^syscalls:/ { sub(/.*sys_enter_/, "", $3); print $3, $1 }'
}
# profile: 3 s of thread CPU and CPU idle (and perf) while the run goes on
profile() {
	local s0 s1 i0 i1
	sleep 1
	s0=$(threads); i0=$(idle)
	if [ -n "${PERF:-}" ]; then perf record -q -a -g -o "$PERF" -- sleep 3 >/dev/null 2>&1
	else sleep 3; fi
	s1=$(threads); i1=$(idle)
	echo "  threads (% of one CPU over 3 s, over 3 %):"
	join <(echo "$s0") <(echo "$s1") | awk -v tick="$TICK" '{ p = 100 * ($5 - $3) / tick / 3
		if (p > 3) printf "    %5.1f %s\n", p, $2 }' | sort -rn
	paste <(echo "$i0") <(echo "$i1") | awk -v tick="$TICK" '{
		printf "  %s idle %.0f %%\n", $1, 100 * ($4 - $2) / tick / 3 }'
}

# run BUILD-INDEX SERVER ENGINE TEST
run() {
	local n=$1 srv=$2 eng=$3 t=$4 pid i k0 k1 out args bs prof sc
	case $t in
	4k-qd32) args="32" bs=4096 ;;
	1m-qd8) args="8 1024" bs=1048576 ;;
	*) echo "unknown test $t"; return 1 ;;
	esac
	rm -f "$W/ring.sock"
	taskset -c "$SERVER_CPUS" "$srv" --image "$W/mnt/img.qcow2" --socket "$W/nbd.sock" \
		--blkif-shm "$W/ring.sock" --engine "$eng" </dev/null >>"$W/server.log" 2>&1 &
	pid=$!
	PIDS+=("$pid")
	for ((i = 0; i < 100; i++)); do [ -S "$W/ring.sock" ] && break; sleep 0.05; done
	k0=$(ticks "$pid")
	d0=$(dev_stat)
	prof=
	if [ "${PROFILE:-0}" = 1 ]; then profile >"$W/profile" & prof=$!; fi
	sc=
	if [ "${SYSCALLS:-0}" = 1 ]; then syscalls "$pid" >"$W/syscalls" & sc=$!; fi
	out=$(taskset -c "$FRONT_CPUS" "$FRONT" "$W/ring.sock" bench "$RUNTIME" $args) ||
		{ echo "build $n ($srv) $eng $t: blkif-front failed"; kill "$pid"; wait "$pid"; return 1; }
	d1=$(dev_stat)
	[ -z "$prof" ] || wait "$prof"
	[ -z "$sc" ] || wait "$sc"
	k1=$(ticks "$pid")
	kill "$pid"
	wait "$pid" 2>/dev/null
	[[ $out =~ ^iops=([0-9]+)\ lat_us=([0-9]+)$ ]] || { echo "bad output: $out"; return 1; }
	awk -v n="$n" -v e="$eng" -v t="$t" -v i="${BASH_REMATCH[1]}" -v l="${BASH_REMATCH[2]}" \
		-v bs="$bs" -v k="$((k1 - k0))" -v tick="$TICK" -v s="$RUNTIME" 'BEGIN {
		printf "build%d\t%s\t%s\tiops %d\tMB/s %.0f\tlat_us %d\tserver_cpu_us/io %.1f\t",
			n, e, t, i, i * bs / 1e6, l, k * 1e6 / tick / (i * s) }'
	dev_line "$d0" "$d1"
	echo
	[ "${PROFILE:-0}" = 1 ] && cat "$W/profile"
	# the counts over 3 s, per request at the run's mean rate
	[ -n "$sc" ] && awk -v i="${BASH_REMATCH[1]}" 'BEGIN { printf "  syscalls per request:" }
		{ printf " %s %.3f", $1, $2 / (i * 3) } END { print "" }' "$W/syscalls"
	return 0
}

# limit TEST: the raw file, read by fio as the ring's frontend reads
limit() {
	local t=$1 bs qd out d0 d1
	case $t in
	4k-qd32) bs=4k qd=32 rw=randread ;;
	1m-qd8) bs=1M qd=8 rw=read ;;
	esac
	d0=$(dev_stat)
	out=$(taskset -c "$FRONT_CPUS" fio --name=limit --filename="$W/mnt/raw.img" \
		--direct=1 --ioengine=io_uring --rw=$rw --bs=$bs --iodepth=$qd \
		--runtime="$RUNTIME" --time_based --output-format=terse) ||
		{ echo "limit $t: fio failed"; return 1; }
	d1=$(dev_stat)
	echo "$out" | awk -F';' -v t="$t" '{
		printf "limit\tfio\t%s\tiops %d\tMB/s %.0f\tlat_us %d\tserver_cpu_us/io -\t",
			t, $8, $7 * 1024 / 1e6, $40 }'
	dev_line "$d0" "$d1"
	echo
}

nb=0
for b in "$@"; do echo "build$(( ++nb )): $b"; done
for ((r = 0; r < REPS; r++)); do
	for t in $TESTS; do
		[ "${LIMIT:-0}" = 1 ] && limit "$t"
		for e in $ENGINES; do
			n=0
			for b in "$@"; do
				run $((++n)) "$b" "$e" "$t"
			done
		done
	done
done
