#!/bin/bash
# A QCOW2 leaf left with leaked clusters by a datapath server that died
# (kill -9, host reset) is repaired before it becomes an immutable snapshot:
# nothing could reclaim those clusters afterwards.
# per-plugin
. "$(dirname "$0")/lib.sh"

mk_sr || { fail "SR setup"; finish; exit; }
vol_create $((256 << 20)) vm
K=$KEY
vol_activate 5
check "write through NBD" bash -c "qemu-io -f raw -c 'write -P 0x6b 0 2M' -c flush '$NBD' >/dev/null"
kill -9 "$PID"
while alive "$PID"; do sleep 0.05; done
IMG=$(vol_image "$K")
python3 "$SRCDIR/tests/functional/leak-cluster.py" "$IMG"
qemu-img check -q -f qcow2 "$IMG" >/dev/null 2>&1
check "the leaf now has a leaked cluster (qemu-img check exit 3)" [ $? -eq 3 ]

vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
expect_ok "Volume.snapshot of the volume whose server died"
S=$(jqr .key)
check "the snapshot's image has no leak (qemu-img check exit 0)" qemu-img check -q -f qcow2 "$(vol_image "$S")"
check "...and holds the data" bash -c "qemu-io -r -f qcow2 -c 'read -P 0x6b 0 2M' '$(vol_image "$S")' >/dev/null"
vol_deactivate 5
finish
