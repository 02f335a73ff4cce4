#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# hand-scale.sh: the hand measurement behind bench/README.md's "Issue 16:
# connections and volumes, counted".  One stream against N, 4k random
# reads, two ways:
#   MODE=volumes      N filled qcow2 images, each served by its own
#                     ngdp-server, one fio job per volume at QD each
#                     (`make bench`'s scale rows);
#   MODE=connections  one image and one server, N fio jobs (N NBD
#                     connections, as the kernel client opens them) at
#                     QD/N each against 1 job at QD (the speed section's
#                     connection rows).
# Also nbdkit null (the transport without I/O) in connections mode.
#
# Usage (root): bash bench/hand-scale.sh SERVER
#   SERVER: an ngdp-server binary (e.g. build/ngdp-server)
# Environment: MODE (volumes), REPS (2), N (4), BS (4k), QD (32), RW
#   (randread), RUNTIME (4 s after a 1 s ramp), ENGINE (uring), PIN (0;
#   1: servers on CPU 0 and fio on CPU 1, as `make bench` pins them),
#   SYSCALLS (0; 1: the servers' system calls per I/O by kind, `perf
#   stat` over 3 s from 1.5 s after the start).
# Prints one line per run: streams, IOPS (all of them), the servers' CPU
# per I/O, their context switches per I/O (voluntary: they waited;
# involuntary: the scheduler took the CPU away), the machine's busy %, and
# with SYSCALLS=1 the system calls per I/O.
set -u
[ $# -eq 1 ] || { echo "usage: hand-scale.sh SERVER"; exit 2; }
SERVER=$(realpath "$1")
MODE=${MODE:-volumes} REPS=${REPS:-2} N=${N:-4} BS=${BS:-4k} QD=${QD:-32}
RW=${RW:-randread} RUNTIME=${RUNTIME:-4} ENGINE=${ENGINE:-uring} PIN=${PIN:-0}
SYSCALLS=${SYSCALLS:-0}
case $MODE in volumes) IMGS=$N ;; connections) IMGS=1 ;; *) echo "MODE: volumes or connections"; exit 2 ;; esac
IMG_MIB=${IMG_MIB:-512}
CALLS="epoll_wait recvfrom read writev sendto io_uring_enter io_submit io_getevents"
. "$(dirname "$0")/hand-lib.sh"
hand_setup hand-scale $(((IMGS * IMG_MIB + 1024) * 1048576))
for ((i = 0; i < IMGS; i++)); do
	qemu-img create -q -f qcow2 "$W/mnt/img$i.qcow2" ${IMG_MIB}M &&
		qemu-io -f qcow2 -c "write -P $((i + 1)) 0 ${IMG_MIB}M" "$W/mnt/img$i.qcow2" >/dev/null ||
		exit 1
done
sync	# qemu-io wrote through the page cache: no writeback during the runs
if [ "$PIN" = 1 ]; then SRV_PIN=(taskset -c 0) FIO_PIN=(taskset -c 1); else SRV_PIN=() FIO_PIN=(); fi

busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# every thread's (nbdkit has several; ngdp-server's io_uring workers)
switches() { cat /proc/"$1"/task/*/status 2>/dev/null |
	awk '/^voluntary_ctxt/ { v += $2 } /^nonvoluntary_ctxt/ { n += $2 } END { print v + 0, n + 0 }'; }
sum_ticks() { local t=0 p; for p in "${SRV[@]}"; do t=$((t + $(ticks "$p"))); done; echo $t; }
sum_switches() {
	local a=0 b=0 p x y
	for p in "${SRV[@]}"; do read -r x y <<<"$(switches "$p")"; a=$((a + x)); b=$((b + y)); done
	echo "$a $b"
}

# serve I NAME CMD...: a server for image I on $W/sI.sock
serve() {
	local i=$1 t
	shift
	rm -f "$W/s$i.sock"
	"${SRV_PIN[@]}" "$@" </dev/null >>"$W/server.log" 2>&1 &
	SRV+=($!) PIDS+=($!)
	for ((t = 0; t < 100; t++)); do [ -S "$W/s$i.sock" ] && return 0; sleep 0.05; done
	echo "server did not start: $*"; return 1
}

# run NAME STREAMS SERVER-KIND: SERVER-KIND ngdp or null
run() {
	local name=$1 k=$2 kind=$3 i jobs=() qd=$QD b0 b1 t0 t1 k0 k1 s0 s1 iops sc= ev nsrv=1
	SRV=()
	[ "$MODE" = volumes ] && nsrv=$k
	for ((i = 0; i < nsrv; i++)); do
		if [ "$kind" = null ]; then
			serve $i nbdkit -f -U "$W/s$i.sock" null size=${IMG_MIB}M || return 1
		else
			serve $i "$SERVER" --image "$W/mnt/img$i.qcow2" --socket "$W/s$i.sock" \
				--engine "$ENGINE" || return 1
		fi
	done
	[ "$MODE" = connections ] && qd=$((QD / k))
	for ((i = 0; i < k; i++)); do
		jobs+=(--name=j$i --uri="nbd+unix:///?socket=$W/s$((nsrv > 1 ? i : 0)).sock")
	done
	if [ "$SYSCALLS" = 1 ]; then
		ev=raw_syscalls:sys_enter
		for c in $CALLS; do ev=$ev,syscalls:sys_enter_$c; done
		(sleep 1.5; perf stat -x, -e "$ev" -p "$(IFS=,; echo "${SRV[*]}")" -o "$W/sc.txt" \
			-- sleep 3 >/dev/null 2>&1) &
		sc=$!
	fi
	k0=$(sum_ticks); read -r s0 <<<"$(sum_switches)"; read -r b0 <<<"$(busy)"; t0=$(date +%s%N)
	"${FIO_PIN[@]}" fio --ioengine=nbd --rw="$RW" --bs="$BS" --iodepth="$qd" --time_based \
		--runtime="$RUNTIME" --ramp_time=1 --thread --norandommap --group_reporting \
		--output-format=json --output="$W/fio.json" "${jobs[@]}" >/dev/null 2>&1 ||
		{ echo "fio failed"; return 1; }
	t1=$(date +%s%N); read -r b1 <<<"$(busy)"; read -r s1 <<<"$(sum_switches)"; k1=$(sum_ticks)
	[ -z "$sc" ] || wait "$sc"
	for p in "${SRV[@]}"; do kill "$p"; wait "$p" 2>/dev/null; done
	sed -i -n '/^{/,$p' "$W/fio.json"	# the nbd engine's chatter
	iops=$(jq '.jobs[0] | (.read.iops + .write.iops) | floor' "$W/fio.json")
	# fields: 1 streams, 2 IOPS, 3 ticks, 4-5 switches before (voluntary,
	# involuntary), 6-7 after, 8-9 busy and all ticks before, 10-11 after,
	# 12 ms; ticks are 1/100 s; the I/Os of the whole run, ramp included
	echo "$k $iops $((k1 - k0)) $s0 $s1 $b0 $b1 $(( (t1 - t0) / 1000000 ))" | awk -v n="$name" '{
		ios = $2 * $12 / 1000
		printf "%s\t%s %d\tIOPS %d\tserver_us/io %.1f", n, ENVIRON["MODE"], $1, $2, $3 * 10000 / ios
		# nbdkit'"'"'s connection threads end with their connections, and
		# their switch counts with them
		if (n == "ngdp")
			printf "\tvol_switch/io %.2f\tinvol_switch/io %.3f", ($6 - $4) / ios, ($7 - $5) / ios
		printf "\tmachine_busy %.0f%%", 100 * ($10 - $8) / ($11 - $9) }'
	if [ -n "$sc" ] && [ -s "$W/sc.txt" ]; then
		# perf -x,: count,unit,event,...; the I/Os of those 3 s at the run's rate
		awk -F, -v n="$((iops * 3))" '$3 ~ /sys_enter/ && $1 ~ /^[0-9]+$/ {
			e = $3; sub(/^.*sys_enter_?/, "", e); if (e == "") e = "all"
			if ($1 > 0) printf "\t%s %.2f", e, $1 / n }' "$W/sc.txt"
	fi
	echo
}

export MODE
for ((r = 0; r < REPS; r++)); do
	run ngdp 1 ngdp; run ngdp "$N" ngdp
	if [ "$MODE" = connections ]; then run nbd-null 1 null; run nbd-null "$N" null; fi
done
