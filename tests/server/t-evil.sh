#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Hostile and broken clients (tests/server/nbd-evil.c); the server must
# keep serving good clients and exit cleanly.
. "$(dirname "$0")/lib.sh"

for fmt in raw qcow2; do
	qemu-img create -q -f $fmt "$T/img.$fmt" 16M
	start_server $fmt --image "$T/img.$fmt" || { fail "$fmt: start"; continue; }
	if "$NGDP_HELPERS/nbd-evil" "$T/$fmt.sock" >"$T/evil.out" 2>&1; then
		ok "$fmt: $(tail -1 "$T/evil.out")"
	else
		fail "$fmt: nbd-evil"
		grep -v "^ok" "$T/evil.out"
	fi
	check "$fmt: server still alive" kill -0 "$SERVER_PID"
	check "$fmt: SIGTERM exit 0" stop_server "$SERVER_PID"
	[ $fmt = qcow2 ] && check "qcow2: qemu-img check" qemu-img check -q "$T/img.qcow2"
done
finish
