#!/bin/bash
# Guest discard gives space back: an NBD TRIM of 128 MiB on a QCOW2 or raw
# volume frees at least 96 MiB of the SR (SR.stat free_space and the
# volume's physical_utilisation follow), the discarded range reads as
# zeros, the rest is intact, and the image stays clean for qemu.  Over a
# snapshot, a discard hides the snapshot's data (QCOW2 zero clusters)
# instead of showing it again.  VHD cannot free blocks inside its file:
# there a TRIM is a hint that changes nothing, and the data stays as it was.
# per-plugin
# per-format
. "$(dirname "$0")/lib.sh"

MiB=$((1 << 20))
mk_sr || { fail "SR setup"; finish; exit; }
vol_create $((256 * MiB)) vm
K=$KEY
vol_activate 5
FMT=${IMAGE_FORMAT:-qcow2}
nbdio() { qio -f raw "$@" "$NBD"; }

sr_free() {
	vcall SR.stat "{\"dbg\":\"t\",\"sr\":\"$SR\"}" && jqr .free_space
}
vol_used() {
	vcall Volume.stat "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}" &&
		jqr .physical_utilisation
}

check "write 160 MiB through NBD" nbdio -c "write -P 0x5a 0 160M" -c flush
free1=$(sr_free) used1=$(vol_used)
check "discard 128 MiB through NBD" nbdio -c "discard 0 128M" -c flush
sync
free2=$(sr_free) used2=$(vol_used)
echo "    free_space $free1 -> $free2, physical_utilisation $used1 -> $used2"
check "the data after the discarded range is intact" \
	nbdio -c "read -P 0x5a 128M 32M"
if [ "$FMT" = vhd ]; then
	check "VHD: the discarded range still holds its data (a hint only)" \
		nbdio -c "read -P 0x5a 0 128M"
else
	check "the discarded range reads as zeros" nbdio -c "read -P 0 0 128M"
	check "SR.stat: at least 96 MiB more free space" \
		[ $((free2 - free1)) -ge $((96 * MiB)) ]
	check "Volume.stat: physical_utilisation at least 96 MiB lower" \
		[ $((used1 - used2)) -ge $((96 * MiB)) ]
fi

# Over a snapshot: the discarded data lives in the (immutable) parent.
vcall Volume.snapshot "{\"dbg\":\"t\",\"sr\":\"$SR\",\"key\":\"$K\"}"
expect_ok "Volume.snapshot of the active volume"
SNAP=$(jqr .key)
check "discard 16 MiB of data the snapshot holds" \
	nbdio -c "discard 128M 16M" -c flush
check "the rest of the leaf is intact" nbdio -c "read -P 0x5a 144M 16M"
if [ "$FMT" = vhd ]; then
	check "VHD: over a snapshot the range still reads its data" \
		nbdio -c "read -P 0x5a 128M 16M"
else
	check "over a snapshot the discarded range reads as zeros" \
		nbdio -c "read -P 0 128M 16M"
fi
vol_deactivate 5

# Readers of the image files, after the server flushed and exited (qemu,
# or $IMGIO for VHD: see vol_file_reads).
reads() { vol_file_reads "$@"; }
if [ "$(vol_qemu_fmt "$K")" = qcow2 ]; then
	check "qemu-img check: the leaf is clean" qemu-img check -q "$(vol_image "$K")"
fi
check "the leaf's file: the rest intact" reads "$K" 0x5a 144M 16M
if [ "$FMT" != vhd ]; then
	check "the leaf's file: discarded ranges are zeros" reads "$K" 0 0 144M
fi
check "the snapshot's file: its instant, untouched by the discard" \
	reads "$SNAP" 0x5a 128M 32M
finish
