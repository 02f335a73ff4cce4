#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Quick datapath comparison (not part of check-server): a 1 GiB raw file on
# XFS on a RAM-backed loop device (direct I/O), read with fio directly
# (io_uring, O_DIRECT), through ngdp-server (aio and uring engines) and
# through qemu-nbd with qemu-dp's options.  Server pinned to CPU 0, fio to
# CPU 1.  usage: bench-quick.sh NGDP_SERVER [RUNTIME_SECONDS]
set -u
SERVER=$1
RT=${2:-10}
[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
W=$(mktemp -d /var/tmp/ngdp-bench.XXXXXX)
IMG=/dev/shm/ngdp-bench.$$.img
LOOP=
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	mountpoint -q "$W/mnt" && umount "$W/mnt"
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	rm -f "$IMG"
	rm -rf "$W"
}
trap cleanup EXIT

truncate -s 3G "$IMG"
LOOP=$(losetup --direct-io=on -f --show "$IMG") || exit 1
mkfs.xfs -q "$LOOP" || exit 1
mkdir "$W/mnt"
mount "$LOOP" "$W/mnt" || exit 1
D=$W/mnt/disk.raw
fio --name=fill --filename="$D" --size=1G --rw=write --bs=1M --direct=1 \
	--ioengine=io_uring >/dev/null || exit 1

IFS=, read -r -a jobs <<<"${BENCH_JOBS:-randread 4k 1,randread 4k 32,randwrite 4k 32,read 1M 8,write 1M 8}"
IFS=' ' read -r -a targets <<<"${BENCH_TARGETS:-direct aio uring qemu-nbd}"
want() { [[ " ${targets[*]} " == *" $1 "* ]]; }
run() {	# run LABEL fio-target-args...
	local label=$1 j rw bs qd out
	shift
	for j in "${jobs[@]}"; do
		read -r rw bs qd <<<"$j"
		out=$(taskset -c 1 fio --name=b --rw="$rw" --bs="$bs" --iodepth="$qd" \
			--time_based --runtime="$RT" --size=1G --group_reporting \
			--output-format=terse --terse-version=3 "$@" 2>/dev/null)
		# terse v3: field 8 read iops, 7 read bw KiB/s, 49 write iops, 48 write bw
		echo "$out" | awk -F';' -v l="$label" -v j="$rw $bs QD$qd" '$8 + $49 > 0 {
			if ($8 > 0) printf "%-12s %-18s %9d IOPS %8.1f MiB/s\n", l, j, $8, $7/1024;
			else printf "%-12s %-18s %9d IOPS %8.1f MiB/s\n", l, j, $49, $48/1024 }'
	done
}

want direct && run direct --filename="$D" --ioengine=io_uring --direct=1
for e in aio uring; do
	want $e || continue
	taskset -c 0 "$SERVER" --image "$D" --format raw --engine $e \
		--socket "$W/s.sock" --pidfile "$W/s.pid" &
	PIDS+=($!)
	for ((i = 0; i < 100; i++)); do [ -s "$W/s.pid" ] && break; sleep 0.05; done
	run "ngdp-$e" --ioengine=nbd --uri="nbd+unix:///?socket=$W/s.sock"
	kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}"; rm -f "$W/s.pid"
done
want qemu-nbd || exit 0
taskset -c 0 qemu-nbd -f raw --cache=none --aio=native -t -e 4 -k "$W/q.sock" "$D" &
PIDS+=($!)
for ((i = 0; i < 100; i++)); do [ -S "$W/q.sock" ] && break; sleep 0.05; done
run qemu-nbd --ioengine=nbd --uri="nbd+unix:///?socket=$W/q.sock"
