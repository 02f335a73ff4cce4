#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-only
# Issue 10, isolation: the server never guesses a format from an image's
# content (a guest can write a QCOW2 header into its raw disk), and every
# image of a chain is a regular file named plainly in the SR's images
# directory: no symlink (top or backing), no path in a backing name, no
# backing file without its format.
. "$(dirname "$0")/lib.sh"

for t in qemu-img qemu-io nbdcopy; do
	command -v $t >/dev/null || { echo "skip: $t not installed"; exit 77; }
done

I=$T/sr/images
mkdir -p "$I" "$T/elsewhere"
# Another VM's data, in the same SR.
qemu-img create -q -f qcow2 "$I/victim.qcow2" 1M
qemu-io -f qcow2 "$I/victim.qcow2" -c "write -P 0x5e 0 1M" >/dev/null

# served_as_file NAME FILE: the export's bytes are exactly FILE's.
served_as_file() {
	rm -f "$T/out.raw"
	nbdcopy "$(uri "$1")" "$T/out.raw" && cmp "$T/out.raw" "$2"
}

# A raw disk whose guest wrote a QCOW2 header naming the victim.
truncate -s 1M "$I/guest.raw"
qemu-img create -q -f qcow2 -b victim.qcow2 -F qcow2 -u "$T/hdr.qcow2" 1M
dd if="$T/hdr.qcow2" of="$I/guest.raw" bs=64k count=4 conv=notrunc status=none
# as the datapath plugin starts it (no --format): served by its name
if start_server probe --image "$I/guest.raw" --confine "$I"; then
	check "raw disk holding a qcow2 header is served raw" served_as_file probe "$I/guest.raw"
	check "probe: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	fail "probe: start"
fi
if start_server probe2 --image "$I/guest.raw" --format raw --confine "$I"; then
	check "--format raw: served raw" served_as_file probe2 "$I/guest.raw"
	check "probe2: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	fail "probe2: start"
fi
# no --format and a name that does not say it: refused, not guessed
cp "$I/guest.raw" "$I/noext"
check "no --format, no extension: refused" eval '! start_server noext --image "$I/noext" --confine "$I"'

# refused NAME IMAGE: the server must not come up on it.
refused() {
	local name=$1 img=$2
	shift 2
	check "$name: refused" eval '! start_server "$name" --image "$img" --confine "$I" '"$*"
}

# The top image is a symlink to a file outside the SR (the reset-on-boot
# overlay path of the datapath plugin), or to another volume.
qemu-img create -q -f qcow2 "$T/elsewhere/outside.qcow2" 1M
ln -s "$T/elsewhere/outside.qcow2" "$I/.np-key.qcow2"
refused symlink-top-outside "$I/.np-key.qcow2"
ln -s victim.qcow2 "$I/alias.qcow2"
refused symlink-top-inside "$I/alias.qcow2"
# The top image outside the confinement directory.
refused top-outside "$T/elsewhere/outside.qcow2"

# Backing files: a symlink (outside, inside), a path, no format.
ln -s "$T/elsewhere/outside.qcow2" "$I/base-out.qcow2"
qemu-img create -q -f qcow2 -b base-out.qcow2 -F qcow2 -u "$I/top1.qcow2" 1M
refused backing-symlink-outside "$I/top1.qcow2"
ln -s victim.qcow2 "$I/base-in.qcow2"
qemu-img create -q -f qcow2 -b base-in.qcow2 -F qcow2 -u "$I/top2.qcow2" 1M
refused backing-symlink-inside "$I/top2.qcow2"
mkdir "$I/sub"
qemu-img create -q -f qcow2 "$I/sub/b.qcow2" 1M
qemu-img create -q -f qcow2 -b sub/b.qcow2 -F qcow2 -u "$I/top3.qcow2" 1M
refused backing-subdirectory "$I/top3.qcow2"
qemu-img create -q -f qcow2 -b ../../elsewhere/outside.qcow2 -F qcow2 -u "$I/top4.qcow2" 1M
refused backing-dotdot "$I/top4.qcow2"
qemu-img create -q -f qcow2 -b victim.qcow2 -F qcow2 "$I/top5.qcow2"
# drop the backing format extension (v3 header: the first one at 112)
if [ "$(od -An -tx1 -j 112 -N 4 "$I/top5.qcow2" | tr -d ' ')" = e2792aca ]; then
	printf '\x00\x00\x00\x01' | dd of="$I/top5.qcow2" bs=1 seek=112 conv=notrunc status=none
	refused backing-without-format "$I/top5.qcow2"
else
	fail "backing-without-format: unexpected header layout"
fi
# A legitimate chain in the same directory still works.
qemu-img create -q -f qcow2 -b victim.qcow2 -F qcow2 "$I/top6.qcow2"
if start_server chain --image "$I/top6.qcow2" --confine "$I"; then
	check "plain chain: reads the backing data" \
		qemu-io -r -f raw "$(uri chain)" -c "read -P 0x5e 0 1M"
	check "chain: SIGTERM exit 0" stop_server "$SERVER_PID"
else
	fail "chain: start"
fi
finish
