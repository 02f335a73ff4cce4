#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# A full SR (issue 10): writes fail with ENOSPC, a snapshot's suspend comes
# (its flush may fail), then space is freed: the server must not stay
# suspended, and writes must work again without a restart.  The SR is a
# small tmpfs (needs root and mount).
. "$(dirname "$0")/lib.sh"

CTL="$NGDP_HELPERS/ngdp-ctl"
MNT=$T/mnt
mkdir -p "$MNT"
mount -t tmpfs -o size=48m tmpfs "$MNT" 2>/dev/null ||
	{ echo "skip: cannot mount a tmpfs (not root?)"; exit 77; }
cleanup_mnt() {
	local p
	for p in "${SERVER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
	for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	umount "$MNT" 2>/dev/null
	_cleanup
}
trap cleanup_mnt EXIT
SR=$MNT
KEY=0b7e1b52-58a4-4b8e-9d0e-0f7c1c9b1a01
ID1=5c1d4a9e-1b2c-4d3e-8f4a-111111111111
REC=$SR/meta/v-$KEY.json
mkdir -p "$SR/.sr/active" "$SR/meta" "$SR/images"
: >"$SR/.sr/lock"
printf '{"image":"%s","image-format":"qcow2"}\n' $ID1 >"$REC"
status() { "$CTL" "$T/s.ctl" '{"op":"status"}'; }

qemu-img create -q -f qcow2 "$SR/images/$ID1.qcow2" 256M
start_server s --image "$SR/images/$ID1.qcow2" --volume-record "$REC" \
	--control "$T/s.ctl" --confine "$SR/images" || fail "start"
check "write before the SR is full" qemu-io -f raw "$(uri s)" -c "write -P 1 0 4M"
# fill the SR
dd if=/dev/zero of="$SR/filler" bs=1M 2>/dev/null
check "the SR is full" [ "$(df --output=avail -B1M "$SR" | tail -1 | tr -d ' ')" -le 1 ]
check "writes to new clusters fail while the SR is full" \
	eval '! qemu-io -f raw "$(uri s)" -c "write -P 2 64M 16M" >/dev/null 2>&1'
# the snapshot's suspend: may fail (its flush), must never leave it suspended
"$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":2000}' >"$T/suspend.out"
suspend_rc=$?
echo "suspend on a full SR: exit $suspend_rc: $(cat "$T/suspend.out")"
[ $suspend_rc = 0 ] && "$CTL" "$T/s.ctl" '{"op":"resume"}' >/dev/null
check "not suspended after the suspend on a full SR" \
	eval 'status | grep -q "\"suspended\":false"'
rm -f "$SR/filler"
check "writes work once space is freed (no restart)" timeout 30 \
	qemu-io -f raw "$(uri s)" -c "write -P 3 64M 16M" -c "flush" \
	-c "read -P 1 0 4M" -c "read -P 3 64M 16M"
check "suspend works once space is freed" "$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":60000}'
check "resume" "$CTL" "$T/s.ctl" '{"op":"resume"}'
check "SIGTERM exit 0" stop_server "$SERVER_PID"
check "qemu-img check" qemu-img check -q "$SR/images/$ID1.qcow2"
check "image content" qemu-io -r -f qcow2 "$SR/images/$ID1.qcow2" \
	-c "read -P 1 0 4M" -c "read -P 3 64M 16M"
finish
