#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Lifecycle: SIGTERM under load exits 0 with a clean image; stale socket
# replaced, busy socket refused; startup errors exit non-zero; --ready-fd.
. "$(dirname "$0")/lib.sh"

qemu-img create -q -f qcow2 "$T/img.qcow2" 64M
start_server a --image "$T/img.qcow2" --control "$T/a.ctl" || fail "start"
check "socket mode 0600" [ "$(stat -c %a "$T/a.sock")" = 600 ]
check "control socket mode 0600" [ "$(stat -c %a "$T/a.ctl")" = 600 ]
check "pidfile holds the PID" [ "$(cat "$T/a.pid")" = "$SERVER_PID" ]
fio --thread --name=load --ioengine=nbd --uri="$(uri a)" --rw=randwrite --bs=64k \
	--size=64M --iodepth=8 --time_based --runtime=30 >/dev/null 2>&1 &
BG_PIDS+=($!)
fio_pid=$!
sleep 1
check "SIGTERM under load exits 0" stop_server "$SERVER_PID"
kill -9 "$fio_pid" 2>/dev/null
wait "$fio_pid" 2>/dev/null
check "image clean after SIGTERM" qemu-img check -q "$T/img.qcow2"
check "socket removed on exit" [ ! -e "$T/a.sock" ]

port=$((20000 + RANDOM % 20000))
start_server tcp --image "$T/img.qcow2" --tcp "127.0.0.1:$port" || fail "start tcp"
check "TCP listener serves" eval 'qemu-io -r -f raw "nbd://127.0.0.1:$port" -c "read 0 4k" | grep -q ^read'
check "TCP server SIGTERM exit 0" stop_server "$SERVER_PID"

start_server b --image "$T/img.qcow2" || fail "start b"
kill -9 "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null
check "stale socket left by kill -9" [ -S "$T/b.sock" ]
start_server b --image "$T/img.qcow2"
check "stale socket replaced" kill -0 "$SERVER_PID"
first=$SERVER_PID
busy() {
	! "$NGDP_SERVER" --image "$T/img.qcow2" --socket "$T/b.sock" --readonly \
		--log-stderr 2>"$T/busy.log" &&
	grep -q "in use" "$T/busy.log"
}
check "busy socket refused with a clear message" busy
check "first server still serves" eval 'qemu-io -f raw "$(uri b)" -c "read 0 4k" | grep -q ^read'
check "SIGINT exits 0" eval 'kill -INT '"$first"'; wait '"$first"
check "missing image: non-zero exit" eval '! "$NGDP_SERVER" --image "$T/nope" --socket "$T/c.sock" 2>/dev/null'
check "bad option: exit 2" eval '"$NGDP_SERVER" --bogus 2>/dev/null; [ $? = 2 ]'
# --format is the format the top image is opened with, never probed: a raw
# disk whose guest wrote a QCOW2 header is still served as raw (issue 10)
truncate -s 1M "$T/plain.raw"
check "--format qcow2 on a file that is not QCOW2 refused" eval '! "$NGDP_SERVER" --image "$T/plain.raw" --format qcow2 --socket "$T/c.sock" 2>/dev/null'
start_server f --image "$T/img.qcow2" --format raw || fail "start --format raw"
check "--format raw on a QCOW2 file serves its bytes (the 'Q' of its magic)" \
	qemu-io -r -f raw -c "read -P 0x51 0 1" "$(uri f)"
check "...with the file's size, not the virtual size" \
	[ "$(nbdinfo --size "$(uri f)")" = "$(stat -c %s "$T/img.qcow2")" ]
check "stopped" stop_server "$SERVER_PID"
mkdir -p "$T/in" "$T/out"
qemu-img create -q -f qcow2 "$T/out/base.qcow2" 16M
qemu-img create -q -f qcow2 -b "$T/out/base.qcow2" -F qcow2 "$T/in/top.qcow2"
check "--confine refuses a backing file outside" eval '! "$NGDP_SERVER" --image "$T/in/top.qcow2" --confine "$T/in" --socket "$T/c.sock" 2>/dev/null'

ready() {
	local line pid
	exec 5< <("$NGDP_SERVER" --engine "$ENGINE" --image "$T/img.qcow2" \
		--socket "$T/r.sock" --pidfile "$T/r.pid" --ready-fd 1 2>/dev/null)
	read -r -t 10 line <&5
	[ "$line" = ready ] || return 1
	pid=$(cat "$T/r.pid")
	SERVER_PIDS+=("$pid")
	exec 5<&-
	kill -TERM "$pid"
	wait_gone "$pid"
}
check "--ready-fd writes ready" ready
finish
