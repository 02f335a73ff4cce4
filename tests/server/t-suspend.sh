#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Control socket: status, suspend while a client writes, snapshot overlay,
# resume on the new top; suspend timeout fails writes but serves reads.
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
qemu-img create -q -f qcow2 "$T/old.qcow2" 64M
start_server s --image "$T/old.qcow2" --control "$T/s.ctl" || fail "start"
check "status" eval '"$CTL" "$T/s.ctl" "{\"op\":\"status\"}" | grep -q "\"engine\":\"$ENGINE\""'
check "bad request rejected" eval '! "$CTL" "$T/s.ctl" "{\"op\":\"frobnicate\"}" >/dev/null'
# blkif_release (Datapath.deactivate of a ring's domain): a server with no
# Xen ring answers ENOENT (2), a domain that is not a domid EINVAL (22)
release_errno() {
	"$CTL" "$T/s.ctl" "{\"op\":\"blkif_release\",\"domain\":$1}" |
		jq -e --argjson e "$2" '.ok == false and .errno == $e' >/dev/null
}
check "blkif_release without a Xen ring: ENOENT" release_errno 5 2
check "blkif_release of domain 0: EINVAL" release_errno 0 22
check "blkif_release of a domain that is not a number: EINVAL" release_errno '"5"' 22
check "status: no Xen ring (blkif_ring null)" [ "$("$CTL" "$T/s.ctl" get blkif_ring)" = null ]
qemu-io -f raw "$(uri s)" -c "write -P 1 0 1M" >/dev/null

# a client that keeps writing pattern 2 to 4M..12M while we snapshot
( for ((i = 0; i < 60; i++)); do
	qemu-io -f raw "$(uri s)" -c "write -P 2 $((4 + i % 8))M 1M" >/dev/null 2>&1 || exit 1
  done ) &
writer=$!
BG_PIDS+=($writer)
sleep 0.5
check "suspend" "$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":60000}'
check "status says suspended" eval '"$CTL" "$T/s.ctl" "{\"op\":\"status\"}" | grep -q "\"suspended\":true"'
cp "$T/old.qcow2" "$T/old.at-suspend"
check "qemu-img check of the suspended image" qemu-img check -q "$T/old.qcow2"
# backing names are plain names in the image directory (as the plugin writes)
check "create the overlay" qemu-img create -q -f qcow2 -b old.qcow2 -F qcow2 "$T/new.qcow2"
check "resume on the overlay" "$CTL" "$T/s.ctl" "{\"op\":\"resume\",\"image\":\"$T/new.qcow2\"}"
check "writer finished without errors" wait $writer
qemu-io -f raw "$(uri s)" -c "write -P 3 20M 1M" >/dev/null
check "status shows the new image" eval '"$CTL" "$T/s.ctl" "{\"op\":\"status\"}" | grep -q new.qcow2'
check "SIGTERM exit 0" stop_server "$SERVER_PID"
# guest-visible content and metadata: the qcow2 layer trims its preallocated
# tail when the old chain is closed at resume, so the bytes may differ
check "old image content unchanged since the suspend" \
	qemu-img compare -f qcow2 -F qcow2 "$T/old.at-suspend" "$T/old.qcow2"
check "qemu-img check old" qemu-img check -q "$T/old.qcow2"
check "old image has no post-resume write" qemu-io -r -f qcow2 "$T/old.qcow2" -c "read -P 0 20M 1M"
check "new chain has all data" qemu-io -r -f qcow2 "$T/new.qcow2" -c "read -P 1 0 1M" -c "read -P 2 4M 8M" -c "read -P 3 20M 1M"
check "new top holds the post-resume write" eval 'qemu-img map -f qcow2 --output=json "$T/new.qcow2" | grep -q "\"start\": 20971520, \"length\": 1048576, \"depth\": 0"'
check "qemu-img check new" qemu-img check -q "$T/new.qcow2"

# resume with a bad image: the old chain stays in service
start_server s2 --image "$T/new.qcow2" --control "$T/s2.ctl" || fail "start s2"
"$CTL" "$T/s2.ctl" '{"op":"suspend"}' >/dev/null
check "resume with a missing image fails" eval '! "$CTL" "$T/s2.ctl" "{\"op\":\"resume\",\"image\":\"$T/missing.qcow2\"}" >/dev/null'
check "resume without image after failure" "$CTL" "$T/s2.ctl" '{"op":"resume"}'
check "still serving the old chain" qemu-io -r -f raw "$(uri s2)" -c "read -P 3 20M 1M"

# suspend timeout: writes fail with EIO, reads still work, resume heals
"$CTL" "$T/s2.ctl" '{"op":"suspend","timeout_ms":100}' >/dev/null
expired() {
	local i
	for ((i = 0; i < 100; i++)); do
		"$CTL" "$T/s2.ctl" '{"op":"status"}' | grep -q '"suspend_expired":true' && return 0
		sleep 0.1
	done
	return 1
}
check "suspend expires" expired
sum=$(md5sum <"$T/new.qcow2")
check "write after expiry fails" eval '! qemu-io -f raw "$(uri s2)" -c "write -P 9 0 4k"'
check "read after expiry works" qemu-io -r -f raw "$(uri s2)" -c "read -P 1 0 1M"
check "image untouched while expired" [ "$sum" = "$(md5sum <"$T/new.qcow2")" ]
check "resume after expiry" "$CTL" "$T/s2.ctl" '{"op":"resume"}'
check "write after resume works" qemu-io -f raw "$(uri s2)" -c "write -P 9 0 4k"
check "stop via control" "$CTL" "$T/s2.ctl" '{"op":"stop"}'
check "server exits 0 after stop" stop_server "$SERVER_PID"
finish
