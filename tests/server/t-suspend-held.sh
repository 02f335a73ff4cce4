#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# A write that must take the synchronous path while a read is in flight,
# then a suspend (issue 11): the write was mapped (its cluster allocated in
# the old top) before the suspend, so it must be written there before the
# suspend's flush.  It must never leave an allocated cluster that was never
# written in what becomes a snapshot.  Uses ngdp-server-fault:
#   sync-writes   every write takes the synchronous path;
#   stall-reads   read completions wait until a suspend is requested.
. "$(dirname "$0")/lib.sh"

FAULT="$NGDP_HELPERS/ngdp-server-fault"
[ -x "$FAULT" ] || { echo "skip: $FAULT not built"; exit 77; }
NGDP_SERVER=$FAULT
export NGDP_FAULT=sync-writes,stall-reads
CTL="$NGDP_HELPERS/ngdp-ctl"
W=$((40 * 1024 * 1024))

qemu-img create -q -f qcow2 "$T/old.qcow2" 64M
qemu-io -f qcow2 "$T/old.qcow2" -c "write -P 0x11 0 8M" >/dev/null
start_server s --image "$T/old.qcow2" --control "$T/s.ctl" || fail "start"
"$NGDP_HELPERS/nbd-evil" "$T/s.sock" pipeline 0 1048576 $W 65536 0x77 \
	>"$T/client.out" 2>&1 &
client=$!
BG_PIDS+=($client)
sleep 0.5
check "suspend while the read is in flight" "$CTL" "$T/s.ctl" '{"op":"suspend","timeout_ms":60000}'
cp "$T/old.qcow2" "$T/old.at-suspend"
check "create the overlay" qemu-img create -q -f qcow2 -b "$T/old.qcow2" -F qcow2 "$T/new.qcow2"
check "resume on the overlay" "$CTL" "$T/s.ctl" "{\"op\":\"resume\",\"image\":\"$T/new.qcow2\"}"
check "both requests succeeded" wait $client
check "SIGTERM exit 0" stop_server "$SERVER_PID"
check "qemu-img check old" qemu-img check -q "$T/old.qcow2"
check "old image unchanged since the suspend" \
	qemu-img compare -f qcow2 -F qcow2 "$T/old.at-suspend" "$T/old.qcow2"
# every cluster of the old top at the write's offset is either not
# allocated there, or holds the write's data
allocated_has_data() {
	local map
	map=$(qemu-img map -f qcow2 --output=json "$T/old.qcow2") || return 1
	if python3 -c '
import json, sys
w = int(sys.argv[1])
for e in json.loads(sys.stdin.read()):
    if e["start"] <= w < e["start"] + e["length"] and e["data"] and e["depth"] == 0:
        sys.exit(0)
sys.exit(1)' $W <<<"$map"; then
		echo "old top has the write's cluster allocated: it must hold the data"
		qemu-io -r -f qcow2 "$T/old.qcow2" -c "read -P 0x77 $W 64k"
	fi
}
check "old top: no cluster allocated but never written" allocated_has_data
check "new chain reads the write" \
	qemu-io -r -f qcow2 "$T/new.qcow2" -c "read -P 0x77 $W 64k" -c "read -P 0x11 0 8M"
check "qemu-img check new" qemu-img check -q "$T/new.qcow2"
finish
