#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# --readonly rejects writes; an "@ro" export is read-only next to the
# writable one.
. "$(dirname "$0")/lib.sh"

qemu-img create -q -f qcow2 "$T/img.qcow2" 16M
qemu-io -f qcow2 "$T/img.qcow2" -c "write -P 9 0 1M" >/dev/null
sum0=$(md5sum <"$T/img.qcow2")

start_server ro --image "$T/img.qcow2" --readonly || fail "start"
# qemu-io exits non-zero when a command fails (a pattern mismatch too) or
# when it cannot open the export read-write; raw NBD writes to a read-only
# export are tried by nbd-evil (t-evil.sh).
writes_fail() { ! qemu-io -f raw "$1" -c "write -P 1 0 4k"; }
reads_ok() { qemu-io -r -f raw "$1" -c "read -P 9 0 1M"; }
check "--readonly: write fails" writes_fail "$(uri ro)"
check "--readonly: zero fails" eval '! qemu-io -f raw "$(uri ro)" -c "write -z 0 4k"'
check "--readonly: read works" reads_ok "$(uri ro)"
check "--readonly: nbdinfo says read-only" eval 'nbdinfo "$(uri ro)" | grep -q "is_read_only: true"'
check "--readonly: SIGTERM exit 0" stop_server "$SERVER_PID"
check "--readonly: image untouched" [ "$sum0" = "$(md5sum <"$T/img.qcow2")" ]

start_server rw --image "$T/img.qcow2" --export-name vol || fail "start rw"
check "@ro export: write fails" writes_fail "$(uri rw vol@ro)"
check "@ro export: read works" reads_ok "$(uri rw vol@ro)"
check "rw export: write works" qemu-io -f raw "$(uri rw vol)" -c "write -P 7 0 4k"
check "@ro export sees the write" qemu-io -r -f raw "$(uri rw vol@ro)" -c "read -P 7 0 4k"
check "unknown export refused" eval '! qemu-io -f raw "$(uri rw other)" -c "read 0 4k" >/dev/null 2>&1'
check "rw: SIGTERM exit 0" stop_server "$SERVER_PID"
finish
