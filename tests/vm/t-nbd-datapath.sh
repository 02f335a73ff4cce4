#!/bin/bash
# The /dev/nbdN handoff of the ngdp datapath on a kernel that has nbd.ko
# (Debian 12's 6.1, in a qemu guest): module loading, XenDisk + BlockDevice
# + Nbd, O_DIRECT I/O, read-only devices, per-domain detach, kill -9 of the
# server, nothing left behind.  Both SR types, one guest boot each.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
fail=0
for PLUGIN in ext4-ng xfs-ng; do
	export PLUGIN
	VM_TIMEOUT=${VM_TIMEOUT:-600} vm_run_plain "$VM_DIR/guest/nbd-datapath.sh"
	rc=$?
	[ "$rc" -eq 77 ] && exit 77
	[ "$rc" -eq 0 ] || { echo "  FAIL: nbd-datapath [$PLUGIN] (exit $rc)"; fail=1; }
done
exit $fail
