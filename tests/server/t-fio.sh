#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# fio nbd engine: random writes verified with crc32c, one and two
# connections at once (multi-conn), raw and qcow2.
. "$(dirname "$0")/lib.sh"

fio_verify() {
	local u=$1 jobs=$2 bs=$3
	shift 3
	fio --thread --name=verify --ioengine=nbd --uri="$u" --rw=randwrite --bs="$bs" "$@" \
		--size=16M --iodepth=16 --numjobs="$jobs" --offset_increment=16M \
		--verify=crc32c --do_verify=1 --verify_fatal=1 --randseed=7 \
		--verify_state_save=0 \
		--group_reporting >"$T/fio.out" 2>&1 || { tail -20 "$T/fio.out"; return 1; }
	grep -q "err= 0" "$T/fio.out" || { tail -20 "$T/fio.out"; return 1; }
}

# io_uring's registered buffers: the pooled buffers of 64 KiB and more are
# registered where the kernel has sparse buffer tables (5.19), and the
# requests in them run as READ_FIXED/WRITE_FIXED; libaio has none
registered_ios() { "$NGDP_HELPERS/ngdp-ctl" "$T/$1.ctl" get registered_ios; }
kernel_at_least() { # MAJOR MINOR
	local v
	v=$(uname -r)
	[ "${v%%.*}" -gt "$1" ] || { [ "${v%%.*}" -eq "$1" ] && v=${v#*.} && [ "${v%%[!0-9]*}" -ge "$2" ]; }
}

for fmt in raw qcow2; do
	qemu-img create -q -f $fmt "$T/img.$fmt" 64M
	start_server $fmt --image "$T/img.$fmt" --control "$T/$fmt.ctl" ||
		{ fail "$fmt: start"; continue; }
	check "$fmt: fio randwrite 4k + crc32c verify" fio_verify "$(uri $fmt)" 1 4k
	check "$fmt: fio 2 connections, mixed sizes + verify" fio_verify "$(uri $fmt)" 2 4k-256k
	if [ "$ENGINE" = aio ]; then
		check "$fmt: libaio: no I/O on registered buffers" [ "$(registered_ios $fmt)" = 0 ]
	elif kernel_at_least 5 19; then
		check "$fmt: io_uring: the big requests ran on registered buffers" \
			[ "$(registered_ios $fmt)" -gt 0 ]
	else
		skip "$fmt: registered buffers: kernel $(uname -r) has no sparse buffer tables (5.19)"
	fi
	check "$fmt: fio 1 connection, 512-byte blocks + verify" fio_verify "$(uri $fmt)" 1 512
	# 777-byte blocks: unaligned offsets and sizes at depth 16 on two
	# connections, the slow path under load
	check "$fmt: fio 2 connections, unaligned 777-byte blocks + verify" \
		fio_verify "$(uri $fmt)" 2 777
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	[ $fmt = qcow2 ] && check "qcow2: qemu-img check" qemu-img check -q "$T/img.qcow2"
done

# two qemu-io clients at the same time on different regions
qemu-img create -q -f qcow2 "$T/mc.qcow2" 64M
start_server mc --image "$T/mc.qcow2" || fail "mc: start"
pids=()
for i in 1 2; do
	args=()
	for ((j = 0; j < 64; j++)); do
		args+=(-c "write -P $((i * 10 + j % 7)) $(((i - 1) * 32 + j / 4))M 256k")
	done
	qemu-io -f raw "$(uri mc)" "${args[@]}" >"$T/mc.$i.out" 2>&1 &
	pids+=($!)
	BG_PIDS+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
check "two qemu-io clients at once" [ $rc = 0 ]
verify_mc() {
	local i j args=()
	for i in 1 2; do
		# the last write to each MiB is j = 4k + 3
		for ((j = 3; j < 64; j += 4)); do
			args+=(-c "read -P $((i * 10 + j % 7)) $(((i - 1) * 32 + j / 4))M 256k")
		done
	done
	qemu-io -r -f raw "$(uri mc)" "${args[@]}"
}
check "both clients' data read back" verify_mc
check "SIGTERM exit 0" stop_server "$SERVER_PID"
check "qemu-img check" qemu-img check -q "$T/mc.qcow2"
finish
