#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Short transfers and partial submissions (issue 11), with the
# fault-injecting build of the server (ngdp-server-fault):
#   short-io        every data read/write longer than one block completes
#                   for half its length, as some filesystems do;
#   submit-partial  (libaio) io_submit takes one iocb at a time and answers
#                   EAGAIN every other call while I/O is in flight.
# The data must still be exact: the rest of a short read is read, not
# filled with zeros, and the rest of a short write is written.
. "$(dirname "$0")/lib.sh"

FAULT="$NGDP_HELPERS/ngdp-server-fault"
[ -x "$FAULT" ] || { echo "skip: $FAULT not built"; exit 77; }
NGDP_SERVER=$FAULT
export NGDP_FAULT=short-io,submit-partial

truncate -s 64M "$T/src.raw"
qemu-io -f raw "$T/src.raw" -c "write -P 0x11 0 5M" -c "write -P 0x22 9M 7M" \
	-c "write -P 0x33 63M 1M" >/dev/null
for fmt in raw qcow2; do
	qemu-img convert -O $fmt "$T/src.raw" "$T/img.$fmt"
	start_server $fmt --image "$T/img.$fmt" || { fail "$fmt: start"; continue; }
	check "$fmt: reads of short transfers are exact" \
		qemu-io -r -f raw "$(uri $fmt)" -c "read -P 0x11 0 5M" \
		-c "read -P 0x22 9M 7M" -c "read -P 0x33 63M 1M" -c "read -P 0 5M 4M"
	check "$fmt: parallel reads (nbdcopy) are exact" \
		nbdcopy --requests=32 "$(uri $fmt)" "$T/back.$fmt.raw"
	check "$fmt: copy equals the source" cmp "$T/src.raw" "$T/back.$fmt.raw"
	check "$fmt: writes with short transfers" \
		qemu-io -f raw "$(uri $fmt)" -c "write -P 0x44 1M 3M" \
		-c "write -P 0x55 32M 8M"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: image holds every written byte" \
		qemu-io -r -f $fmt "$T/img.$fmt" -c "read -P 0x11 0 1M" \
		-c "read -P 0x44 1M 3M" -c "read -P 0x11 4M 1M" \
		-c "read -P 0x55 32M 8M" -c "read -P 0x33 63M 1M"
	[ $fmt = qcow2 ] && check "qcow2: qemu-img check" qemu-img check -q "$T/img.qcow2"
	grep -q "short-io\|failed" "$T/$fmt.log" && sed 's/^/    log: /' "$T/$fmt.log" | head -5
done
finish
