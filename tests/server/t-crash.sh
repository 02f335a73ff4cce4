#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# kill -9 during a write load with flushes: the image must stay consistent
# and every region written before the last completed flush must be there.
. "$(dirname "$0")/lib.sh"

for fmt in raw qcow2; do
	img=$T/img.$fmt
	qemu-img create -q -f $fmt "$img" 128M
	start_server $fmt --image "$img" || { fail "$fmt: start"; continue; }
	# background noise: random writes, never flushed by the client
	fio --thread --name=noise --ioengine=nbd --uri="$(uri $fmt)" --rw=randwrite \
		--bs=4k-64k --offset=64M --size=64M --iodepth=8 --time_based \
		--runtime=60 >/dev/null 2>&1 &
	BG_PIDS+=($!)
	noise=$!
	last=0
	# region N (1 MiB at N MiB) gets pattern N, then a flush; record N
	# only once qemu-io returned (it flushes before exiting)
	for ((n = 1; n <= 40; n++)); do
		qemu-io -f raw "$(uri $fmt)" -c "write -P $n ${n}M 512k" \
			-c "write -P $n $((n * 1024 + 512))k 512k" -c flush \
			>/dev/null 2>&1 || break
		last=$n
		[ $n = 25 ] && kill -9 "$SERVER_PID"
	done
	wait "$SERVER_PID" 2>/dev/null
	kill -9 "$noise" 2>/dev/null
	wait "$noise" 2>/dev/null
	check "$fmt: some flushed regions before the kill ($last)" [ "$last" -ge 20 ]
	[ $fmt = qcow2 ] && check "qcow2: qemu-img check after kill -9" qemu-img check -q "$img"
	verify() {
		local n args=()
		for ((n = 1; n <= last; n++)); do
			args+=(-c "read -P $n ${n}M 1M")
		done
		qemu-io -r -f $fmt "$img" "${args[@]}"
	}
	check "$fmt: regions 1..$last intact" verify
	start_server ${fmt}2 --image "$img" || fail "$fmt: restart"
	check "$fmt: new server serves the data" qemu-io -r -f raw "$(uri ${fmt}2)" -c "read -P 1 1M 1M"
	check "$fmt: new server SIGTERM exit 0" stop_server "$SERVER_PID"
done
# periodic flush: writes the client never flushed are durable once the
# server reports itself clean, even across kill -9
CTL="$NGDP_HELPERS/ngdp-ctl"
qemu-img create -q -f qcow2 "$T/idle.qcow2" 64M
start_server idle --image "$T/idle.qcow2" --control "$T/idle.ctl" --flush-interval 300 ||
	fail "idle: start"
check "idle: unflushed writes" fio --thread --name=w --ioengine=nbd --uri="$(uri idle)" \
	--rw=write --bs=64k --size=8M --iodepth=4 --buffer_pattern=0x5a
clean() {
	local i
	for ((i = 0; i < 200; i++)); do
		"$CTL" "$T/idle.ctl" '{"op":"status"}' | grep -q '"dirty":false' && return 0
		sleep 0.05
	done
	return 1
}
check "idle: server flushes by itself" clean
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
check "idle: qemu-img check after kill -9" qemu-img check -q "$T/idle.qcow2"
check "idle: data survived" qemu-io -r -f qcow2 "$T/idle.qcow2" -c "read -P 0x5a 0 8M"
finish
