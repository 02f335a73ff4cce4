#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# The Xen block ring outside Xen (issue 17): blkif-front attaches a ring
# in shared memory (--blkif-shm) and drives it as blkfront does.  What it
# writes must be what qemu-img and qemu-io read through NBD and in the
# file; a read-only server refuses writes; hostile frontends (an
# impossible req_prod, grant references out of bounds, requests left in
# flight, more in flight than the cap) leave the server serving NBD; one
# frontend at a time; the x86_32 ABI; the bench mode.
. "$(dirname "$0")/lib.sh"

FRONT=$NGDP_HELPERS/blkif-front
[ -x "$FRONT" ] || skip_test "blkif-front not built"
SHM=$T/rw.shm

qemu-img create -q -f qcow2 "$T/img.qcow2" 64M
start_server rw --image "$T/img.qcow2" --blkif-shm "$SHM" || fail "start"

# NBD still serves, and the server is alive
nbd_alive() {
	kill -0 "$SERVER_PID" && qemu-io -r -f raw "$(uri rw)" -c "read 0 1M"
}
# what the frontend wrote ($1, its reference) is what NBD reads
nbd_same() { qemu-img compare -f raw -F raw "$1" "$(uri rw)"; }

check "verify (x86_64, ring order 2)" "$FRONT" "$SHM" verify "$T/ref.raw"
check "ring writes read back through NBD (qemu-img compare)" nbd_same "$T/ref.raw"
# one spot read with qemu-io against the same bytes of the reference
spot_same() {
	local off=$((33 * 1024 * 1024 + 4096))
	qemu-io -r -f raw "$(uri rw)" -c "read -v $off 512" |
		head -32 | cut -c11-58 | tr -d ' \n' >"$T/spot.nbd" &&
	od -An -tx1 -v -j $off -N 512 "$T/ref.raw" | tr -d ' \n' >"$T/spot.ref" &&
	[ -s "$T/spot.ref" ] && cmp "$T/spot.nbd" "$T/spot.ref"
}
check "qemu-io reads the ring's bytes at one spot" spot_same

# every part of the hello is checked: refused with a reply (exit 3)
refused() {
	local rc=0
	"$FRONT" "$SHM" bad-hello "$1" || rc=$?
	[ "$rc" = 3 ]
}
for flaw in order no-data magic not-memfd size unsealed blocking pipe two-fds; do
	check "bad hello ($flaw) refused" refused $flaw
done
# the control: bad-hello with nothing wrong is attached (and fails)
check "bad hello control: a correct hello is not refused" eval '! refused none'
check "bad hellos: server alive, NBD serves" nbd_alive

check "bad-index: out-of-bounds grants answered with errors" \
	"$FRONT" "$SHM" bad-index
check "bad-index: server alive, NBD serves" nbd_alive
check "garbage: impossible req_prod drops the ring" "$FRONT" "$SHM" garbage
check "garbage: server alive, NBD serves" nbd_alive
# three times: the socket's and the kick's events in one epoll batch
abandon3() { for i in 1 2 3; do "$FRONT" "$SHM" abandon || return 1; done; }
check "abandon: close with requests in flight (3 times)" abandon3
check "abandon: server alive, NBD serves" nbd_alive
check "fill: more in flight than the cap completes" "$FRONT" "$SHM" fill
check "fill: server alive, NBD serves" nbd_alive

# one frontend at a time: a second one is refused (exit 3) while the
# first holds the ring, and attaches once it left
"$FRONT" "$SHM" hold 3 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
held() {
	local i
	for ((i = 0; i < 100; i++)); do
		grep -qx attached "$T/hold.out" && return 0
		sleep 0.05
	done
	cat "$T/hold.out"
	return 1
}
second_refused() {
	local rc=0
	"$FRONT" "$SHM" probe || rc=$?
	[ "$rc" = 3 ]
}
check "hold: the first frontend attaches" held
check "a second frontend is refused while one is attached" second_refused
check "hold: the first frontend ends cleanly" wait "$HOLD_PID"
check "a frontend attaches again once the ring is free" "$FRONT" "$SHM" probe

bench_ok() {
	local out
	out=$("$FRONT" "$SHM" bench 1 16) || return 1
	echo "$out"
	[[ $out =~ ^iops=([0-9]+)\ lat_us=[0-9]+$ ]] &&
		[ "${BASH_REMATCH[1]}" -gt 0 ]
}
check "bench 1 s QD16 prints positive iops" bench_ok

check "verify, x86_32 ABI, ring order 0" \
	env BLKIF_FRONT_ABI=x86_32 BLKIF_FRONT_ORDER=0 BLKIF_FRONT_SEED=32 \
	"$FRONT" "$SHM" verify "$T/ref32.raw"
check "x86_32 writes read back through NBD" nbd_same "$T/ref32.raw"
check "rw: SIGTERM exit 0" stop_server "$SERVER_PID"
check "qemu-img check clean" qemu-img check -q "$T/img.qcow2"
check "the image file holds the ring's writes (qemu-img compare)" \
	qemu-img compare -q -f raw -F qcow2 "$T/ref32.raw" "$T/img.qcow2"

sum0=$(md5sum <"$T/img.qcow2")
start_server ro --image "$T/img.qcow2" --readonly --blkif-shm "$T/ro.shm" ||
	fail "start ro"
check "read-only: writes and discards refused, reads work" \
	"$FRONT" "$T/ro.shm" expect-ro
check "read-only: verify fails" eval '! "$FRONT" "$T/ro.shm" verify'
# stopping with a frontend attached: the server drains and exits 0
"$FRONT" "$T/ro.shm" hold 10 >"$T/hold.out" 2>&1 &
HOLD_PID=$!
BG_PIDS+=("$HOLD_PID")
check "read-only: a frontend holds the ring" held
check "read-only: SIGTERM with the ring attached: exit 0" stop_server "$SERVER_PID"
check "read-only: image untouched" [ "$sum0" = "$(md5sum <"$T/img.qcow2")" ]
if [ "$FAILED" != 0 ]; then
	echo "server logs:"
	tail -n 30 "$T/rw.log" "$T/ro.log" | sed 's/^/    /'
fi
finish
