#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# nbdcopy round trip: file -> NBD (written through the server) -> file.
. "$(dirname "$0")/lib.sh"

truncate -s 64M "$T/src.raw"
check "source written" qemu-io -f raw "$T/src.raw" -c "write -P 0x11 0 5M" \
	-c "write -P 0x22 9M 7M" -c "write -P 0x33 63M 1M"
for fmt in raw qcow2; do
	qemu-img create -q -f $fmt "$T/dst.$fmt" 64M
	start_server $fmt --image "$T/dst.$fmt" || { fail "$fmt: start"; continue; }
	check "$fmt: nbdcopy file -> NBD" nbdcopy "$T/src.raw" "$(uri $fmt)"
	check "$fmt: nbdcopy NBD -> file" nbdcopy "$(uri $fmt)" "$T/back.$fmt.raw"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	check "$fmt: image equals the source" qemu-img compare -f raw -F $fmt "$T/src.raw" "$T/dst.$fmt"
	check "$fmt: copy back equals the source" cmp "$T/src.raw" "$T/back.$fmt.raw"
done
finish
