#!/bin/bash
# Volume.snapshot of an active volume killed right after its commit, before
# it could resume the server: the server must not stay paused, and must
# not write into what became the snapshot.  When its suspend times out it
# re-reads the volume record (--volume-record) and resumes on the new leaf.
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vol_create $((256 << 20)) vm
K=$KEY
vol_activate 4
check "write A" qio -f raw -c "write -P 0xa1 0 1M" -c flush "$NBD"
OLD=$(vol_image "$K")

XSNG_FAULT=snapshot-after-commit vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
check "the snapshot call was killed after its commit" [ "$RC" -eq 137 ]
vcall SR.ls "{\"dbg\":\"t\",\"sr\":\"$SR\"}"
check "the committed snapshot is in SR.ls (xapi finds it at its next scan)" jqt 'length == 2' <<<"$OUT"
S=$(jqr --arg k "$K" '.[] | select(.key != $k) | .key')
check "the volume moved to a new leaf" [ "$(vol_image "$K")" != "$OLD" ]
check "the snapshot keeps the old image" [ "$(vol_image "$S")" = "$OLD" ]
# the server is paused now; a write waits until it resumes by itself
start=$SECONDS
check "write B completes once the server resumes by itself" \
	bash -c "timeout 90 qemu-io -f raw -c 'write -P 0xb2 0 1M' -c flush '$NBD' >/dev/null"
echo "    (resumed after $((SECONDS - start)) s)"
check "the same server still serves" alive "$PID"
check "the live volume reads B" qio -r -f raw -c "read -P 0xb2 0 1M" "$NBD"
check "the snapshot still holds A" qio -r -f "$(vol_qemu_fmt "$S")" -c "read -P 0xa1 0 1M" "$OLD"
check "the new leaf holds B" qio -r -f "$(vol_qemu_fmt "$K")" -c "read -P 0xb2 0 1M" "$(vol_image "$K")"
vol_deactivate 4
check "both images are clean" bash -c "qemu-img check -q -f $(vol_qemu_fmt "$K") '$(vol_image "$K")' && qemu-img check -q -f $(vol_qemu_fmt "$S") '$OLD'"
finish
