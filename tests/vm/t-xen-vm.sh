#!/bin/bash
# Issue 9's end-to-end test: a PV guest under a real Xen hypervisor (qemu,
# TCG without KVM) reads and writes its disk through blkfront -> blkback ->
# the /dev/nbdN from the ngdp plugin's XenDisk -> ngdp-server -> a QCOW2
# volume on an ext4-ng and an xfs-ng SR, with a live snapshot; see
# guest/xen-vm.sh for the dom0 side.
. "$(dirname "$0")/lib.sh"
why=$(vm_cannot); [ -z "$why" ] || { echo "skip: $why"; exit 77; }
VM_TIMEOUT=${VM_TIMEOUT_XEN:-1500} vm_run_xen "$VM_DIR/guest/xen-vm.sh" ${XEN_VM_PLUGINS:-ext4-ng xfs-ng}
