#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# A server never stays suspended (issue 10):
# - a suspend not followed by a resume within its timeout resumes on the
#   image the volume record (--volume-record) names then: the same top, or
#   the new leaf of a committed snapshot; not while the SR lock is held
#   exclusively (a snapshot in progress); a reset-on-boot overlay stays;
# - a suspend whose flush fails returns the error and leaves the server
#   serving; writes work again once the cause is gone (ngdp-server-fault,
#   flush-fail: flushes fail while $NGDP_FAULT_FILE exists).
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
FAULT="$NGDP_HELPERS/ngdp-server-fault"
SR=$T/sr
KEY=0b7e1b52-58a4-4b8e-9d0e-0f7c1c9b1a01
ID1=5c1d4a9e-1b2c-4d3e-8f4a-111111111111
ID2=5c1d4a9e-1b2c-4d3e-8f4a-222222222222
REC=$SR/meta/v-$KEY.json
mkdir -p "$SR/.sr/active" "$SR/meta" "$SR/images"
: >"$SR/.sr/lock"
record() { # record IMAGE-ID FORMAT: atomic, as the SR library writes it
	printf '{"name":"disk","image":"%s","image-format":"%s","read_write":true}\n' \
		"$1" "$2" >"$REC.tmp" && mv "$REC.tmp" "$REC"
}
status() { "$CTL" "$1" '{"op":"status"}'; }
# wait_status CTL PATTERN [TENTHS]: status matches PATTERN in time
wait_status() {
	local i
	for ((i = 0; i < ${3:-100}; i++)); do
		status "$1" | grep -q "$2" && return 0
		sleep 0.1
	done
	echo "status never matched $2: $(status "$1")"
	return 1
}

qemu-img create -q -f qcow2 "$SR/images/$ID1.qcow2" 64M
record $ID1 qcow2
start_server s --image "$SR/images/$ID1.qcow2" --volume-record "$REC" \
	--control "$T/s.ctl" --confine "$SR/images" || fail "start"
qemu-io -f raw "$(uri s)" -c "write -P 1 0 1M" >/dev/null

# 1. timeout, record unchanged: resumes on the same top
check "suspend (timeout 300 ms)" "$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":300}'
check "resumes by itself after the timeout" wait_status "$T/s.ctl" '"suspended":false'
check "the log says why" grep -q "not resumed in time" "$T/s.log"
check "still on the same image" eval 'status "$T/s.ctl" | grep -q "$ID1.qcow2"'
check "writes work after the timeout" \
	qemu-io -f raw "$(uri s)" -c "write -P 2 1M 1M" -c "read -P 2 1M 1M"

# 2. the snapshot was committed but its resume never came: new leaf.  As
# the volume plugin does, all under the SR lock held exclusively (the
# timeout passes meanwhile), then the lock goes without a resume.
snapshot_without_resume() {
	(
		flock -x 9 || exit 1
		"$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":200}' || exit 1
		sleep 0.5
		cp "$SR/images/$ID1.qcow2" "$T/id1.at-suspend" &&
		qemu-img create -q -f qcow2 -b "$ID1.qcow2" -F qcow2 \
			"$SR/images/$ID2.qcow2" &&
		record $ID2 qcow2
	) 9<"$SR/.sr/lock"
}
check "snapshot committed, no resume" snapshot_without_resume
check "resumes by itself on the leaf the record names" \
	wait_status "$T/s.ctl" "\"image\":\"[^\"]*$ID2.qcow2\".*\"suspended\":false"
check "writes go to the new leaf" \
	qemu-io -f raw "$(uri s)" -c "write -P 3 2M 1M" -c "read -P 1 0 1M" \
	-c "read -P 2 1M 1M" -c "read -P 3 2M 1M"
# guest-visible content: closing a qcow2 chain may trim its preallocated tail
check "the snapshot image is untouched" \
	qemu-img compare -f qcow2 -F qcow2 "$T/id1.at-suspend" "$SR/images/$ID1.qcow2"

# 3. a snapshot in progress holds the SR lock: no resume behind its back
flock -x "$SR/.sr/lock" sleep 3 &
holder=$!
BG_PIDS+=($holder)
sleep 0.3
check "suspend (timeout 200 ms) under an exclusive SR lock" \
	"$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":200}'
sleep 1.5
check "still suspended while the SR lock is held" \
	eval 'status "$T/s.ctl" | grep -q "\"suspended\":true"'
check "the holder can still resume" true
wait $holder
check "resumes once the lock is released" wait_status "$T/s.ctl" '"suspended":false'
check "SIGTERM exit 0" stop_server "$SERVER_PID"

# 4. reset-on-boot overlay: stays on the overlay
qemu-img create -q -f qcow2 -b "$ID2.qcow2" -F qcow2 "$SR/images/.np-$KEY.qcow2"
start_server np --image "$SR/images/.np-$KEY.qcow2" --volume-record "$REC" \
	--control "$T/np.ctl" --confine "$SR/images" || fail "start np"
check "overlay: suspend (timeout 200 ms)" "$CTL" "$T/np.ctl" '{"op":"suspend","timeout_ms":200}'
check "overlay: resumes by itself on the overlay" \
	wait_status "$T/np.ctl" "\"image\":\"[^\"]*\\.np-$KEY.qcow2\".*\"suspended\":false"
check "overlay: writes work" qemu-io -f raw "$(uri np)" -c "write -P 4 0 64k" -c "read -P 4 0 64k"
check "overlay: SIGTERM exit 0" stop_server "$SERVER_PID"

# 5. the suspend's flush fails (full SR): error to the suspender, serving on
if [ -x "$FAULT" ]; then
	NGDP_SERVER=$FAULT NGDP_FAULT=flush-fail NGDP_FAULT_FILE=$T/full \
		start_server f --image "$SR/images/$ID2.qcow2" --volume-record "$REC" \
		--control "$T/f.ctl" --confine "$SR/images" --flush-interval 0 ||
		fail "start f"
	# a write left unflushed (qemu-io would flush at exit)
	check "unflushed write" "$NGDP_HELPERS/nbd-evil" "$T/f.sock" good
	check "server is dirty" eval 'status "$T/f.ctl" | grep -q "\"dirty\":true"'
	: >"$T/full"
	check "a suspend whose flush fails returns the error" \
		eval '! "$CTL" "$T/f.ctl" "{\"op\":\"suspend\",\"timeout_ms\":60000}" | tee /dev/stderr | grep -q "\"ok\":true"'
	check "not suspended after the failed suspend" \
		eval 'status "$T/f.ctl" | grep -q "\"suspended\":false"'
	rm -f "$T/full"
	check "writes work once space is freed" timeout 20 \
		qemu-io -f raw "$(uri f)" -c "write -P 6 0 1M" -c "flush" -c "read -P 6 0 1M"
	check "suspend works again" "$CTL" "$T/f.ctl" '{"op":"suspend","timeout_ms":60000}'
	check "resume" "$CTL" "$T/f.ctl" '{"op":"resume"}'
	check "fault server: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	skip "flush failure: $FAULT not built"
fi
check "qemu-img check of the chain" qemu-img check -q "$SR/images/$ID2.qcow2"
finish
