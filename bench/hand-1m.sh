#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# hand-1m.sh: the hand measurement of 1M writes (or reads) behind
# bench/README.md's "Where the 8 requests wait" and "Tried and dropped"
# tables.  Not part of `make bench`: a quick side-by-side of servers on
# one fresh XFS on a RAM-backed loop device, with the loop device's own
# counters.
#
# Usage (root): bash bench/hand-1m.sh SERVER [SERVER...]
#   SERVER: an ngdp-server binary (e.g. build/ngdp-server, or an older
#   build kept elsewhere to compare); each is run with every engine of
#   ENGINES, then nbdkit null and the raw file (fio on it, no NBD).
# Environment: REPS (3), RW (write|read), BS (1M), QD (8), RUNTIME (4 s
#   after a 1 s ramp), ENGINES ("uring aio"), SERVER_CPUS (0; "0,1" for
#   servers on both CPUs), FIO_CPUS (1).
# Prints one line per run: name, MB/s, fio's mean completion latency, the
# server's CPU ticks, each CPU's busy %, the loop device's busy % and its
# mean requests in flight (/sys/block/loopN/stat: io_ticks, time_in_queue).
set -u
[ $# -ge 1 ] || { echo "usage: hand-1m.sh SERVER..."; exit 2; }
REPS=${REPS:-3} RW=${RW:-write} BS=${BS:-1M} QD=${QD:-8} RUNTIME=${RUNTIME:-4}
ENGINES=${ENGINES:-uring aio} SERVER_CPUS=${SERVER_CPUS:-0} FIO_CPUS=${FIO_CPUS:-1}
. "$(dirname "$0")/hand-lib.sh"
hand_setup hand-1m 3G
fallocate -l 1G "$W/mnt/img.raw" || exit 1
qemu-img create -q -f qcow2 "$W/mnt/img.qcow2" 1G &&
	qemu-io -f qcow2 -c "write -P 1 0 1G" "$W/mnt/img.qcow2" >/dev/null || exit 1
sync	# qemu-io wrote through the page cache: no writeback during the runs
DEV=/sys/block/${LOOP#/dev/}/stat

cpus() { awk '/^cpu[01] / { printf "%d %d ", $2 + $3 + $4 + $7 + $8, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# run NAME PID FIO-TARGET-ARGS...: one fio run; PID is the server's (or 0)
run() {
	local name=$1 pid=$2 c0 c1 d0 d1 t0 t1 k0 k1
	shift 2
	k0=$(ticks "$pid"); c0=$(cpus); read -r d0 <<<"$(awk '{ print $10, $11 }' "$DEV")"; t0=$(date +%s%N)
	taskset -c "$FIO_CPUS" fio --name=j --rw="$RW" --bs="$BS" --iodepth="$QD" \
		--time_based --runtime="$RUNTIME" --ramp_time=1 --thread --norandommap \
		--output-format=json --output="$W/fio.json" "$@" >/dev/null 2>&1 ||
		{ echo "$name: fio failed"; return 1; }
	t1=$(date +%s%N); read -r d1 <<<"$(awk '{ print $10, $11 }' "$DEV")"; c1=$(cpus); k1=$(ticks "$pid")
	sed -i -n '/^{/,$p' "$W/fio.json"	# the nbd engine's chatter
	jq -j --arg n "$name" '.jobs[0] | (if .write.io_bytes > 0 then .write else .read end) |
		"\($n)\tMB/s \(.bw_bytes / 1e6 | floor)\tclat_us \(.clat_ns.mean / 1000 | floor)"' "$W/fio.json"
	echo " $((k1 - k0)) $c0 $c1 $d0 $d1 $(( (t1 - t0) / 1000000 ))" | awk '{
		printf "\tserver_ticks %d\tcpu0 %.0f%%\tcpu1 %.0f%%\tdevice_busy %.0f%%\tdevice_in_flight %.1f\n",
			$1, 100 * ($6 - $2) / ($7 - $3), 100 * ($8 - $4) / ($9 - $5),
			100 * ($12 - $10) / $14, ($13 - $11) / $14 }'
}

# start NAME CMD...: a server on SERVER_CPUS listening on $W/s.sock
start() {
	local i
	rm -f "$W/s.sock"
	taskset -c "$SERVER_CPUS" "$@" </dev/null >>"$W/server.log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	for ((i = 0; i < 100; i++)); do [ -S "$W/s.sock" ] && return 0; sleep 0.05; done
	echo "server did not start: $*"; return 1
}
stop() { kill "$SPID"; wait "$SPID" 2>/dev/null; }

for ((r = 0; r < REPS; r++)); do
	for srv in "$@"; do
		for eng in $ENGINES; do
			start "$srv" --image "$W/mnt/img.qcow2" --socket "$W/s.sock" --engine "$eng" || exit 1
			run "$srv $eng" "$SPID" --ioengine=nbd --uri="nbd+unix:///?socket=$W/s.sock"
			stop
		done
	done
	start nbdkit -f -U "$W/s.sock" null size=1G || exit 1
	run "nbdkit-null" "$SPID" --ioengine=nbd --uri="nbd+unix:///?socket=$W/s.sock"
	stop
	run "raw-file" 0 --ioengine=io_uring --direct=1 --filename="$W/mnt/img.raw" --size=1G
done
