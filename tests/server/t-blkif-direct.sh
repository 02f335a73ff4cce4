#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Reads of the blkif ring land straight in the frontend's pages (issue 17
# part 1): the backend holds the segments' pages while a read is in
# flight, and the server core reads into them with O_DIRECT where the
# image's mapping allows, else through a buffer (compressed clusters).
# blkif-front reads the whole disk of a chain with compressed, zero,
# backing and plain clusters, in page-aligned and in random segment
# layouts, and compares it with what qemu-img reads; the status counts
# both kinds of read.  A frontend that leaves with reads in flight: its
# memory stays mapped until they complete, then is unmapped (fault
# binary: read completions stall until a suspend).
. "$(dirname "$0")/lib.sh"

FRONT=$NGDP_HELPERS/blkif-front
CTL=$NGDP_HELPERS/ngdp-ctl
[ -x "$FRONT" ] || skip_test "blkif-front not built"
ctl_get() { "$CTL" "$T/$1.ctl" get "$2"; }
# status_is NAME KEY VALUE: server NAME's status KEY becomes VALUE (2 s)
status_is() {
	local i
	for ((i = 0; i < 100; i++)); do
		[ "$(ctl_get "$1" "$2")" = "$3" ] && return 0
		sleep 0.02
	done
	return 1
}

# base: compressible data, compressed clusters (qemu keeps a cluster
# uncompressed when compression does not pay, so not random bytes)
base64 -w0 /dev/urandom | head -c $((24 << 20)) >"$T/text.raw"
truncate -s 32M "$T/text.raw"
qemu-img convert -q -c -O qcow2 "$T/text.raw" "$T/base.qcow2"
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$T/top.qcow2"
qemu-io -f qcow2 "$T/top.qcow2" -c "write -P 0x5a 1M 3M" \
	-c "write -z 12M 1M" -c "write -P 0x33 20M 64k" >/dev/null
qemu-img convert -O raw "$T/top.qcow2" "$T/ref.raw"
# the same disk with one byte changed: the comparison must see it
cp "$T/ref.raw" "$T/bad.raw"
printf '\x01' | dd of="$T/bad.raw" bs=1 seek=$((20 * 1048576 + 100)) \
	conv=notrunc status=none

start_server chain --image "$T/top.qcow2" --control "$T/chain.ctl" \
	--blkif-shm "$T/chain.shm" || fail "start chain"
check "chain: the ring reads what qemu-img reads" \
	"$FRONT" "$T/chain.shm" compare "$T/ref.raw"
differs() {
	local rc=0
	"$FRONT" "$T/chain.shm" compare "$T/bad.raw" || rc=$?
	[ "$rc" = 1 ]
}
check "chain: a one-byte difference is seen (exit 1)" differs
check "chain: reads went straight into the pages" \
	[ "$(ctl_get chain direct_reads)" -gt 0 ]
check "chain: compressed clusters went through a buffer" \
	[ "$(ctl_get chain bounced_reads)" -gt 0 ]
check "chain: SIGTERM exit 0" stop_server "$SERVER_PID"

qemu-img convert -q -O raw "$T/top.qcow2" "$T/disk.raw"
start_server raw --image "$T/disk.raw" --format raw --control "$T/raw.ctl" \
	--blkif-shm "$T/raw.shm" || fail "start raw"
check "raw: the ring reads what qemu-img reads" \
	"$FRONT" "$T/raw.shm" compare "$T/ref.raw"
check "raw: no read needed a buffer" [ "$(ctl_get raw bounced_reads)" = 0 ]
check "raw: reads went straight into the pages" \
	[ "$(ctl_get raw direct_reads)" -gt 0 ]
# verify writes, then reads back in every layout, on the direct path
check "raw: verify (writes, flush, barrier, discard, read back)" \
	"$FRONT" "$T/raw.shm" verify "$T/raw-ref.raw"
