#!/bin/bash
# A snapshot of an active volume on a full SR fails (no space for the new
# leaf, or the server's flush fails), and the VM's disk must not stay
# paused: once space is freed, writes work again without a deactivate.
# per-plugin
# per-format
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vol_create $((2048 << 20)) vm
K=$KEY
vol_activate 9
nbdio() { qemu-io -f raw "$@" "$NBD" >/dev/null 2>&1; }
check "write through NBD" nbdio -c "write -P 0x11 0 8M" -c flush

# fill the SR to its last 64 KiB (less than any new image needs), then
# write more than fits
avail=$(( $(stat -f -c '%a * %S' "$SR") ))
fallocate -l $((avail - (64 << 10))) "$SR/filler" 2>/dev/null ||
	head -c $((avail - (64 << 10))) /dev/zero > "$SR/filler" 2>/dev/null
nbdio -c "write -P 0x22 64M 64M" -c flush
check "writes past the free space fail" [ $? -ne 0 ]
vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
check "Volume.snapshot on the full SR fails ($(jqr -c .params 2>/dev/null))" [ "$RC" -ne 0 ]
check "...with a well-formed error record" jqt '.code == "SR_BACKEND_FAILURE"' <<<"$OUT"
rm -f "$SR/filler"
sync
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "no half-made snapshot is left behind" jqt 'length == 1' <<<"$OUT"
check "the same server still serves" alive "$PID"
check "after freeing space, writes work again" nbdio -c "write -P 0x33 128M 16M" -c flush
check "...and read back" nbdio -c "read -P 0x33 128M 16M"
check "the old data is intact" nbdio -c "read -P 0x11 0 8M"
vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
expect_ok "a snapshot now succeeds"
check "writes after it work" nbdio -c "write -P 0x44 0 1M" -c flush
vol_deactivate 9
finish