check "raw: the image holds what the ring wrote" \
	cmp "$T/raw-ref.raw" "$T/disk.raw"
# the status counts the rings connected: one while a frontend runs
"$FRONT" "$T/raw.shm" bench 2 1 >/dev/null &
front=$!
check "raw: one ring connected while a frontend reads" \
	status_is raw blkif_rings 1
wait "$front"
check "raw: no ring once it left" status_is raw blkif_rings 0
check "raw: SIGTERM exit 0" stop_server "$SERVER_PID"

FAULT=$NGDP_HELPERS/ngdp-server-fault
# start_fault NAME FAULT: the fault binary on the chain, read-only, its
# ring at $T/NAME.shm and control socket at $T/NAME.ctl
start_fault() {
	NGDP_SERVER=$FAULT NGDP_FAULT=$2 start_server "$1" \
		--image "$T/top.qcow2" --readonly --control "$T/$1.ctl" \
		--blkif-shm "$T/$1.shm" || fail "start $1"
}
# Short transfers (fault binary): every read longer than a block is
# reported half done, and the rest continues from the vector's middle.
if [ -x "$FAULT" ]; then
	start_fault short short-io
	check "short transfers: the ring reads what qemu-img reads" \
		"$FRONT" "$T/short.shm" compare "$T/ref.raw"
	check "short transfers: reads went straight into the pages" \
		[ "$(ctl_get short direct_reads)" -gt 0 ]
	check "short transfers: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	skip "short transfers: ngdp-server-fault not built"
fi

# A kernel that cannot pin the frontend's pages for O_DIRECT (EFAULT; the
# fault binary spoils the pages first): each such read is read again
# through a buffer, and every read after the first goes through one.
if [ -x "$FAULT" ]; then
	start_fault ef efault-direct
	check "EFAULT: the ring reads what qemu-img reads" \
		"$FRONT" "$T/ef.shm" compare "$T/ref.raw"
	check "EFAULT: failed reads were read again ($(ctl_get ef direct_read_faults))" \
		[ "$(ctl_get ef direct_read_faults)" -gt 0 ]
	check "EFAULT: no read was answered with an error" \
		[ "$(ctl_get ef errors)" = 0 ]
	d0=$(ctl_get ef direct_reads)
	check "EFAULT: reads again, all through buffers" \
		"$FRONT" "$T/ef.shm" compare "$T/ref.raw"
	check "EFAULT: no read tried the pages again" \
		[ "$(ctl_get ef direct_reads)" = "$d0" ]
	check "EFAULT: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	skip "EFAULT: ngdp-server-fault not built"
fi

# A frontend leaves while its reads are in flight: the server keeps its
# memory mapped until they complete, never writes into unmapped memory.
if [ -x "$FAULT" ]; then
	start_fault st stall-reads
	st_pid=$SERVER_PID
	mapped() { grep -q 'memfd:blkif-front' "/proc/$st_pid/maps"; }
	check "stalled: the frontend leaves with 16 reads taken" \
		"$FRONT" "$T/st.shm" abandon-taken
	# the frontend's socket closed: the ring released, reads in flight
	check "stalled: the server released the ring" status_is st blkif_rings 0
	check "stalled: its memory stays mapped while reads are in flight" mapped
	check "stalled: reads still in flight" [ "$(ctl_get st in_flight)" -gt 0 ]
	# a suspend lets the stalled reads complete
	check "stalled: suspend" "$CTL" "$T/st.ctl" '{"op":"suspend","timeout_ms":10000}'
	check "stalled: the memory is unmapped once they completed" \
		eval '! mapped'
	check "stalled: resume" "$CTL" "$T/st.ctl" '{"op":"resume"}'
	# (reads would stall again: the fault holds them while not suspended)
	check "stalled: a new frontend attaches" "$FRONT" "$T/st.shm" probe
	check "stalled: SIGTERM exit 0" stop_server "$st_pid"
else
	skip "stalled reads: ngdp-server-fault not built"
fi
finish
